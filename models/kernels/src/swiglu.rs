//! SwiGLU's gate, `silu(gate) ⊙ up` (Llama / Qwen MLPs), with a fused backward. candle composes
//! it from `silu` and a `mul`, and its `silu` backward alone is ~5 full-size tensor ops.
//!
//! `y = g·σ(g)·u`; `∂g = ∂y·u·σ(g)(1 + g(1 - σ(g)))`, `∂u = ∂y·g·σ(g)`.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::cpu::{Acc, Elems, elems, store_f32};

const CHUNK: usize = 16 * 1024;

#[inline(always)]
fn sigmoid<F: Acc>(x: F) -> F {
    F::ONE / (F::ONE + (-x).exp())
}

fn fwd<F: Acc>(gate: &[F], up: &[F]) -> Vec<F> {
    let mut y = vec![F::ZERO; gate.len()];
    y.par_chunks_mut(CHUNK)
        .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
        .for_each(|(yc, (gc, uc))| {
            for ((y, &g), &u) in yc.iter_mut().zip(gc).zip(uc) {
                *y = g * sigmoid(g) * u;
            }
        });
    y
}

/// `[∂gate, ∂up]` in one buffer of `2 · n` (first half `∂gate`).
fn bwd<F: Acc>(gate: &[F], up: &[F], dy: &[F]) -> Vec<F> {
    let n = gate.len();
    let mut out = vec![F::ZERO; 2 * n];
    let (dg, du) = out.split_at_mut(n);
    dg.par_chunks_mut(CHUNK)
        .zip(du.par_chunks_mut(CHUNK))
        .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
        .zip(dy.par_chunks(CHUNK))
        .for_each(|(((dgc, duc), (gc, uc)), yc)| {
            for ((((dg, du), &g), &u), &d) in dgc.iter_mut().zip(duc).zip(gc).zip(uc).zip(yc) {
                let s = sigmoid(g);
                *du = d * g * s;
                *dg = d * u * s * (F::ONE + g * (F::ONE - s));
            }
        });
    out
}

struct SwiGlu;

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "vipa-swiglu"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = self.name();
        let (g, u) = (elems(s1, l1, op)?, elems(s2, l2, op)?);
        let out = match &g {
            Elems::F32(gv) => store_f32(fwd(gv, u.f32(op)?), s1.dtype())?,
            Elems::F64(gv) => CpuStorage::F64(fwd(gv, u.f64(op)?)),
        };
        Ok((out, l1.shape().clone()))
    }
    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // One pass computes both gradients, stacked on a new leading axis; `get` is a view.
        let both = gate.apply_op3_no_bwd(up, &dy.contiguous()?, &SwiGluBwd)?;
        let dg = if gate.track_op() {
            Some(both.get(0)?)
        } else {
            None
        };
        let du = if up.track_op() {
            Some(both.get(1)?)
        } else {
            None
        };
        Ok((dg, du))
    }
}

/// `(gate, up, ∂y) ↦ [∂gate, ∂up]` stacked on a new leading axis; no second derivative.
struct SwiGluBwd;

impl CustomOp3 for SwiGluBwd {
    fn name(&self) -> &'static str {
        "vipa-swiglu-bwd"
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
        let (g, u, d) = (elems(s1, l1, op)?, elems(s2, l2, op)?, elems(s3, l3, op)?);
        let out = match &g {
            Elems::F32(gv) => store_f32(bwd(gv, u.f32(op)?, d.f32(op)?), s1.dtype())?,
            Elems::F64(gv) => CpuStorage::F64(bwd(gv, u.f64(op)?, d.f64(op)?)),
        };
        let mut dims = vec![2];
        dims.extend(l1.dims());
        Ok((out, Shape::from(dims)))
    }
}

/// `silu(gate) ⊙ up` with a fused backward; `gate` and `up` of the same shape and dtype.
/// On non-CPU devices this is `gate.silu()? * up`.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.dims() != up.dims() || gate.dtype() != up.dtype() {
        bail!(
            "swiglu: gate {:?} {:?} and up {:?} {:?} must have the same shape and dtype",
            gate.dims(),
            gate.dtype(),
            up.dims(),
            up.dtype()
        )
    }
    if !gate.device().is_cpu() {
        return gate.silu()? * up;
    }
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}
