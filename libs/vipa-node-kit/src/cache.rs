//! An on-disk cache of a frozen encoder's outputs, so that later epochs and later runs cost
//! only the trainer (the design card's "frozen features can be cached"; the paper precomputes
//! Cut3R features the same way).
//!
//! # Keys
//! - **The encoder** is a *fingerprint*: a text naming everything that decides its output
//!   (node, backend, preset, seed, features, and for every weights file its absolute path,
//!   length and modification time), plus [`FEATURES_VERSION`]. Its SHA-256 names a
//!   sub-folder, `<root>/<fingerprint hash>/`, with the fingerprint itself in
//!   `fingerprint.txt` for people. Another config or other weights → another folder → a miss.
//! - **The input** is the SHA-256 of the bytes the encoder reads (the frame's pixels or the
//!   point map's values) and their shape. Keyed by content, not by name: a re-annotated frame
//!   with other pixels can never hit a stale entry.
//!
//! # Entries
//! `<key>.f32`: magic `VIPAFC01`, `u32` rank, `u64` dims, `u32` has-validity, then the values
//! and (when present) the per-token validity, all little-endian `f32`. Written to a temp file
//! and renamed, so an entry is whole or absent; an entry that does not read back (a foreign
//! or damaged file) is a miss with a warning, and the fresh result replaces it.
//!
//! The device is not part of the key: CPU and CUDA compute the same function (to float
//! rounding). Changing the encoder's code without changing its config does not change the
//! key either: bump [`FEATURES_VERSION`] then, or delete the folder.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Part of every fingerprint; bump it when an encoder's output changes for the same config.
pub const FEATURES_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"VIPAFC01";

/// One cached output: `f32[shape]` and an optional per-token validity.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedFeatures {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
    pub valid: Option<Vec<f32>>,
}

/// Hex SHA-256 of the parts, each length-prefixed (so `["ab", "c"]` ≠ `["a", "bc"]`).
pub fn content_key(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `path (len bytes, mtime s)` of a weights file, for a fingerprint; the error names the file.
pub fn file_identity(path: &Path) -> std::io::Result<String> {
    let abs = fs::canonicalize(path)?;
    let meta = fs::metadata(&abs)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Ok(format!(
        "{} ({} bytes, mtime {mtime})",
        abs.display(),
        meta.len()
    ))
}

/// The weights part of an encoder's fingerprint: every file's identity, or the seeded init.
pub fn weights_identity(files: Option<&[PathBuf]>, seed: u64) -> std::io::Result<String> {
    match files {
        Some(files) => Ok(files
            .iter()
            .map(|p| file_identity(p))
            .collect::<std::io::Result<Vec<_>>>()?
            .join(", ")),
        None => Ok(format!("seeded random init, seed {seed}")),
    }
}

/// A feature cache for one encoder configuration.
#[derive(Debug)]
pub struct FeatureCache {
    dir: PathBuf,
    hits: u64,
    misses: u64,
}

impl FeatureCache {
    /// Opens (creating) `<root>/<sha256(fingerprint)>/`.
    pub fn open(root: &Path, fingerprint: &str) -> std::io::Result<Self> {
        let full = format!("features v{FEATURES_VERSION}\n{fingerprint}\n");
        let dir = root.join(&content_key(&[full.as_bytes()])[..16]);
        fs::create_dir_all(&dir)?;
        let fp = dir.join("fingerprint.txt");
        if !fp.is_file() {
            fs::write(&fp, &full)?;
        }
        Ok(Self {
            dir,
            hits: 0,
            misses: 0,
        })
    }

    /// [`Self::open`] under `root` (when configured) with the fingerprint `fingerprint()`
    /// computes, logging the folder. Errors name `root`.
    pub fn open_configured(
        root: Option<&Path>,
        fingerprint: impl FnOnce() -> std::io::Result<String>,
    ) -> Result<Option<Self>, (PathBuf, std::io::Error)> {
        let Some(root) = root else {
            return Ok(None);
        };
        let err = |e| (root.to_owned(), e);
        let c = Self::open(root, &fingerprint().map_err(err)?).map_err(err)?;
        tracing::info!(dir = %c.dir().display(), "feature cache");
        Ok(Some(c))
    }

    /// The folder of this configuration's entries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `(hits, misses)` so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits(), self.misses())
    }

    pub fn hits(&self) -> u64 {
        self.hits
    }

    pub fn misses(&self) -> u64 {
        self.misses
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.f32"))
    }

    /// The entry of `key`, counting a hit or a miss.
    pub fn get(&mut self, key: &str) -> Option<CachedFeatures> {
        let path = self.path(key);
        let found = match fs::read(&path) {
            Ok(bytes) => match decode(&bytes) {
                Some(f) => Some(f),
                None => {
                    tracing::warn!(path = %path.display(), "unreadable feature-cache entry: recomputing it");
                    None
                }
            },
            Err(_) => None,
        };
        if found.is_some() {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        found
    }

    /// Stores `f` under `key` (temp file + rename).
    pub fn put(&self, key: &str, f: &CachedFeatures) -> std::io::Result<()> {
        let path = self.path(key);
        let tmp = self.dir.join(format!(".{key}.{}.tmp", std::process::id()));
        {
            let mut w = std::io::BufWriter::new(fs::File::create(&tmp)?);
            w.write_all(&encode(f))?;
            w.flush()?;
        }
        fs::rename(&tmp, &path)
    }
}

fn encode(f: &CachedFeatures) -> Vec<u8> {
    let n = f.values.len() + f.valid.as_ref().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(24 + 8 * f.shape.len() + 4 * n);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(f.shape.len() as u32).to_le_bytes());
    for &d in &f.shape {
        out.extend_from_slice(&(d as u64).to_le_bytes());
    }
    out.extend_from_slice(&u32::from(f.valid.is_some()).to_le_bytes());
    for v in f.values.iter().chain(f.valid.iter().flatten()) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn decode(bytes: &[u8]) -> Option<CachedFeatures> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = bytes.get(at..at.checked_add(n)?)?;
        at += n;
        Some(s)
    };
    if take(8)? != MAGIC {
        return None;
    }
    let u32_of = |s: &[u8]| s.try_into().ok().map(u32::from_le_bytes);
    let rank = u32_of(take(4)?)? as usize;
    if rank > 8 {
        return None;
    }
    let mut shape = Vec::with_capacity(rank);
    for _ in 0..rank {
        shape.push(usize::try_from(u64::from_le_bytes(take(8)?.try_into().ok()?)).ok()?);
    }
    let has_valid = u32_of(take(4)?)? == 1;
    let n: usize = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
    let floats = |s: &[u8]| -> Vec<f32> {
        s.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let values = floats(take(n.checked_mul(4)?)?);
    let valid = if has_valid {
        let rows = shape.first().copied().unwrap_or(0);
        Some(floats(take(rows.checked_mul(4)?)?))
    } else {
        None
    };
    (at == bytes.len()).then_some(CachedFeatures {
        shape,
        values,
        valid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_misses_and_damage() {
        let root = tempfile::tempdir().unwrap();
        let mut c =
            FeatureCache::open(root.path(), "encoder-3d point_map_vit small seed 0").unwrap();
        let f = CachedFeatures {
            shape: vec![2, 3],
            values: vec![1.0, -2.0, 3.5, 0.0, f32::MIN_POSITIVE, 7.0],
            valid: Some(vec![1.0, 0.0]),
        };
        let key = content_key(&[b"pixels", b"2x3"]);
        assert_ne!(key, content_key(&[b"pixel", b"s2x3"]));
        assert!(c.get(&key).is_none());
        c.put(&key, &f).unwrap();
        assert_eq!(c.get(&key).unwrap(), f);
        assert_eq!((c.hits(), c.misses()), (1, 1));
        // Another fingerprint is another folder.
        let mut other =
            FeatureCache::open(root.path(), "encoder-3d point_map_vit small seed 1").unwrap();
        assert_ne!(other.dir(), c.dir());
        assert!(other.get(&key).is_none());
        // A truncated entry is a miss, not an error or a panic.
        let path = c.dir().join(format!("{key}.f32"));
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(c.get(&key).is_none());
        assert!(
            fs::read_to_string(c.dir().join("fingerprint.txt"))
                .unwrap()
                .contains("seed 0")
        );
    }
}
