//! Every trainable variable of the LLM gets a gradient.
//!
//! candle's fused softmax / rms-norm / rope record no backward op, so a fused op anywhere in the
//! decoder would silently leave every variable upstream of it without a gradient. This builds
//! the tiny models on `VarMap`s (from the parity fixtures, so it is deterministic), runs a
//! forward pass with spliced "image" features and a masked cross-entropy loss, and checks every
//! variable's gradient is present, finite and not all zero.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a panic is a failed test

mod llm_common;

use candle_core::{DType, Tensor, Var};
use candle_nn::VarBuilder;
use llm_common::{ARCHS, config, weights};
use vipa_models::llm::{CausalLm, LlmConfig, varmap_from_tensors};

fn check_all_vars_get_gradients(cfg: &LlmConfig, varmap: &candle_nn::VarMap) {
    let dev = vipa_models::device::test_device();
    let vb = VarBuilder::from_varmap(varmap, DType::F32, &dev);
    let model = CausalLm::new(cfg, vb).unwrap();

    // Two sequences of 6: ids with 2 image placeholders each (id 0 here).
    let ids = Tensor::new(&[[5u32, 0, 0, 9, 17, 33], [7, 8, 0, 0, 40, 41]], &dev).unwrap();
    let features = Var::from_tensor(
        &(Tensor::arange(0f32, (4 * cfg.hidden_size) as f32, &dev).unwrap() * 0.01)
            .unwrap()
            .cos()
            .unwrap()
            .reshape((4, cfg.hidden_size))
            .unwrap(),
    )
    .unwrap();
    let embeds = model
        .embed_with_images(&ids, 0, features.as_tensor())
        .unwrap();
    let logits = model.forward_embeds(&embeds, 0, None).unwrap();
    let targets = Tensor::new(&[[1u32, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]], &dev).unwrap();
    let mask = Tensor::new(
        &[[0f32, 0., 0., 1., 1., 1.], [0., 0., 0., 1., 1., 1.]],
        &dev,
    )
    .unwrap();
    let loss = CausalLm::masked_cross_entropy(&logits, &targets, &mask).unwrap();
    assert!(loss.to_scalar::<f32>().unwrap().is_finite());
    let grads = loss.backward().unwrap();

    let data = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let expected_vars = if cfg.tie_word_embeddings { 2 } else { 3 }
        + cfg.num_hidden_layers
            * (9 + if cfg.model_type == vipa_models::llm::Arch::Qwen3 {
                2
            } else {
                0
            });
    assert_eq!(names.len(), expected_vars, "{names:?}");
    for name in names {
        let var = &data[name];
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        let abs = g.abs().unwrap().flatten_all().unwrap();
        let max = abs.max(0).unwrap().to_scalar::<f32>().unwrap();
        let sum = abs.sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(sum.is_finite(), "{name}: non-finite gradient");
        assert!(max > 0.0, "{name}: all-zero gradient");
    }
    let g = grads
        .get(features.as_tensor())
        .expect("image features get a gradient");
    assert!(
        g.abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            > 0.0
    );
}

#[test]
fn every_variable_gets_a_gradient() {
    for arch in ARCHS {
        let cfg = config(arch);
        let dev = vipa_models::device::test_device();
        let on_dev = weights(arch)
            .into_iter()
            .map(|(k, t)| (k, t.to_device(&dev).unwrap()))
            .collect();
        let varmap = varmap_from_tensors(&on_dev, DType::F32).unwrap();
        check_all_vars_get_gradients(&cfg, &varmap);
    }
}

/// Building on an empty `VarMap` creates every variable (fresh init) and they all train too.
#[test]
fn fresh_varmap_model_trains_every_variable() {
    let cfg = config("qwen3");
    let varmap = candle_nn::VarMap::new();
    check_all_vars_get_gradients(&cfg, &varmap);
}
