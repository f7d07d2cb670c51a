//! Configuration of the point-map ViT 3D encoder, beside the model ([`super`]). It is ours:
//! no upstream file.

use candle_core::{Error, Result};
use serde::{Deserialize, Serialize};

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
