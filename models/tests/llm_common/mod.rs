//! Shared helpers for the LLM integration tests: fixture paths and tensor comparisons.
#![allow(dead_code)]
// Test helpers: a panic here is a failed test with a line number.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use vipa_models::llm::{CausalLm, LlmConfig};

pub fn fixture_dir(arch: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/llm")
        .join(arch)
}

pub fn config(arch: &str) -> LlmConfig {
    LlmConfig::from_json_file(fixture_dir(arch).join("config.json")).unwrap()
}

pub fn weights(arch: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture_dir(arch).join("model.safetensors"), &Device::Cpu)
        .unwrap()
}

pub fn reference(arch: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        fixture_dir(arch).join("reference.safetensors"),
        &Device::Cpu,
    )
    .unwrap()
}

/// The frozen model from `model.safetensors`.
pub fn model(arch: &str) -> CausalLm {
    CausalLm::from_safetensors(
        &config(arch),
        &[fixture_dir(arch).join("model.safetensors")],
        DType::F32,
        &Device::Cpu,
    )
    .unwrap()
}

pub fn ids_u32(t: &Tensor) -> Tensor {
    t.to_dtype(DType::U32).unwrap()
}

pub fn to_vec_u32(t: &Tensor) -> Vec<u32> {
    t.to_dtype(DType::U32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<u32>()
        .unwrap()
}

/// Largest absolute elementwise difference.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

pub const ARCHS: [&str; 2] = ["qwen3", "llama"];
