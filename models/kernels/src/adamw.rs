//! A fused AdamW step: one rayon pass per var updates the weight and both moments in place,
//! instead of candle's ~15 tensor ops (each allocating a full-size temporary) per var.
//!
//! The update is candle's `candle_nn::optim::AdamW` (decoupled weight decay, bias-corrected
//! moments, `eps` outside the square root):
//! `m ← β₁m + (1-β₁)g`, `v ← β₂v + (1-β₂)g²`,
//! `θ ← θ(1 - lr·λ) - lr · (m / (1-β₁ᵗ)) / (sqrt(v / (1-β₂ᵗ)) + eps)`.
//! Moments are kept in f32 next to each f32 CPU var. Vars of other dtypes or devices use the
//! same formula through tensor ops (moments in the var's dtype, as candle does).

use std::sync::Mutex;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Result, Tensor, Var, bail};
use candle_nn::optim::{Optimizer, ParamsAdamW};
use rayon::prelude::*;

/// Per-var optimizer state.
enum Moments {
    /// Interleaved `[m₀, v₀, m₁, v₁, …]` for a contiguous f32 CPU var.
    Fused(Mutex<Vec<f32>>),
    /// Moment tensors for any other var.
    Tensors { m: Var, v: Var },
}

struct Slot {
    var: Var,
    moments: Moments,
}

/// AdamW with a fused CPU update; a drop-in for `candle_nn::optim::AdamW` (same
/// [`ParamsAdamW`], same [`Optimizer`] trait, so `backward_step` works). Vars that got no
/// gradient are skipped, as in candle.
pub struct AdamW {
    slots: Vec<Slot>,
    params: ParamsAdamW,
    step_t: i32,
}

/// The in-place update of one var: `θ` is the destination, the gradient the source.
struct Update<'a> {
    moments: &'a Mutex<Vec<f32>>,
    lr: f32,
    decay: f32,
    beta1: f32,
    beta2: f32,
    scale_m: f32,
    scale_v: f32,
    eps: f32,
}

impl InplaceOp2 for Update<'_> {
    fn name(&self) -> &'static str {
        "vipa-adamw"
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (Some((a0, a1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            bail!("vipa-adamw: var and gradient must be contiguous")
        };
        let (CpuStorage::F32(theta), CpuStorage::F32(grad)) = (s1, s2) else {
            bail!("vipa-adamw: the fused step needs f32 var and gradient")
        };
        let (theta, grad) = (&mut theta[a0..a1], &grad[b0..b1]);
        let mut mv = self
            .moments
            .lock()
            .map_err(|_| candle_core::Error::Msg("vipa-adamw: moment lock poisoned".into()))?;
        if mv.len() != 2 * theta.len() || grad.len() != theta.len() {
            bail!("vipa-adamw: var, gradient and moments disagree in size")
        }
        const CHUNK: usize = 16 * 1024;
        theta
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK).zip(mv.par_chunks_mut(2 * CHUNK)))
            .for_each(|(th, (gr, mv))| {
                for ((t, &g), mv) in th.iter_mut().zip(gr).zip(mv.chunks_exact_mut(2)) {
                    let m = self.beta1 * mv[0] + (1.0 - self.beta1) * g;
                    let v = self.beta2 * mv[1] + (1.0 - self.beta2) * g * g;
                    mv[0] = m;
                    mv[1] = v;
                    let step = (m * self.scale_m) / ((v * self.scale_v).sqrt() + self.eps);
                    *t = *t * self.decay - self.lr * step;
                }
            });
        Ok(())
    }
}

impl Optimizer for AdamW {
    type Config = ParamsAdamW;

    fn new(vars: Vec<Var>, params: ParamsAdamW) -> Result<Self> {
        let slots = vars
            .into_iter()
            .filter(|var| var.dtype().is_float())
            .map(|var| {
                let fused =
                    var.device().is_cpu() && var.dtype() == DType::F32 && var.is_contiguous();
                let moments = if fused {
                    Moments::Fused(Mutex::new(vec![0.0; 2 * var.elem_count()]))
                } else {
                    Moments::Tensors {
                        m: Var::zeros(var.shape(), var.dtype(), var.device())?,
                        v: Var::zeros(var.shape(), var.dtype(), var.device())?,
                    }
                };
                Ok(Slot { var, moments })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            slots,
            params,
            step_t: 0,
        })
    }

    fn learning_rate(&self) -> f64 {
        self.params.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step_t += 1;
        let p = &self.params;
        let scale_m = 1.0 / (1.0 - p.beta1.powi(self.step_t));
        let scale_v = 1.0 / (1.0 - p.beta2.powi(self.step_t));
        for slot in &self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            match &slot.moments {
                Moments::Fused(moments) => {
                    let g = g.to_dtype(DType::F32)?.contiguous()?;
                    let update = Update {
                        moments,
                        lr: p.lr as f32,
                        decay: (1.0 - p.lr * p.weight_decay) as f32,
                        beta1: p.beta1 as f32,
                        beta2: p.beta2 as f32,
                        scale_m: scale_m as f32,
                        scale_v: scale_v as f32,
                        eps: p.eps as f32,
                    };
                    slot.var.as_tensor().inplace_op2(&g, &update)?;
                }
                Moments::Tensors { m, v } => {
                    let next_m = ((m.as_tensor() * p.beta1)? + (g * (1.0 - p.beta1))?)?;
                    let next_v = ((v.as_tensor() * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
                    let denom = ((&next_v * scale_v)?.sqrt()? + p.eps)?;
                    let adjusted: Tensor = ((&next_m * scale_m)? / denom)?;
                    let theta = ((slot.var.as_tensor() * (1.0 - p.lr * p.weight_decay))?
                        - (adjusted * p.lr)?)?;
                    m.set(&next_m)?;
                    v.set(&next_v)?;
                    slot.var.set(&theta)?;
                }
            }
        }
        Ok(())
    }
}

impl AdamW {
    /// AdamW over `vars` with the given hyper-parameters.
    pub fn new_adamw(vars: Vec<Var>, params: ParamsAdamW) -> Result<Self> {
        <Self as Optimizer>::new(vars, params)
    }
}
