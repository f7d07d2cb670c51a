//! Differentiable building blocks for every module that trains.
//!
//! candle 0.11.1's fused `softmax_last_dim`, `layer_norm`, `rms_norm`, `rope*` and `sdpa` record
//! no backward op, so every `Var` upstream of them silently gets no gradient (see
//! `shared/reference/candle.md`). Trainable code calls these wrappers instead. They are the
//! single place where the fused, backward-capable kernels of `vipa-kernels` (issue: training
//! speed) get swapped in, so model code never changes when the kernels do.
//!
//! Frozen encoders may use candle's fused ops directly.

use candle_core::{D, Result, Tensor};

/// Softmax over the last axis, with a backward pass.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax(xs, D::Minus1)
}

/// LayerNorm over the last axis: `(x - mean) / sqrt(var + eps) * weight + bias`.
pub fn layer_norm(xs: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f32) -> Result<Tensor> {
    match bias {
        Some(bias) => candle_nn::ops::layer_norm_slow(xs, weight, bias, eps),
        None => {
            let zeros = weight.zeros_like()?;
            candle_nn::ops::layer_norm_slow(xs, weight, &zeros, eps)
        }
    }
}

/// RMSNorm over the last axis: `x / sqrt(mean(x^2) + eps) * weight`.
pub fn rms_norm(xs: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    candle_nn::ops::rms_norm_slow(xs, weight, eps)
}

/// Rotary embedding, "half-split" layout (HF Llama/Qwen): `xs: [b, heads, seq, head_dim]`,
/// `cos`/`sin: [seq, head_dim / 2]`.
pub fn rope(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    candle_nn::rotary_emb::rope_slow(xs, cos, sin)
}

/// Rotary embedding, interleaved layout (GGUF / llama.cpp-permuted weights).
pub fn rope_i(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    candle_nn::rotary_emb::rope_i_slow(xs, cos, sin)
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
    let scores = (q.matmul(&k.t()?)? * scale)?;
    let scores = match mask {
        Some(mask) => scores.broadcast_add(mask)?,
        None => scores,
    };
    softmax_last_dim(&scores)?.matmul(v)
}
