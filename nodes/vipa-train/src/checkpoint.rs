//! Crash-safe checkpoints.
//!
//! # Layout
//! ```text
//! <dir>/step-00000100/weights.safetensors    trainable weights, by parameter name
//! <dir>/step-00000100/optimizer.safetensors  optimizer state (moments), by parameter name
//! <dir>/step-00000100/state.json             CheckpointMeta: step, RNG state, resolved config…
//! <dir>/latest                               the name of the newest complete checkpoint
//! ```
//! A checkpoint is written into `.tmp-step-…` and renamed when complete; `latest` is replaced
//! by rename after that. A `kill -9` at any moment leaves the previous checkpoint intact and
//! `latest` pointing at a complete one; a leftover `.tmp-*` folder is removed by the next save.

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

const WEIGHTS: &str = "weights.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const STATE: &str = "state.json";
const LATEST: &str = "latest";

/// What a checkpoint records beside the tensors: enough to continue the run exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Optimizer steps taken.
    pub step: u64,
    /// Samples consumed (the data stream position to resume from).
    pub samples_seen: u64,
    /// Loss of the last step.
    pub loss: f32,
    /// Serialized RNG state(s) of the run (dropout, sampling), opaque to this module.
    pub rng: serde_json::Value,
    /// The resolved training configuration.
    pub config: serde_json::Value,
}

/// A loaded checkpoint.
pub struct Loaded {
    pub path: PathBuf,
    pub meta: CheckpointMeta,
    pub weights: HashMap<String, Tensor>,
    pub optimizer: HashMap<String, Tensor>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "checkpoint file {path} is unreadable ({reason}); it may be truncated — delete that \
         checkpoint folder to resume from the previous one"
    )]
    Corrupt { path: PathBuf, reason: String },
}

type Result<T> = std::result::Result<T, CheckpointError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The checkpoint folder of one run.
pub struct Checkpoints {
    dir: PathBuf,
    keep: usize,
}

impl Checkpoints {
    /// `keep`: how many complete checkpoints to retain (at least 1).
    pub fn new(dir: impl Into<PathBuf>, keep: usize) -> Self {
        Self {
            dir: dir.into(),
            keep: keep.max(1),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn name(step: u64) -> String {
        format!("step-{step:08}")
    }

    /// Writes a checkpoint atomically and returns its folder.
    pub fn save(
        &self,
        meta: &CheckpointMeta,
        weights: &HashMap<String, Tensor>,
        optimizer: &HashMap<String, Tensor>,
    ) -> Result<PathBuf> {
        fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let name = Self::name(meta.step);
        let tmp = self.dir.join(format!(".tmp-{name}"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        save_tensors(weights, &tmp.join(WEIGHTS))?;
        save_tensors(optimizer, &tmp.join(OPTIMIZER))?;
        let state = serde_json::to_vec_pretty(meta).map_err(|e| CheckpointError::Corrupt {
            path: tmp.join(STATE),
            reason: e.to_string(),
        })?;
        write_synced(&tmp.join(STATE), &state)?;
        let dst = self.dir.join(&name);
        if dst.exists() {
            fs::remove_dir_all(&dst).map_err(io(&dst))?;
        }
        fs::rename(&tmp, &dst).map_err(io(&dst))?;
        let latest_tmp = self.dir.join(".latest.tmp");
        write_synced(&latest_tmp, name.as_bytes())?;
        let latest = self.dir.join(LATEST);
        fs::rename(&latest_tmp, &latest).map_err(io(&latest))?;
        self.prune()?;
        Ok(dst)
    }

    /// Complete checkpoints (folders with a `state.json`), oldest first.
    pub fn list(&self) -> Result<Vec<(u64, PathBuf)>> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&self.dir))?;
            let file_name = entry.file_name();
            let Some(step) = file_name
                .to_str()
                .and_then(|n| n.strip_prefix("step-"))
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            if entry.path().join(STATE).is_file() {
                out.push((step, entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    fn prune(&self) -> Result<()> {
        let all = self.list()?;
        let excess = all.len().saturating_sub(self.keep);
        for (_, path) in all.into_iter().take(excess) {
            fs::remove_dir_all(&path).map_err(io(&path))?;
        }
        Ok(())
    }

    /// The newest complete checkpoint, if any: the one `latest` names, else the highest step.
    pub fn latest(&self, device: &Device) -> Result<Option<Loaded>> {
        let named = fs::read_to_string(self.dir.join(LATEST))
            .ok()
            .map(|n| self.dir.join(n.trim()))
            .filter(|p| p.join(STATE).is_file());
        let path = match named {
            Some(p) => Some(p),
            None => self.list()?.pop().map(|(_, p)| p),
        };
        path.map(|p| load(&p, device)).transpose()
    }
}

/// Loads the checkpoint in `path`.
pub fn load(path: &Path, device: &Device) -> Result<Loaded> {
    let state_path = path.join(STATE);
    let state = fs::read(&state_path).map_err(io(&state_path))?;
    let meta: CheckpointMeta =
        serde_json::from_slice(&state).map_err(|e| CheckpointError::Corrupt {
            path: state_path.clone(),
            reason: e.to_string(),
        })?;
    Ok(Loaded {
        path: path.to_owned(),
        meta,
        weights: load_tensors(&path.join(WEIGHTS), device)?,
        optimizer: load_tensors(&path.join(OPTIMIZER), device)?,
    })
}

fn save_tensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    candle_core::safetensors::save(tensors, path).map_err(|e| CheckpointError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(CheckpointError::Corrupt {
            path: path.to_owned(),
            reason: "file is missing".into(),
        });
    }
    candle_core::safetensors::load(path, device).map_err(|e| CheckpointError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(step: u64) -> CheckpointMeta {
        CheckpointMeta {
            step,
            samples_seen: step * 4,
            loss: 1.5,
            rng: serde_json::json!({"seed": 7, "word_pos": step}),
            config: serde_json::json!({"lr": 1e-3}),
        }
    }

    fn tensors(v: f32) -> HashMap<String, Tensor> {
        HashMap::from([(
            "fusion.alpha".to_owned(),
            Tensor::new(&[v, v + 1.0], &Device::Cpu).unwrap(),
        )])
    }

    #[test]
    fn save_then_latest_round_trips_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let ck = Checkpoints::new(dir.path(), 2);
        for step in [10, 20, 30] {
            ck.save(&meta(step), &tensors(step as f32), &tensors(0.5))
                .unwrap();
        }
        let steps: Vec<_> = ck.list().unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, vec![20, 30], "keeps the newest two");
        let loaded = ck.latest(&Device::Cpu).unwrap().unwrap();
        assert_eq!(loaded.meta, meta(30));
        let w = loaded.weights["fusion.alpha"].to_vec1::<f32>().unwrap();
        assert_eq!(w, vec![30.0, 31.0]);
        assert_eq!(
            loaded.optimizer["fusion.alpha"].to_vec1::<f32>().unwrap(),
            vec![0.5, 1.5]
        );
    }

    #[test]
    fn an_interrupted_save_leaves_the_previous_checkpoint_in_charge() {
        let dir = tempfile::tempdir().unwrap();
        let ck = Checkpoints::new(dir.path(), 3);
        ck.save(&meta(10), &tensors(1.0), &tensors(0.0)).unwrap();
        // A crash mid-write: a temp folder with a truncated weights file and no state.json.
        let tmp = dir.path().join(".tmp-step-00000020");
        fs::create_dir_all(&tmp).unwrap();
        fs::write(tmp.join(WEIGHTS), b"\x08\x00\x00").unwrap();
        let loaded = ck.latest(&Device::Cpu).unwrap().unwrap();
        assert_eq!(loaded.meta.step, 10);
        // The next save cleans up and succeeds.
        ck.save(&meta(20), &tensors(2.0), &tensors(0.0)).unwrap();
        assert!(!tmp.exists());
        assert_eq!(ck.latest(&Device::Cpu).unwrap().unwrap().meta.step, 20);
    }

    #[test]
    fn a_truncated_weights_file_is_a_clear_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let ck = Checkpoints::new(dir.path(), 3);
        let path = ck.save(&meta(10), &tensors(1.0), &tensors(0.0)).unwrap();
        let weights = path.join(WEIGHTS);
        let bytes = fs::read(&weights).unwrap();
        fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
        let err = match ck.latest(&Device::Cpu) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a truncated file must not load"),
        };
        assert!(err.contains("weights.safetensors"), "{err}");
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn no_checkpoint_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let ck = Checkpoints::new(dir.path().join("absent"), 1);
        assert!(ck.latest(&Device::Cpu).unwrap().is_none());
    }
}
