//! Scaled dot-product attention for training: batched [`crate::matmul`]s (OpenBLAS with the
//! `blas` feature, candle's gemm otherwise) around the
//! fused `softmax(scale · q kᵀ + mask)` kernel, so the scaled and masked score tensors are
//! never materialised and the softmax backward is one pass.
//!
//! This still materialises the `[b, h, q_len, kv_len]` probabilities (kept for the backward
//! pass), which is what PyTorch's CPU `scaled_dot_product_attention` math path does too. For the
//! sequence lengths we train on (≤ ~1k tokens) that is small next to the activations of the
//! MLPs; a flash-style tiled kernel would need its own micro-GEMM to beat gemm's throughput.

use candle_core::{Result, Tensor, bail};

use crate::softmax::scaled_masked_softmax;

/// `softmax(q kᵀ · scale + mask) v`, differentiable in `q`, `k`, `v` (and a tracked mask).
///
/// # Shapes
/// `q: [b, heads, q_len, head_dim]`, `k`, `v: [b, heads, kv_len, head_dim]`, `mask`: additive
/// (`0` keep, `-inf` drop), broadcastable to `[b, heads, q_len, kv_len]` (typically
/// `[q_len, kv_len]`), same dtype as `q`. Returns `[b, heads, q_len, head_dim]`. A query row
/// whose keys are all masked attends to nothing (zeros) instead of producing NaN.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor> {
    let (b, h, _, dq) = q.dims4()?;
    let (bk, hk, tk, dk) = k.dims4()?;
    let (bv, hv, tv, _) = v.dims4()?;
    if (bk, hk, dk) != (b, h, dq) || (bv, hv, tv) != (b, h, tk) {
        bail!(
            "attention: q {:?}, k {:?}, v {:?} must be [b, heads, q_len, d], [b, heads, kv_len, d], [b, heads, kv_len, d_v]",
            q.dims(),
            k.dims(),
            v.dims()
        )
    }
    // Both GEMMs read any row/column strides, so kᵀ is a free view, not a copy.
    let scores = crate::matmul(q, &k.t()?)?;
    let probs = scaled_masked_softmax(&scores, mask, scale)?;
    crate::matmul(&probs, v)
}
