//! The semantic encoder: InternViT (as in InternVL3.5), pixel shuffle and the `mlp1` projector.
//!
//! Mirrors upstream `modeling_intern_vit.py` (`InternVisionEmbeddings`, `InternAttention`,
//! `InternMLP`, `InternVisionEncoderLayer`) and `InternVLChatModel.extract_feature` /
//! `pixel_shuffle` in `modeling_internvl_chat.py`. Weight names are the upstream keys
//! (`vision_model.embeddings.patch_embedding.weight`, `vision_model.encoder.layers.N.attn.qkv.weight`,
//! `mlp1.0.weight`, …), so an InternVL3.5 checkpoint loads directly.
//!
//! Pipeline, for `pixel_values: f32[b, 3, H, W]` (normalised, see [`super::preprocess`]):
//! 1. patch embedding (conv, stride 14) → `[b, (H/14)·(W/14), d]`, class token prepended,
//!    position embeddings added (bicubic-interpolated if the grid differs from the preset);
//! 2. `select_layer` encoder layers → drop the class token → `[b, gh·gw, d]` ("ViT features");
//! 3. pixel shuffle 0.5 → `[b, gh·gw/4, 4d]`;
//! 4. `mlp1`: LayerNorm → Linear → GELU → Linear → `[b, gh·gw/4, d_llm]`.

pub mod config;

use candle_core::{Error, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Init, VarBuilder};

use crate::ops::Linear;

use crate::ops;
use crate::vision::config::{InternVisionConfig, InternVlConfig};
use crate::vision::layers::{BlockSpec, EncoderLayer, linear};
use crate::vision::resize::torch_bicubic_resize;

/// `InternVisionEmbeddings`: patch conv + class token + position embeddings.
#[derive(Debug, Clone)]
pub struct VisionEmbeddings {
    class_embedding: Tensor,
    patch_embedding: Conv2d,
    position_embedding: Tensor,
    patch_size: usize,
    grid: usize,
    dim: usize,
}

impl VisionEmbeddings {
    /// Loads from `vb` at prefix `vision_model.embeddings`.
    pub fn new(cfg: &InternVisionConfig, vb: VarBuilder<'_>) -> Result<Self> {
        let d = cfg.hidden_size;
        let p = cfg.patch_size;
        let grid = cfg.grid_size();
        let randn = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let class_embedding = vb.get_with_hints((1, 1, d), "class_embedding", randn)?;
        let fan_in = (cfg.num_channels * p * p) as f64;
        let bound = 1.0 / fan_in.sqrt();
        let uni = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let pvb = vb.pp("patch_embedding");
        let weight = pvb.get_with_hints((d, cfg.num_channels, p, p), "weight", uni)?;
        let bias = pvb.get_with_hints(d, "bias", uni)?;
        let conv_cfg = Conv2dConfig {
            stride: p,
            ..Default::default()
        };
        let patch_embedding = Conv2d::new(weight, Some(bias), conv_cfg);
        let position_embedding =
            vb.get_with_hints((1, grid * grid + 1, d), "position_embedding", randn)?;
        Ok(Self {
            class_embedding,
            patch_embedding,
            position_embedding,
            patch_size: p,
            grid,
            dim: d,
        })
    }

    /// `pixel_values: f32[b, 3, H, W]` → (`f32[b, 1 + gh·gw, d]`, `(gh, gw)`).
    pub fn forward(&self, pixel_values: &Tensor) -> Result<(Tensor, (usize, usize))> {
        let (b, _c, h, w) = pixel_values.dims4()?;
        if h % self.patch_size != 0 || w % self.patch_size != 0 {
            return Err(Error::Msg(format!(
                "InternViT: image {h}×{w} is not a multiple of the patch size {}",
                self.patch_size
            )));
        }
        let patches = self.patch_embedding.forward(pixel_values)?; // [b, d, gh, gw]
        let (_, _, gh, gw) = patches.dims4()?;
        let patches = patches.flatten_from(2)?.transpose(1, 2)?; // [b, gh·gw, d]
        let cls = self.class_embedding.broadcast_as((b, 1, self.dim))?;
        let tokens = Tensor::cat(&[&cls, &patches], 1)?;
        let pos_cls = self.position_embedding.narrow(1, 0, 1)?;
        let pos_grid = self
            .position_embedding
            .narrow(1, 1, self.grid * self.grid)?
            .reshape((self.grid, self.grid, self.dim))?;
        // Upstream `_get_pos_embed`: bicubic, align_corners=False, to the actual patch grid.
        let pos_grid = torch_bicubic_resize(&pos_grid, gh, gw)?.reshape((1, gh * gw, self.dim))?;
        let pos = Tensor::cat(&[&pos_cls, &pos_grid], 1)?;
        Ok((tokens.broadcast_add(&pos)?, (gh, gw)))
    }
}

/// `InternVisionModel` (embeddings + encoder; InternViT has no final norm).
#[derive(Debug, Clone)]
pub struct InternVisionModel {
    embeddings: VisionEmbeddings,
    layers: Vec<EncoderLayer>,
}

impl InternVisionModel {
    /// Loads the first `n_layers` encoder layers from `vb` at prefix `vision_model` (layers past
    /// `select_layer` are never run, so they are not loaded).
    pub fn new(cfg: &InternVisionConfig, n_layers: usize, vb: VarBuilder<'_>) -> Result<Self> {
        cfg.validate()?;
        let spec = BlockSpec {
            dim: cfg.hidden_size,
            heads: cfg.num_attention_heads,
            mlp_dim: cfg.intermediate_size,
            qkv_bias: cfg.qkv_bias,
            qk_norm: cfg.qk_normalization,
            norm: cfg.norm_type,
            eps: cfg.layer_norm_eps,
            ls_init: cfg.initializer_factor,
        };
        let embeddings = VisionEmbeddings::new(cfg, vb.pp("embeddings"))?;
        let lvb = vb.pp("encoder").pp("layers");
        let layers = (0..n_layers.min(cfg.num_hidden_layers))
            .map(|i| EncoderLayer::new(&spec, lvb.pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { embeddings, layers })
    }

    /// `pixel_values: f32[b, 3, H, W]` → hidden state after all loaded layers,
    /// `f32[b, 1 + gh·gw, d]` (class token first), and the patch grid `(gh, gw)`.
    pub fn forward(&self, pixel_values: &Tensor) -> Result<(Tensor, (usize, usize))> {
        let (mut xs, grid) = self.embeddings.forward(pixel_values)?;
        for layer in &self.layers {
            xs = layer.forward(&xs)?;
        }
        Ok((xs, grid))
    }
}

/// InternVL's `pixel_shuffle` (`ps_version = "v2"`) with factor `k = 1/downsample_ratio`.
///
/// `xs: f32[b, gh, gw, c]` → `f32[b, gh/k, gw/k, c·k²]`. Output token `(i, j)` concatenates
/// input tokens `(k·i + r, k·j + m)` for `r, m ∈ 0..k`, in order `(r, m)` with `r` (row offset)
/// slowest: channel `r·k·c + m·c + ch`.
pub fn pixel_shuffle(xs: &Tensor, k: usize) -> Result<Tensor> {
    let (b, gh, gw, c) = xs.dims4()?;
    if gh % k != 0 || gw % k != 0 {
        return Err(Error::Msg(format!(
            "pixel shuffle: grid {gh}×{gw} is not divisible by {k}"
        )));
    }
    // Upstream names the axes (n, w, h, c) and views without transposes in between; the
    // reshapes below are the same sequence of views and permutes.
    let xs = xs.reshape((b, gh, gw / k, c * k))?;
    let xs = xs.permute((0, 2, 1, 3))?.contiguous()?;
    let xs = xs.reshape((b, gw / k, gh / k, c * k * k))?;
    xs.permute((0, 2, 1, 3))?.contiguous()
}

/// InternVL's `mlp1` projector: LayerNorm(4d) → Linear(4d, d_llm) → GELU → Linear(d_llm, d_llm)
/// (keys `mlp1.0`, `mlp1.1`, `mlp1.3`; `mlp1.2` is the parameter-free GELU).
#[derive(Debug, Clone)]
pub struct Projector {
    norm_weight: Tensor,
    norm_bias: Tensor,
    fc1: Linear,
    fc2: Linear,
}

impl Projector {
    /// Loads from `vb` at prefix `mlp1`. `in_dim` = pixel-shuffled width, `out_dim` = LLM width.
    pub fn new(in_dim: usize, out_dim: usize, vb: VarBuilder<'_>) -> Result<Self> {
        let nvb = vb.pp("0");
        Ok(Self {
            norm_weight: nvb.get_with_hints(in_dim, "weight", Init::Const(1.0))?,
            norm_bias: nvb.get_with_hints(in_dim, "bias", Init::Const(0.0))?,
            fc1: linear(in_dim, out_dim, true, vb.pp("1"))?,
            fc2: linear(out_dim, out_dim, true, vb.pp("3"))?,
        })
    }
}

impl Module for Projector {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        // nn.LayerNorm default eps (1e-5): upstream builds mlp1.0 without an eps argument.
        let xs = ops::layer_norm(xs, &self.norm_weight, Some(&self.norm_bias), 1e-5)?;
        self.fc2.forward(&self.fc1.forward(&xs)?.gelu_erf()?)
    }
}

/// ViT features of a batch: patch tokens of the selected layer (class token dropped).
#[derive(Debug, Clone)]
pub struct VitFeatures {
    /// `f32[b, gh·gw, d]`, row-major over the patch grid.
    pub tokens: Tensor,
    /// Patch grid `(gh, gw)`.
    pub grid: (usize, usize),
}

/// The whole semantic path of InternVL: InternViT → select layer → drop class token → pixel
/// shuffle → `mlp1`. The ViT and the projector are separate so they can be loaded from
/// different sources (frozen tensors vs trainable `Var`s).
#[derive(Debug, Clone)]
pub struct SemanticEncoder {
    cfg: InternVlConfig,
    vision_model: InternVisionModel,
    projector: Projector,
}

impl SemanticEncoder {
    /// Builds the encoder. `vision_vb` is the root of the checkpoint (keys `vision_model.…`),
    /// `projector_vb` too (keys `mlp1.…`); they may be the same builder.
    pub fn new(
        cfg: &InternVlConfig,
        vision_vb: VarBuilder<'_>,
        projector_vb: VarBuilder<'_>,
    ) -> Result<Self> {
        cfg.validate()?;
        let vision_model = InternVisionModel::new(
            &cfg.vision_config,
            cfg.layers_to_run()?,
            vision_vb.pp("vision_model"),
        )?;
        let projector = Projector::new(
            cfg.shuffled_width()?,
            cfg.llm_config.hidden_size,
            projector_vb.pp("mlp1"),
        )?;
        Ok(Self {
            cfg: cfg.clone(),
            vision_model,
            projector,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &InternVlConfig {
        &self.cfg
    }

    /// `pixel_values: f32[b, 3, H, W]` → ViT features of `select_layer`, class token dropped.
    pub fn vit_features(&self, pixel_values: &Tensor) -> Result<VitFeatures> {
        let (xs, grid) = self.vision_model.forward(pixel_values)?;
        let n = grid.0 * grid.1;
        Ok(VitFeatures {
            tokens: xs.narrow(1, 1, n)?,
            grid,
        })
    }

    /// Pixel shuffle of ViT features: `f32[b, gh·gw, d]` → `f32[b, gh·gw/k², d·k²]`.
    pub fn shuffle(&self, feats: &VitFeatures) -> Result<Tensor> {
        let (b, n, d) = feats.tokens.dims3()?;
        let (gh, gw) = feats.grid;
        if n != gh * gw {
            return Err(Error::Msg(format!(
                "pixel shuffle: {n} tokens do not form the {gh}×{gw} grid"
            )));
        }
        let k = self.cfg.shuffle_factor()?;
        let xs = pixel_shuffle(&feats.tokens.reshape((b, gh, gw, d))?, k)?;
        xs.reshape((b, n / (k * k), d * k * k))
    }

    /// `mlp1`: `f32[b, n, d·k²]` → `f32[b, n, d_llm]`.
    pub fn project(&self, shuffled: &Tensor) -> Result<Tensor> {
        self.projector.forward(shuffled)
    }

    /// Full semantic path: `pixel_values: f32[b, 3, H, W]` → visual embeddings
    /// `f32[b, gh·gw/k², d_llm]` (256 tokens of width 2048 for InternVL3.5-2B at 448 px).
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let feats = self.vit_features(pixel_values)?;
        self.project(&self.shuffle(&feats)?)
    }
}
