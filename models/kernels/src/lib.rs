//! Fused CPU kernels **with backward passes** for training with candle 0.11.1.
//!
//! candle's own fused `softmax_last_dim`, `layer_norm`, `rms_norm`, `rope*` and `sdpa` record no
//! backward op (every upstream `Var` silently gets no gradient), and the differentiable composed
//! ops (`softmax`, `layer_norm_slow`, …) are many small tensor ops, several times slower. Each
//! function here is a drop-in for the matching one in `vipa_models::ops`: a candle `CustomOp`
//! with a rayon-parallel CPU forward and a fused backward kernel.
//!
//! - dtypes: f32, f64 (computed in f64), bf16 and f16 (computed in f32, rounded once).
//! - layouts: strided inputs (transposed, narrowed) are made contiguous first with
//!   `Tensor::contiguous`, which is itself differentiable.
//! - **Devices**: the kernels are CPU-only. On CUDA (feature `cuda`) or Metal every function
//!   falls back to the composed, differentiable candle ops, so gradients stay correct
//!   everywhere, only slower; a CUDA kernel set is future work for a GPU machine.
//!
//! [`masked_cross_entropy`] is the language-model loss straight from logits (no
//! `[tokens, vocab]` log-probabilities, gather or scatter); [`log_softmax_last_dim`] the
//! log-softmax alone (two passes per row);
//! [`swiglu`] the Llama/Qwen MLP gate `silu(gate) ⊙ up` in one pass each way.
//! [`gelu`] (tanh approximation) is here too: candle's GELU backward is ~10 full-size tensor ops.
//! [`AdamW`] is a fused optimizer step over all vars (one pass per var instead of ~15 tensor
//! ops), numerically the same update as `candle_nn::optim::AdamW`.
//!
//! [`linear`] and [`matmul`] are the fast CPU matrix path: with the `blas` feature (on by
//! default; needs the system OpenBLAS, `libopenblas-dev`) they are `CustomOp`s over
//! `cblas_sgemm` with GEMM backward passes; without it, or off the CPU, they are candle's own
//! `matmul`. `blas.rs` is the crate's only `unsafe` code (the FFI calls).

mod adamw;
mod attention;
#[cfg(feature = "blas")]
mod blas;
mod cpu;
mod cross_entropy;
mod gelu;
#[cfg(feature = "blas")]
mod gemm;
mod linear;
mod log_softmax;
mod norm;
mod rope;
mod softmax;
mod swiglu;

pub use adamw::AdamW;
pub use attention::attention;
pub use cross_entropy::masked_cross_entropy;
pub use gelu::gelu;
pub use linear::{linear, matmul, matrix_backend};
pub use log_softmax::log_softmax_last_dim;
pub use norm::{layer_norm, rms_norm};
pub use rope::{rope, rope_i};
pub use softmax::{scaled_masked_softmax, softmax_last_dim};
pub use swiglu::swiglu;

/// Peak resident memory of this process in MiB (Linux `VmHWM`); `None` where the OS does not
/// report it. Shared by the benchmarks and the trainer's run summary.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}
