//! Log-softmax over the last axis with a fused backward: the cross-entropy of a language-model
//! head (`[tokens, vocab]`, e.g. 256 × 49152) in two passes per row instead of candle's six
//! full-size tensor ops forward and as many backward.
//!
//! Forward per row: `y = x - max x - ln Σ exp(x - max x)`.
//! Backward per row: `∂x = g - exp(y) · Σ g`.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, D, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu::{
    Acc, Elems, elems, map_rows2, row_max, row_sum, row_sum_exp, rows_and_len, rows_per_task,
    store_f32,
};

fn fwd<F: Acc>(x: &[F], d: usize) -> Vec<F> {
    let mut y = vec![F::ZERO; x.len()];
    if d == 0 {
        return y;
    }
    let chunk = rows_per_task(x.len() / d, d);
    y.par_chunks_mut(chunk * d)
        .zip(x.par_chunks(chunk * d))
        .for_each(|(yc, xc)| {
            for (y, x) in yc.chunks_exact_mut(d).zip(xc.chunks_exact(d)) {
                let max = row_max(x);
                if max == F::NEG_INFINITY {
                    // Every entry is -inf (or the row is empty): log of zero probabilities.
                    y.iter_mut().for_each(|v| *v = F::NEG_INFINITY);
                    continue;
                }
                let sum = row_sum_exp(x, max);
                let lse = max + sum.ln();
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = x - lse;
                }
            }
        });
    y
}

fn bwd<F: Acc>(y: &[F], g: &[F], d: usize) -> Vec<F> {
    map_rows2(y, g, d, |o, y, g| {
        let sum = row_sum(g);
        for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
            *o = g - y.exp() * sum;
        }
    })
}

struct LogSoftmax;

impl CustomOp1 for LogSoftmax {
    fn name(&self) -> &'static str {
        "vipa-log-softmax"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, d) = rows_and_len(l.dims(), self.name())?;
        let out = match elems(s, l, self.name())? {
            Elems::F32(x) => store_f32(fwd(&x, d), s.dtype())?,
            Elems::F64(x) => CpuStorage::F64(fwd(x, d)),
        };
        Ok((out, l.shape().clone()))
    }
    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(res.apply_op2_no_bwd(
            &grad_res.contiguous()?,
            &LogSoftmaxBwd,
        )?))
    }
}

struct LogSoftmaxBwd;

impl CustomOp2 for LogSoftmaxBwd {
    fn name(&self) -> &'static str {
        "vipa-log-softmax-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = self.name();
        let (_, d) = rows_and_len(l1.dims(), op)?;
        let (y, g) = (elems(s1, l1, op)?, elems(s2, l2, op)?);
        let out = match &y {
            Elems::F32(yv) => store_f32(bwd(yv, g.f32(op)?, d), s1.dtype())?,
            Elems::F64(yv) => CpuStorage::F64(bwd(yv, g.f64(op)?, d)),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// Log-softmax over the last axis (= `candle_nn::ops::log_softmax(xs, D::Minus1)`) with a fused
/// CPU forward and backward; any shape and layout, f32 / f64 / bf16 / f16. A row of all `-inf`
/// gives `-inf` (log of zero probabilities). On non-CPU devices this is candle's composed op.
pub fn log_softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    if !xs.device().is_cpu() {
        return candle_nn::ops::log_softmax(xs, D::Minus1);
    }
    xs.contiguous()?.apply_op1(LogSoftmax)
}
