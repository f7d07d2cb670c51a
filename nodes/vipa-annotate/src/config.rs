//! Configuration of the annotate node (YAML in `VIPA_CONFIG`, see `vipa_node_kit::config`).
//!
//! ```yaml
//! out: data/hand3d              # dataset root: shards/, frames/, manifest.json, config.json
//! clip_info_dir: data/synth     # <clip_id>.truth.parquet: instruction, target object, fps,
//!                               # and (objects: sidecar) the per-frame object boxes
//! objects: sidecar              # sidecar | none (a detector node plugs in later)
//! expect_videos_in: null        # folder of the input videos: a video that never produced a
//!                               # frame (corrupt, unreadable) is listed as a skipped clip
//! exit_grace_ms: 10000          # after the manifest: wait at most this long for ingest to exit
//! hand3d: {}                    # vipa_hand3d::Config: seed, visibility, calibration
//!                               # (mode: per_clip | per_frame, surface_offset_m |
//!                               # joint_thickness_prior), objects (complete_depth: false =
//!                               # visible surface), qa, action, split; every key defaulted
//! ```
//! Relative paths are resolved against the node's working directory (under `dora run`, the
//! dataflow YAML's folder).

use std::path::PathBuf;

use serde::Deserialize;

/// Where object boxes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectSource {
    /// Ground-truth boxes of the clip's sidecar.
    #[default]
    Sidecar,
    /// No objects: spatial-relation and task-completion questions need objects, so only the
    /// hand, camera and motion tasks are generated.
    None,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnnotateConfig {
    pub out: PathBuf,
    pub clip_info_dir: PathBuf,
    pub objects: ObjectSource,
    pub expect_videos_in: Option<PathBuf>,
    pub exit_grace_ms: u64,
    pub hand3d: vipa_hand3d::Config,
}

impl Default for AnnotateConfig {
    fn default() -> Self {
        Self {
            out: PathBuf::from("data/hand3d"),
            clip_info_dir: PathBuf::from("data/synth"),
            objects: ObjectSource::Sidecar,
            expect_videos_in: None,
            exit_grace_ms: 10_000,
            hand3d: vipa_hand3d::Config::default(),
        }
    }
}

impl vipa_node_kit::NodeConfig for AnnotateConfig {
    fn validate(&self) -> Result<(), String> {
        if self.out.as_os_str().is_empty() {
            return Err("`out` is empty; name the dataset folder".into());
        }
        self.hand3d.validate().map_err(|e| format!("`hand3d`: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vipa_node_kit::from_yaml_str;

    #[test]
    fn defaults_and_nested_hand3d_config() {
        let c: AnnotateConfig = from_yaml_str("").unwrap();
        assert_eq!(c, AnnotateConfig::default());
        let c: AnnotateConfig = from_yaml_str(
            "{out: /d, objects: none, hand3d: {calibration: {mode: per_frame, surface_offset_m: 0.009}}}",
        )
        .unwrap();
        assert_eq!(c.objects, ObjectSource::None);
        assert_eq!(c.hand3d.calibration.surface_offset_m, 0.009);
    }

    #[test]
    fn bad_nested_values_name_the_key() {
        let e = from_yaml_str::<AnnotateConfig>("hand3d: {qa: {gamma: 0.9}}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("qa.gamma"), "{e}");
        let e = from_yaml_str::<AnnotateConfig>("hand3d: {qa: {gama: 0.3}}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gama"), "{e}");
    }
}
