//! Configuration of the 3D encoder node (YAML in `VIPA_CONFIG`).
//!
//! ```yaml
//! backend: point_map_vit  # point_map_vit | none (the "− 3D" ablation: [0, channels] tokens)
//! preset: tiny            # tiny | small | internvl3_5_2b → point-map ViT tiny | small | cut3r_shaped
//! weights: null           # safetensors file(s) with `spatial_encoder.*` keys; null = seeded random init
//! seed: 0                 # the random init's seed (only without `weights`)
//! device: cpu             # cpu | cuda (cuda needs a build with `--features cuda`)
//! exit_grace_ms: 10000
//! ```
//!
//! The point-map ViT has **no pretrained weights**: the paper's frozen 3D encoder is Cut3R,
//! which vipa does not implement. As a frozen node it is therefore a deterministic random-init
//! encoder (same seed → same tokens on every run and machine), a fixed random projection of
//! the geometry that the trainable fusion learns to read. Point a `weights` file at a trained
//! `spatial_encoder.*` checkpoint to freeze a trained one instead.

use std::path::PathBuf;

use serde::Deserialize;

/// One path or a list of paths.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Paths {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl Paths {
    pub fn to_vec(&self) -> Vec<PathBuf> {
        match self {
            Self::One(p) => vec![p.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

/// Which 3D encoder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// `vipa_models::vision::spatial::PointMapVit` over calibrated point maps.
    PointMapVit,
    /// No 3D encoder: every frame gets `f32[0, channels]` (fusion passes semantics through).
    None,
}

/// The encoder's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Encoder3dConfig {
    pub backend: Backend,
    pub preset: String,
    pub weights: Option<Paths>,
    pub seed: u64,
    pub device: String,
    pub exit_grace_ms: u64,
}

impl Default for Encoder3dConfig {
    fn default() -> Self {
        Self {
            backend: Backend::PointMapVit,
            preset: "tiny".into(),
            weights: None,
            seed: 0,
            device: "cpu".into(),
            exit_grace_ms: 10_000,
        }
    }
}

impl vipa_node_kit::NodeConfig for Encoder3dConfig {
    fn validate(&self) -> Result<(), String> {
        if !["tiny", "small", "internvl3_5_2b"].contains(&self.preset.as_str()) {
            return Err(format!(
                "`preset` must be tiny, small or internvl3_5_2b, got {:?}",
                self.preset
            ));
        }
        if !["cpu", "cuda"].contains(&self.device.as_str()) {
            return Err(format!(
                "`device` must be cpu or cuda, got {:?}",
                self.device
            ));
        }
        if let Some(w) = &self.weights
            && w.to_vec().is_empty()
        {
            return Err("`weights` is an empty list; give files or null".into());
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
            ("backend: cut3r", "backend"),
            ("preset: huge", "preset"),
            ("device: tpu", "device"),
            ("weights: []", "weights"),
        ] {
            let err = from_yaml_str::<Encoder3dConfig>(yaml)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{yaml}: {err}");
        }
    }
}
