//! Configuration of the 3D encoder node (YAML in `VIPA_CONFIG`).
//!
//! ```yaml
//! backend: point_map_vit  # point_map_vit | cut3r | none (the "− 3D" ablation: [0, channels] tokens)
//! preset: tiny            # tiny | small | internvl3_5_2b → point-map ViT tiny | small | cut3r_shaped
//! weights: null           # safetensors file(s) with `spatial_encoder.*` keys; null = seeded random init
//! seed: 0                 # the random init's seed (only without `weights`)
//! device: auto            # auto | cpu | cuda (vipa_models::device: auto = GPU 0 in a
//!                         # `--features cuda` build when one answers, else the CPU)
//! exit_grace_ms: 10000
//! cache: null             # a folder: keep every output on disk, keyed by the point map's values
//!                         # and this config + weights (vipa_node_kit::cache); point_map_vit only
//!                         # (Cut3R's state runs across a sample's frames, so a frame alone is no key)
//! cut3r:                  # backend cut3r only: the paper's frozen 3D encoder, fed RGB `image`s
//!   checkpoint: null      #   safetensors from models/scripts/convert_cut3r.py (required)
//!   config: null          #   its config JSON; null = `preset`
//!   preset: cut3r_512     #   cut3r_512 (the release) | tiny
//!   size: 432             #   square network input (multiple of 16): 432 → 27×27 + 1 tokens (VLM-3R)
//! ```
//!
//! The point-map ViT has **no pretrained weights** (the paper's frozen 3D encoder is Cut3R, the
//! `cut3r` backend, which needs the converted official checkpoint). As a frozen node the
//! point-map ViT is therefore a deterministic random-init
//! encoder (same seed → same tokens on every run and machine), a fixed random projection of
//! the geometry that the trainable fusion learns to read. Point a `weights` file at a trained
//! `spatial_encoder.*` checkpoint to freeze a trained one instead.

use std::path::PathBuf;

use serde::Deserialize;
use vipa_models::Preset;
use vipa_models::device::DeviceChoice;
use vipa_models::vision::config::Cut3rPreset;

pub use vipa_node_kit::Paths;

/// Which 3D encoder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// `vipa_models::vision::spatial::PointMapVit` over calibrated point maps.
    PointMapVit,
    /// `vipa_models::vision::cut3r::Cut3r` over RGB images (input `image`).
    Cut3r,
    /// No 3D encoder: every frame gets `f32[0, channels]` (fusion passes semantics through).
    None,
}

/// The encoder's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Encoder3dConfig {
    pub backend: Backend,
    pub preset: Preset,
    pub weights: Option<Paths>,
    pub seed: u64,
    pub device: DeviceChoice,
    pub exit_grace_ms: u64,
    pub cache: Option<PathBuf>,
    pub cut3r: Cut3rNodeConfig,
}

/// `cut3r:` block (backend `cut3r` only).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cut3rNodeConfig {
    /// Converted safetensors checkpoint (required for the backend).
    pub checkpoint: Option<PathBuf>,
    /// Config JSON written by `convert_cut3r.py`; `null` = `preset`.
    pub config: Option<PathBuf>,
    /// `cut3r_512` or `tiny`, used without `config`.
    pub preset: Cut3rPreset,
    /// Side of the square network input in pixels (a multiple of 16).
    pub size: usize,
}

impl Default for Cut3rNodeConfig {
    fn default() -> Self {
        Self {
            checkpoint: None,
            config: None,
            preset: Cut3rPreset::Cut3r512,
            size: 432,
        }
    }
}

impl Default for Encoder3dConfig {
    fn default() -> Self {
        Self {
            backend: Backend::PointMapVit,
            preset: Preset::Tiny,
            weights: None,
            seed: 0,
            device: DeviceChoice::Auto,
            exit_grace_ms: 10_000,
            cache: None,
            cut3r: Cut3rNodeConfig::default(),
        }
    }
}

impl Encoder3dConfig {
    /// Everything that decides this encoder's output, for the feature cache's key (the
    /// weights by path, length and modification time).
    pub fn fingerprint(&self) -> std::io::Result<String> {
        let files = self.weights.as_ref().map(Paths::to_vec);
        let weights = vipa_node_kit::cache::weights_identity(files.as_deref(), self.seed)?;
        Ok(format!(
            "encoder-3d backend {:?} preset {} weights [{weights}]",
            self.backend, self.preset
        ))
    }
}

impl vipa_node_kit::NodeConfig for Encoder3dConfig {
    fn validate(&self) -> Result<(), String> {
        if let Some(w) = &self.weights
            && w.to_vec().is_empty()
        {
            return Err("`weights` is an empty list; give files or null".into());
        }
        let c = &self.cut3r;
        if c.size < 16 || !c.size.is_multiple_of(16) {
            return Err(format!(
                "`cut3r.size` must be a positive multiple of 16, got {}",
                c.size
            ));
        }
        if self.backend == Backend::Cut3r && self.cache.is_some() {
            return Err(
                "`cache` works with backend point_map_vit only: Cut3R's state runs across the frames of a sample, so one frame is no cache key; set `cache: null`"
                    .into(),
            );
        }
        if self.backend == Backend::Cut3r && c.checkpoint.is_none() {
            return Err(
                "`backend: cut3r` needs `cut3r.checkpoint` (a safetensors file from models/scripts/convert_cut3r.py)"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vipa_node_kit::from_yaml_str;

    #[test]
    fn backends_and_bad_values() {
        let c: Encoder3dConfig = from_yaml_str("backend: none").unwrap();
        assert_eq!(c.backend, Backend::None);
        for (yaml, key) in [
            ("backend: dust3r", "backend"),
            ("backend: cut3r", "cut3r.checkpoint"),
            ("cut3r: {size: 40}", "cut3r.size"),
            ("cut3r: {preset: huge}", "cut3r.preset"),
            ("preset: huge", "preset"),
            ("device: tpu", "device"),
            ("weights: []", "weights"),
            (
                "{backend: cut3r, cache: /tmp/c, cut3r: {checkpoint: x}}",
                "cache",
            ),
        ] {
            let err = from_yaml_str::<Encoder3dConfig>(yaml)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{yaml}: {err}");
        }
    }
}
