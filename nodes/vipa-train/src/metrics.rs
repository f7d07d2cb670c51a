//! Per-step training metrics as CSV, appended and flushed every step so a crash loses nothing
//! and a resumed run continues the same file.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRow {
    pub step: u64,
    pub samples_seen: u64,
    pub loss: f32,
    pub lr: f64,
    pub grad_norm: f64,
    pub samples_per_s: f64,
    pub elapsed_s: f64,
}

const HEADER: &str = "step,samples_seen,loss,lr,grad_norm,samples_per_s,elapsed_s";

/// Appends rows to a CSV file.
pub struct MetricsWriter {
    path: PathBuf,
    file: File,
}

impl MetricsWriter {
    /// Opens `path` for appending. When resuming at `resume_step`, rows after that step (written
    /// after the checkpoint, then lost with the crash) are dropped first, so the file matches an
    /// uninterrupted run.
    pub fn open(path: &Path, resume_step: Option<u64>) -> std::io::Result<Self> {
        let kept: Vec<String> = match (resume_step, File::open(path)) {
            (Some(step), Ok(f)) => BufReader::new(f)
                .lines()
                .skip(1)
                .map_while(Result::ok)
                .filter(|line| {
                    line.split(',')
                        .next()
                        .and_then(|s| s.parse::<u64>().ok())
                        .is_some_and(|s| s <= step)
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        writeln!(file, "{HEADER}")?;
        for line in kept {
            writeln!(file, "{line}")?;
        }
        file.flush()?;
        Ok(Self {
            path: path.to_owned(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&mut self, row: &MetricsRow) -> std::io::Result<()> {
        writeln!(
            self.file,
            "{},{},{:.6},{:.3e},{:.4},{:.3},{:.2}",
            row.step,
            row.samples_seen,
            row.loss,
            row.lr,
            row.grad_norm,
            row.samples_per_s,
            row.elapsed_s
        )?;
        self.file.flush()
    }
}

/// Reads `(step, loss)` pairs from a metrics CSV (for plots and tests).
pub fn read_losses(path: &Path) -> std::io::Result<Vec<(u64, f32)>> {
    let f = File::open(path)?;
    Ok(BufReader::new(f)
        .lines()
        .skip(1)
        .map_while(Result::ok)
        .filter_map(|line| {
            let mut cols = line.split(',');
            let step = cols.next()?.parse().ok()?;
            let loss = cols.nth(1)?.parse().ok()?;
            Some((step, loss))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: u64, loss: f32) -> MetricsRow {
        MetricsRow {
            step,
            samples_seen: step * 2,
            loss,
            lr: 1e-3,
            grad_norm: 0.5,
            samples_per_s: 10.0,
            elapsed_s: step as f64,
        }
    }

    #[test]
    fn resume_drops_rows_after_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        let mut w = MetricsWriter::open(&path, None).unwrap();
        for s in 1..=5 {
            w.append(&row(s, 1.0 / s as f32)).unwrap();
        }
        drop(w);
        let mut w = MetricsWriter::open(&path, Some(3)).unwrap();
        w.append(&row(4, 0.2)).unwrap();
        let losses = read_losses(&path).unwrap();
        let steps: Vec<u64> = losses.iter().map(|(s, _)| *s).collect();
        assert_eq!(steps, vec![1, 2, 3, 4]);
        assert!((losses[3].1 - 0.2).abs() < 1e-6);
    }
}
