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

use candle_core::{Module, Result, Tensor};

/// Softmax over the last axis, with a backward pass.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    vipa_kernels::softmax_last_dim(xs)
}

/// Log-softmax over the last axis (the LM loss: `candle_nn::ops::log_softmax(xs, D::Minus1)`
/// in two fused passes per row, with a fused backward).
pub fn log_softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    vipa_kernels::log_softmax_last_dim(xs)
}

/// Mean token cross-entropy over the positions where `mask` is non-zero, straight from
/// `logits: [.., vocab]` with `targets: [..]` (ids) and `mask: [..]`: one fused pass each way,
/// no `[tokens, vocab]` log-probabilities (a drop-in body for `CausalLm::masked_cross_entropy`).
pub fn masked_cross_entropy(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
    vipa_kernels::masked_cross_entropy(logits, targets, mask)
}

/// SwiGLU's gate `silu(gate) ⊙ up` (Llama / Qwen MLP) in one fused pass, with a fused backward.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    vipa_kernels::swiglu(gate, up)
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

/// `x · wᵀ + b` over the last axis: `x: [..., in]`, `w: [out, in]`, `b: [out]` → `[..., out]`.
///
/// On the CPU (f32/f64, and half types computed in f32) this is the OpenBLAS-backed kernel of
/// `vipa-kernels` with GEMM backward passes that skip frozen weights; elsewhere candle's matmul.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    vipa_kernels::linear(x, w, b)
}

/// `a · b` over the last two axes, batched over matching leading axes:
/// `a: [..., m, k]`, `b: [..., k, n]` → `[..., m, n]` (same backends as [`linear`]).
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    vipa_kernels::matmul(a, b)
}

/// A drop-in for `candle_nn::Linear` on the fast matrix path ([`linear`]): same constructor,
/// same `weight()` / `bias()`, same [`Module`] forward (`x · wᵀ + b`, weight `[out, in]`).
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// `weight: [out, in]`, `bias: [out]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl From<candle_nn::Linear> for Linear {
    fn from(l: candle_nn::Linear) -> Self {
        Self::new(l.weight().clone(), l.bias().cloned())
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        linear(xs, &self.weight, self.bias.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Var};

    use super::*;

    /// Same values and gradients as `candle_nn::Linear` on a 3-D (batched) input, and no
    /// gradient for a frozen weight.
    #[test]
    fn linear_matches_candle_nn_linear() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1.0, (2, 5, 8), &dev)?;
        let w = Var::randn(0f32, 0.3, (3, 8), &dev)?;
        let b = Var::randn(0f32, 0.3, 3, &dev)?;
        let ours = Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
        let theirs = candle_nn::Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
        let r = Tensor::randn(0f32, 1.0, (2, 5, 3), &dev)?;
        let y_ours = ours.forward(x.as_tensor())?;
        let y_theirs = theirs.forward(x.as_tensor())?;
        let max_diff = |a: &Tensor, b: &Tensor| -> Result<f32> {
            (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
        };
        assert_eq!(y_ours.dims(), &[2, 5, 3]);
        assert!(max_diff(&y_ours, &y_theirs)? < 1e-5);
        let g_ours = (&y_ours * &r)?.sum_all()?.backward()?;
        let g_theirs = (&y_theirs * &r)?.sum_all()?.backward()?;
        for v in [&x, &w, &b] {
            let (a, b) = (g_ours.get(v).expect("grad"), g_theirs.get(v).expect("grad"));
            assert!(max_diff(a, b)? < 1e-4);
        }
        let frozen = Linear::new(w.as_tensor().detach(), None);
        let g = frozen.forward(x.as_tensor())?.sum_all()?.backward()?;
        assert!(g.get(frozen.weight()).is_none());
        assert_eq!(g.get(x.as_tensor()).expect("x grad").dtype(), DType::F32);
        Ok(())
    }
}
