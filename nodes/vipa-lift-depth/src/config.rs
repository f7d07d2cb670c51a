//! Configuration of the lift-depth node (YAML in `VIPA_CONFIG`, see `vipa_node_kit::config`).
//!
//! ```yaml
//! backend: sidecar          # sidecar | scaled | depth-anything-v2 | cut3r
//! sidecar_dir: data/synth   # folder of <clip_id>.truth.parquet (next to the videos); the
//!                           # depth-anything backend takes intrinsics and poses from it when
//!                           # present, else guesses intrinsics from `hfov_deg`
//! noise_rel: 0.01           # scaled: per-pixel multiplicative depth noise (std, 0.01 = 1 %)
//! depth_anything:           # depth-anything-v2 only
//!   checkpoint: null        #   safetensors with pretrained.* + depth_head.* (required)
//!   encoder: vits           #   vits | vitb | vitl | custom (then `custom: {depth, embed_dim,
//!                           #   num_heads, out_channels: [4], features, layers: [4]}`)
//!   output: disparity       #   disparity (relative models, z = 1/d) | depth (metric models)
//!   device: auto            #   auto | cpu | cuda (vipa_models::device)
//!   hfov_deg: 60            #   field-of-view guess for clips without a sidecar
//! cut3r:                    # cut3r only (see `crate::cut3r`)
//!   checkpoint: null        #   safetensors from models/scripts/convert_cut3r.py (required)
//!   config: null            #   its config JSON; null = `preset`
//!   preset: cut3r_512       #   cut3r_512 (the release) | tiny
//!   size: 512               #   long side of the network input (multiples of 16)
//!   min_conf: 0             #   points with confidence below this become NaN (conf ≥ 1)
//!   device: auto            #   auto | cpu | cuda (vipa_models::device)
//! ```
//! Relative paths are resolved against the node's working directory (under `dora run`, the
//! dataflow YAML's folder).

use std::path::PathBuf;

use serde::Deserialize;

use crate::cut3r::Cut3rBackendConfig;
use crate::depth_anything::DepthAnythingConfig;

/// Which depth backend lifts the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// Ground-truth depth from the clip's sidecar.
    #[default]
    Sidecar,
    /// Sidecar depth × a hidden per-clip factor + noise (tests scale calibration).
    Scaled,
    /// Depth Anything V2 (candle) from a safetensors checkpoint.
    DepthAnythingV2,
    /// Cut3R (the paper's 3D model), run recurrently over each clip.
    Cut3r,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sidecar => "sidecar",
            Self::Scaled => "scaled",
            Self::DepthAnythingV2 => "depth-anything-v2",
            Self::Cut3r => "cut3r",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiftDepthConfig {
    pub backend: Backend,
    pub sidecar_dir: PathBuf,
    pub noise_rel: f32,
    pub depth_anything: DepthAnythingConfig,
    pub cut3r: Cut3rBackendConfig,
}

impl Default for LiftDepthConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Sidecar,
            sidecar_dir: PathBuf::from("data/synth"),
            noise_rel: 0.01,
            depth_anything: DepthAnythingConfig::default(),
            cut3r: Cut3rBackendConfig::default(),
        }
    }
}

impl vipa_node_kit::NodeConfig for LiftDepthConfig {
    fn validate(&self) -> Result<(), String> {
        if !(self.noise_rel.is_finite() && (0.0..0.5).contains(&self.noise_rel)) {
            return Err(format!(
                "`noise_rel` must be in [0, 0.5), got {}",
                self.noise_rel
            ));
        }
        if self.sidecar_dir.as_os_str().is_empty() {
            return Err(
                "`sidecar_dir` is empty; name the folder of the clips' *.truth.parquet".into(),
            );
        }
        self.depth_anything.validate()?;
        self.cut3r.validate()?;
        if self.backend == Backend::Cut3r && self.cut3r.checkpoint.is_none() {
            return Err(
                "`backend: cut3r` needs `cut3r.checkpoint` (a safetensors file from models/scripts/convert_cut3r.py)".into(),
            );
        }
        if self.backend == Backend::DepthAnythingV2 && self.depth_anything.checkpoint.is_none() {
            return Err("`backend: depth-anything-v2` needs `depth_anything.checkpoint` (a safetensors file)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vipa_node_kit::from_yaml_str;

    #[test]
    fn defaults_and_overrides() {
        let c: LiftDepthConfig = from_yaml_str("").unwrap();
        assert_eq!(c, LiftDepthConfig::default());
        let c: LiftDepthConfig =
            from_yaml_str("{backend: scaled, sidecar_dir: /x, noise_rel: 0.02}").unwrap();
        assert_eq!(c.backend, Backend::Scaled);
        assert_eq!(c.sidecar_dir, PathBuf::from("/x"));
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = from_yaml_str::<LiftDepthConfig>("backend: dust3r")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dust3r") && e.contains("sidecar"), "{e}");
        let e = from_yaml_str::<LiftDepthConfig>("backend: cut3r")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cut3r.checkpoint"), "{e}");
        let e = from_yaml_str::<LiftDepthConfig>("cut3r: {size: 8}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cut3r.size"), "{e}");
        let e = from_yaml_str::<LiftDepthConfig>("cut3r: {preset: huge}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cut3r.preset"), "{e}");
        let e = from_yaml_str::<LiftDepthConfig>("noise_rel: 2")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`noise_rel`"), "{e}");
        let e = from_yaml_str::<LiftDepthConfig>("backend: depth-anything-v2")
            .unwrap_err()
            .to_string();
        assert!(e.contains("depth_anything.checkpoint"), "{e}");
        let e = from_yaml_str::<LiftDepthConfig>(
            "depth_anything: {encoder: custom, custom: {depth: 2, embed_dim: 8, num_heads: 2, out_channels: [1,1,1,1], features: 4, layers: [0,1,2,3]}}",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("layers"), "{e}");
    }
}
