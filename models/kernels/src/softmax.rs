//! Softmax over the last axis, optionally fused with the attention prologue
//! `softmax(scale · x + mask)`, with a fused backward kernel.
//!
//! Forward per row: `y = exp(s - max s) / Σ exp(s - max s)` with `s = scale · x + mask`.
//! Backward per row: `∂s = y ⊙ (g - ⟨g, y⟩)`, `∂x = scale · ∂s`, `∂mask = Σ_broadcast ∂s`.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, D, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::cpu::{
    Acc, Elems, elems, map_rows2, row_max, row_sum, rows_and_len, rows_per_task, store_f32,
};

/// Softmax of one row into `y`, reading `x` and an optional additive mask row.
#[inline]
fn softmax_row<F: Acc>(x: &[F], mask: Option<&[F]>, scale: F, y: &mut [F]) {
    match mask {
        Some(m) => {
            for ((y, &x), &m) in y.iter_mut().zip(x).zip(m) {
                *y = x * scale + m;
            }
        }
        None => {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = x * scale;
            }
        }
    }
    let max = row_max(y);
    // A fully masked row (all -inf) has no defined softmax; emit zeros instead of NaN so one
    // padded query cannot poison a whole batch's gradients.
    if max == F::NEG_INFINITY {
        y.iter_mut().for_each(|v| *v = F::ZERO);
        return;
    }
    // Exponentials first, then a lane-wise sum: one sequential accumulator in the same loop
    // would keep the exponentials from vectorizing.
    for v in y.iter_mut() {
        *v = (*v - max).exp();
    }
    let inv = F::ONE / row_sum(y);
    y.iter_mut().for_each(|v| *v *= inv);
}

/// Forward over all rows. `mask` has `mask_rows` rows of length `d`; row `r` of `x` uses mask row
/// `r % mask_rows` (the mask broadcasts over the leading axes).
fn softmax_fwd<F: Acc>(x: &[F], mask: Option<(&[F], usize)>, scale: F, d: usize) -> Vec<F> {
    let mut y = vec![F::ZERO; x.len()];
    if d == 0 {
        return y;
    }
    let rows = x.len() / d;
    let chunk = rows_per_task(rows, d);
    y.par_chunks_mut(chunk * d)
        .zip(x.par_chunks(chunk * d))
        .enumerate()
        .for_each(|(c, (yc, xc))| {
            for (i, (yr, xr)) in yc.chunks_exact_mut(d).zip(xc.chunks_exact(d)).enumerate() {
                let mrow = mask.map(|(m, mrows)| {
                    let r = (c * chunk + i) % mrows;
                    &m[r * d..(r + 1) * d]
                });
                softmax_row(xr, mrow, scale, yr);
            }
        });
    y
}

/// Backward over all rows: `out = scale · y ⊙ (g - ⟨g, y⟩)`.
fn softmax_bwd<F: Acc>(y: &[F], g: &[F], scale: F, d: usize) -> Vec<F> {
    map_rows2(y, g, d, |o, y, g| {
        let dot = y.iter().zip(g).fold(F::ZERO, |a, (&y, &g)| a + y * g);
        for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
            *o = scale * y * (g - dot);
        }
    })
}

/// `softmax(scale · x + mask)` over the last axis; `mask` (if any) is contiguous with
/// `mask_rows` rows and broadcasts over the leading axes of `x`.
struct SoftmaxFwd {
    scale: f64,
    mask_rows: usize,
}

impl SoftmaxFwd {
    fn run(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        mask: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        const OP: &str = "vipa-softmax";
        let (_, d) = rows_and_len(xl.dims(), OP)?;
        let xe = elems(x, xl, OP)?;
        let me = match mask {
            Some((s, l)) => Some(elems(s, l, OP)?),
            None => None,
        };
        let out = match &xe {
            Elems::F32(xv) => {
                let m = match &me {
                    Some(m) => Some((m.f32(OP)?, self.mask_rows)),
                    None => None,
                };
                store_f32(softmax_fwd(xv, m, self.scale as f32, d), x.dtype())?
            }
            Elems::F64(xv) => {
                let m = match &me {
                    Some(m) => Some((m.f64(OP)?, self.mask_rows)),
                    None => None,
                };
                CpuStorage::F64(softmax_fwd(xv, m, self.scale, d))
            }
        };
        Ok((out, xl.shape().clone()))
    }

    /// Shared backward: `∂s = y ⊙ (g - ⟨g, y⟩)`, then `∂x = scale · ∂s` and, only when the mask
    /// is tracked, `∂mask` = `∂s` summed down to the mask's shape.
    fn grads(
        &self,
        mask: Option<&Tensor>,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let mask_tracked = mask.is_some_and(Tensor::track_op);
        let scale = if mask_tracked { 1.0 } else { self.scale };
        let ds = res.apply_op2_no_bwd(&grad_res.contiguous()?, &SoftmaxBwd { scale })?;
        match mask {
            Some(mask) if mask_tracked => {
                let dmask = sum_to_shape(&ds, mask.dims())?;
                Ok(((ds * self.scale)?, Some(dmask)))
            }
            _ => Ok((ds, None)),
        }
    }
}

/// Sums `t` over broadcast axes down to `dims` (the inverse of `broadcast_as`).
fn sum_to_shape(t: &Tensor, dims: &[usize]) -> Result<Tensor> {
    let lead = t.rank() - dims.len();
    let mut t = t.clone();
    for _ in 0..lead {
        t = t.sum(0)?;
    }
    for (axis, &want) in dims.iter().enumerate() {
        if want == 1 && t.dim(axis)? != 1 {
            t = t.sum_keepdim(axis)?;
        }
    }
    Ok(t)
}

struct Softmax1(SoftmaxFwd);

impl CustomOp1 for Softmax1 {
    fn name(&self) -> &'static str {
        "vipa-softmax"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        self.0.run(s, l, None)
    }
    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.0.grads(None, res, grad_res)?.0))
    }
}

struct SoftmaxMasked(SoftmaxFwd);

impl CustomOp2 for SoftmaxMasked {
    fn name(&self) -> &'static str {
        "vipa-softmax-masked"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.0.run(s1, l1, Some((s2, l2)))
    }
    fn bwd(
        &self,
        _x: &Tensor,
        mask: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dmask) = self.0.grads(Some(mask), res, grad_res)?;
        Ok((Some(dx), dmask))
    }
}

/// Backward kernel `(y, g) ↦ scale · y ⊙ (g - ⟨g, y⟩)`; no second derivative.
struct SoftmaxBwd {
    scale: f64,
}

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "vipa-softmax-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        const OP: &str = "vipa-softmax-bwd";
        let (_, d) = rows_and_len(l1.dims(), OP)?;
        let (y, g) = (elems(s1, l1, OP)?, elems(s2, l2, OP)?);
        let out = match &y {
            Elems::F32(yv) => store_f32(
                softmax_bwd(yv, g.f32(OP)?, self.scale as f32, d),
                s1.dtype(),
            )?,
            Elems::F64(yv) => CpuStorage::F64(softmax_bwd(yv, g.f64(OP)?, self.scale, d)),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// Softmax over the last axis, with a fused CPU forward and backward.
///
/// Any shape and layout (strided inputs are made contiguous first); f32, f64, bf16, f16 (half
/// types compute in f32). On non-CPU devices this is `candle_nn::ops::softmax(xs, D::Minus1)`.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    if !xs.device().is_cpu() {
        return candle_nn::ops::softmax(xs, D::Minus1);
    }
    xs.contiguous()?.apply_op1(Softmax1(SoftmaxFwd {
        scale: 1.0,
        mask_rows: 1,
    }))
}

/// `softmax(scale · xs + mask)` over the last axis in one pass: the attention prologue without
/// materialising the scaled or masked scores.
///
/// # Shapes
/// `xs: [.., rows, cols]`; `mask`: additive, broadcastable to `xs` (e.g. `[rows, cols]`,
/// `[b, 1, 1, cols]`), same dtype as `xs`. Gradients flow to `xs` and, when it is tracked
/// (a `Var` or computed from one), to `mask`.
pub fn scaled_masked_softmax(xs: &Tensor, mask: Option<&Tensor>, scale: f64) -> Result<Tensor> {
    if !xs.device().is_cpu() {
        let s = (xs * scale)?;
        let s = match mask {
            Some(m) => s.broadcast_add(m)?,
            None => s,
        };
        return candle_nn::ops::softmax(&s, D::Minus1);
    }
    let xs = xs.contiguous()?;
    let Some(mask) = mask else {
        return xs.apply_op1(Softmax1(SoftmaxFwd {
            scale,
            mask_rows: 1,
        }));
    };
    if mask.dtype() != xs.dtype() {
        bail!(
            "scaled_masked_softmax: mask dtype {:?} differs from scores dtype {:?}; cast the mask with to_dtype",
            mask.dtype(),
            xs.dtype()
        )
    }
    // A mask that only varies over the last two axes (after dropping leading 1s) is used as is,
    // indexed by row modulo its row count; any other broadcast is materialised.
    let md = mask.dims();
    let lead_ones = md.iter().take_while(|&&d| d == 1).count();
    let core = &md[lead_ones..];
    let xd = xs.dims();
    let fits_tail =
        core.len() <= 2 && core.len() <= xd.len() && core == &xd[xd.len() - core.len()..];
    let (mask_c, mask_rows) = if fits_tail && !core.is_empty() {
        let rows = if core.len() == 2 { core[0] } else { 1 };
        (mask.contiguous()?, rows)
    } else {
        let full = mask.broadcast_as(xs.shape()).map_err(|e| {
            e.context(format!(
                "scaled_masked_softmax: mask {:?} does not broadcast to scores {:?}",
                md, xd
            ))
        })?;
        let (rows, _) = rows_and_len(xd, "scaled_masked_softmax")?;
        (full.contiguous()?, rows)
    };
    xs.apply_op2(
        &mask_c,
        SoftmaxMasked(SoftmaxFwd {
            scale,
            mask_rows: mask_rows.max(1),
        }),
    )
}
