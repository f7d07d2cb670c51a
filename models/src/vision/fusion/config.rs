//! Configuration of the cross-attention fusion layer `V_f = V_sem + α·F_spa`, beside the
//! layer ([`super`]).

use candle_core::{Error, Result};
use serde::{Deserialize, Serialize};

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
