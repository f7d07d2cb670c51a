//! Configuration of the lift-hands node (YAML in `VIPA_CONFIG`, see `vipa_node_kit::config`).
//!
//! ```yaml
//! backend: sidecar          # sidecar (ground-truth joints); learned backends come later
//! sidecar_dir: data/synth   # folder of <clip_id>.truth.parquet (next to the videos)
//! ```

use std::path::PathBuf;

use serde::Deserialize;

/// Which hand backend lifts the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum HandsBackend {
    /// Ground-truth joints and visibility from the clip's sidecar.
    #[default]
    Sidecar,
}

impl HandsBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sidecar => "sidecar",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiftHandsConfig {
    pub backend: HandsBackend,
    pub sidecar_dir: PathBuf,
}

impl Default for LiftHandsConfig {
    fn default() -> Self {
        Self {
            backend: HandsBackend::Sidecar,
            sidecar_dir: PathBuf::from("data/synth"),
        }
    }
}

impl vipa_node_kit::NodeConfig for LiftHandsConfig {
    fn validate(&self) -> Result<(), String> {
        if self.sidecar_dir.as_os_str().is_empty() {
            return Err(
                "`sidecar_dir` is empty; name the folder of the clips' *.truth.parquet".into(),
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
    fn defaults_and_unknown_backend() {
        let c: LiftHandsConfig = from_yaml_str("").unwrap();
        assert_eq!(c, LiftHandsConfig::default());
        let e = from_yaml_str::<LiftHandsConfig>("backend: mediapipe")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mediapipe") && e.contains("sidecar"), "{e}");
        let e = from_yaml_str::<LiftHandsConfig>("sidecar_dri: x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sidecar_dir"), "{e}");
    }
}
