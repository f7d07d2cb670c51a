//! Configuration of the video-ingest node (YAML in `VIPA_CONFIG`, see `vipa_node_kit::config`).
//!
//! ```yaml
//! # Exactly one source; none given means `folder: data/synth`.
//! folder: data/synth          # every *.mp4 *.avi *.mkv *.mov *.webm in it, sorted by name
//! # files: [a.mp4, b.mp4]     # explicit list, in this order
//! # glob: "data/*/clip_*.mp4" # glob pattern, matches sorted
//! # camera: 0                 # camera index (one endless clip; bound it with max_frames_per_clip)
//! fps: null                   # target rate: drop/duplicate frames to resample; null = every frame
//! resize: null                # [width, height] in pixels; null = keep the source size
//! encoding: rgb8              # rgb8 | bgr8
//! max_frames_per_clip: null   # stop each clip after this many output frames
//! loops: 1                    # passes over the file list (clip ids get an `@pass` suffix)
//! max_in_flight: 4            # with an `ack` input: most messages sent but not yet acked
//! ack_timeout_ms: 5000        # no ack for this long: warn, assume the window lost, go on
//! exit_grace_ms: 2000         # after the stream end: wait this long at most before exiting
//! ```
//! Relative paths are resolved against the node's working directory; under `dora run` that is
//! the directory of the dataflow YAML.
//!
//! A folder or glob that yields no video is an error. Entries named like a video that are not
//! readable files (a folder `x.mp4`, a dangling link, a link loop) are logged and counted as
//! bad sources; other files (sidecars) are left out. Clip ids are the file stems, or, where two
//! files share a stem, their names, or their paths below the common folder.

use std::path::PathBuf;

use serde::Deserialize;
use vipa_msgs::Encoding;

/// Default source folder (written by `vipa-synth`), relative to the working directory.
pub const DEFAULT_FOLDER: &str = "data/synth";

/// Video file extensions a `folder` source picks up.
pub const VIDEO_EXTENSIONS: &[&str] = &["mp4", "avi", "mkv", "mov", "webm"];

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub files: Option<Vec<PathBuf>>,
    pub folder: Option<PathBuf>,
    pub glob: Option<String>,
    pub camera: Option<i32>,
    pub fps: Option<f64>,
    pub resize: Option<[u32; 2]>,
    pub encoding: String,
    pub max_frames_per_clip: Option<u64>,
    pub loops: u32,
    pub max_in_flight: u64,
    pub ack_timeout_ms: u64,
    pub exit_grace_ms: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            files: None,
            folder: None,
            glob: None,
            camera: None,
            fps: None,
            resize: None,
            encoding: "rgb8".into(),
            max_frames_per_clip: None,
            loops: 1,
            max_in_flight: 4,
            ack_timeout_ms: 5000,
            exit_grace_ms: 2000,
        }
    }
}

/// Where frames come from, after defaults are applied.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    Files(Vec<PathBuf>),
    Folder(PathBuf),
    Glob(String),
    Camera(i32),
}

impl IngestConfig {
    /// The one configured source (the default folder when none is given).
    pub fn source(&self) -> SourceSpec {
        if let Some(files) = &self.files {
            SourceSpec::Files(files.clone())
        } else if let Some(glob) = &self.glob {
            SourceSpec::Glob(glob.clone())
        } else if let Some(index) = self.camera {
            SourceSpec::Camera(index)
        } else {
            SourceSpec::Folder(
                self.folder
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_FOLDER)),
            )
        }
    }

    /// The output encoding (validated).
    pub fn encoding(&self) -> Encoding {
        match self.encoding.as_str() {
            "bgr8" => Encoding::Bgr8,
            _ => Encoding::Rgb8,
        }
    }
}

impl vipa_node_kit::NodeConfig for IngestConfig {
    fn validate(&self) -> Result<(), String> {
        let given = [
            self.files.is_some(),
            self.folder.is_some(),
            self.glob.is_some(),
            self.camera.is_some(),
        ];
        if given.iter().filter(|&&g| g).count() > 1 {
            return Err(
                "set exactly one of `files`, `folder`, `glob`, `camera` (or none for `folder: data/synth`)"
                    .into(),
            );
        }
        if self.files.as_ref().is_some_and(Vec::is_empty) {
            return Err("`files` is empty; list at least one video file".into());
        }
        if let Some(fps) = self.fps
            && !(fps.is_finite() && fps > 0.0)
        {
            return Err(format!(
                "`fps` must be a positive number (or null to keep every frame), got {fps}"
            ));
        }
        if let Some([w, h]) = self.resize
            && (w == 0 || h == 0 || w > 16384 || h > 16384)
        {
            return Err(format!(
                "`resize` must be [width, height] with 1..=16384 pixels each, got [{w}, {h}]"
            ));
        }
        if !matches!(self.encoding.as_str(), "rgb8" | "bgr8") {
            return Err(format!(
                "`encoding` must be rgb8 or bgr8, got {:?}",
                self.encoding
            ));
        }
        if self.max_frames_per_clip == Some(0) {
            return Err("`max_frames_per_clip` must be >= 1 (or null for no limit)".into());
        }
        if self.loops == 0 {
            return Err("`loops` must be >= 1".into());
        }
        if self.max_in_flight == 0 {
            return Err("`max_in_flight` must be >= 1".into());
        }
        if self.ack_timeout_ms == 0 {
            return Err("`ack_timeout_ms` must be >= 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vipa_node_kit::from_yaml_str;

    #[test]
    fn defaults_read_the_synth_folder() {
        let c: IngestConfig = from_yaml_str("").unwrap();
        assert_eq!(c.source(), SourceSpec::Folder(PathBuf::from("data/synth")));
        assert_eq!(c.encoding(), Encoding::Rgb8);
    }

    #[test]
    fn full_config_parses() {
        let c: IngestConfig = from_yaml_str(
            "files: [a.mp4, b.mp4]\nfps: 10\nresize: [64, 48]\nencoding: bgr8\nmax_frames_per_clip: 5\nloops: 2\n",
        )
        .unwrap();
        assert_eq!(
            c.source(),
            SourceSpec::Files(vec!["a.mp4".into(), "b.mp4".into()])
        );
        assert_eq!(c.resize, Some([64, 48]));
        assert_eq!(c.encoding(), Encoding::Bgr8);
        assert_eq!((c.fps, c.loops), (Some(10.0), 2));
    }

    #[test]
    fn two_sources_are_rejected() {
        let err = from_yaml_str::<IngestConfig>("folder: x\ncamera: 0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("exactly one"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        for (yaml, key) in [
            ("fps: 0", "`fps`"),
            ("resize: [0, 10]", "`resize`"),
            ("encoding: yuv", "`encoding`"),
            ("loops: 0", "`loops`"),
            ("files: []", "`files`"),
            ("max_in_flight: 0", "`max_in_flight`"),
        ] {
            let err = from_yaml_str::<IngestConfig>(yaml).unwrap_err().to_string();
            assert!(err.contains(key), "{yaml}: {err}");
        }
    }

    #[test]
    fn typo_lists_allowed_keys() {
        let err = from_yaml_str::<IngestConfig>("flder: x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("flder") && err.contains("folder"), "{err}");
    }
}
