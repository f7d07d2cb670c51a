//! `manifest.json`: the list of clips in an output folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sidecar::ClipInfo;

/// Version of the manifest layout.
pub const MANIFEST_VERSION: u32 = 1;

/// One clip's entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestClip {
    pub clip_id: String,
    /// File names relative to the manifest's folder.
    pub video: String,
    pub truth: String,
    pub num_frames: u32,
    pub instruction: String,
    pub target_object: String,
    pub camera_moving: bool,
    pub num_hands: usize,
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub generator: String,
    pub seed: u64,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub clips: Vec<ManifestClip>,
}

/// Errors writing or reading a manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("manifest {path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl ManifestClip {
    pub fn from_info(info: &ClipInfo) -> ManifestClip {
        ManifestClip {
            clip_id: info.clip_id.clone(),
            video: format!("{}.mp4", info.clip_id),
            truth: format!("{}.truth.parquet", info.clip_id),
            num_frames: info.num_frames,
            instruction: info.instruction.clone(),
            target_object: info.target_object.clone(),
            camera_moving: info.camera_moving,
            num_hands: info.hands.len(),
        }
    }
}

impl Manifest {
    /// Writes pretty JSON atomically (temporary name, then rename).
    pub fn write(&self, path: &Path) -> Result<(), ManifestError> {
        let json = serde_json::to_string_pretty(self).map_err(|source| ManifestError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let tmp = path.with_extension("json.partial");
        let io = |source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        };
        std::fs::write(&tmp, json + "\n").map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    pub fn read(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ManifestError::Json {
            path: path.to_path_buf(),
            source,
        })
    }
}
