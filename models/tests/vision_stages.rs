//! Stage control: which vision-side groups train, and gradient coverage of every trainable var.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a panic is a failed test

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use vipa_models::checkpoint::Checkpoint;
use vipa_models::stage::{ParamGroup, Stage, StagePolicy, TrainableSet};
use vipa_models::vipa::{VipaVision, VipaVisionConfig};
use vipa_models::vision::spatial::SpatialInput;

fn inputs(dev: &Device) -> (Tensor, SpatialInput) {
    let px = Tensor::randn(0f32, 1.0, (2, 3, 56, 56), dev).unwrap();
    let mut pts = Tensor::rand(0.1f32, 1.0, (2, 56, 56, 3), dev).unwrap();
    // Some invalid pixels (NaN and zero) must not break gradients.
    let nan = Tensor::full(f32::NAN, (1, 3, 5, 3), dev).unwrap();
    pts = pts
        .slice_assign(&[0..1, 10..13, 20..25, 0..3], &nan)
        .unwrap();
    let zero = Tensor::zeros((1, 2, 2, 3), candle_core::DType::F32, dev).unwrap();
    pts = pts.slice_assign(&[1..2, 0..2, 0..2, 0..3], &zero).unwrap();
    (px, SpatialInput::PointMaps(pts))
}

fn random_weights(dev: &Device) -> HashMap<String, Tensor> {
    VipaVision::random_weights(&VipaVisionConfig::tiny(), dev).unwrap()
}

/// Builds the tiny model for `policy`, runs forward + MSE loss + backward, and returns the
/// trainable set and the number of vars whose gradient is finite and non-zero.
fn check_gradients(policy: &StagePolicy, train: bool) -> (TrainableSet, usize) {
    let dev = vipa_models::device::test_device();
    let weights = Arc::new(Checkpoint::from_tensors("random", random_weights(&dev)));
    let varmap = VarMap::new();
    let model = VipaVision::new(
        &VipaVisionConfig::tiny(),
        policy,
        Some(weights),
        &varmap,
        &dev,
    )
    .unwrap();
    let (px, spatial) = inputs(&dev);
    let out = model.forward(&px, Some(&spatial), train).unwrap();
    let target = Tensor::randn(0f32, 1.0, out.shape(), &dev).unwrap();
    let loss = (out - target).unwrap().sqr().unwrap().mean_all().unwrap();
    let grads = loss.backward().unwrap();
    let set = TrainableSet::new(policy, &varmap);
    let vars: Vec<(String, Var)> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut ok = 0;
    for (name, var) in &vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for trainable var `{name}`"));
        let vals: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
        assert!(
            vals.iter().all(|v| v.is_finite()),
            "non-finite gradient for `{name}`"
        );
        assert!(
            vals.iter().any(|v| *v != 0.0),
            "all-zero gradient for `{name}`"
        );
        ok += 1;
    }
    (set, ok)
}

#[test]
fn stage_one_trains_fusion_and_point_map_vit_only() {
    let policy = StagePolicy::new(Stage::One);
    assert_eq!(
        policy.trainable_groups(),
        vec![ParamGroup::Fusion, ParamGroup::SpatialEncoder]
    );
    let (set, ok) = check_gradients(&policy, true);
    assert!(set.stray_names().is_empty(), "{:?}", set.stray_names());
    assert_eq!(ok, set.var_names.len());
    // fusion: 3 LNs ×2 + 4 linears ×2 + α = 15 vars; the tiny point-map ViT has more.
    let fusion = set
        .var_names
        .iter()
        .filter(|n| n.starts_with("fusion."))
        .count();
    assert_eq!(fusion, 15);
    assert!(set.var_names.iter().any(|n| n == "fusion.alpha"));
    assert!(
        set.var_names
            .iter()
            .any(|n| n.starts_with("spatial_encoder.layers.0."))
    );
    assert!(
        !set.var_names
            .iter()
            .any(|n| n.starts_with("vision_model.") || n.starts_with("mlp1."))
    );
}

#[test]
fn stage_two_vision_side_matches_paper() {
    let policy = StagePolicy::new(Stage::Two);
    let groups = policy.trainable_groups();
    for g in [
        ParamGroup::Fusion,
        ParamGroup::Llm,
        ParamGroup::MotionEmbeddings,
    ] {
        assert!(groups.contains(&g), "{g:?} must train in stage 2");
    }
    for g in [
        ParamGroup::Vision,
        ParamGroup::Projector,
        ParamGroup::ActionHead,
    ] {
        assert!(!groups.contains(&g), "{g:?} must be frozen in stage 2");
    }
    let (set, ok) = check_gradients(&policy, false);
    assert!(set.stray_names().is_empty());
    assert_eq!(ok, set.var_names.len());
    assert!(ok > 15);
}

#[test]
fn stage_three_freezes_fusion_by_default() {
    let policy = StagePolicy::new(Stage::Three);
    assert_eq!(
        policy.trainable_groups(),
        vec![ParamGroup::Llm, ParamGroup::ActionHead]
    );
    let dev = Device::Cpu;
    let weights = Arc::new(Checkpoint::from_tensors("random", random_weights(&dev)));
    let varmap = VarMap::new();
    let model = VipaVision::new(
        &VipaVisionConfig::tiny(),
        &policy,
        Some(weights),
        &varmap,
        &dev,
    )
    .unwrap();
    assert!(
        varmap.all_vars().is_empty(),
        "no vision-side var trains in stage 3"
    );
    let fusion = model.fusion().unwrap();
    assert!(
        !fusion.alpha().is_variable(),
        "frozen α must be a plain tensor"
    );
    // Frozen weights give no gradient path at all.
    let (px, spatial) = inputs(&dev);
    let out = model.forward(&px, Some(&spatial), false).unwrap();
    assert!(
        !out.track_op(),
        "nothing upstream of a fully frozen path is a var"
    );
}

#[test]
fn stage_three_can_train_fusion() {
    let policy = StagePolicy {
        train_fusion_in_stage3: true,
        ..StagePolicy::new(Stage::Three)
    };
    assert!(policy.is_trainable(ParamGroup::Fusion));
    let (set, ok) = check_gradients(&policy, true);
    assert!(set.stray_names().is_empty());
    assert_eq!(ok, set.var_names.len());
    assert!(ok >= 15);
}

#[test]
fn trainable_vars_start_from_checkpoint_values() {
    let dev = Device::Cpu;
    let mut w = random_weights(&dev);
    w.insert(
        "fusion.alpha".to_string(),
        Tensor::new(&[0.7f32], &dev).unwrap(),
    );
    let probe = w["fusion.q_proj.weight"].clone();
    let varmap = VarMap::new();
    let policy = StagePolicy::new(Stage::Two);
    let model = VipaVision::new(
        &VipaVisionConfig::tiny(),
        &policy,
        Some(Arc::new(Checkpoint::from_tensors("stage1", w))),
        &varmap,
        &dev,
    )
    .unwrap();
    let alpha = model.fusion().unwrap().alpha();
    assert!(alpha.is_variable());
    assert_eq!(alpha.to_vec1::<f32>().unwrap(), vec![0.7]);
    let data = varmap.data().lock().unwrap();
    let q = data["fusion.q_proj.weight"].as_tensor();
    let d: f32 = (q - &probe)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert_eq!(d, 0.0);
}

#[test]
fn fresh_fusion_without_checkpoint_values_is_random_init() {
    // An InternVL-only checkpoint (no fusion keys): stage 1 creates the fusion layer fresh.
    let dev = Device::Cpu;
    let w: HashMap<String, Tensor> = random_weights(&dev)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("fusion.") && !k.starts_with("spatial_encoder."))
        .collect();
    let varmap = VarMap::new();
    let model = VipaVision::new(
        &VipaVisionConfig::tiny(),
        &StagePolicy::new(Stage::One),
        Some(Arc::new(Checkpoint::from_tensors("internvl", w))),
        &varmap,
        &dev,
    )
    .unwrap();
    assert_eq!(
        model.fusion().unwrap().alpha().to_vec1::<f32>().unwrap(),
        vec![0.5]
    );
    // But a frozen group cannot be invented: stage 3 without fusion weights fails clearly.
    let w: HashMap<String, Tensor> = random_weights(&dev)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("fusion."))
        .collect();
    let err = VipaVision::new(
        &VipaVisionConfig::tiny(),
        &StagePolicy::new(Stage::Three),
        Some(Arc::new(Checkpoint::from_tensors("internvl", w))),
        &VarMap::new(),
        &dev,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("missing tensor `fusion."), "{err}");
}

/// Timing of the CPU `small` preset (not run by default: `cargo test -p vipa-models --test
/// vision_stages -- --ignored --nocapture`). Prints forward and stage-1 train-step times.
#[test]
#[ignore = "timing, slow on CPU"]
fn small_preset_timing() {
    let dev = Device::Cpu;
    let cfg = VipaVisionConfig::small();
    let w = Arc::new(Checkpoint::from_tensors(
        "random",
        VipaVision::random_weights(&cfg, &dev).unwrap(),
    ));
    let varmap = VarMap::new();
    let model =
        VipaVision::new(&cfg, &StagePolicy::new(Stage::One), Some(w), &varmap, &dev).unwrap();
    let px = Tensor::randn(0f32, 1.0, (1, 3, 224, 224), &dev).unwrap();
    let pts = SpatialInput::PointMaps(Tensor::rand(0.1f32, 1.0, (1, 224, 224, 3), &dev).unwrap());
    let t = std::time::Instant::now();
    let out = model.forward(&px, Some(&pts), false).unwrap();
    eprintln!(
        "small forward (batch 1): {:?}, out {:?}",
        t.elapsed(),
        out.dims()
    );
    let t = std::time::Instant::now();
    let out = model.forward(&px, Some(&pts), true).unwrap();
    let loss = out.sqr().unwrap().mean_all().unwrap();
    let grads = loss.backward().unwrap();
    eprintln!(
        "small stage-1 forward+backward (batch 1): {:?}, {} trainable vars",
        t.elapsed(),
        varmap.all_vars().len()
    );
    assert!(
        varmap
            .all_vars()
            .iter()
            .all(|v| grads.get(v.as_tensor()).is_some())
    );
}
