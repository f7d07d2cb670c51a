//! The composite VIPA VLM: visual embeddings spliced into the LLM, stage gradient coverage
//! across vision and language parts.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a panic is a failed test

use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use vipa_models::checkpoint::Checkpoint;
use vipa_models::llm::CausalLm;
use vipa_models::stage::{ParamGroup, Stage, StagePolicy, TrainableSet};
use vipa_models::vision::spatial::SpatialInput;
use vipa_models::vlm::{Vipa, VipaConfig};

const IMG: u32 = 127;

/// Two sequences of 10 tokens; each holds one image's 4 placeholders.
fn batch(dev: &Device) -> (Tensor, Tensor, SpatialInput, Tensor, Tensor) {
    let ids: Vec<u32> = [
        [1, 5, IMG, IMG, IMG, IMG, 9, 10, 11, 2],
        [1, IMG, IMG, IMG, IMG, 7, 8, 12, 13, 2],
    ]
    .concat();
    let ids = Tensor::from_vec(ids, (2, 10), dev).unwrap();
    let targets = Tensor::from_vec(
        (0..20u32).map(|i| 3 + i % 100).collect::<Vec<_>>(),
        (2, 10),
        dev,
    )
    .unwrap();
    let mask = Tensor::from_vec(
        [
            [0f32, 0., 0., 0., 0., 0., 1., 1., 1., 1.],
            [0., 0., 0., 0., 0., 1., 1., 1., 1., 1.],
        ]
        .concat(),
        (2, 10),
        dev,
    )
    .unwrap();
    let px = Tensor::randn(0f32, 1.0, (2, 3, 56, 56), dev).unwrap();
    let pts = Tensor::rand(0.1f32, 1.0, (2, 56, 56, 3), dev).unwrap();
    (ids, px, SpatialInput::PointMaps(pts), targets, mask)
}

fn build(policy: &StagePolicy, varmap: &VarMap) -> Vipa {
    let dev = Device::Cpu;
    let cfg = VipaConfig::tiny();
    let w = Arc::new(Checkpoint::from_tensors(
        "random",
        Vipa::random_weights(&cfg, &dev).unwrap(),
    ));
    Vipa::new(&cfg, policy, Some(w), varmap, &dev).unwrap()
}

fn grad_coverage(policy: &StagePolicy) -> TrainableSet {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let model = build(policy, &varmap);
    let (ids, px, spatial, targets, mask) = batch(&dev);
    let logits = model.forward(&ids, &px, Some(&spatial), true).unwrap();
    assert_eq!(logits.dims(), &[2, 10, 128]);
    let loss = CausalLm::masked_cross_entropy(&logits, &targets, &mask).unwrap();
    let grads = loss.backward().unwrap();
    let vars: Vec<(String, Var)> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (name, var) in &vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for `{name}`"));
        let vals: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
        assert!(
            vals.iter().all(|v| v.is_finite()),
            "non-finite gradient for `{name}`"
        );
        assert!(vals.iter().any(|v| *v != 0.0), "zero gradient for `{name}`");
    }
    let set = TrainableSet::new(policy, &varmap);
    assert!(set.stray_names().is_empty(), "{:?}", set.stray_names());
    set
}

#[test]
fn stage_one_gradients_reach_fusion_through_frozen_llm() {
    let set = grad_coverage(&StagePolicy::new(Stage::One));
    assert!(set.var_names.iter().any(|n| n == "fusion.alpha"));
    assert!(
        !set.var_names
            .iter()
            .any(|n| n.starts_with("language_model."))
    );
}

#[test]
fn stage_two_trains_fusion_and_llm() {
    let set = grad_coverage(&StagePolicy::new(Stage::Two));
    assert!(set.var_names.iter().any(|n| n == "fusion.alpha"));
    assert!(
        set.var_names
            .iter()
            .any(|n| n == "language_model.model.embed_tokens.weight")
    );
    assert!(
        set.var_names
            .iter()
            .any(|n| n.starts_with("language_model.model.layers.1."))
    );
    assert!(
        !set.var_names
            .iter()
            .any(|n| n.starts_with("vision_model.") || n.starts_with("mlp1."))
    );
}

/// At stage 2 the LLM trains, so its tensors are `Var`s; a checkpoint that lacks some of
/// them (other names, a partial file) is an error naming them, as at stage 1 where the LLM is
/// frozen, never a silent random init.
#[test]
fn a_checkpoint_without_the_llm_fails_at_stage_two_as_at_stage_one() {
    let dev = Device::Cpu;
    let cfg = VipaConfig::tiny();
    let mut tensors = Vipa::random_weights(&cfg, &dev).unwrap();
    tensors.retain(|k, _| !k.starts_with("language_model.model.layers.1."));
    let w = Arc::new(Checkpoint::from_tensors("partial.safetensors", tensors));
    for stage in [Stage::One, Stage::Two] {
        let err = Vipa::new(
            &cfg,
            &StagePolicy::new(stage),
            Some(w.clone()),
            &VarMap::new(),
            &dev,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("partial.safetensors"), "{stage:?}: {err}");
        assert!(
            err.contains("language_model.model.layers.1."),
            "{stage:?}: {err}"
        );
    }
}

/// A checkpoint whose LLM and projector are in transformers' naming (`model.language_model.*`,
/// `lm_head.*`, `model.multi_modal_projector.*`) loads, and gives the same logits as the
/// upstream-named one.
#[test]
fn the_transformers_naming_of_llm_and_projector_loads() {
    let dev = Device::Cpu;
    let cfg = VipaConfig::tiny();
    let upstream = Vipa::random_weights(&cfg, &dev).unwrap();
    let rename = |k: &str| -> String {
        if let Some(rest) = k.strip_prefix("language_model.model.") {
            format!("model.language_model.{rest}")
        } else if let Some(rest) = k.strip_prefix("language_model.lm_head.") {
            format!("lm_head.{rest}")
        } else if let Some(rest) = k.strip_prefix("mlp1.") {
            let (i, tail) = rest.split_once('.').unwrap();
            let part = ["layer_norm", "linear_1", "", "linear_2"][i.parse::<usize>().unwrap()];
            format!("model.multi_modal_projector.{part}.{tail}")
        } else {
            k.to_owned()
        }
    };
    let hf: std::collections::HashMap<String, Tensor> = upstream
        .iter()
        .map(|(k, v)| (rename(k), v.clone()))
        .collect();
    assert!(hf.keys().any(|k| k.starts_with("model.language_model.")));
    let dir = tempfile::tempdir().unwrap();
    let (ids, px, spatial, _, _) = batch(&dev);
    let logits = |tensors: &std::collections::HashMap<String, Tensor>, file: &str| {
        let path = dir.path().join(file);
        candle_core::safetensors::save(tensors, &path).unwrap();
        let w = Arc::new(Checkpoint::open(&[&path]).unwrap());
        let policy = StagePolicy::new(Stage::One);
        let model = Vipa::new(&cfg, &policy, Some(w), &VarMap::new(), &dev).unwrap();
        model.forward(&ids, &px, Some(&spatial), false).unwrap()
    };
    let values = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let a = values(logits(&upstream, "upstream.safetensors"));
    let b = values(logits(&hf, "hf.safetensors"));
    assert_eq!(a, b, "the two namings load different values");
}

#[test]
fn stage_three_trains_llm_only_on_this_side() {
    let policy = StagePolicy::new(Stage::Three);
    let set = grad_coverage(&policy);
    assert!(
        set.var_names
            .iter()
            .all(|n| ParamGroup::of(n) == Some(ParamGroup::Llm))
    );
    assert!(!set.var_names.is_empty());
}

#[test]
fn image_embeddings_land_on_placeholders() {
    let dev = Device::Cpu;
    let model = build(&StagePolicy::new(Stage::One), &VarMap::new());
    let (ids, px, spatial, _, _) = batch(&dev);
    let embeds = model.embed(&ids, &px, Some(&spatial), false).unwrap();
    let feats = model.vision().forward(&px, Some(&spatial), false).unwrap(); // [2, 4, 32]
    // Row 0: placeholders at positions 2..6 hold image 0's tokens; row 1: 1..5 image 1's.
    let d0 = (embeds.get(0).unwrap().narrow(0, 2, 4).unwrap() - feats.get(0).unwrap()).unwrap();
    let d1 = (embeds.get(1).unwrap().narrow(0, 1, 4).unwrap() - feats.get(1).unwrap()).unwrap();
    for d in [d0, d1] {
        assert_eq!(
            d.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0
        );
    }
    // Wrong placeholder count is an error.
    let bad = Tensor::zeros((2, 10), DType::U32, &dev).unwrap();
    assert!(model.embed(&bad, &px, Some(&spatial), false).is_err());
}
