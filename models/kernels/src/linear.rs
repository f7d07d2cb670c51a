//! Linear layers and matrix products on the fast CPU matrix path.
//!
//! With the `blas` feature (default) and an f32 / f64 CPU tensor, [`linear`] and [`matmul`] are
//! candle `CustomOp`s over the system OpenBLAS (see `gemm.rs`, `blas.rs`): strided operands
//! are read in place, the bias is folded into the GEMM, the backward passes are GEMMs too
//! (`∂x = g·W`, `∂W = gᵀ·x`, `∂b = Σ_rows g`), and a frozen operand (a plain tensor not
//! downstream of a `Var`) gets no gradient GEMM at all. Everywhere else (feature off, CUDA /
//! Metal, bf16 / f16) they are candle's own differentiable `matmul` / `broadcast_add`.

use candle_core::{Result, Tensor, bail};

/// `x · wᵀ + b` over the last axis, differentiable in all three.
///
/// # Shapes
/// `x: [..., in]` (any rank ≥ 1), `w: [out, in]`, `b: [out]` → `[..., out]`.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let (out, inp) = w.dims2()?;
    let Some(&x_in) = x.dims().last() else {
        bail!("linear: x must have at least one axis, got a scalar")
    };
    if x_in != inp {
        bail!(
            "linear: x {:?} has last axis {x_in}, weight [{out}, {inp}] expects {inp}",
            x.dims()
        )
    }
    if let Some(b) = b
        && b.dims() != [out]
    {
        bail!("linear: bias {:?} must be [{out}]", b.dims())
    }
    #[cfg(feature = "blas")]
    if x.device().is_cpu() && w.dtype() == x.dtype() && b.is_none_or(|b| b.dtype() == x.dtype()) {
        if crate::gemm::blas_dtype(x.dtype()) {
            return blas::linear(x, w, b, out, inp);
        }
        if matches!(
            x.dtype(),
            candle_core::DType::BF16 | candle_core::DType::F16
        ) {
            // Half types: computed in f32 (candle's CPU half GEMMs are slower than f32 ones),
            // rounded once; `to_dtype` is differentiable both ways.
            let f = |t: &Tensor| t.to_dtype(candle_core::DType::F32);
            let b32 = b.map(f).transpose()?;
            return blas::linear(&f(x)?, &f(w)?, b32.as_ref(), out, inp)?.to_dtype(x.dtype());
        }
    }
    composed_linear(x, w, b)
}

/// candle's differentiable ops: `x.matmul(wᵀ)` (batched over a broadcast weight) `+ b`.
fn composed_linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = match x.rank() {
        1 => x.unsqueeze(0)?.matmul(&w.t()?)?.squeeze(0)?,
        2 => x.matmul(&w.t()?)?,
        r => {
            let mut dims = x.dims().to_vec();
            dims[r - 1] = w.dim(0)?;
            let batch: usize = x.dims()[..r - 1].iter().product();
            x.reshape((batch, w.dim(1)?))?
                .matmul(&w.t()?)?
                .reshape(dims)?
        }
    };
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// `a · b` over the last two axes, batched over matching leading axes, differentiable in both.
///
/// # Shapes
/// `a: [..., m, k]`, `b: [..., k, n]` with the same leading axes → `[..., m, n]`.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    #[cfg(feature = "blas")]
    if a.device().is_cpu()
        && matches!(a.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
        && b.dtype() == a.dtype()
        && a.rank() >= 2
        && a.rank() == b.rank()
    {
        let r = a.rank();
        if a.dims()[..r - 2] != b.dims()[..r - 2] || a.dim(r - 1)? != b.dim(r - 2)? {
            bail!(
                "matmul: shapes {:?} · {:?} do not multiply (batch axes must match)",
                a.dims(),
                b.dims()
            )
        }
        let a = crate::gemm::blas_ready(a)?;
        let b = crate::gemm::blas_ready(b)?;
        return a.apply_op2(&b, crate::gemm::MatMul);
    }
    a.matmul(b)
}

/// The matrix backend in use: `OpenBLAS (<core>)` or candle's pure-Rust `gemm`.
pub fn matrix_backend() -> String {
    #[cfg(feature = "blas")]
    {
        format!(
            "OpenBLAS ({}), 1 thread per rayon task",
            crate::blas::core_name()
        )
    }
    #[cfg(not(feature = "blas"))]
    {
        "candle gemm (pure Rust)".to_string()
    }
}

#[cfg(feature = "blas")]
mod blas {
    use candle_core::{Result, Tensor};

    use crate::gemm::{LinearOp, blas_ready, is_blas_ready};

    pub(super) fn linear(
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        out: usize,
        inp: usize,
    ) -> Result<Tensor> {
        // Rows: every leading axis. A 2-D x is read in place (even transposed); higher ranks
        // are flattened, which is free for a contiguous x and a differentiable copy otherwise.
        let lead = x.dims()[..x.rank() - 1].to_vec();
        let rows: usize = lead.iter().product();
        let x2 = match x.rank() {
            2 if is_blas_ready(x) => x.clone(),
            _ => x.reshape((rows, inp))?,
        };
        let w = blas_ready(w)?;
        let y = match b {
            Some(b) => x2.apply_op3(&w, &b.contiguous()?, LinearOp)?,
            None => x2.apply_op2(&w, LinearOp)?,
        };
        if x.rank() == 2 {
            return Ok(y);
        }
        let mut dims = lead;
        dims.push(out);
        y.reshape(dims)
    }
}
