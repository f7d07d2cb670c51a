//! The sidecar of the clip being processed, loaded once per clip.
//!
//! Frames arrive clip by clip, so a node keeps exactly one clip's truth in memory: the first
//! frame of a clip loads its sidecar, later frames of the same clip answer from memory, and a
//! clip whose sidecar is missing or broken fails once (the caller logs it) and then answers
//! every one of its frames with the same reason, without retrying the file.

use std::path::{Path, PathBuf};

use crate::sidecar::{ClipTruth, read_clip_truth};

/// The sidecar path of a clip: `<dir>/<clip_id>.truth.parquet`.
pub fn sidecar_path(dir: &Path, clip_id: &str) -> PathBuf {
    dir.join(format!("{clip_id}.truth.parquet"))
}

struct Loaded {
    clip_id: String,
    truth: Result<ClipTruth, String>,
}

/// One clip's ground truth at a time, from the sidecars in one folder.
pub struct ClipCache {
    dir: PathBuf,
    reader: String,
    clip: Option<Loaded>,
}

impl ClipCache {
    /// Sidecars in `dir`; `reader` says who reads them and what for, and goes into the error
    /// of a missing file (e.g. "the `sidecar` hands backend reads ground-truth joints").
    pub fn new(dir: impl Into<PathBuf>, reader: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            reader: reader.into(),
            clip: None,
        }
    }

    /// The clip's truth, loaded when it is not the one in memory. `on_fail` is called once
    /// per clip, with the reason, when its sidecar cannot be read; the same reason is then
    /// returned for each of its frames.
    pub fn get(&mut self, clip_id: &str, on_fail: impl FnOnce(&str)) -> Result<&ClipTruth, String> {
        if self.clip.as_ref().is_none_or(|l| l.clip_id != clip_id) {
            let path = sidecar_path(&self.dir, clip_id);
            let truth = if path.is_file() {
                read_clip_truth(&path).map_err(|e| format!("cannot read the sidecar: {e}"))
            } else {
                Err(format!(
                    "no sidecar {} ({} from <sidecar_dir>/<clip_id>.truth.parquet; set \
                     `sidecar_dir` or regenerate the clip with vipa-synth)",
                    path.display(),
                    self.reader
                ))
            };
            if let Err(reason) = &truth {
                on_fail(reason);
            }
            self.clip = Some(Loaded {
                clip_id: clip_id.to_owned(),
                truth,
            });
        }
        match &self.clip {
            Some(Loaded { truth: Ok(t), .. }) => Ok(t),
            Some(Loaded { truth: Err(e), .. }) => Err(e.clone()),
            None => Err("no sidecar loaded".to_owned()),
        }
    }

    /// Forgets the clip in memory (at the end of a stream).
    pub fn clear(&mut self) {
        self.clip = None;
    }

    /// Forgets `clip_id` if it is the clip in memory (at the end of that clip).
    pub fn end_clip(&mut self, clip_id: &str) {
        if self.clip.as_ref().is_some_and(|l| l.clip_id == clip_id) {
            self.clip = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_sidecar_fails_once_and_names_the_file_and_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = ClipCache::new(dir.path(), "the test reads joints");
        let mut failures = 0;
        for _ in 0..3 {
            let err = cache.get("clip_0001", |_| failures += 1).unwrap_err();
            assert!(err.contains("clip_0001.truth.parquet"), "{err}");
            assert!(err.contains("the test reads joints"), "{err}");
        }
        assert_eq!(failures, 1, "one report per clip, not per frame");
        cache.clear();
        cache.get("clip_0001", |_| failures += 1).unwrap_err();
        assert_eq!(failures, 2, "a cleared cache tries the file again");
    }

    #[test]
    fn a_clip_loads_once_and_the_next_clip_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let truth = crate::sidecar::tests::sample_truth(8, 6, 3);
        let id = truth.info.clip_id.clone();
        crate::write_clip_truth(&sidecar_path(dir.path(), &id), &truth).unwrap();
        let mut cache = ClipCache::new(dir.path(), "the test");
        assert_eq!(cache.get(&id, |r| panic!("{r}")).unwrap(), &truth);
        // Answered from memory: the file is gone, the truth is not.
        std::fs::remove_file(sidecar_path(dir.path(), &id)).unwrap();
        assert_eq!(cache.get(&id, |r| panic!("{r}")).unwrap().frames.len(), 3);
        cache.end_clip("clip_0098");
        assert!(
            cache.get(&id, |r| panic!("{r}")).is_ok(),
            "another clip's end keeps it"
        );
        assert!(cache.get("clip_0099", |_| {}).is_err());
        assert!(
            cache.get(&id, |_| {}).is_err(),
            "the other clip replaced it"
        );
    }

    #[test]
    fn a_broken_sidecar_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(sidecar_path(dir.path(), "clip_0002"), b"not parquet").unwrap();
        let mut cache = ClipCache::new(dir.path(), "the test");
        let err = cache.get("clip_0002", |_| {}).unwrap_err();
        assert!(err.starts_with("cannot read the sidecar"), "{err}");
    }
}
