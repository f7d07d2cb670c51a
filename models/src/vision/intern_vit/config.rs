//! Configuration of InternViT and the InternVL projector (`mlp1`), beside the model
//! ([`super`]). The structs use the field names of the upstream `config.json` of InternVL3.5
//! (`OpenGVLab/InternVL3_5-2B`), so that file deserialises directly (unknown upstream fields
//! such as `use_flash_attn` are ignored); transformers' `-HF` layout is read too
//! ([`InternVlConfig::from_json_str`]).

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
