//! Rotary position embedding in both layouts, with a fused backward kernel.
//!
//! For each position `t` and frequency `i` the pair `(a, b)` of `x` rotates by angle `θ`:
//! `(a cos θ - b sin θ, a sin θ + b cos θ)`. The half-split layout (HF Llama/Qwen) pairs
//! `x[i]` with `x[i + d/2]`; the interleaved layout (GGUF) pairs `x[2i]` with `x[2i + 1]`.
//! A rotation's adjoint is the rotation by `-θ`, so `∂x` is the same kernel with `sin` negated.
//! `∂cos`/`∂sin` (rarely wanted: tables are usually constants) are only computed when the table
//! is tracked, with composed tensor ops.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, D, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::cpu::{Acc, Elems, elems, rows_per_task, store_f32};

#[derive(Clone, Copy)]
struct Rope {
    interleaved: bool,
    /// Rotate by `-θ` (the backward pass).
    inverse: bool,
    /// Sequence length: row `r` of the flattened `[b·h·t, d]` input is position `r % seq`.
    seq: usize,
}

impl Rope {
    fn name(self) -> &'static str {
        match (self.interleaved, self.inverse) {
            (false, false) => "vipa-rope",
            (true, false) => "vipa-rope-i",
            (false, true) => "vipa-rope-bwd",
            (true, true) => "vipa-rope-i-bwd",
        }
    }

    fn run<F: Acc>(self, x: &[F], cos: &[F], sin: &[F], d: usize) -> Vec<F> {
        let mut y = vec![F::ZERO; x.len()];
        if d == 0 || self.seq == 0 {
            return y;
        }
        let half = d / 2;
        let chunk = rows_per_task(x.len() / d, d);
        y.par_chunks_mut(chunk * d)
            .zip(x.par_chunks(chunk * d))
            .enumerate()
            .for_each(|(c, (yc, xc))| {
                for (i, (yr, xr)) in yc.chunks_exact_mut(d).zip(xc.chunks_exact(d)).enumerate() {
                    let t = (c * chunk + i) % self.seq;
                    let cr = &cos[t * half..(t + 1) * half];
                    let sr = &sin[t * half..(t + 1) * half];
                    let sgn = if self.inverse { -F::ONE } else { F::ONE };
                    if self.interleaved {
                        for ((yp, xp), (&c, &s)) in yr
                            .chunks_exact_mut(2)
                            .zip(xr.chunks_exact(2))
                            .zip(cr.iter().zip(sr))
                        {
                            let s = sgn * s;
                            yp[0] = xp[0] * c - xp[1] * s;
                            yp[1] = xp[0] * s + xp[1] * c;
                        }
                    } else {
                        let (y1, y2) = yr.split_at_mut(half);
                        let (x1, x2) = xr.split_at(half);
                        for ((((y1, y2), (&a, &b)), &c), &s) in y1
                            .iter_mut()
                            .zip(y2.iter_mut())
                            .zip(x1.iter().zip(x2))
                            .zip(cr)
                            .zip(sr)
                        {
                            let s = sgn * s;
                            *y1 = a * c - b * s;
                            *y2 = a * s + b * c;
                        }
                    }
                }
            });
        y
    }
}

struct RopeOp(Rope);

impl CustomOp3 for RopeOp {
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
        let d = l1.dims().last().copied().unwrap_or(0);
        let (x, c, s) = (elems(s1, l1, op)?, elems(s2, l2, op)?, elems(s3, l3, op)?);
        let out = match &x {
            Elems::F32(xv) => store_f32(self.0.run(xv, c.f32(op)?, s.f32(op)?, d), s1.dtype())?,
            Elems::F64(xv) => CpuStorage::F64(self.0.run(xv, c.f64(op)?, s.f64(op)?, d)),
        };
        Ok((out, l1.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let inv = Rope {
            inverse: true,
            ..self.0
        };
        let dx = g.apply_op3_no_bwd(cos, sin, &RopeOp(inv))?;
        if !(cos.track_op() || sin.track_op()) {
            return Ok((Some(dx), None, None));
        }
        // Pair views `(a, b)` of x and `(ga, gb)` of g, each [b, h, t, d/2].
        let d = x.dim(D::Minus1)?;
        let pairs = |t: &Tensor| -> Result<(Tensor, Tensor)> {
            if self.0.interleaved {
                let (b, h, s, _) = t.dims4()?;
                let t = t.reshape((b, h, s, d / 2, 2))?;
                Ok((
                    t.narrow(D::Minus1, 0, 1)?.squeeze(D::Minus1)?,
                    t.narrow(D::Minus1, 1, 1)?.squeeze(D::Minus1)?,
                ))
            } else {
                Ok((
                    t.narrow(D::Minus1, 0, d / 2)?,
                    t.narrow(D::Minus1, d / 2, d / 2)?,
                ))
            }
        };
        let (a, b) = pairs(x)?;
        let (ga, gb) = pairs(&g)?;
        // y_a = a c - b s, y_b = a s + b c  ⇒  ∂c = ga a + gb b, ∂s = gb a - ga b (summed over b, h).
        let dcos = ((&ga * &a)? + (&gb * &b)?)?.sum((0, 1))?;
        let dsin = ((&gb * &a)? - (&ga * &b)?)?.sum((0, 1))?;
        Ok((Some(dx), Some(dcos), Some(dsin)))
    }
}

fn rope_any(xs: &Tensor, cos: &Tensor, sin: &Tensor, interleaved: bool) -> Result<Tensor> {
    let op = if interleaved { "rope_i" } else { "rope" };
    let (_, _, t, d) = xs
        .dims4()
        .map_err(|e| e.context(format!("{op}: xs must be [b, heads, seq, head_dim]")))?;
    if d % 2 != 0 {
        bail!("{op}: head_dim must be even, got {d}")
    }
    for (name, tab) in [("cos", cos), ("sin", sin)] {
        let ok = tab.rank() == 2 && tab.dim(0)? >= t && tab.dim(1)? == d / 2;
        if !ok {
            bail!(
                "{op}: {name} must be [seq >= {t}, head_dim / 2 = {}], got {:?}",
                d / 2,
                tab.dims()
            )
        }
        if tab.dtype() != xs.dtype() {
            bail!(
                "{op}: {name} dtype {:?} differs from xs dtype {:?}; cast with to_dtype",
                tab.dtype(),
                xs.dtype()
            )
        }
    }
    if !xs.device().is_cpu() {
        return if interleaved {
            candle_nn::rotary_emb::rope_i_slow(xs, cos, sin)
        } else {
            candle_nn::rotary_emb::rope_slow(xs, cos, sin)
        };
    }
    let cos = cos.narrow(0, 0, t)?.contiguous()?;
    let sin = sin.narrow(0, 0, t)?.contiguous()?;
    let rope = Rope {
        interleaved,
        inverse: false,
        seq: t,
    };
    xs.contiguous()?.apply_op3(&cos, &sin, RopeOp(rope))
}

/// Rotary embedding, half-split layout (HF Llama/Qwen), with a fused backward.
///
/// # Shapes
/// `xs: [b, heads, seq, head_dim]`; `cos`, `sin: [seq', head_dim / 2]` with `seq' ≥ seq` (the
/// first `seq` rows are used), same dtype. On non-CPU devices this is
/// `candle_nn::rotary_emb::rope_slow`.
pub fn rope(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    rope_any(xs, cos, sin, false)
}

/// Rotary embedding, interleaved layout (GGUF / llama.cpp-permuted weights); shapes as [`rope`].
/// On non-CPU devices this is `candle_nn::rotary_emb::rope_i_slow`.
pub fn rope_i(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    rope_any(xs, cos, sin, true)
}
