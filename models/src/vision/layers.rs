//! Small building blocks shared by the vision modules: linear layers, norms, the InternViT
//! encoder block. Everything goes through [`crate::ops`], so the same code serves frozen and
//! trainable use (a frozen module is simply built from plain tensors, not `Var`s).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::ops::Linear;

use crate::ops;
use crate::vision::config::NormType;

/// `nn.Linear` with PyTorch's default init when created fresh: weight and bias
/// `U(-1/√fan_in, 1/√fan_in)`.
pub fn linear(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder<'_>) -> Result<Linear> {
    let bound = 1.0 / (in_dim as f64).sqrt();
    let init = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    let weight = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
    let bias = if bias {
        Some(vb.get_with_hints(out_dim, "bias", init)?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}

/// LayerNorm (weight + bias) or RMSNorm (weight only) over the last axis.
#[derive(Debug, Clone)]
pub struct Norm {
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f32,
}

impl Norm {
    /// Loads `weight` (and `bias` for LayerNorm); fresh init is ones / zeros.
    pub fn new(kind: NormType, dim: usize, eps: f64, vb: VarBuilder<'_>) -> Result<Self> {
        let weight = vb.get_with_hints(dim, "weight", Init::Const(1.0))?;
        let bias = match kind {
            NormType::LayerNorm => Some(vb.get_with_hints(dim, "bias", Init::Const(0.0))?),
            NormType::RmsNorm => None,
        };
        Ok(Self {
            weight,
            bias,
            eps: eps as f32,
        })
    }
}

impl Module for Norm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match &self.bias {
            Some(bias) => ops::layer_norm(xs, &self.weight, Some(bias), self.eps),
            None => ops::rms_norm(xs, &self.weight, self.eps),
        }
    }
}

/// Options of one InternViT-style encoder block.
#[derive(Debug, Clone, Copy)]
pub struct BlockSpec {
    /// Token width.
    pub dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// MLP hidden width.
    pub mlp_dim: usize,
    /// `attn.qkv` bias.
    pub qkv_bias: bool,
    /// RMSNorm on q and k over the full width.
    pub qk_norm: bool,
    /// Block norm kind.
    pub norm: NormType,
    /// Block norm epsilon.
    pub eps: f64,
    /// Initial layer-scale value (fresh init only).
    pub ls_init: f64,
}

/// Multi-head self-attention as InternViT's `InternAttention` (keys `qkv`, `proj`,
/// optional `q_norm`, `k_norm`).
#[derive(Debug, Clone)]
pub struct Attention {
    qkv: Linear,
    proj: Linear,
    qk_norm: Option<(Norm, Norm)>,
    heads: usize,
    dim: usize,
}

impl Attention {
    fn new(spec: &BlockSpec, vb: VarBuilder<'_>) -> Result<Self> {
        let qkv = linear(spec.dim, 3 * spec.dim, spec.qkv_bias, vb.pp("qkv"))?;
        let proj = linear(spec.dim, spec.dim, true, vb.pp("proj"))?;
        // Upstream builds q_norm/k_norm as InternRMSNorm(embed_dim) with its default eps 1e-6.
        let qk_norm = if spec.qk_norm {
            Some((
                Norm::new(NormType::RmsNorm, spec.dim, 1e-6, vb.pp("q_norm"))?,
                Norm::new(NormType::RmsNorm, spec.dim, 1e-6, vb.pp("k_norm"))?,
            ))
        } else {
            None
        };
        Ok(Self {
            qkv,
            proj,
            qk_norm,
            heads: spec.heads,
            dim: spec.dim,
        })
    }

    /// `xs: f32[b, n, dim]` → `f32[b, n, dim]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, n, _) = xs.dims3()?;
        let qkv = self.qkv.forward(xs)?;
        // Upstream reshapes to (b, n, 3, heads, head_dim): q, k, v are contiguous thirds.
        let mut q = qkv.narrow(2, 0, self.dim)?;
        let mut k = qkv.narrow(2, self.dim, self.dim)?;
        let v = qkv.narrow(2, 2 * self.dim, self.dim)?;
        // qk-norm runs over the full width (all heads at once), exactly as upstream.
        if let Some((q_norm, k_norm)) = &self.qk_norm {
            q = q_norm.forward(&q)?;
            k = k_norm.forward(&k)?;
        }
        let head_dim = self.dim / self.heads;
        let split = |t: Tensor| -> Result<Tensor> {
            t.reshape((b, n, self.heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let scale = 1.0 / (head_dim as f64).sqrt();
        let out = ops::attention(&split(q)?, &split(k)?, &split(v)?, None, scale)?;
        let out = out.transpose(1, 2)?.reshape((b, n, self.dim))?;
        self.proj.forward(&out)
    }
}

/// `fc1 → GELU (erf) → fc2`, as InternViT's `InternMLP` and InternVL's `mlp1` core.
#[derive(Debug, Clone)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn new(dim: usize, hidden: usize, vb: VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            fc1: linear(dim, hidden, true, vb.pp("fc1"))?,
            fc2: linear(hidden, dim, true, vb.pp("fc2"))?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(xs)?.gelu_erf()?)
    }
}

/// One InternViT encoder layer: `x + ls1·attn(norm1(x))`, then `x + ls2·mlp(norm2(x))`
/// (keys `norm1`, `attn`, `ls1`, `norm2`, `mlp`, `ls2`; drop-path is identity at inference
/// and we never train the ViT).
#[derive(Debug, Clone)]
pub struct EncoderLayer {
    norm1: Norm,
    attn: Attention,
    ls1: Tensor,
    norm2: Norm,
    mlp: Mlp,
    ls2: Tensor,
}

impl EncoderLayer {
    /// Builds the layer from `vb` (prefix `…layers.N`).
    pub fn new(spec: &BlockSpec, vb: VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            norm1: Norm::new(spec.norm, spec.dim, spec.eps, vb.pp("norm1"))?,
            attn: Attention::new(spec, vb.pp("attn"))?,
            ls1: vb.get_with_hints(spec.dim, "ls1", Init::Const(spec.ls_init))?,
            norm2: Norm::new(spec.norm, spec.dim, spec.eps, vb.pp("norm2"))?,
            mlp: Mlp::new(spec.dim, spec.mlp_dim, vb.pp("mlp"))?,
            ls2: vb.get_with_hints(spec.dim, "ls2", Init::Const(spec.ls_init))?,
        })
    }
}

impl Module for EncoderLayer {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let h = self.attn.forward(&self.norm1.forward(xs)?)?;
        let xs = (xs + h.broadcast_mul(&self.ls1)?)?;
        let h = self.mlp.forward(&self.norm2.forward(&xs)?)?;
        xs + h.broadcast_mul(&self.ls2)?
    }
}
