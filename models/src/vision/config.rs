//! Configurations of the vision side of VIPA: the InternViT semantic encoder + InternVL
//! projector, the point-map 3D encoder, and the fusion layer.
//!
//! Upstream-backed structs ([`InternVisionConfig`], [`InternVlConfig`]) use the field names of
//! the upstream `config.json` of InternVL3.5 (`OpenGVLab/InternVL3_5-2B`), so that file
//! deserialises directly (unknown upstream fields such as `use_flash_attn` are ignored).
//! Our own modules ([`PointMapVitConfig`], [`FusionConfig`]) have no upstream file.
//!
//! Presets: `tiny` (unit tests: width ≤ 128, 1–2 layers), `small` (CPU default, ~10 M params),
//! and the full-size upstream model (`internvl3_5_2b`).

use candle_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Normalisation layer used in InternViT blocks (`norm_type` in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormType {
    /// `nn.LayerNorm` with weight and bias (InternViT-300M).
    LayerNorm,
    /// `InternRMSNorm`: weight only (InternViT-6B).
    RmsNorm,
}

/// The InternViT vision tower (`vision_config` in InternVL's `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InternVisionConfig {
    /// Input channels (3, RGB).
    #[serde(default = "default_channels")]
    pub num_channels: usize,
    /// Square patch side in pixels (14).
    pub patch_size: usize,
    /// Square image side the position embeddings were trained for (448).
    pub image_size: usize,
    /// Token width (1024 for InternViT-300M).
    pub hidden_size: usize,
    /// Attention heads (16).
    pub num_attention_heads: usize,
    /// MLP hidden width (4096).
    pub intermediate_size: usize,
    /// Encoder blocks (24).
    pub num_hidden_layers: usize,
    /// Whether `attn.qkv` has a bias.
    #[serde(default = "default_true")]
    pub qkv_bias: bool,
    /// Per-token RMSNorm on q and k over the full width (`attn.q_norm`, `attn.k_norm`).
    #[serde(default)]
    pub qk_normalization: bool,
    /// Block normalisation (`norm1`, `norm2`).
    #[serde(default = "default_norm_type")]
    pub norm_type: NormType,
    /// Epsilon of `norm1`/`norm2` (the qk RMSNorm uses upstream's fixed 1e-6).
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// MLP activation; upstream InternViT uses `"gelu"` (exact, erf-based).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Initial value of the layer-scale vectors `ls1`/`ls2` (only used for random init).
    #[serde(default = "default_one")]
    pub initializer_factor: f64,
}

fn default_channels() -> usize {
    3
}
fn default_true() -> bool {
    true
}
fn default_norm_type() -> NormType {
    NormType::LayerNorm
}
fn default_eps() -> f64 {
    1e-6
}
fn default_act() -> String {
    "gelu".to_string()
}
fn default_one() -> f64 {
    1.0
}

impl InternVisionConfig {
    /// InternViT-300M-448px-V2.5, the vision tower of InternVL3.5-2B.
    ///
    /// Source: `vision_config` of `OpenGVLab/InternVL3_5-2B/config.json` (24 layers, hidden
    /// 1024, 16 heads, MLP 4096, patch 14, 448 px, LayerNorm eps 1e-6, qkv bias, no qk-norm);
    /// the same numbers appear in Ascend MindSpeed-MM `examples/qwen3vl_dev/model_internvit_qwen3.json`.
    pub fn internvit_300m() -> Self {
        Self {
            num_channels: 3,
            patch_size: 14,
            image_size: 448,
            hidden_size: 1024,
            num_attention_heads: 16,
            intermediate_size: 4096,
            num_hidden_layers: 24,
            qkv_bias: true,
            qk_normalization: false,
            norm_type: NormType::LayerNorm,
            layer_norm_eps: 1e-6,
            hidden_act: "gelu".to_string(),
            initializer_factor: 1.0,
        }
    }

    /// Unit-test size: 56 px → 4×4 patches, width 64, 2 layers.
    pub fn tiny() -> Self {
        Self {
            image_size: 56,
            hidden_size: 64,
            num_attention_heads: 4,
            intermediate_size: 128,
            num_hidden_layers: 2,
            ..Self::internvit_300m()
        }
    }

    /// CPU default: 224 px → 16×16 patches, width 384, 6 layers (~10.7 M params).
    pub fn small() -> Self {
        Self {
            image_size: 224,
            hidden_size: 384,
            num_attention_heads: 6,
            intermediate_size: 1536,
            num_hidden_layers: 6,
            ..Self::internvit_300m()
        }
    }

    /// Patches per side at the preset image size.
    pub fn grid_size(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Checks divisibility and supported options.
    pub fn validate(&self) -> Result<()> {
        if self.patch_size == 0 || !self.image_size.is_multiple_of(self.patch_size) {
            return Err(Error::Msg(format!(
                "vision_config: image_size {} is not a multiple of patch_size {}",
                self.image_size, self.patch_size
            )));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(Error::Msg(format!(
                "vision_config: hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if self.hidden_act != "gelu" {
            return Err(Error::Msg(format!(
                "vision_config: hidden_act `{}` is not supported (InternViT uses `gelu`)",
                self.hidden_act
            )));
        }
        Ok(())
    }
}

/// The part of InternVL's `llm_config` the projector needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmWidth {
    /// LLM embedding width = projector output width (2048 for Qwen3-1.7B).
    pub hidden_size: usize,
}

/// The semantic encoder: InternViT + pixel shuffle + `mlp1` projector (the vision half of
/// InternVL's `InternVLChatConfig`; field names as in its `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InternVlConfig {
    /// The InternViT tower.
    pub vision_config: InternVisionConfig,
    /// Only `hidden_size` is read: the projector's output width.
    pub llm_config: LlmWidth,
    /// Pixel-shuffle ratio (0.5: 2×2 neighbouring patches → one token of 4× width).
    #[serde(default = "default_downsample")]
    pub downsample_ratio: f64,
    /// Which hidden state feeds the projector, Python-indexed over `[embeddings, layer 1, …,
    /// layer L]` (`-1` = last layer).
    #[serde(default = "default_select_layer")]
    pub select_layer: i64,
    /// Pixel-shuffle version; only `"v2"` (InternVL2+, with the final transpose) is supported.
    #[serde(default = "default_ps_version")]
    pub ps_version: String,
}

/// A square size given as a number or `[h, w]` (transformers' `image_size`, `patch_size`).
fn square(v: &serde_json::Value, key: &str) -> Result<usize> {
    let bad = || {
        Error::Msg(format!(
            "vision_config.{key}: expected a number or [h, w], got {v}"
        ))
    };
    let n = match v {
        serde_json::Value::Array(a) => {
            let hw: Vec<u64> = a.iter().filter_map(serde_json::Value::as_u64).collect();
            match hw.as_slice() {
                [h, w] if h == w => *h,
                [h, w] => {
                    return Err(Error::Msg(format!(
                        "vision_config.{key} [{h}, {w}] is not square; only square sizes are supported"
                    )));
                }
                _ => return Err(bad()),
            }
        }
        other => other.as_u64().ok_or_else(bad)?,
    };
    usize::try_from(n).map_err(|_| bad())
}

/// transformers' `InternVLConfig` layout → this config.
fn hf_layout(v: &serde_json::Value) -> Result<InternVlConfig> {
    let vc = v
        .get("vision_config")
        .ok_or_else(|| Error::Msg("InternVL config.json: no `vision_config`".into()))?;
    let int = |o: &serde_json::Value, key: &str| -> Result<usize> {
        o.get(key)
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                Error::Msg(format!(
                    "InternVL config.json: `{key}` missing or not a count"
                ))
            })
    };
    let flag = |key: &str, default: bool| {
        vc.get(key)
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(default)
    };
    let num = |key: &str, default: f64| {
        vc.get(key)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(default)
    };
    let norm_type = match vc.get("norm_type").and_then(serde_json::Value::as_str) {
        None | Some("layer_norm") => NormType::LayerNorm,
        Some("rms_norm") => NormType::RmsNorm,
        Some(other) => {
            return Err(Error::Msg(format!(
                "vision_config.norm_type `{other}` is not supported (layer_norm | rms_norm)"
            )));
        }
    };
    let strategy = v
        .get("vision_feature_select_strategy")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("default");
    if strategy != "default" {
        return Err(Error::Msg(format!(
            "vision_feature_select_strategy `{strategy}` is not supported (only `default`: the \
             CLS token is dropped, as upstream does)"
        )));
    }
    let select_layer = match v.get("vision_feature_layer") {
        None => -1,
        Some(l) => l.as_i64().ok_or_else(|| {
            Error::Msg(format!(
                "vision_feature_layer {l}: only one layer is supported, as upstream's select_layer"
            ))
        })?,
    };
    let text = v
        .get("text_config")
        .ok_or_else(|| Error::Msg("InternVL config.json: no `text_config`".into()))?;
    Ok(InternVlConfig {
        vision_config: InternVisionConfig {
            num_channels: vc
                .get("num_channels")
                .map_or(Ok(3), |_| int(vc, "num_channels"))?,
            patch_size: square(
                vc.get("patch_size").unwrap_or(&serde_json::json!(14)),
                "patch_size",
            )?,
            image_size: square(
                vc.get("image_size").unwrap_or(&serde_json::json!(448)),
                "image_size",
            )?,
            hidden_size: int(vc, "hidden_size")?,
            num_attention_heads: int(vc, "num_attention_heads")?,
            intermediate_size: int(vc, "intermediate_size")?,
            num_hidden_layers: int(vc, "num_hidden_layers")?,
            qkv_bias: flag("attention_bias", false),
            qk_normalization: flag("use_qk_norm", false),
            norm_type,
            layer_norm_eps: num("layer_norm_eps", 1e-6),
            hidden_act: vc
                .get("hidden_act")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("gelu")
                .to_owned(),
            initializer_factor: num("layer_scale_init_value", 0.1),
        },
        llm_config: LlmWidth {
            hidden_size: int(text, "hidden_size")?,
        },
        downsample_ratio: v
            .get("downsample_ratio")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.5),
        select_layer,
        ps_version: default_ps_version(),
    })
}

fn default_downsample() -> f64 {
    0.5
}
fn default_select_layer() -> i64 {
    -1
}
fn default_ps_version() -> String {
    "v2".to_string()
}

impl InternVlConfig {
    /// InternVL3.5-2B: InternViT-300M + projector into Qwen3-1.7B (hidden 2048).
    ///
    /// Source: `OpenGVLab/InternVL3_5-2B/config.json` (`downsample_ratio 0.5`,
    /// `select_layer -1`, `ps_version "v2"`, `llm_config.hidden_size 2048`).
    pub fn internvl3_5_2b() -> Self {
        Self {
            vision_config: InternVisionConfig::internvit_300m(),
            llm_config: LlmWidth { hidden_size: 2048 },
            downsample_ratio: 0.5,
            select_layer: -1,
            ps_version: "v2".to_string(),
        }
    }

    /// Unit-test size: 16 patches → 4 tokens of width 256 → projected to 32 (the width of
    /// `llm::LlmConfig::tiny`).
    pub fn tiny() -> Self {
        Self {
            vision_config: InternVisionConfig::tiny(),
            llm_config: LlmWidth { hidden_size: 32 },
            ..Self::internvl3_5_2b()
        }
    }

    /// CPU default: 256 patches → 64 tokens of width 1536 → projected to 576 (SmolLM2-135M's
    /// width; set `llm_config.hidden_size` to the LLM actually used).
    pub fn small() -> Self {
        Self {
            vision_config: InternVisionConfig::small(),
            llm_config: LlmWidth { hidden_size: 576 },
            ..Self::internvl3_5_2b()
        }
    }

    /// Reads a `config.json` in either layout: upstream OpenGVLab (`llm_config`,
    /// `select_layer`, scalar `image_size`) or transformers' `InternVLConfig` (the `…-hf`
    /// checkpoints: `text_config`, `vision_feature_layer`, `image_size` / `patch_size` as
    /// `[h, w]` lists, `attention_bias`, `use_qk_norm`). Fields the models do not use are
    /// ignored; a non-square image or patch size, or a feature strategy other than `default`
    /// (drop the CLS token), is an error.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::Msg(format!("InternVL config.json: {e}")))?;
        let cfg = if v.get("text_config").is_some() && v.get("llm_config").is_none() {
            hf_layout(&v)?
        } else {
            serde_json::from_value(v)
                .map_err(|e| Error::Msg(format!("InternVL config.json (upstream layout): {e}")))?
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// [`Self::from_json_str`] of a file.
    pub fn from_json_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Msg(format!("cannot read {}: {e}", path.display())))?;
        Self::from_json_str(&text).map_err(|e| Error::Msg(format!("{}: {e}", path.display())))
    }

    /// Pixel-shuffle factor `1 / downsample_ratio` (2 for 0.5).
    pub fn shuffle_factor(&self) -> Result<usize> {
        let inv = 1.0 / self.downsample_ratio;
        let factor = inv.round();
        if !(factor >= 1.0 && (inv - factor).abs() < 1e-9) {
            return Err(Error::Msg(format!(
                "downsample_ratio {} must be 1/k for an integer k ≥ 1",
                self.downsample_ratio
            )));
        }
        Ok(factor as usize)
    }

    /// Width of pixel-shuffled features: `hidden_size · k²`.
    pub fn shuffled_width(&self) -> Result<usize> {
        let k = self.shuffle_factor()?;
        Ok(self.vision_config.hidden_size * k * k)
    }

    /// Visual tokens per image at the preset image size (256 for InternVL3.5 at 448 px).
    pub fn tokens_per_image(&self) -> Result<usize> {
        let k = self.shuffle_factor()?;
        let g = self.vision_config.grid_size() / k;
        Ok(g * g)
    }

    /// Number of encoder layers to run for `select_layer` (Python indexing over `L + 1` states).
    pub fn layers_to_run(&self) -> Result<usize> {
        let n_states = self.vision_config.num_hidden_layers as i64 + 1;
        let idx = if self.select_layer < 0 {
            n_states + self.select_layer
        } else {
            self.select_layer
        };
        if !(0..n_states).contains(&idx) {
            return Err(Error::Msg(format!(
                "select_layer {} is out of range for {} layers",
                self.select_layer, self.vision_config.num_hidden_layers
            )));
        }
        Ok(idx as usize)
    }

    /// Checks the whole configuration.
    pub fn validate(&self) -> Result<()> {
        self.vision_config.validate()?;
        let k = self.shuffle_factor()?;
        if !self.vision_config.grid_size().is_multiple_of(k) {
            return Err(Error::Msg(format!(
                "patch grid {} is not divisible by the pixel-shuffle factor {k}",
                self.vision_config.grid_size()
            )));
        }
        if self.ps_version != "v2" {
            return Err(Error::Msg(format!(
                "ps_version `{}` is not supported (only `v2`)",
                self.ps_version
            )));
        }
        self.layers_to_run()?;
        Ok(())
    }
}

/// The point-map ViT: our light, trainable 3D encoder over calibrated XYZ point maps
/// (no upstream checkpoint; a stand-in for Cut3R with the same token interface).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointMapVitConfig {
    /// Point-map side in pixels the position embeddings are built for.
    pub image_size: usize,
    /// Square patch side in pixels.
    pub patch_size: usize,
    /// Token width inside the encoder.
    pub hidden_size: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// MLP hidden width.
    pub intermediate_size: usize,
    /// Encoder blocks.
    pub num_hidden_layers: usize,
    /// Output token width `d_s` (768 matches Cut3R's decoder tokens).
    pub output_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
}

impl PointMapVitConfig {
    /// Unit-test size: 56 px, patch 14 → 16 tokens, width 32, 1 block, d_s 48.
    pub fn tiny() -> Self {
        Self {
            image_size: 56,
            patch_size: 14,
            hidden_size: 32,
            num_attention_heads: 2,
            intermediate_size: 64,
            num_hidden_layers: 1,
            output_size: 48,
            layer_norm_eps: 1e-5,
        }
    }

    /// CPU default: 224 px, patch 16 → 196 tokens, width 192, 4 blocks, d_s 256 (~1.9 M params).
    pub fn small() -> Self {
        Self {
            image_size: 224,
            patch_size: 16,
            hidden_size: 192,
            num_attention_heads: 3,
            intermediate_size: 768,
            num_hidden_layers: 4,
            output_size: 256,
            layer_norm_eps: 1e-5,
        }
    }

    /// Cut3R-shaped interface: 432 px, patch 16 → 729 tokens of width 768 (the numbers VLM-3R
    /// reads from Cut3R's last decoder layer), 6 blocks of width 384.
    pub fn cut3r_shaped() -> Self {
        Self {
            image_size: 432,
            patch_size: 16,
            hidden_size: 384,
            num_attention_heads: 6,
            intermediate_size: 1536,
            num_hidden_layers: 6,
            output_size: 768,
            layer_norm_eps: 1e-5,
        }
    }

    /// Checks divisibility.
    pub fn validate(&self) -> Result<()> {
        if self.patch_size == 0 || !self.image_size.is_multiple_of(self.patch_size) {
            return Err(Error::Msg(format!(
                "point-map ViT: image_size {} is not a multiple of patch_size {}",
                self.image_size, self.patch_size
            )));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(Error::Msg(format!(
                "point-map ViT: hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        Ok(())
    }
}

/// Where the fusion layer sits on the semantic path (paper §6: unspecified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FusionPlacement {
    /// On the ViT patch tokens (class token dropped), before pixel shuffle and `mlp1`: the
    /// analogue of VLM-3R, which fuses raw vision-tower features before its projector.
    /// `d_v` = ViT width (1024), 1024 queries per 448-px image. Default.
    BeforeProjector,
    /// On the projector output (`d_v` = LLM width, 256 queries per image).
    AfterProjector,
}

/// The cross-attention fusion layer (paper §1.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FusionConfig {
    /// Semantic token width `d_v` (must match the placement: ViT width or LLM width).
    pub semantic_size: usize,
    /// 3D token width `d_s`.
    pub spatial_size: usize,
    /// Shared attention width (`None` = `semantic_size`, as VLM-3R).
    #[serde(default)]
    pub attention_size: Option<usize>,
    /// Attention heads (default 16: head dim 64 at d = 1024, as InternViT and VLM-3R's 18×64).
    pub num_heads: usize,
    /// Dropout after the residual sum (paper: "dropout and layer normalization").
    pub dropout: f32,
    /// Initial α (paper: 0.5).
    pub alpha_init: f64,
    /// LayerNorm epsilon (PyTorch default 1e-5).
    pub layer_norm_eps: f64,
    /// Where the layer sits.
    pub placement: FusionPlacement,
}

impl FusionConfig {
    /// The paper's settings for a given semantic and 3D width, placed before the projector.
    pub fn paper(semantic_size: usize, spatial_size: usize, num_heads: usize) -> Self {
        Self {
            semantic_size,
            spatial_size,
            attention_size: None,
            num_heads,
            dropout: 0.1,
            alpha_init: 0.5,
            layer_norm_eps: 1e-5,
            placement: FusionPlacement::BeforeProjector,
        }
    }

    /// Shared attention width.
    pub fn attention_width(&self) -> usize {
        self.attention_size.unwrap_or(self.semantic_size)
    }

    /// Checks head divisibility.
    pub fn validate(&self) -> Result<()> {
        let d = self.attention_width();
        if self.num_heads == 0 || !d.is_multiple_of(self.num_heads) {
            return Err(Error::Msg(format!(
                "fusion: attention width {d} is not a multiple of num_heads {}",
                self.num_heads
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Msg(format!(
                "fusion: dropout {} must be in [0, 1)",
                self.dropout
            )));
        }
        Ok(())
    }
}

/// A `(mode, vmin, vmax)` regression mode of Cut3R's heads, as the official
/// `depth_mode=('exp', -inf, inf)` / `conf_mode=('exp', 1, inf)` tuples. JSON has no infinity,
/// so an unbounded side is `null`: `["exp", null, null]`, `["exp", 1.0, null]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cut3rRegMode(pub String, pub Option<f64>, pub Option<f64>);

impl Cut3rRegMode {
    /// `('exp', -inf, inf)`.
    pub fn exp_unbounded() -> Self {
        Self("exp".to_string(), None, None)
    }

    /// `('exp', vmin, inf)`.
    pub fn exp_min(vmin: f64) -> Self {
        Self("exp".to_string(), Some(vmin), None)
    }
}

/// Cut3R (`ARCroco3DStereo`, github.com/CUT3R/CUT3R `src/dust3r/model.py`): the paper's frozen
/// 3D encoder.
///
/// Field names are those of the official `ARCroco3DStereoConfig(...)` constructor and of the
/// CroCo kwargs it forwards (`img_size`, `enc_embed_dim`, …), i.e. the string stored in the
/// released checkpoint's `args.model`; `models/scripts/convert_cut3r.py` turns that string into
/// this struct's JSON. Three fields are ours (`dpt_*`): the official DPT head hard-codes them; we
/// expose them only so that tests can build a DPT head small enough for a fixture (defaults =
/// the official values). `enc_rope_f16` (ours too) selects the encoder's RoPE numerics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cut3rConfig {
    /// `"pts3d+pose"` (the only mode with a camera token, which VLM-3R reads).
    #[serde(default = "cut3r_default_output_mode")]
    pub output_mode: String,
    /// `"dpt"` (released checkpoint; the only head implemented here).
    #[serde(default = "cut3r_default_head_type")]
    pub head_type: String,
    /// Point regression; only `exp` (and `linear`), unbounded, as upstream asserts.
    #[serde(default = "Cut3rRegMode::exp_unbounded")]
    pub depth_mode: Cut3rRegMode,
    /// Confidence regression: `vmin + exp(x)`.
    #[serde(default = "cut3r_default_conf_mode")]
    pub conf_mode: Cut3rRegMode,
    /// Camera translation regression.
    #[serde(default = "Cut3rRegMode::exp_unbounded")]
    pub pose_mode: Cut3rRegMode,
    /// Number of persistent state tokens (768 in the release).
    #[serde(default = "cut3r_default_state_size")]
    pub state_size: usize,
    /// Slots of the pose retriever's local memory (256).
    #[serde(default = "cut3r_default_local_mem_size")]
    pub local_mem_size: usize,
    /// State token positions: `"2d"` (release) or `"1d"`.
    #[serde(default = "cut3r_default_state_pe")]
    pub state_pe: String,
    /// Heads of the state decoder (`dec_blocks_state`), 16 by default upstream.
    #[serde(default = "cut3r_default_state_heads")]
    pub state_dec_num_heads: usize,
    /// Blocks of the ray-map encoder (present in the checkpoint, unused for images).
    #[serde(default = "cut3r_default_ray_enc_depth")]
    pub ray_enc_depth: usize,
    /// Whether the checkpoint has an RGB DPT head (`downstream_head.dpt_rgb`, not run here).
    #[serde(default)]
    pub rgb_head: bool,
    /// Camera-pose token and pose head; required (the DPT head strips the pose token).
    #[serde(default = "cut3r_default_true")]
    pub pose_head: bool,
    /// Patch-embed class upstream (`ManyAR_PatchEmbed` / `PatchEmbedDust3R`); both are the same
    /// convolution for landscape-or-square inputs.
    #[serde(default = "cut3r_default_patch_embed_cls")]
    pub patch_embed_cls: String,
    /// Whether upstream transposes portrait inputs (the release sets `false`; we never do).
    #[serde(default)]
    pub landscape_only: bool,
    /// Training resolution `[h, w]`; any multiple of `patch_size` works at inference (RoPE).
    #[serde(default = "cut3r_default_img_size")]
    pub img_size: [usize; 2],
    /// Patch side (16).
    #[serde(default = "cut3r_default_patch_size")]
    pub patch_size: usize,
    /// Encoder width (1024, ViT-L).
    pub enc_embed_dim: usize,
    /// Encoder blocks (24).
    pub enc_depth: usize,
    /// Encoder heads (16).
    pub enc_num_heads: usize,
    /// Decoder width (768): the width of the tokens VLM-3R feeds its fusion.
    pub dec_embed_dim: usize,
    /// Blocks of each of the two decoders (12).
    pub dec_depth: usize,
    /// Heads of the image decoder (`dec_blocks`) and of the pose retriever (12).
    pub dec_num_heads: usize,
    /// MLP ratio of every block (4).
    #[serde(default = "cut3r_default_mlp_ratio")]
    pub mlp_ratio: f64,
    /// `norm_y` on the cross-attended tokens in decoder blocks (CroCo default `true`).
    #[serde(default = "cut3r_default_true")]
    pub norm_im2_in_dec: bool,
    /// `"RoPE100"`: 2D RoPE with base 100.
    #[serde(default = "cut3r_default_pos_embed")]
    pub pos_embed: String,
    /// Ours: round q, k to float16 around the encoder's RoPE, as the released model runs
    /// (CroCo's encoder blocks cast to float16 for the cuRoPE kernel). `false` = plain f32
    /// (tests use it for a comparison free of rounding-boundary flips).
    #[serde(default = "cut3r_default_true")]
    pub enc_rope_f16: bool,
    /// Ours: DPT fusion width (official: 256).
    #[serde(default = "cut3r_default_dpt_feature_dim")]
    pub dpt_feature_dim: usize,
    /// Ours: DPT per-hook widths (official `DPTOutputAdapter` default `[96, 192, 384, 768]`).
    #[serde(default = "cut3r_default_dpt_layer_dims")]
    pub dpt_layer_dims: [usize; 4],
    /// Ours: DPT last conv width (official: `feature_dim // 2` = 128).
    #[serde(default = "cut3r_default_dpt_last_dim")]
    pub dpt_last_dim: usize,
}

fn cut3r_default_output_mode() -> String {
    "pts3d+pose".to_string()
}
fn cut3r_default_head_type() -> String {
    "dpt".to_string()
}
fn cut3r_default_conf_mode() -> Cut3rRegMode {
    Cut3rRegMode::exp_min(1.0)
}
fn cut3r_default_state_size() -> usize {
    324
}
fn cut3r_default_local_mem_size() -> usize {
    256
}
fn cut3r_default_state_pe() -> String {
    "2d".to_string()
}
fn cut3r_default_state_heads() -> usize {
    16
}
fn cut3r_default_ray_enc_depth() -> usize {
    2
}
fn cut3r_default_true() -> bool {
    true
}
fn cut3r_default_patch_embed_cls() -> String {
    "PatchEmbedDust3R".to_string()
}
fn cut3r_default_img_size() -> [usize; 2] {
    [224, 224]
}
fn cut3r_default_patch_size() -> usize {
    16
}
fn cut3r_default_mlp_ratio() -> f64 {
    4.0
}
fn cut3r_default_pos_embed() -> String {
    "RoPE100".to_string()
}
fn cut3r_default_dpt_feature_dim() -> usize {
    256
}
fn cut3r_default_dpt_layer_dims() -> [usize; 4] {
    [96, 192, 384, 768]
}
fn cut3r_default_dpt_last_dim() -> usize {
    128
}

/// The Cut3R sizes (`cut3r.preset` of lift-depth and encoder-3d): `cut3r_512`, the release
/// (`cut3r_512_dpt_4_64.pth`), and `tiny`, the test fixture's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Cut3rPreset {
    #[serde(rename = "tiny")]
    Tiny,
    #[default]
    #[serde(rename = "cut3r_512")]
    Cut3r512,
}

impl Cut3rPreset {
    /// The name in configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tiny => "tiny",
            Self::Cut3r512 => "cut3r_512",
        }
    }
}

impl std::fmt::Display for Cut3rPreset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Cut3rConfig {
    /// The released `cut3r_512_dpt_4_64.pth` (`config/dpt_512_vary_4_64.yaml`): ViT-L encoder
    /// (1024, 24 blocks, 16 heads), two 12-block decoders of width 768 (12 / 16 heads),
    /// 768 state tokens, DPT head with pose, RGB head.
    pub fn cut3r_512() -> Self {
        Self {
            output_mode: cut3r_default_output_mode(),
            head_type: cut3r_default_head_type(),
            depth_mode: Cut3rRegMode::exp_unbounded(),
            conf_mode: Cut3rRegMode::exp_min(1.0),
            pose_mode: Cut3rRegMode::exp_unbounded(),
            state_size: 768,
            local_mem_size: 256,
            state_pe: "2d".to_string(),
            state_dec_num_heads: 16,
            ray_enc_depth: 2,
            rgb_head: true,
            pose_head: true,
            patch_embed_cls: "ManyAR_PatchEmbed".to_string(),
            landscape_only: false,
            img_size: [512, 512],
            patch_size: 16,
            enc_embed_dim: 1024,
            enc_depth: 24,
            enc_num_heads: 16,
            dec_embed_dim: 768,
            dec_depth: 12,
            dec_num_heads: 12,
            mlp_ratio: 4.0,
            norm_im2_in_dec: true,
            pos_embed: "RoPE100".to_string(),
            enc_rope_f16: true,
            dpt_feature_dim: 256,
            dpt_layer_dims: [96, 192, 384, 768],
            dpt_last_dim: 128,
        }
    }

    /// Unit-test size (the committed fixture `fixtures/cut3r/tiny.*`): encoder 32 wide (2 blocks,
    /// 2 heads), decoders 16 wide (2 blocks; 2 image / 4 state heads), 12 state tokens, 8 memory
    /// slots, DPT 8 wide, 32×48 frames.
    pub fn tiny() -> Self {
        Self {
            state_size: 12,
            local_mem_size: 8,
            state_dec_num_heads: 4,
            ray_enc_depth: 1,
            rgb_head: false,
            patch_embed_cls: "PatchEmbedDust3R".to_string(),
            img_size: [32, 48],
            enc_embed_dim: 32,
            enc_depth: 2,
            enc_num_heads: 2,
            dec_embed_dim: 16,
            dec_depth: 2,
            dec_num_heads: 2,
            dpt_feature_dim: 8,
            dpt_layer_dims: [4, 8, 8, 12],
            dpt_last_dim: 4,
            ..Self::cut3r_512()
        }
    }

    /// The configuration of a named preset.
    pub fn preset(preset: Cut3rPreset) -> Self {
        match preset {
            Cut3rPreset::Tiny => Self::tiny(),
            Cut3rPreset::Cut3r512 => Self::cut3r_512(),
        }
    }

    /// RoPE base from `pos_embed` (`"RoPE100"` → 100).
    pub fn rope_base(&self) -> Result<f32> {
        self.pos_embed
            .strip_prefix("RoPE")
            .and_then(|f| f.parse::<f32>().ok())
            .ok_or_else(|| {
                Error::Msg(format!(
                    "Cut3R: pos_embed `{}` is not supported (only `RoPE<base>`, e.g. RoPE100)",
                    self.pos_embed
                ))
            })
    }

    /// MLP hidden width for a block of width `dim` (`int(dim * mlp_ratio)`, as upstream).
    pub fn mlp_hidden(&self, dim: usize) -> usize {
        (dim as f64 * self.mlp_ratio) as usize
    }

    /// Checks what this implementation supports and the divisibility RoPE needs.
    pub fn validate(&self) -> Result<()> {
        let fail = |msg: String| Err(Error::Msg(format!("Cut3R config: {msg}")));
        if self.output_mode != "pts3d+pose" || !self.pose_head {
            return fail(format!(
                "output_mode `{}` with pose_head={} is not supported (only `pts3d+pose` with \
                 pose_head=true, as the released checkpoint)",
                self.output_mode, self.pose_head
            ));
        }
        if self.head_type != "dpt" {
            return fail(format!(
                "head_type `{}` is not implemented (only dpt, the released checkpoint's head)",
                self.head_type
            ));
        }
        for (name, mode) in [
            ("depth_mode", &self.depth_mode),
            ("pose_mode", &self.pose_mode),
        ] {
            if !matches!(mode.0.as_str(), "exp" | "linear" | "square")
                || mode.1.is_some()
                || mode.2.is_some()
            {
                return fail(format!(
                    "{name} {mode:?} is not supported (exp, square or linear, unbounded)"
                ));
            }
        }
        if self.conf_mode.0 != "exp" {
            return fail(format!("conf_mode {:?} (only exp)", self.conf_mode));
        }
        // Upstream's `state_pe="none"` passes `None` positions into RoPE blocks and fails there.
        if !matches!(self.state_pe.as_str(), "2d" | "1d") {
            return fail(format!("state_pe `{}` (use 2d or 1d)", self.state_pe));
        }
        if self.dec_depth < 2 {
            return fail(format!(
                "dec_depth {} < 2: the DPT hooks (0, depth/2, 3·depth/4, depth) need two blocks",
                self.dec_depth
            ));
        }
        self.rope_base()?;
        for (name, dim, heads) in [
            ("enc", self.enc_embed_dim, self.enc_num_heads),
            ("dec", self.dec_embed_dim, self.dec_num_heads),
            ("state dec", self.dec_embed_dim, self.state_dec_num_heads),
            ("pose memory", 2 * self.dec_embed_dim, self.dec_num_heads),
        ] {
            if heads == 0 || !dim.is_multiple_of(heads) || !(dim / heads).is_multiple_of(4) {
                return fail(format!(
                    "{name}: width {dim} / {heads} heads must give a head dim that is a multiple \
                     of 4 (2D RoPE)"
                ));
            }
        }
        if self.patch_size == 0 {
            return fail("patch_size 0".to_string());
        }
        Ok(())
    }
}
