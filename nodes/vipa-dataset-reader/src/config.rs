//! Configuration of the dataset reader (YAML in `VIPA_CONFIG`, see `vipa_node_kit::config`).
//!
//! ```yaml
//! dataset: ../data/hand3d   # a finished Hand3D dataset (manifest.json, shards/, frames/)
//! split: train              # train | test
//! seed: 0                   # shuffle seed; the order is a function of (seed, epoch) only
//! epochs: 1                 # passes over the split
//! max_samples: null         # stop after this many samples (over all epochs), if set
//! tasks: []                 # task names to keep (empty = all); `visual` / `action` = a stage's 4 / 3 tasks
//! max_frames: 1             # frames per sample: the LAST k of the sample's frames
//! frame_cache_clips: 8      # clips whose frame store stays in memory
//! exit_grace_ms: 30000      # after the end of stream: wait this long for the requester to go
//! ```
//!
//! `max_frames` defaults to 1, the CPU preset: one image (the newest) per sample keeps the
//! tiny/small encoders and the trainer fast. The paper shows up to 4 frames; set 4 for that.
//! Images travel at the size they were stored (the encoders resize to their preset).

use std::path::PathBuf;

use serde::Deserialize;
use vipa_hand3d::{Split, Task};

/// The reader's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReaderConfig {
    pub dataset: PathBuf,
    pub split: String,
    pub seed: u64,
    pub epochs: u64,
    pub max_samples: Option<u64>,
    pub tasks: Vec<String>,
    pub max_frames: usize,
    pub frame_cache_clips: usize,
    pub exit_grace_ms: u64,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        Self {
            dataset: PathBuf::from("../data/hand3d"),
            split: "train".into(),
            seed: 0,
            epochs: 1,
            max_samples: None,
            tasks: Vec::new(),
            max_frames: 1,
            frame_cache_clips: 8,
            exit_grace_ms: 30_000,
        }
    }
}

impl ReaderConfig {
    /// The split to read.
    pub fn split(&self) -> Result<Split, String> {
        match self.split.as_str() {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            other => Err(format!("`split` must be train or test, got {other:?}")),
        }
    }

    /// The task filter (empty = every task). `visual` and `action` expand to a stage's tasks.
    pub fn task_filter(&self) -> Result<Vec<Task>, String> {
        let mut out = Vec::new();
        for name in &self.tasks {
            let add: Vec<Task> = match name.as_str() {
                "visual" => Task::ALL.into_iter().filter(|t| t.is_visual()).collect(),
                "action" => Task::ALL.into_iter().filter(|t| !t.is_visual()).collect(),
                n => match Task::parse(n) {
                    Some(t) => vec![t],
                    None => {
                        return Err(format!(
                            "`tasks`: unknown task {n:?} (one of visual, action, {})",
                            Task::ALL.map(Task::as_str).join(", ")
                        ));
                    }
                },
            };
            for t in add {
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
        Ok(out)
    }
}

impl vipa_node_kit::NodeConfig for ReaderConfig {
    fn validate(&self) -> Result<(), String> {
        if self.dataset.as_os_str().is_empty() {
            return Err("`dataset` is empty; give the folder of a finished Hand3D dataset".into());
        }
        self.split()?;
        self.task_filter()?;
        if self.epochs == 0 {
            return Err("`epochs` must be >= 1".into());
        }
        if self.max_samples == Some(0) {
            return Err("`max_samples` must be >= 1 (or null for no limit)".into());
        }
        if self.max_frames == 0 {
            return Err("`max_frames` must be >= 1".into());
        }
        if self.frame_cache_clips == 0 {
            return Err("`frame_cache_clips` must be >= 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vipa_node_kit::from_yaml_str;

    #[test]
    fn defaults_and_task_groups() {
        let c: ReaderConfig = from_yaml_str("").unwrap();
        assert_eq!(
            (c.max_frames, c.epochs, c.split()),
            (1, 1, Ok(Split::Train))
        );
        let c: ReaderConfig =
            from_yaml_str("{tasks: [visual, spatial_relation], split: test}").unwrap();
        let tasks = c.task_filter().unwrap();
        assert_eq!(tasks.len(), 4);
        assert!(tasks.iter().all(|t| t.is_visual()));
        assert_eq!(c.split(), Ok(Split::Test));
    }

    #[test]
    fn bad_values_name_the_key() {
        for (yaml, key) in [
            ("split: val", "split"),
            ("tasks: [jumping]", "tasks"),
            ("epochs: 0", "epochs"),
            ("max_samples: 0", "max_samples"),
            ("max_frames: 0", "max_frames"),
            ("max_frame: 2", "max_frames"),
        ] {
            let err = from_yaml_str::<ReaderConfig>(yaml).unwrap_err().to_string();
            assert!(err.contains(key), "{yaml}: {err}");
        }
    }
}
