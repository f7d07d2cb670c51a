//! Bad checkpoints give one clear error naming the tensor and the file.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a panic is a failed test

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use vipa_models::checkpoint::Checkpoint;
use vipa_models::stage::{Stage, StagePolicy};
use vipa_models::vipa::{VipaVision, VipaVisionConfig};

fn build(path: &std::path::Path) -> candle_core::Result<VipaVision> {
    let ckpt = Arc::new(Checkpoint::open(&[path])?);
    VipaVision::new(
        &VipaVisionConfig::tiny(),
        &StagePolicy::new(Stage::Three),
        Some(ckpt),
        &VarMap::new(),
        &Device::Cpu,
    )
}

fn weights() -> HashMap<String, Tensor> {
    VipaVision::random_weights(&VipaVisionConfig::tiny(), &Device::Cpu).unwrap()
}

#[test]
fn complete_checkpoint_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.safetensors");
    candle_core::safetensors::save(&weights(), &path).unwrap();
    build(&path).unwrap();
}

#[test]
fn missing_key_names_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.safetensors");
    let mut w = weights();
    w.remove("vision_model.encoder.layers.1.attn.qkv.weight");
    candle_core::safetensors::save(&w, &path).unwrap();
    let err = build(&path).unwrap_err().to_string();
    assert!(
        err.contains("vision_model.encoder.layers.1.attn.qkv.weight"),
        "{err}"
    );
    assert!(err.contains("missing.safetensors"), "{err}");
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn wrong_shape_names_key_shapes_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shape.safetensors");
    let mut w = weights();
    w.insert(
        "mlp1.1.weight".to_string(),
        Tensor::zeros((32, 128), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&w, &path).unwrap();
    let err = build(&path).unwrap_err().to_string();
    assert!(err.contains("mlp1.1.weight"), "{err}");
    assert!(err.contains("shape.safetensors"), "{err}");
    assert!(
        err.contains("[32, 128]") && err.contains("[32, 256]"),
        "{err}"
    );
}

#[test]
fn truncated_file_names_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truncated.safetensors");
    candle_core::safetensors::save(&weights(), &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = build(&path).unwrap_err().to_string();
    assert!(err.contains("truncated.safetensors"), "{err}");
    assert!(
        err.contains("truncated") || err.contains("safetensors"),
        "{err}"
    );
}

#[test]
fn absent_file_names_file() {
    let err = Checkpoint::open(&["/nonexistent/vipa.safetensors"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/vipa.safetensors"), "{err}");
}
