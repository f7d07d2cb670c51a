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

/// Lists the video files of a folder (by extension), sorted by name.
pub fn list_folder(folder: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let path = entry?.path();
        let is_video = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            crate::config::VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())
        });
        if is_video && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
