//! Masked token cross-entropy straight from logits, with a fused backward: the language-model
//! loss without materialising the `[tokens, vocab]` log-probabilities, the gather, or the
//! scatter of its backward (for 256 tokens × 49152 vocabulary those are 50 MB tensors, each
//! written and read several times by the composed ops).
//!
//! `loss = Σ_i m_i (lse(x_i) - x_i[t_i]) / Σ_i m_i`; `∂x_i = g · m_i / Σm · (softmax(x_i) - e_{t_i})`.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, D, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::cpu::{Acc, Elems, elems, row_max, row_sum_exp, rows_per_task, store_f32};

/// `ln Σ exp(x)` of one row, shifted by its max.
#[inline]
fn lse<F: Acc>(x: &[F]) -> F {
    let max = row_max(x);
    max + row_sum_exp(x, max).ln()
}

/// Σ_i m_i (lse_i - x_i[t_i]) (not yet divided by Σ m).
fn fwd<F: Acc>(x: &[F], t: &[u32], m: &[F], v: usize) -> F {
    x.par_chunks(v)
        .zip(t.par_iter().zip(m.par_iter()))
        .with_min_len(rows_per_task(t.len(), v))
        .map(|(row, (&ti, &mi))| {
            if mi == F::ZERO {
                F::ZERO
            } else {
                mi * (lse(row) - row[ti as usize])
            }
        })
        .reduce(|| F::ZERO, |a, b| a + b)
}

/// `scale · m_i · (softmax(x_i) - e_{t_i})` per row.
fn bwd<F: Acc>(x: &[F], t: &[u32], m: &[F], v: usize, scale: F) -> Vec<F> {
    let mut out = vec![F::ZERO; x.len()];
    out.par_chunks_mut(v)
        .zip(x.par_chunks(v).zip(t.par_iter().zip(m.par_iter())))
        .with_min_len(rows_per_task(t.len(), v))
        .for_each(|(o, (row, (&ti, &mi)))| {
            if mi == F::ZERO {
                return;
            }
            let l = lse(row);
            let s = scale * mi;
            for (o, &xv) in o.iter_mut().zip(row) {
                *o = s * (xv - l).exp();
            }
            o[ti as usize] -= s;
        });
    out
}

/// Checks targets against the vocabulary; returns the flat target slice.
fn targets<'a>(s: &'a CpuStorage, l: &Layout, v: usize, op: &str) -> Result<&'a [u32]> {
    let (CpuStorage::U32(t), Some((a, b))) = (s, l.contiguous_offsets()) else {
        bail!("{op}: targets must be a contiguous u32 tensor")
    };
    let t = &t[a..b];
    if let Some(bad) = t.iter().find(|&&id| id as usize >= v) {
        bail!("{op}: target id {bad} is outside the vocabulary of {v} logits")
    }
    Ok(t)
}

struct CrossEntropy {
    /// Σ mask, fixed at construction (the mask is not differentiated).
    count: f64,
}

impl CustomOp3 for CrossEntropy {
    fn name(&self) -> &'static str {
        "vipa-cross-entropy"
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
        let v = l1.dims().last().copied().unwrap_or(0);
        let t = targets(s2, l2, v, op)?;
        let (x, m) = (elems(s1, l1, op)?, elems(s3, l3, op)?);
        let out = match &x {
            Elems::F32(xv) => {
                let total = fwd(xv, t, m.f32(op)?, v);
                store_f32(vec![total / self.count as f32], s1.dtype())?
            }
            Elems::F64(xv) => CpuStorage::F64(vec![fwd(xv, t, m.f64(op)?, v) / self.count]),
        };
        Ok((out, Shape::from(())))
    }
    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        mask: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = grad_res.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let op = CrossEntropyBwd {
            scale: g / self.count,
        };
        Ok((
            Some(logits.apply_op3_no_bwd(targets, mask, &op)?),
            None,
            None,
        ))
    }
}

struct CrossEntropyBwd {
    scale: f64,
}

impl CustomOp3 for CrossEntropyBwd {
    fn name(&self) -> &'static str {
        "vipa-cross-entropy-bwd"
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
        let v = l1.dims().last().copied().unwrap_or(0);
        let t = targets(s2, l2, v, op)?;
        let (x, m) = (elems(s1, l1, op)?, elems(s3, l3, op)?);
        let out = match &x {
            Elems::F32(xv) => store_f32(bwd(xv, t, m.f32(op)?, v, self.scale as f32), s1.dtype())?,
            Elems::F64(xv) => CpuStorage::F64(bwd(xv, t, m.f64(op)?, v, self.scale)),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// Mean token cross-entropy over the positions where `mask` is non-zero (weighted by it),
/// differentiable in `logits`.
///
/// # Shapes
/// `logits: [.., vocab]` (f32 / f64 / bf16 / f16), `targets: [..]` (integer ids < vocab),
/// `mask: [..]` (any float or integer dtype; 1 where the loss counts) → scalar. A mask that
/// selects nothing, or an id outside the vocabulary, is an error. On non-CPU devices this is
/// the composed `log_softmax` → `gather` → masked mean.
pub fn masked_cross_entropy(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let Some((&v, lead)) = logits.dims().split_last() else {
        bail!("masked_cross_entropy: logits must have a vocabulary axis, got a scalar")
    };
    if targets.dims() != lead || mask.dims() != lead {
        bail!(
            "masked_cross_entropy: logits {:?} need targets and mask of shape {lead:?}, got {:?} and {:?}",
            logits.dims(),
            targets.dims(),
            mask.dims()
        )
    }
    let rows: usize = lead.iter().product();
    let logits = logits.reshape((rows, v))?;
    let targets = targets.to_dtype(DType::U32)?.flatten_all()?;
    let mask = mask.to_dtype(logits.dtype())?.flatten_all()?;
    let count = mask.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
    if count <= 0.0 {
        bail!("masked_cross_entropy: the mask selects no position")
    }
    if !logits.device().is_cpu() {
        let lp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let nll = lp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?;
        return (nll * mask)?.sum_all()? / count;
    }
    logits.contiguous()?.apply_op3(
        &targets.contiguous()?,
        &mask.contiguous()?,
        CrossEntropy { count },
    )
}
