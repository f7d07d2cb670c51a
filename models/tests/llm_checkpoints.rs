//! Bad checkpoints give one clear error naming the key and the file.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a panic is a failed test

mod llm_common;

use candle_core::{DType, Device, Tensor};
use llm_common::{config, fixture_dir, weights};
use vipa_models::llm::{CausalLm, GgufCheckpoint};

const KEY: &str = "model.layers.1.self_attn.k_proj.weight";

fn load_err(path: &std::path::Path) -> String {
    let err = CausalLm::from_safetensors(&config("qwen3"), &[path], DType::F32, &Device::Cpu)
        .unwrap_err();
    err.to_string()
}

#[test]
fn missing_key_names_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.safetensors");
    let mut tensors = weights("qwen3");
    tensors.remove(KEY).unwrap();
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let err = load_err(&path);
    assert!(err.contains(KEY), "{err}");
    assert!(err.contains("missing.safetensors"), "{err}");
}

#[test]
fn wrong_shape_names_key_shapes_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shape.safetensors");
    let mut tensors = weights("qwen3");
    tensors.insert(
        KEY.to_string(),
        Tensor::zeros((16, 32), DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let err = load_err(&path);
    assert!(err.contains(KEY), "{err}");
    assert!(err.contains("shape.safetensors"), "{err}");
    assert!(
        err.contains("[16, 32]") && err.contains("[32, 32]"),
        "{err}"
    );
}

#[test]
fn truncated_safetensors_names_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truncated.safetensors");
    let bytes = std::fs::read(fixture_dir("qwen3").join("model.safetensors")).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_err(&path);
    assert!(err.contains("truncated.safetensors"), "{err}");
}

#[test]
fn missing_file_names_file() {
    let err = load_err(std::path::Path::new("/nonexistent/weights.safetensors"));
    assert!(err.contains("/nonexistent/weights.safetensors"), "{err}");
}

#[test]
fn truncated_gguf_names_tensor_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truncated.gguf");
    let bytes = std::fs::read(fixture_dir("llama").join("model.gguf")).unwrap();
    // Keep the header (a few KB) but cut the tensor data short.
    std::fs::write(&path, &bytes[..bytes.len() - 20_000]).unwrap();
    let err = GgufCheckpoint::load(&path, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated.gguf"), "{err}");
    assert!(err.contains("tensor blk."), "{err}");

    // Cut inside the header: still an error naming the file, no panic.
    std::fs::write(&path, &bytes[..100]).unwrap();
    let err = GgufCheckpoint::load(&path, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated.gguf"), "{err}");
}
