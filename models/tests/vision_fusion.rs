//! The fusion layer against a direct, hand-written composition of the paper's formula.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a panic is a failed test

use std::collections::HashMap;

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use vipa_models::vision::config::FusionConfig;
use vipa_models::vision::fusion::Fusion;
use vipa_models::vision::spatial::SpatialTokens;

const DV: usize = 8;
const DS: usize = 6;
const HEADS: usize = 2;

fn weights(dev: &Device) -> HashMap<String, Tensor> {
    let mut m = HashMap::new();
    let mut put = |name: &str, shape: &[usize]| {
        let t = Tensor::randn(0f32, 0.5, shape, dev).unwrap();
        m.insert(format!("fusion.{name}"), t);
    };
    for (ln, d) in [("ln_sem", DV), ("ln_spa", DS), ("ln_out", DV)] {
        put(&format!("{ln}.weight"), &[d]);
        put(&format!("{ln}.bias"), &[d]);
    }
    put("q_proj.weight", &[DV, DV]);
    put("q_proj.bias", &[DV]);
    put("k_proj.weight", &[DV, DS]);
    put("k_proj.bias", &[DV]);
    put("v_proj.weight", &[DV, DS]);
    put("v_proj.bias", &[DV]);
    put("out_proj.weight", &[DV, DV]);
    put("out_proj.bias", &[DV]);
    m.insert(
        "fusion.alpha".to_string(),
        Tensor::new(&[0.5f32], dev).unwrap(),
    );
    m
}

/// LayerNorm written out: (x - mean) / sqrt(var + eps) · w + b.
fn ln(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    let mean = x.mean_keepdim(D::Minus1).unwrap();
    let xc = x.broadcast_sub(&mean).unwrap();
    let var = xc.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
    let xn = xc
        .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
        .unwrap();
    xn.broadcast_mul(w).unwrap().broadcast_add(b).unwrap()
}

fn lin(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    x.broadcast_matmul(&w.t().unwrap())
        .unwrap()
        .broadcast_add(b)
        .unwrap()
}

/// The paper's formula, one batch element and one head at a time, softmax by exp / sum.
fn reference(
    w: &HashMap<String, Tensor>,
    sem: &Tensor,
    spa: &Tensor,
    valid: &[Vec<f32>],
) -> Tensor {
    let g = |n: &str| w[&format!("fusion.{n}")].clone();
    let (b, _, _) = sem.dims3().unwrap();
    assert_eq!(valid.len(), b);
    let hd = DV / HEADS;
    let mut outs = Vec::new();
    for (bi, keep) in valid.iter().enumerate() {
        let s = sem.get(bi).unwrap();
        let p = spa.get(bi).unwrap();
        let q = lin(
            &ln(&s, &g("ln_sem.weight"), &g("ln_sem.bias")),
            &g("q_proj.weight"),
            &g("q_proj.bias"),
        );
        let pn = ln(&p, &g("ln_spa.weight"), &g("ln_spa.bias"));
        let k = lin(&pn, &g("k_proj.weight"), &g("k_proj.bias"));
        let v = lin(&pn, &g("v_proj.weight"), &g("v_proj.bias"));
        let keep = Tensor::new(keep.as_slice(), sem.device()).unwrap();
        let mut heads = Vec::new();
        for h in 0..HEADS {
            let qh = q.narrow(1, h * hd, hd).unwrap().contiguous().unwrap();
            let kh = k.narrow(1, h * hd, hd).unwrap().contiguous().unwrap();
            let vh = v.narrow(1, h * hd, hd).unwrap().contiguous().unwrap();
            let scores = (qh.matmul(&kh.t().unwrap()).unwrap() / (hd as f64).sqrt()).unwrap();
            let e = scores.exp().unwrap().broadcast_mul(&keep).unwrap();
            let p = e.broadcast_div(&e.sum_keepdim(1).unwrap()).unwrap();
            heads.push(p.matmul(&vh).unwrap());
        }
        let attn = Tensor::cat(&heads, 1).unwrap();
        let f_spa = lin(&attn, &g("out_proj.weight"), &g("out_proj.bias"));
        let fused = (s + (f_spa * 0.5).unwrap()).unwrap();
        outs.push(ln(&fused, &g("ln_out.weight"), &g("ln_out.bias")));
    }
    Tensor::stack(&outs, 0).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

fn fusion(w: &HashMap<String, Tensor>, dev: &Device) -> Fusion {
    let cfg = FusionConfig::paper(DV, DS, HEADS);
    let vb = VarBuilder::from_tensors(w.clone(), DType::F32, dev);
    Fusion::new(&cfg, vb.pp("fusion")).unwrap()
}

#[test]
fn fusion_at_init_is_ln_of_sem_plus_half_f_spa() {
    let dev = Device::Cpu;
    let w = weights(&dev);
    let f = fusion(&w, &dev);
    let sem = Tensor::randn(0f32, 1.0, (2, 5, DV), &dev).unwrap();
    let spa = Tensor::randn(0f32, 1.0, (2, 3, DS), &dev).unwrap();
    let tokens = SpatialTokens {
        tokens: spa.clone(),
        valid: None,
    };
    let got = f.forward(&sem, Some(&tokens), false).unwrap();
    let want = reference(&w, &sem, &spa, &[vec![1.0; 3], vec![1.0; 3]]);
    assert!(
        max_diff(&got, &want) < 1e-5,
        "diff {}",
        max_diff(&got, &want)
    );
    // And F_spa itself is the unscaled branch: LN(sem + 0.5·F_spa) from the layer's own F_spa.
    let f_spa = f.spatial_features(&sem, &tokens).unwrap();
    let composed = ln(
        &(&sem + (f_spa * 0.5).unwrap()).unwrap(),
        &w["fusion.ln_out.weight"],
        &w["fusion.ln_out.bias"],
    );
    assert!(max_diff(&got, &composed) < 1e-5);
}

#[test]
fn fresh_fusion_initialises_alpha_to_one_half() {
    let dev = Device::Cpu;
    let vm = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    let f = Fusion::new(&FusionConfig::paper(DV, DS, HEADS), vb).unwrap();
    assert_eq!(f.alpha().to_vec1::<f32>().unwrap(), vec![0.5]);
}

#[test]
fn invalid_spatial_tokens_are_ignored() {
    let dev = Device::Cpu;
    let w = weights(&dev);
    let f = fusion(&w, &dev);
    let sem = Tensor::randn(0f32, 1.0, (1, 4, DV), &dev).unwrap();
    let spa = Tensor::randn(0f32, 1.0, (1, 3, DS), &dev).unwrap();
    let valid = Tensor::new(&[[1f32, 0.0, 1.0]], &dev).unwrap();
    let tokens = SpatialTokens {
        tokens: spa.clone(),
        valid: Some(valid),
    };
    let got = f.forward(&sem, Some(&tokens), false).unwrap();
    let want = reference(&w, &sem, &spa, &[vec![1.0, 0.0, 1.0]]);
    assert!(max_diff(&got, &want) < 1e-5);
    // Changing the masked token does not change the output.
    let spa2 = spa
        .slice_assign(
            &[0..1, 1..2, 0..DS],
            &Tensor::ones((1, 1, DS), DType::F32, &dev).unwrap(),
        )
        .unwrap();
    let tokens2 = SpatialTokens {
        tokens: spa2,
        valid: tokens.valid.clone(),
    };
    let got2 = f.forward(&sem, Some(&tokens2), false).unwrap();
    assert!(max_diff(&got, &got2) < 1e-6);
}

#[test]
fn no_spatial_tokens_is_identity() {
    let dev = Device::Cpu;
    let f = fusion(&weights(&dev), &dev);
    let sem = Tensor::randn(0f32, 1.0, (2, 5, DV), &dev).unwrap();
    let out = f.forward(&sem, None, true).unwrap();
    assert_eq!(max_diff(&out, &sem), 0.0);
}

#[test]
fn wrong_widths_are_rejected() {
    let dev = Device::Cpu;
    let f = fusion(&weights(&dev), &dev);
    let sem = Tensor::randn(0f32, 1.0, (1, 5, DV), &dev).unwrap();
    let spa = SpatialTokens {
        tokens: Tensor::randn(0f32, 1.0, (1, 3, DS + 1), &dev).unwrap(),
        valid: None,
    };
    let err = f.forward(&sem, Some(&spa), false).unwrap_err().to_string();
    assert!(err.contains("fusion"), "{err}");
}

#[test]
fn dropout_is_active_only_in_training() {
    let dev = Device::Cpu;
    let f = fusion(&weights(&dev), &dev);
    let sem = Tensor::randn(0f32, 1.0, (1, 64, DV), &dev).unwrap();
    let spa = SpatialTokens {
        tokens: Tensor::randn(0f32, 1.0, (1, 3, DS), &dev).unwrap(),
        valid: None,
    };
    let a = f.forward(&sem, Some(&spa), false).unwrap();
    let b = f.forward(&sem, Some(&spa), false).unwrap();
    assert_eq!(max_diff(&a, &b), 0.0);
    let t = f.forward(&sem, Some(&spa), true).unwrap();
    assert!(
        max_diff(&a, &t) > 1e-3,
        "dropout p=0.1 over 512 values must change something"
    );
}
