//! 3D (spatial) encoders behind one trait, and the point-map ViT backend.
//!
//! The paper's 3D encoder is the frozen Cut3R ([`crate::vision::cut3r::Cut3r`], fed
//! [`SpatialInput::Images`]). [`PointMapVit`] is the light, trainable backend: a ViT over calibrated XYZ
//! point maps in the camera frame (OpenCV convention, metres), producing the same kind of
//! output as Cut3R's decoder tokens — `f32[b, n_tokens, d_s]` — so the fusion layer does not care
//! which backend runs.

pub mod config;

use candle_core::{DType, Error, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::ops::Linear;

use crate::ops;
use crate::vision::config::{NormType, PointMapVitConfig};
use crate::vision::layers::{BlockSpec, EncoderLayer, linear};
use crate::vision::resize::torch_bicubic_resize;

/// Input of a 3D encoder.
#[derive(Debug, Clone)]
pub enum SpatialInput {
    /// Camera-frame point maps `f32[b, h, w, 3]` in metres; invalid pixels are 0 or NaN.
    PointMaps(Tensor),
    /// RGB frames `f32[b, 3, h, w]` normalised to `[-1, 1]` (Cut3R's `(x − 0.5) / 0.5`), `h`
    /// and `w` multiples of the patch size.
    Images(Tensor),
}

/// Output of a 3D encoder.
#[derive(Debug, Clone)]
pub struct SpatialTokens {
    /// `f32[b, n_tokens, d_s]`.
    pub tokens: Tensor,
    /// `f32[b, n_tokens]`: 1 for tokens that saw valid geometry, 0 for tokens the fusion
    /// layer must not attend to. `None` = all valid.
    pub valid: Option<Tensor>,
}

/// A 3D encoder: Cut3R (frozen, paper) or the point-map ViT (trainable stand-in).
pub trait SpatialEncoder {
    /// Encodes a batch into tokens.
    fn encode(&self, input: &SpatialInput) -> Result<SpatialTokens>;
    /// Output token width `d_s`.
    fn output_size(&self) -> usize;
}

/// Pixel validity and cleaned points: `points: f32[b, h, w, 3]` → (`f32[b, h, w, 3]` with
/// invalid pixels set to 0, `f32[b, h, w, 1]` validity).
///
/// A pixel is invalid if any coordinate is NaN or ±inf, or if all three are exactly 0 (the
/// "no depth" convention of depth sensors and our lifting node).
pub fn clean_point_map(points: &Tensor) -> Result<(Tensor, Tensor)> {
    let (_, _, _, c) = points.dims4()?;
    if c != 3 {
        return Err(Error::Msg(format!(
            "point map must be f32[b, h, w, 3] (XYZ), got last axis {c}"
        )));
    }
    let points = points.to_dtype(DType::F32)?;
    // |x| <= f32::MAX is false exactly for NaN and ±inf.
    let finite = points.abs()?.le(f32::MAX)?; // u8[b, h, w, 3]
    let any_nonfinite = finite.min_keepdim(3)?.eq(0u8)?;
    let all_zero = points.abs()?.max_keepdim(3)?.eq(0f32)?;
    let invalid = any_nonfinite
        .to_dtype(DType::F32)?
        .add(&all_zero.to_dtype(DType::F32)?)?
        .gt(0f32)?; // u8[b, h, w, 1]
    let zeros = points.zeros_like()?;
    let mask3 = invalid.broadcast_as(points.shape())?;
    let cleaned = mask3.where_cond(&zeros, &points)?;
    let valid = (1.0 - invalid.to_dtype(DType::F32)?)?;
    Ok((cleaned, valid))
}

/// The point-map ViT: patchify `[x, y, z, valid]` per pixel → MLP embed → + position
/// embedding → InternViT-style blocks → LayerNorm → Linear to `d_s`.
///
/// Keys (under its builder's prefix): `embed.fc1`, `embed.fc2`, `position_embedding`,
/// `layers.N.*` (same names as an InternViT layer), `norm`, `head`.
#[derive(Debug, Clone)]
pub struct PointMapVit {
    cfg: PointMapVitConfig,
    embed_fc1: Linear,
    embed_fc2: Linear,
    position_embedding: Tensor,
    layers: Vec<EncoderLayer>,
    norm_weight: Tensor,
    norm_bias: Tensor,
    head: Linear,
}

impl PointMapVit {
    /// Builds (or loads) the encoder from `vb`.
    pub fn new(cfg: &PointMapVitConfig, vb: VarBuilder<'_>) -> Result<Self> {
        cfg.validate()?;
        let p = cfg.patch_size;
        let d = cfg.hidden_size;
        let patch_in = p * p * 4;
        let grid = cfg.image_size / p;
        let spec = BlockSpec {
            dim: d,
            heads: cfg.num_attention_heads,
            mlp_dim: cfg.intermediate_size,
            qkv_bias: true,
            qk_norm: false,
            norm: NormType::LayerNorm,
            eps: cfg.layer_norm_eps,
            ls_init: 1.0,
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| EncoderLayer::new(&spec, vb.pp("layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            embed_fc1: linear(patch_in, d, true, vb.pp("embed").pp("fc1"))?,
            embed_fc2: linear(d, d, true, vb.pp("embed").pp("fc2"))?,
            position_embedding: vb.get_with_hints(
                (grid * grid, d),
                "position_embedding",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?,
            layers,
            norm_weight: vb.get_with_hints(d, "norm.weight", Init::Const(1.0))?,
            norm_bias: vb.get_with_hints(d, "norm.bias", Init::Const(0.0))?,
            head: linear(d, cfg.output_size, true, vb.pp("head"))?,
        })
    }

    /// `points: f32[b, h, w, 3]` → tokens `f32[b, (h/p)·(w/p), d_s]` and validity `f32[b, n]`
    /// (a token is valid if any pixel of its patch is).
    pub fn forward(&self, points: &Tensor) -> Result<SpatialTokens> {
        let (b, h, w, _) = points.dims4()?;
        let p = self.cfg.patch_size;
        if h % p != 0 || w % p != 0 {
            return Err(Error::Msg(format!(
                "point-map ViT: point map {h}×{w} is not a multiple of the patch size {p}"
            )));
        }
        let (gh, gw) = (h / p, w / p);
        let (cleaned, valid) = clean_point_map(points)?;
        let feats = Tensor::cat(&[&cleaned, &valid], 3)?; // [b, h, w, 4]
        // Patchify: [b, gh, p, gw, p, 4] → [b, gh, gw, p, p, 4] → [b, gh·gw, p·p·4].
        let patches = feats
            .reshape((b, gh, p, gw, p, 4))?
            .permute((0, 1, 3, 2, 4, 5))?
            .contiguous()?
            .reshape((b, gh * gw, p * p * 4))?;
        let token_valid = valid
            .reshape((b, gh, p, gw, p))?
            .permute((0, 1, 3, 2, 4))?
            .contiguous()?
            .reshape((b, gh * gw, p * p))?
            .max_keepdim(2)?
            .squeeze(2)?;
        let xs = self
            .embed_fc2
            .forward(&self.embed_fc1.forward(&patches)?.gelu_erf()?)?;
        let grid = self.cfg.image_size / p;
        let d = self.cfg.hidden_size;
        let pos = torch_bicubic_resize(&self.position_embedding.reshape((grid, grid, d))?, gh, gw)?
            .reshape((1, gh * gw, d))?;
        let mut xs = xs.broadcast_add(&pos)?;
        for layer in &self.layers {
            xs = layer.forward(&xs)?;
        }
        let xs = ops::layer_norm(
            &xs,
            &self.norm_weight,
            Some(&self.norm_bias),
            self.cfg.layer_norm_eps as f32,
        )?;
        Ok(SpatialTokens {
            tokens: self.head.forward(&xs)?,
            valid: Some(token_valid),
        })
    }
}

impl SpatialEncoder for PointMapVit {
    fn encode(&self, input: &SpatialInput) -> Result<SpatialTokens> {
        match input {
            SpatialInput::PointMaps(points) => self.forward(points),
            SpatialInput::Images(_) => Err(Error::Msg(
                "the point-map ViT encodes point maps (SpatialInput::PointMaps), not images; \
                 lift depth to point maps first or use the Cut3R backend"
                    .to_string(),
            )),
        }
    }

    fn output_size(&self) -> usize {
        self.cfg.output_size
    }
}
