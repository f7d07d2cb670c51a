//! The one error type of the Hand3D library. Every variant names the thing that is wrong and,
//! where there is one, the fix.

use std::path::PathBuf;

/// Why a Hand3D step failed.
#[derive(Debug, thiserror::Error)]
pub enum Hand3dError {
    /// A configuration value is out of range or inconsistent.
    #[error("hand3d config: `{key}` {problem}")]
    Config { key: &'static str, problem: String },

    /// An input array or struct has the wrong size or an invalid value.
    #[error("hand3d input `{what}`: {problem}")]
    BadInput { what: String, problem: String },

    /// A clip produced nothing to annotate (no visible hand, no usable frame, ...).
    /// The pipeline counts these as skipped clips; the other clips are still annotated.
    #[error("clip `{clip_id}` skipped: {reason}")]
    ClipSkipped { clip_id: String, reason: String },

    /// Reading or writing a dataset file failed.
    #[error("dataset file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A Parquet / Arrow shard could not be written or read.
    #[error("dataset shard {path}: {problem}")]
    Shard { path: PathBuf, problem: String },

    /// `manifest.json` or `config.json` is missing, corrupt, or disagrees with the request.
    #[error("dataset manifest {path}: {problem}")]
    Manifest { path: PathBuf, problem: String },
}

impl Hand3dError {
    pub(crate) fn bad_input(what: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::BadInput {
            what: what.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn shard(path: impl Into<PathBuf>, problem: impl std::fmt::Display) -> Self {
        Self::Shard {
            path: path.into(),
            problem: problem.to_string(),
        }
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = Hand3dError> = std::result::Result<T, E>;
