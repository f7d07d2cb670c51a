//! The VIPA fusion layer (paper §3.1, our reference §1.2): semantic tokens query 3D tokens.
//!
//! ```text
//! q = W_q · LN_v(V_sem)          k = W_k · LN_s(V_spa)          v = W_v · LN_s(V_spa)
//! F_spa = W_o · MHA(q, k, v)
//! V_f   = LN_out(Dropout(V_sem + α · F_spa))       α learnable, initialised to 0.5
//! ```
//!
//! Choices where the paper is silent (§6 open questions):
//! - pre-LayerNorm on both inputs and separate q/k/v/out projections, as VLM-3R's
//!   `CrossAttentionFusion`; shared width `d_attn = d_v` by default;
//! - dropout and the output LayerNorm wrap the whole residual sum ("Finally, dropout and layer
//!   normalization are applied"), so at init the layer computes `LN(V_sem + 0.5·F_spa)`;
//! - invalid 3D tokens (no geometry under the patch) are masked out of the attention;
//! - **no 3D tokens** (the "− dual encoder" ablation): identity, `V_f = V_sem`, so that the
//!   ablation differs from the full model only by the missing 3D branch.
//!
//! Keys (under `fusion.`): `ln_sem`, `ln_spa`, `q_proj`, `k_proj`, `v_proj`, `out_proj`,
//! `alpha` (shape `[1]`), `ln_out`. All ops are differentiable ([`crate::ops`]).

pub mod config;

use candle_core::{Error, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::ops::Linear;

use crate::ops;
use crate::vision::config::FusionConfig;
use crate::vision::layers::linear;
use crate::vision::spatial::SpatialTokens;

/// LayerNorm parameters (weight + bias).
#[derive(Debug, Clone)]
struct Ln {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl Ln {
    fn new(dim: usize, eps: f64, vb: VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(dim, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(dim, "bias", Init::Const(0.0))?,
            eps: eps as f32,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        ops::layer_norm(xs, &self.weight, Some(&self.bias), self.eps)
    }
}

/// Cross-attention fusion of semantic and 3D tokens.
#[derive(Debug, Clone)]
pub struct Fusion {
    cfg: FusionConfig,
    ln_sem: Ln,
    ln_spa: Ln,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    alpha: Tensor,
    ln_out: Ln,
}

impl Fusion {
    /// Builds (fresh: PyTorch-style init, α = `alpha_init`) or loads the layer from `vb`.
    pub fn new(cfg: &FusionConfig, vb: VarBuilder<'_>) -> Result<Self> {
        cfg.validate()?;
        let dv = cfg.semantic_size;
        let ds = cfg.spatial_size;
        let da = cfg.attention_width();
        Ok(Self {
            cfg: cfg.clone(),
            ln_sem: Ln::new(dv, cfg.layer_norm_eps, vb.pp("ln_sem"))?,
            ln_spa: Ln::new(ds, cfg.layer_norm_eps, vb.pp("ln_spa"))?,
            q_proj: linear(dv, da, true, vb.pp("q_proj"))?,
            k_proj: linear(ds, da, true, vb.pp("k_proj"))?,
            v_proj: linear(ds, da, true, vb.pp("v_proj"))?,
            out_proj: linear(da, dv, true, vb.pp("out_proj"))?,
            alpha: vb.get_with_hints(1, "alpha", Init::Const(cfg.alpha_init))?,
            ln_out: Ln::new(dv, cfg.layer_norm_eps, vb.pp("ln_out"))?,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FusionConfig {
        &self.cfg
    }

    /// The learnable α (`f32[1]`).
    pub fn alpha(&self) -> &Tensor {
        &self.alpha
    }

    /// `F_spa = W_o · MHA(W_q LN(V_sem), W_k LN(V_spa), W_v LN(V_spa))`.
    ///
    /// `sem: f32[b, n_v, d_v]`, `spa.tokens: f32[b, n_s, d_s]` → `f32[b, n_v, d_v]`.
    pub fn spatial_features(&self, sem: &Tensor, spa: &SpatialTokens) -> Result<Tensor> {
        let (b, nv, dv) = sem.dims3()?;
        let (bs, ns, ds) = spa.tokens.dims3()?;
        if dv != self.cfg.semantic_size || ds != self.cfg.spatial_size || b != bs {
            return Err(Error::Msg(format!(
                "fusion: expected semantic [b, n, {}] and spatial [b, n, {}] with the same b, \
                 got [{b}, {nv}, {dv}] and [{bs}, {ns}, {ds}]",
                self.cfg.semantic_size, self.cfg.spatial_size
            )));
        }
        let heads = self.cfg.num_heads;
        let da = self.cfg.attention_width();
        let hd = da / heads;
        let spa_n = self.ln_spa.forward(&spa.tokens)?;
        let q = self.q_proj.forward(&self.ln_sem.forward(sem)?)?;
        let k = self.k_proj.forward(&spa_n)?;
        let v = self.v_proj.forward(&spa_n)?;
        let split = |t: Tensor, n: usize| -> Result<Tensor> {
            t.reshape((b, n, heads, hd))?.transpose(1, 2)?.contiguous()
        };
        // Additive key mask [b, 1, 1, n_s]: 0 for valid tokens, -1e9 for invalid ones. A
        // finite value (not -inf) keeps the softmax defined when a whole map is invalid.
        let mask = match &spa.valid {
            Some(valid) => Some(((valid.reshape((b, 1, 1, ns))? - 1.0)? * 1e9)?),
            None => None,
        };
        let scale = 1.0 / (hd as f64).sqrt();
        let out = ops::attention(
            &split(q, nv)?,
            &split(k, ns)?,
            &split(v, ns)?,
            mask.as_ref(),
            scale,
        )?;
        let out = out.transpose(1, 2)?.reshape((b, nv, da))?;
        self.out_proj.forward(&out)
    }

    /// `V_f = LN(Dropout(V_sem + α·F_spa))`; with `spa = None` returns `sem` unchanged.
    ///
    /// `train` enables dropout.
    pub fn forward(
        &self,
        sem: &Tensor,
        spa: Option<&SpatialTokens>,
        train: bool,
    ) -> Result<Tensor> {
        let Some(spa) = spa else {
            return Ok(sem.clone());
        };
        let f_spa = self.spatial_features(sem, spa)?;
        let fused = (sem + f_spa.broadcast_mul(&self.alpha)?)?;
        let fused = if train && self.cfg.dropout > 0.0 {
            candle_nn::ops::dropout(&fused, self.cfg.dropout)?
        } else {
            fused
        };
        self.ln_out.forward(&fused)
    }

    /// [`Self::forward`] with a reproducible dropout mask drawn from `dropout_seed` (`None` =
    /// no dropout, evaluation). candle's own dropout draws from an unseedable generator; a
    /// training run that must resume bit-for-bit after a crash derives the seed from
    /// `(run seed, step, micro-batch)` instead.
    pub fn forward_seeded(
        &self,
        sem: &Tensor,
        spa: Option<&SpatialTokens>,
        dropout_seed: Option<u64>,
    ) -> Result<Tensor> {
        let Some(spa) = spa else {
            return Ok(sem.clone());
        };
        let f_spa = self.spatial_features(sem, spa)?;
        let fused = (sem + f_spa.broadcast_mul(&self.alpha)?)?;
        let fused = match dropout_seed {
            Some(seed) if self.cfg.dropout > 0.0 => {
                let mask = dropout_mask(fused.shape(), self.cfg.dropout, seed, fused.device())?;
                fused.mul(&mask.to_dtype(fused.dtype())?)?
            }
            _ => fused,
        };
        self.ln_out.forward(&fused)
    }
}

/// Inverted-dropout mask: `0` with probability `p`, else `1 / (1 − p)`, from a ChaCha8 stream.
fn dropout_mask(
    shape: &candle_core::Shape,
    p: f32,
    seed: u64,
    dev: &candle_core::Device,
) -> Result<Tensor> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let keep = 1.0 / (1.0 - p);
    let values: Vec<f32> = (0..shape.elem_count())
        .map(|_| if rng.random::<f32>() < p { 0.0 } else { keep })
        .collect();
    Tensor::from_vec(values, shape.clone(), dev)
}
