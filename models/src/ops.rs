//! Differentiable building blocks for every module that trains.
//!
//! candle 0.11.1's fused `softmax_last_dim`, `layer_norm`, `rms_norm`, `rope*` and `sdpa` record
//! no backward op, so every `Var` upstream of them silently gets no gradient (see
//! `shared/reference/candle.md`). Trainable code calls these functions instead. They delegate to
//! `vipa-kernels`: fused CPU kernels that carry their own backward passes (and fall back to
//! candle's composed, differentiable ops on other devices). Model code never names a kernel
//! directly, so this file is the one place to swap implementations.
//!
//! Frozen encoders may use candle's fused ops directly.

use candle_core::{Result, Tensor};

/// Softmax over the last axis, with a backward pass.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    vipa_kernels::softmax_last_dim(xs)
}

/// LayerNorm over the last axis: `(x - mean) / sqrt(var + eps) * weight + bias`.
pub fn layer_norm(xs: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f32) -> Result<Tensor> {
    vipa_kernels::layer_norm(xs, weight, bias, eps)
}

/// RMSNorm over the last axis: `x / sqrt(mean(x^2) + eps) * weight`.
pub fn rms_norm(xs: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    vipa_kernels::rms_norm(xs, weight, eps)
}

/// Rotary embedding, "half-split" layout (HF Llama/Qwen): `xs: [b, heads, seq, head_dim]`,
/// `cos`/`sin: [seq, head_dim / 2]`.
pub fn rope(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    vipa_kernels::rope(xs, cos, sin)
}

/// Rotary embedding, interleaved layout (GGUF / llama.cpp-permuted weights).
pub fn rope_i(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    vipa_kernels::rope_i(xs, cos, sin)
}

/// Scaled dot-product attention, `softmax(q kᵀ · scale + mask) v`.
///
/// # Shapes
/// `q: [b, heads, q_len, head_dim]`, `k`, `v: [b, heads, kv_len, head_dim]`,
/// `mask: [q_len, kv_len]` or broadcastable to `[b, heads, q_len, kv_len]`, additive
/// (`0` keep, `-inf` drop). Returns `[b, heads, q_len, head_dim]`.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor> {
    vipa_kernels::attention(q, k, v, mask, scale)
}
