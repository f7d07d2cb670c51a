//! GELU, tanh approximation (candle's `Tensor::gelu`, PyTorch's `GELU(approximate="tanh")`),
//! with a fused backward. candle's own backward for it is ~10 full-size tensor ops.
//!
//! `gelu(x) = ½x(1 + tanh u)`, `u = √(2/π)(x + 0.044715x³)`;
//! `gelu'(x) = ½(1 + tanh u) + ½x(1 - tanh² u)·√(2/π)(1 + 3·0.044715x²)`.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu::{Acc, Elems, elems, store_f32};

const CHUNK: usize = 16 * 1024;

#[inline(always)]
fn consts<F: Acc>() -> (F, F) {
    (
        F::of_f64((2.0 / std::f64::consts::PI).sqrt()),
        F::of_f64(0.044715),
    )
}

fn fwd<F: Acc>(x: &[F]) -> Vec<F> {
    let (k, a) = consts::<F>();
    let half = F::of_f64(0.5);
    let mut y = vec![F::ZERO; x.len()];
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(yc, xc)| {
            for (y, &x) in yc.iter_mut().zip(xc) {
                let t = (k * (x + a * x * x * x)).tanh();
                *y = half * x * (F::ONE + t);
            }
        });
    y
}

fn bwd<F: Acc>(x: &[F], g: &[F]) -> Vec<F> {
    let (k, a) = consts::<F>();
    let half = F::of_f64(0.5);
    let three_a = F::of_f64(3.0 * 0.044715);
    let mut out = vec![F::ZERO; x.len()];
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
        .for_each(|(oc, (xc, gc))| {
            for ((o, &x), &g) in oc.iter_mut().zip(xc).zip(gc) {
                let x2 = x * x;
                let t = (k * (x + a * x2 * x)).tanh();
                let d =
                    half * (F::ONE + t) + half * x * (F::ONE - t * t) * k * (F::ONE + three_a * x2);
                *o = g * d;
            }
        });
    out
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "vipa-gelu"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match elems(s, l, self.name())? {
            Elems::F32(x) => store_f32(fwd(&x), s.dtype())?,
            Elems::F64(x) => CpuStorage::F64(fwd(x)),
        };
        Ok((out, l.shape().clone()))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            arg.apply_op2_no_bwd(&grad_res.contiguous()?, &GeluBwd)?,
        ))
    }
}

struct GeluBwd;

impl CustomOp2 for GeluBwd {
    fn name(&self) -> &'static str {
        "vipa-gelu-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = self.name();
        let (x, g) = (elems(s1, l1, op)?, elems(s2, l2, op)?);
        let out = match &x {
            Elems::F32(xv) => store_f32(bwd(xv, g.f32(op)?), s1.dtype())?,
            Elems::F64(xv) => CpuStorage::F64(bwd(xv, g.f64(op)?)),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// GELU (tanh approximation, = candle's `Tensor::gelu`) with a fused backward; any shape.
/// On non-CPU devices this is `Tensor::gelu`.
pub fn gelu(xs: &Tensor) -> Result<Tensor> {
    if !xs.device().is_cpu() {
        return xs.gelu();
    }
    xs.contiguous()?.apply_op1(Gelu)
}
