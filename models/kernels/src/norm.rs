//! LayerNorm and RMSNorm over the last axis, with fused backward kernels that return the input,
//! weight and bias gradients from one pass over the rows.
//!
//! Per row of length `d` (`μ = 0` for RMSNorm, which also has no bias):
//! - forward: `x̂ = (x - μ) · r`, `r = 1 / sqrt(mean((x - μ)²) + eps)`, `y = x̂ ⊙ w + b`;
//! - backward: `gw = g ⊙ w`, `∂x = r · (gw - mean(gw) - x̂ · mean(gw ⊙ x̂))` (RMSNorm drops the
//!   `mean(gw)` term), `∂w = Σ_rows g ⊙ x̂`, `∂b = Σ_rows g`.
//!
//! Statistics are recomputed in the backward pass rather than saved: it is one extra read of
//! the row, cheaper than a second output tensor through candle's single-output custom ops.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::cpu::{Acc, Elems, elems, rows_and_len, rows_per_task, store_f32};

/// Which normalisation: `center` subtracts the mean (LayerNorm); RMSNorm does not.
#[derive(Clone, Copy)]
struct Norm {
    center: bool,
    eps: f64,
}

impl Norm {
    fn name(self) -> &'static str {
        if self.center {
            "vipa-layer-norm"
        } else {
            "vipa-rms-norm"
        }
    }

    /// `(μ, r)` of one row.
    #[inline]
    fn stats<F: Acc>(self, x: &[F]) -> (F, F) {
        let n = F::of_usize(x.len());
        let mean = if self.center {
            x.iter().fold(F::ZERO, |a, &v| a + v) / n
        } else {
            F::ZERO
        };
        let var = x.iter().fold(F::ZERO, |a, &v| {
            let c = v - mean;
            a + c * c
        }) / n;
        (mean, F::ONE / (var + F::of_f64(self.eps)).sqrt())
    }

    fn fwd<F: Acc>(self, x: &[F], w: &[F], b: Option<&[F]>, d: usize) -> Vec<F> {
        let mut y = vec![F::ZERO; x.len()];
        if d == 0 {
            return y;
        }
        let chunk = rows_per_task(x.len() / d, d);
        y.par_chunks_mut(chunk * d)
            .zip(x.par_chunks(chunk * d))
            .for_each(|(yc, xc)| {
                for (yr, xr) in yc.chunks_exact_mut(d).zip(xc.chunks_exact(d)) {
                    let (mean, r) = self.stats(xr);
                    match b {
                        Some(b) => {
                            for (((y, &x), &w), &b) in yr.iter_mut().zip(xr).zip(w).zip(b) {
                                *y = (x - mean) * r * w + b;
                            }
                        }
                        None => {
                            for ((y, &x), &w) in yr.iter_mut().zip(xr).zip(w) {
                                *y = (x - mean) * r * w;
                            }
                        }
                    }
                }
            });
        y
    }

    /// Returns `[∂x (rows·d) | ∂w (d) | ∂b (d)]` in one buffer.
    fn bwd<F: Acc>(self, x: &[F], w: &[F], g: &[F], d: usize) -> Vec<F> {
        let n = x.len();
        let mut out = vec![F::ZERO; n + 2 * d];
        if d == 0 {
            return out;
        }
        let (dx, dwb) = out.split_at_mut(n);
        let chunk = rows_per_task(n / d, d);
        let partials: Vec<Vec<F>> = dx
            .par_chunks_mut(chunk * d)
            .zip(x.par_chunks(chunk * d).zip(g.par_chunks(chunk * d)))
            .map(|(dxc, (xc, gc))| {
                // Per-task weight/bias partial sums: [∂w | ∂b].
                let mut acc = vec![F::ZERO; 2 * d];
                let (aw, ab) = acc.split_at_mut(d);
                let inv_d = F::ONE / F::of_usize(d);
                for ((dxr, xr), gr) in dxc
                    .chunks_exact_mut(d)
                    .zip(xc.chunks_exact(d))
                    .zip(gc.chunks_exact(d))
                {
                    let (mean, r) = self.stats(xr);
                    let mut s_gw = F::ZERO;
                    let mut s_gwx = F::ZERO;
                    for (((&x, &g), &w), (aw, ab)) in xr
                        .iter()
                        .zip(gr)
                        .zip(w)
                        .zip(aw.iter_mut().zip(ab.iter_mut()))
                    {
                        let xh = (x - mean) * r;
                        let gw = g * w;
                        s_gw += gw;
                        s_gwx += gw * xh;
                        *aw += g * xh;
                        *ab += g;
                    }
                    let c1 = if self.center { s_gw * inv_d } else { F::ZERO };
                    let c2 = s_gwx * inv_d;
                    for (((dx, &x), &g), &w) in dxr.iter_mut().zip(xr).zip(gr).zip(w) {
                        let xh = (x - mean) * r;
                        *dx = r * (g * w - c1 - xh * c2);
                    }
                }
                acc
            })
            .collect();
        for p in partials {
            for (o, v) in dwb.iter_mut().zip(p) {
                *o += v;
            }
        }
        out
    }
}

/// Forward op: `(x, w, b)`; `b` is ignored for RMSNorm (pass any tensor, e.g. `w`).
struct NormFwd(Norm);

impl CustomOp3 for NormFwd {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = self.0.name();
        let (_, d) = rows_and_len(l1.dims(), op)?;
        let (x, w, b) = (elems(s1, l1, op)?, elems(s2, l2, op)?, elems(s3, l3, op)?);
        let out = match &x {
            Elems::F32(xv) => {
                let bias = if self.0.center {
                    Some(b.f32(op)?)
                } else {
                    None
                };
                store_f32(self.0.fwd(xv, w.f32(op)?, bias, d), s1.dtype())?
            }
            Elems::F64(xv) => {
                let bias = if self.0.center {
                    Some(b.f64(op)?)
                } else {
                    None
                };
                CpuStorage::F64(self.0.fwd(xv, w.f64(op)?, bias, d))
            }
        };
        Ok((out, l1.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = w.elem_count();
        let n = x.elem_count();
        let packed = x.apply_op3_no_bwd(w, &grad_res.contiguous()?, &NormBwd(self.0))?;
        let dx = packed.narrow(0, 0, n)?.reshape(x.shape())?;
        let dw = packed.narrow(0, n, d)?.reshape(w.shape())?;
        let db = if self.0.center {
            Some(packed.narrow(0, n + d, d)?.reshape(b.shape())?)
        } else {
            None
        };
        Ok((Some(dx), Some(dw), db))
    }
}

/// Backward op: `(x, w, g) ↦ [∂x | ∂w | ∂b]` flat.
struct NormBwd(Norm);

impl CustomOp3 for NormBwd {
    fn name(&self) -> &'static str {
        "vipa-norm-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = self.name();
        let (_, d) = rows_and_len(l1.dims(), op)?;
        let (x, w, g) = (elems(s1, l1, op)?, elems(s2, l2, op)?, elems(s3, l3, op)?);
        let out = match &x {
            Elems::F32(xv) => store_f32(self.0.bwd(xv, w.f32(op)?, g.f32(op)?, d), s1.dtype())?,
            Elems::F64(xv) => CpuStorage::F64(self.0.bwd(xv, w.f64(op)?, g.f64(op)?, d)),
        };
        let len = l1.shape().elem_count() + 2 * d;
        Ok((out, Shape::from(len)))
    }
}

fn check_param(xs: &Tensor, p: &Tensor, what: &str, op: &str) -> Result<()> {
    let d = xs.dims().last().copied().unwrap_or(0);
    if p.dims() != [d] {
        bail!(
            "{op}: {what} must have shape [{d}] (the last axis of the input {:?}), got {:?}",
            xs.dims(),
            p.dims()
        )
    }
    if p.dtype() != xs.dtype() {
        bail!(
            "{op}: {what} dtype {:?} differs from input dtype {:?}; cast with to_dtype",
            p.dtype(),
            xs.dtype()
        )
    }
    Ok(())
}

/// LayerNorm over the last axis: `(x - mean) / sqrt(var + eps) · weight + bias`.
///
/// # Shapes
/// `xs: [.., d]`, `weight`, `bias: [d]`, same dtype. Gradients flow to all three. Strided inputs
/// are made contiguous first. On non-CPU devices this is `candle_nn::ops::layer_norm_slow`.
pub fn layer_norm(xs: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f32) -> Result<Tensor> {
    const OP: &str = "layer_norm";
    check_param(xs, weight, "weight", OP)?;
    let zeros;
    let bias = match bias {
        Some(b) => {
            check_param(xs, b, "bias", OP)?;
            b
        }
        None => {
            zeros = weight.zeros_like()?;
            &zeros
        }
    };
    if !xs.device().is_cpu() {
        return candle_nn::ops::layer_norm_slow(xs, weight, bias, eps);
    }
    let norm = Norm {
        center: true,
        eps: f64::from(eps),
    };
    xs.contiguous()?
        .apply_op3(&weight.contiguous()?, &bias.contiguous()?, NormFwd(norm))
}

/// RMSNorm over the last axis: `x / sqrt(mean(x²) + eps) · weight`.
///
/// # Shapes
/// `xs: [.., d]`, `weight: [d]`, same dtype. Gradients flow to both. On non-CPU devices this is
/// `candle_nn::ops::rms_norm_slow`.
pub fn rms_norm(xs: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    check_param(xs, weight, "weight", "rms_norm")?;
    if !xs.device().is_cpu() {
        return candle_nn::ops::rms_norm_slow(xs, weight, eps);
    }
    let norm = Norm {
        center: false,
        eps: f64::from(eps),
    };
    let w = weight.contiguous()?;
    // The third operand is unused by RMSNorm; `w` stands in so no tensor is allocated.
    xs.contiguous()?.apply_op3(&w, &w, NormFwd(norm))
}
