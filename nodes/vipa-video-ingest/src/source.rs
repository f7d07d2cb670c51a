//! Reading frames with OpenCV: video files (FFmpeg backend) and cameras.
//!
//! A [`VideoSource`] yields frames as tightly packed `u8[height, width, 3]` bytes in the
//! configured encoding, resized if asked. Every failure is a [`SourceError`] naming the source.

use std::path::{Path, PathBuf};

use opencv::core::{Mat, Size};
use opencv::prelude::*;
use opencv::{imgproc, videoio};
use vipa_msgs::Encoding;

/// Frame rate assumed when a container reports none (broken headers, some cameras).
pub const FALLBACK_FPS: f64 = 30.0;

/// Why a source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{source_name}: file does not exist")]
    Missing { source_name: String },
    #[error("{source_name}: cannot open (not a video, unsupported codec or corrupt file)")]
    CannotOpen { source_name: String },
    #[error("{source_name}: no frame could be decoded (corrupt or empty video)")]
    NoFrames { source_name: String },
    #[error("{source_name}: {what}: {message}")]
    OpenCv {
        source_name: String,
        what: &'static str,
        message: String,
    },
    #[error("{source_name}: decoded frame has unsupported type {typ} (expected 8-bit BGR)")]
    UnsupportedFrame { source_name: String, typ: i32 },
}

/// One decoded frame, `u8[height, width, 3]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RawFrame {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// Where a [`VideoSource`] reads from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    File(PathBuf),
    Camera(i32),
}

impl SourceKind {
    /// Name used in logs and errors.
    pub fn name(&self) -> String {
        match self {
            Self::File(p) => p.display().to_string(),
            Self::Camera(i) => format!("camera {i}"),
        }
    }

    /// Clip id: the file stem (`clip_0001`) or `camera<N>`.
    pub fn clip_id(&self) -> String {
        match self {
            Self::File(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string()),
            Self::Camera(i) => format!("camera{i}"),
        }
    }
}

/// An open video file or camera.
pub struct VideoSource {
    name: String,
    cap: videoio::VideoCapture,
    fps: f64,
    encoding: Encoding,
    resize: Option<[u32; 2]>,
    bgr: Mat,
    resized: Mat,
    converted: Mat,
}

impl VideoSource {
    /// Opens a file or camera. Fails on a missing file or one OpenCV cannot open.
    pub fn open(
        kind: &SourceKind,
        encoding: Encoding,
        resize: Option<[u32; 2]>,
    ) -> Result<Self, SourceError> {
        let name = kind.name();
        let cv = |what| cv_err(&name, what);
        let cap = match kind {
            SourceKind::File(path) => {
                if !path.is_file() {
                    return Err(SourceError::Missing { source_name: name });
                }
                let path_str = path_to_str(path, &name)?;
                // FFmpeg directly: CAP_ANY would also try GStreamer, which fails noisily on bad files.
                videoio::VideoCapture::from_file(path_str, videoio::CAP_FFMPEG)
                    .map_err(cv("open"))?
            }
            SourceKind::Camera(index) => {
                videoio::VideoCapture::new(*index, videoio::CAP_ANY).map_err(cv("open camera"))?
            }
        };
        if !cap.is_opened().map_err(cv("open"))? {
            return Err(SourceError::CannotOpen { source_name: name });
        }
        let reported = cap.get(videoio::CAP_PROP_FPS).map_err(cv("read fps"))?;
        let fps = if reported.is_finite() && reported > 0.0 && reported < 1000.0 {
            reported
        } else {
            tracing::warn!(
                source = %name,
                reported,
                "no usable frame rate in the container; assuming {FALLBACK_FPS} fps"
            );
            FALLBACK_FPS
        };
        Ok(Self {
            name,
            cap,
            fps,
            encoding,
            resize,
            bgr: Mat::default(),
            resized: Mat::default(),
            converted: Mat::default(),
        })
    }

    /// Frame rate from the container (or [`FALLBACK_FPS`]).
    pub fn fps(&self) -> f64 {
        self.fps
    }

    /// Decodes the next frame; `Ok(None)` at the end of the video.
    pub fn next_frame(&mut self) -> Result<Option<RawFrame>, SourceError> {
        let name = self.name.clone();
        let cv = |what| cv_err(&name, what);
        if !self.cap.read(&mut self.bgr).map_err(cv("decode"))? || self.bgr.empty() {
            return Ok(None);
        }
        let typ = self.bgr.typ();
        if typ != opencv::core::CV_8UC3 {
            return Err(SourceError::UnsupportedFrame {
                source_name: self.name.clone(),
                typ,
            });
        }
        let mut frame = &self.bgr;
        if let Some([w, h]) = self.resize
            && (frame.cols() != w as i32 || frame.rows() != h as i32)
        {
            // INTER_AREA is the artefact-free choice for shrinking, the common case.
            imgproc::resize(
                frame,
                &mut self.resized,
                Size::new(w as i32, h as i32),
                0.0,
                0.0,
                imgproc::INTER_AREA,
            )
            .map_err(cv("resize"))?;
            frame = &self.resized;
        }
        if self.encoding == Encoding::Rgb8 {
            imgproc::cvt_color_def(frame, &mut self.converted, imgproc::COLOR_BGR2RGB)
                .map_err(cv("convert BGR to RGB"))?;
            frame = &self.converted;
        }
        let (width, height) = (frame.cols() as u32, frame.rows() as u32);
        // Freshly produced Mats are continuous; `data_bytes` errors (not panics) otherwise.
        let pixels = frame.data_bytes().map_err(cv("read pixels"))?.to_vec();
        Ok(Some(RawFrame {
            width,
            height,
            pixels,
        }))
    }
}

/// Maps an OpenCV error to a [`SourceError`] naming the source and the failed step.
fn cv_err(name: &str, what: &'static str) -> impl FnOnce(opencv::Error) -> SourceError {
    let source_name = name.to_owned();
    move |e| SourceError::OpenCv {
        source_name,
        what,
        message: e.message,
    }
}

fn path_to_str<'a>(path: &'a Path, name: &str) -> Result<&'a str, SourceError> {
    path.to_str().ok_or_else(|| SourceError::OpenCv {
        source_name: name.to_owned(),
        what: "open",
        message: "path is not valid UTF-8".into(),
    })
}

/// An entry of a folder or glob that is not read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: &'static str,
    /// Named like a video but not readable as one (a folder, a dangling link, a loop): a bad
    /// source. Otherwise another kind of file (a sidecar, notes), merely not a video.
    pub bad: bool,
}

fn has_video_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| crate::config::VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Sorts candidate paths (folder entries, glob matches) into video files to read and entries
/// that are not, each with its reason: another extension, a folder, a dangling symbolic link
/// or a link loop (which `is_file` would otherwise drop without a word).
pub fn sort_candidates(paths: Vec<PathBuf>) -> (Vec<PathBuf>, Vec<Skipped>) {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for path in paths {
        let reason = if !has_video_extension(&path) {
            Some("not a video file name (.mp4 .avi .mkv .mov .webm)")
        } else {
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => None,
                Ok(m) if m.is_dir() => Some("a folder, not a video file"),
                Ok(_) => Some("not a regular file"),
                Err(e) if e.raw_os_error() == Some(40) => Some("a symbolic link loop"),
                Err(_) if std::fs::symlink_metadata(&path).is_ok() => {
                    Some("a symbolic link to nothing (dangling)")
                }
                Err(_) => Some("cannot be read"),
            }
        };
        match reason {
            None => files.push(path),
            Some(reason) => {
                let bad = has_video_extension(&path);
                skipped.push(Skipped { path, reason, bad });
            }
        }
    }
    files.sort();
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    (files, skipped)
}

/// Lists a folder's entries (not recursing), as [`sort_candidates`] sorts them. Files of
/// another kind (the sidecars next to the videos) are not reported: a folder of videos holds
/// them by design.
pub fn list_folder(folder: &Path) -> std::io::Result<(Vec<PathBuf>, Vec<Skipped>)> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        paths.push(entry?.path());
    }
    let (files, mut skipped) = sort_candidates(paths);
    skipped.retain(|s| s.bad);
    Ok((files, skipped))
}

/// Clip ids for `files`, unique per run: the file stem (`clip_0001`, what the synthetic
/// world's sidecars are named after) where that is unique; the file name with its extension
/// where two files share a stem (`b.avi`, `b.mp4`); the path relative to the files' common
/// folder where two share a name too (`day1/b.mp4`, `day2/b.mp4`).
pub fn clip_ids(files: &[PathBuf]) -> Vec<String> {
    let stem = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string())
    };
    let name = |p: &Path| {
        p.file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string())
    };
    // How often each id occurs: one pass, so a folder of thousands of files stays linear.
    let counts = |ids: &[String]| {
        let mut c: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for id in ids {
            *c.entry(id.clone()).or_default() += 1;
        }
        c
    };
    let stems: Vec<String> = files.iter().map(|p| stem(p)).collect();
    let names: Vec<String> = files.iter().map(|p| name(p)).collect();
    let (stem_counts, name_counts) = (counts(&stems), counts(&names));
    // The deepest folder every file is in.
    let mut common: Option<PathBuf> = files
        .first()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    for p in files {
        while let Some(c) = &common {
            if p.starts_with(c) {
                break;
            }
            common = c.parent().map(Path::to_path_buf);
        }
    }
    files
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if stem_counts[&stems[i]] == 1 {
                stems[i].clone()
            } else if name_counts[&names[i]] == 1 {
                names[i].clone()
            } else {
                common
                    .as_deref()
                    .and_then(|c| p.strip_prefix(c).ok())
                    .unwrap_or(p)
                    .display()
                    .to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(paths: &[&str]) -> Vec<String> {
        clip_ids(&paths.iter().map(PathBuf::from).collect::<Vec<_>>())
    }

    #[test]
    fn clip_ids_are_stems_unless_that_would_merge_two_videos() {
        assert_eq!(
            ids(&["v/clip_0000.mp4", "v/clip_0001.mp4"]),
            ["clip_0000", "clip_0001"]
        );
        assert_eq!(
            ids(&["v/a.mp4", "v/b.avi", "v/b.mp4"]),
            ["a", "b.avi", "b.mp4"]
        );
        assert_eq!(
            ids(&["data/day1/b.mp4", "data/day2/b.mp4", "data/day2/c.mp4"]),
            ["day1/b.mp4", "day2/b.mp4", "c"]
        );
    }

    #[test]
    fn folders_links_and_other_files_are_skipped_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("ok.mp4"), b"x").unwrap();
        std::fs::write(d.join("notes.txt"), b"x").unwrap();
        std::fs::create_dir(d.join("x.mp4")).unwrap();
        std::os::unix::fs::symlink(d.join("gone.mp4"), d.join("dangling.mp4")).unwrap();
        std::os::unix::fs::symlink(d.join("loop.mp4"), d.join("loop.mp4")).unwrap();
        let (files, skipped) = list_folder(d).unwrap();
        assert_eq!(files, [d.join("ok.mp4")]);
        let why: Vec<(String, &str, bool)> = skipped
            .iter()
            .map(|s| {
                let name = s.path.file_name().unwrap().to_string_lossy().into_owned();
                (name, s.reason, s.bad)
            })
            .collect();
        // notes.txt is not a video and, in a folder, not worth a word (sidecars live there).
        assert_eq!(
            why,
            [
                (
                    "dangling.mp4".to_owned(),
                    "a symbolic link to nothing (dangling)",
                    true
                ),
                ("loop.mp4".to_owned(), "a symbolic link loop", true),
                ("x.mp4".to_owned(), "a folder, not a video file", true),
            ]
        );
        let (_, from_glob) = sort_candidates(vec![d.join("notes.txt")]);
        assert_eq!(from_glob.len(), 1);
        assert!(!from_glob[0].bad);
    }
}
