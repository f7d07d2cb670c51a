//! A long-running node's progress as a small JSON file, for whoever shows it to a person.
//!
//! Under `dora run` a node's stderr goes to a log, never to a terminal, so a progress bar drawn
//! by the node is never seen, and its log lines drown among every node's. A node that works
//! for minutes (the trainer, the evaluator) instead writes [`Progress`] to a file with
//! [`ProgressFile::update`]: atomically (temporary file + rename), at most a few times a second,
//! and once more when it finishes. `vipa-run` (the wrapper `make` runs the graphs in) reads it
//! and draws one live line per phase, with the dora log kept in a file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a node has done so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// What is running (`stage 1`, `eval`).
    pub phase: String,
    /// Units done (steps, answers).
    pub done: u64,
    /// Units in all, where known.
    pub total: Option<u64>,
    /// The unit (`steps`, `answers`).
    pub unit: String,
    /// A short status (`loss 0.8123 | 1.62 samples/s`).
    pub message: String,
    /// Seconds since the phase started (in this process).
    pub elapsed_s: f64,
    /// Whether the phase has ended.
    pub finished: bool,
}

impl Progress {
    /// One line for a log or a terminal without a bar:
    /// `stage 1: 30/60 steps, loss 0.81 | 1.6 samples/s, 2m 10s`.
    pub fn line(&self) -> String {
        let of = match self.total {
            Some(t) => format!("{}/{t}", self.done),
            None => self.done.to_string(),
        };
        let msg = if self.message.is_empty() {
            String::new()
        } else {
            format!(", {}", self.message)
        };
        let end = if self.finished { ", done" } else { "" };
        format!(
            "{}: {of} {}{msg}, {}{end}",
            self.phase,
            self.unit,
            format_duration(self.elapsed_s)
        )
    }
}

/// `95` → `1m 35s`, `4000` → `1h 06m`.
pub fn format_duration(s: f64) -> String {
    let s = if s.is_finite() && s > 0.0 {
        s.round() as u64
    } else {
        0
    };
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The writer of one progress file.
#[derive(Debug)]
pub struct ProgressFile {
    path: PathBuf,
    every: Duration,
    last: Option<Instant>,
}

impl ProgressFile {
    /// Writes to `path` (its folder is created on the first write), at most every 250 ms.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            every: Duration::from_millis(250),
            last: None,
        }
    }

    /// Where it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `p` unless the last write was under 250 ms ago (a finished phase is always
    /// written). The file is replaced atomically, so a reader never sees half of it.
    pub fn update(&mut self, p: &Progress) -> std::io::Result<()> {
        if !p.finished && self.last.is_some_and(|t| t.elapsed() < self.every) {
            return Ok(());
        }
        if let Some(dir) = self.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let json = serde_json::to_vec(p).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &self.path)?;
        self.last = Some(Instant::now());
        Ok(())
    }

    /// Reads a progress file; `None` when it is absent or not (yet) a progress record.
    pub fn read(path: &Path) -> Option<Progress> {
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(done: u64, finished: bool) -> Progress {
        Progress {
            phase: "stage 1".into(),
            done,
            total: Some(60),
            unit: "steps".into(),
            message: "loss 0.8100".into(),
            elapsed_s: 130.0,
            finished,
        }
    }

    #[test]
    fn updates_are_throttled_but_the_end_is_always_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/progress.json");
        let mut f = ProgressFile::new(&path);
        assert_eq!(ProgressFile::read(&path), None);
        f.update(&p(1, false)).unwrap();
        assert_eq!(ProgressFile::read(&path), Some(p(1, false)));
        // Within 250 ms: skipped; the end: written.
        f.update(&p(2, false)).unwrap();
        assert_eq!(ProgressFile::read(&path).map(|r| r.done), Some(1));
        f.update(&p(3, true)).unwrap();
        assert_eq!(ProgressFile::read(&path), Some(p(3, true)));
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn a_line_says_phase_count_status_and_time() {
        assert_eq!(
            p(30, false).line(),
            "stage 1: 30/60 steps, loss 0.8100, 2m 10s"
        );
        let mut q = p(5, true);
        q.total = None;
        q.message.clear();
        assert_eq!(q.line(), "stage 1: 5 steps, 2m 10s, done");
        assert_eq!(format_duration(4000.0), "1h 06m");
        assert_eq!(format_duration(f64::NAN), "0s");
    }
}
