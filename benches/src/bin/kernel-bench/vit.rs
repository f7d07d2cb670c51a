//! The benchmark model: a tiny ViT classifier (patch 16, width 192, 4 blocks, 3 heads, MLP 768,
//! mean-pooled, 10 classes; 1.97 M params in 55 vars), written in several ways that differ only
//! in the matrix / normalisation / attention / activation ops and the optimizer. Its PyTorch twin is
//! `benches/kernels/tiny_vit_step.py` (same shapes, same code shape).

use candle_core::{D, DType, Device, Result, Tensor, Var};
use candle_nn::optim::{Optimizer, ParamsAdamW};

/// Which ops the model is built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ops {
    /// candle's composed differentiable ops (`softmax`, `layer_norm_slow`, manual attention,
    /// `gelu` with its composed backward) and `candle_nn::optim::AdamW`: today's trainable code.
    Composed,
    /// `vipa-kernels` fused ops with backward passes, the BLAS linear / matmul path and the
    /// fused AdamW.
    Kernels,
    /// As `Kernels`, but linears and attention products on candle's own matmul (pure-Rust
    /// gemm): isolates what the BLAS path buys.
    KernelsCandleGemm,
    /// candle's fused forward-only ops: fast, but only the head gets gradients. Reference only.
    FusedNoGrad,
}

pub struct Config {
    pub image: usize,
    pub patch: usize,
    pub width: usize,
    pub depth: usize,
    pub heads: usize,
    pub mlp: usize,
    pub classes: usize,
}

impl Config {
    pub fn tiny() -> Self {
        Self {
            image: 224,
            patch: 16,
            width: 192,
            depth: 4,
            heads: 3,
            mlp: 768,
            classes: 10,
        }
    }
}

struct Linear {
    w: Tensor,
    b: Tensor,
}

struct Block {
    ln1: (Tensor, Tensor),
    qkv: Linear,
    proj: Linear,
    ln2: (Tensor, Tensor),
    fc1: Linear,
    fc2: Linear,
}

pub struct TinyVit {
    cfg: Config,
    ops: Ops,
    patch: Linear,
    pos: Tensor,
    blocks: Vec<Block>,
    ln_f: (Tensor, Tensor),
    head: Linear,
    vars: Vec<Var>,
}

fn param(vars: &mut Vec<Var>, dims: &[usize], std: f64, dev: &Device) -> Result<Tensor> {
    let v = if std == 0.0 {
        Var::zeros(dims, DType::F32, dev)?
    } else {
        Var::randn(0f32, std as f32, dims, dev)?
    };
    let t = v.as_tensor().clone();
    vars.push(v);
    Ok(t)
}

fn ones(vars: &mut Vec<Var>, d: usize, dev: &Device) -> Result<Tensor> {
    let v = Var::ones(d, DType::F32, dev)?;
    let t = v.as_tensor().clone();
    vars.push(v);
    Ok(t)
}

fn linear(vars: &mut Vec<Var>, i: usize, o: usize, dev: &Device) -> Result<Linear> {
    Ok(Linear {
        w: param(vars, &[o, i], 0.02, dev)?,
        b: param(vars, &[o], 0.0, dev)?,
    })
}

impl Linear {
    /// `x: [n, in] -> [n, out]` (`x Wᵀ + b`; gemm reads `Wᵀ` as a strided view, no copy).
    fn forward(&self, x: &Tensor, ops: Ops) -> Result<Tensor> {
        match ops {
            Ops::Kernels => vipa_kernels::linear(x, &self.w, Some(&self.b)),
            _ => x.matmul(&self.w.t()?)?.broadcast_add(&self.b),
        }
    }
}

impl TinyVit {
    pub fn new(cfg: Config, ops: Ops, dev: &Device) -> Result<Self> {
        let mut vars = Vec::new();
        let v = &mut vars;
        let c = cfg.width;
        let tokens = (cfg.image / cfg.patch).pow(2);
        let patch = linear(v, 3 * cfg.patch * cfg.patch, c, dev)?;
        let pos = param(v, &[1, tokens, c], 0.02, dev)?;
        let mut blocks = Vec::new();
        for _ in 0..cfg.depth {
            blocks.push(Block {
                ln1: (ones(v, c, dev)?, param(v, &[c], 0.0, dev)?),
                qkv: linear(v, c, 3 * c, dev)?,
                proj: linear(v, c, c, dev)?,
                ln2: (ones(v, c, dev)?, param(v, &[c], 0.0, dev)?),
                fc1: linear(v, c, cfg.mlp, dev)?,
                fc2: linear(v, cfg.mlp, c, dev)?,
            });
        }
        let ln_f = (ones(v, c, dev)?, param(v, &[c], 0.0, dev)?);
        let head = linear(v, c, cfg.classes, dev)?;
        Ok(Self {
            cfg,
            ops,
            patch,
            pos,
            blocks,
            ln_f,
            head,
            vars,
        })
    }

    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    fn layer_norm(&self, x: &Tensor, (w, b): &(Tensor, Tensor)) -> Result<Tensor> {
        match self.ops {
            Ops::Composed => candle_nn::ops::layer_norm_slow(x, w, b, 1e-6),
            Ops::Kernels | Ops::KernelsCandleGemm => vipa_kernels::layer_norm(x, w, Some(b), 1e-6),
            Ops::FusedNoGrad => candle_nn::ops::layer_norm(x, w, b, 1e-6),
        }
    }

    fn gelu(&self, x: &Tensor) -> Result<Tensor> {
        match self.ops {
            Ops::Kernels | Ops::KernelsCandleGemm => vipa_kernels::gelu(x),
            _ => x.gelu(),
        }
    }

    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
        match self.ops {
            Ops::Kernels => vipa_kernels::attention(q, k, v, None, scale),
            Ops::KernelsCandleGemm => {
                let s = q.matmul(&k.t()?)?;
                vipa_kernels::scaled_masked_softmax(&s, None, scale)?.matmul(v)
            }
            Ops::Composed | Ops::FusedNoGrad => {
                let s = (q.matmul(&k.t()?)? * scale)?;
                let p = if self.ops == Ops::Composed {
                    candle_nn::ops::softmax(&s, D::Minus1)?
                } else {
                    candle_nn::ops::softmax_last_dim(&s)?
                };
                p.matmul(v)
            }
        }
    }

    /// `images: f32[b, 3, h, w]` → logits `f32[b, classes]`.
    pub fn forward(&self, images: &Tensor) -> Result<Tensor> {
        let (b, _, _, _) = images.dims4()?;
        let (p, c, h) = (self.cfg.patch, self.cfg.width, self.cfg.heads);
        let g = self.cfg.image / p;
        let t = g * g;
        let dh = c / h;
        // Patchify (the conv with stride = kernel as a matmul): [b, 3, g, p, g, p] → [b·t, 3·p·p].
        let x = images
            .reshape((b, 3, g, p, g, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .contiguous()?
            .reshape((b * t, 3 * p * p))?;
        let x = self
            .patch
            .forward(&x, self.ops)?
            .reshape((b, t, c))?
            .broadcast_add(&self.pos)?;
        let mut x = x.reshape((b * t, c))?;
        for blk in &self.blocks {
            let y = self.layer_norm(&x, &blk.ln1)?;
            let qkv = blk
                .qkv
                .forward(&y, self.ops)?
                .reshape((b, t, 3, h, dh))?
                .permute((2, 0, 3, 1, 4))?;
            // [b, h, t, dh] each; the batched matmul needs mergeable batch strides.
            let q = qkv.get(0)?.contiguous()?;
            let k = qkv.get(1)?.contiguous()?;
            let v = qkv.get(2)?.contiguous()?;
            let a = self.attention(&q, &k, &v, 1.0 / (dh as f64).sqrt())?;
            let a = a.transpose(1, 2)?.reshape((b * t, c))?;
            x = (x + blk.proj.forward(&a, self.ops)?)?;
            let y = self.layer_norm(&x, &blk.ln2)?;
            let y = blk
                .fc2
                .forward(&self.gelu(&blk.fc1.forward(&y, self.ops)?)?, self.ops)?;
            x = (x + y)?;
        }
        let x = self
            .layer_norm(&x, &self.ln_f)?
            .reshape((b, t, c))?
            .mean(1)?;
        self.head.forward(&x, self.ops)
    }
}

/// The optimizer matching each variant: candle's AdamW, or the fused one for `Kernels`.
pub enum Opt {
    Candle(candle_nn::optim::AdamW),
    Fused(vipa_kernels::AdamW),
}

impl Opt {
    pub fn new(model: &TinyVit) -> Result<Self> {
        let params = ParamsAdamW {
            lr: 1e-3,
            ..Default::default()
        };
        let vars = model.vars().to_vec();
        Ok(match model.ops {
            Ops::Kernels | Ops::KernelsCandleGemm => {
                Opt::Fused(vipa_kernels::AdamW::new(vars, params)?)
            }
            _ => Opt::Candle(candle_nn::optim::AdamW::new(vars, params)?),
        })
    }

    pub fn step(&mut self, grads: &candle_core::backprop::GradStore) -> Result<()> {
        match self {
            Opt::Candle(o) => o.step(grads),
            Opt::Fused(o) => o.step(grads),
        }
    }
}

/// One training step: loss, how many vars got a gradient, and the forward / backward /
/// optimizer wall times in ms.
pub struct StepStats {
    pub loss: f32,
    pub with_grad: usize,
    pub phases_ms: [f64; 3],
}

/// One training step (fwd + bwd + AdamW).
pub fn train_step(
    model: &TinyVit,
    opt: &mut Opt,
    images: &Tensor,
    labels: &Tensor,
) -> Result<StepStats> {
    let ms = |t: std::time::Instant| t.elapsed().as_secs_f64() * 1e3;
    let t0 = std::time::Instant::now();
    let logits = model.forward(images)?;
    let loss = candle_nn::loss::cross_entropy(&logits, labels)?;
    let fwd = ms(t0);
    let t1 = std::time::Instant::now();
    let grads = loss.backward()?;
    let bwd = ms(t1);
    let with_grad = model
        .vars()
        .iter()
        .filter(|v| grads.get(v.as_tensor()).is_some())
        .count();
    let t2 = std::time::Instant::now();
    opt.step(&grads)?;
    let step = ms(t2);
    Ok(StepStats {
        loss: loss.to_scalar::<f32>()?,
        with_grad,
        phases_ms: [fwd, bwd, step],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A micro config: the kernel variant must give every var a gradient (the fused-no-grad
    /// variant is the counter-example that shows the check can fail), and its loss must match
    /// the composed variant's on the same weights.
    #[test]
    fn kernels_variant_trains_every_var_and_matches_composed() -> Result<()> {
        let dev = Device::Cpu;
        let cfg = || Config {
            image: 16,
            patch: 8,
            width: 24,
            depth: 1,
            heads: 2,
            mlp: 32,
            classes: 3,
        };
        let fast = TinyVit::new(cfg(), Ops::Kernels, &dev)?;
        let images = Tensor::randn(0f32, 1.0, (2, 3, 16, 16), &dev)?;
        let labels = Tensor::new(&[0u32, 2], &dev)?;
        let mut slow = TinyVit::new(cfg(), Ops::Composed, &dev)?;
        // Same weights in both.
        for (s, f) in slow.vars.iter().zip(fast.vars()) {
            s.set(f.as_tensor())?;
        }
        let l_fast =
            candle_nn::loss::cross_entropy(&fast.forward(&images)?, &labels)?.to_scalar::<f32>()?;
        let l_slow =
            candle_nn::loss::cross_entropy(&slow.forward(&images)?, &labels)?.to_scalar::<f32>()?;
        assert!((l_fast - l_slow).abs() < 1e-4, "loss {l_fast} vs {l_slow}");
        let mut opt = Opt::new(&fast)?;
        let with_grad = train_step(&fast, &mut opt, &images, &labels)?.with_grad;
        assert_eq!(with_grad, fast.vars().len());
        slow.ops = Ops::FusedNoGrad;
        let mut opt = Opt::new(&slow)?;
        let with_grad = train_step(&slow, &mut opt, &images, &labels)?.with_grad;
        assert!(with_grad < slow.vars().len());
        Ok(())
    }
}
