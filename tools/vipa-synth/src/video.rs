//! H.264 mp4 output through OpenCV's FFmpeg backend (fourcc `avc1`, libx264).

use std::path::{Path, PathBuf};

use opencv::core::{Mat, Size, Vec3b};
use opencv::prelude::*;
use opencv::videoio::{CAP_FFMPEG, VideoWriter};

/// Errors from writing a video.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("video {path}: {what}: {source}")]
    OpenCv {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: opencv::Error,
    },
    #[error(
        "video {path}: OpenCV could not open an H.264 (avc1) writer; is OpenCV built with FFmpeg and libx264?"
    )]
    NotOpened { path: PathBuf },
    #[error(
        "video {path}: frame {frame} has {got} bytes, expected {width}x{height}x3 = {expected}"
    )]
    FrameSize {
        path: PathBuf,
        frame: usize,
        got: usize,
        width: u32,
        height: u32,
        expected: usize,
    },
    #[error("video {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes BGR frames (`u8[h, w, 3]` each) as an H.264 mp4 at `path`, atomically: the encoder
/// writes `<stem>.partial.mp4` (FFmpeg picks the container from the extension) and the file is
/// renamed into place when complete.
pub fn write_mp4(
    path: &Path,
    width: u32,
    height: u32,
    fps: f64,
    frames: &[&[u8]],
) -> Result<(), VideoError> {
    let ocv = |what| {
        move |source| VideoError::OpenCv {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    let tmp = path.with_extension("partial.mp4");
    let expected = width as usize * height as usize * 3;
    for (k, f) in frames.iter().enumerate() {
        if f.len() != expected {
            return Err(VideoError::FrameSize {
                path: path.to_path_buf(),
                frame: k,
                got: f.len(),
                width,
                height,
                expected,
            });
        }
    }
    let fourcc = VideoWriter::fourcc('a', 'v', 'c', '1').map_err(ocv("fourcc"))?;
    let size = Size::new(width as i32, height as i32);
    let mut writer = VideoWriter::new_with_backend(&tmp, CAP_FFMPEG, fourcc, fps, size, true)
        .map_err(ocv("create writer"))?;
    if !writer.is_opened().map_err(ocv("open writer"))? {
        return Err(VideoError::NotOpened {
            path: path.to_path_buf(),
        });
    }
    let mut pixels: Vec<Vec3b> = Vec::with_capacity(width as usize * height as usize);
    for f in frames {
        pixels.clear();
        pixels.extend(f.chunks_exact(3).map(|p| Vec3b::from([p[0], p[1], p[2]])));
        let mat = Mat::new_rows_cols_with_data(height as i32, width as i32, &pixels)
            .map_err(ocv("wrap frame"))?;
        writer.write(&mat).map_err(ocv("encode frame"))?;
    }
    writer.release().map_err(ocv("finish"))?;
    std::fs::rename(&tmp, path).map_err(|source| VideoError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads an mp4 back as BGR frames (`u8[h, w, 3]` each), for tests and checks.
pub fn read_video_bgr(path: &Path) -> Result<Vec<Vec<u8>>, VideoError> {
    use opencv::videoio::VideoCapture;
    let ocv = |what| {
        move |source| VideoError::OpenCv {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    let mut cap = VideoCapture::from_file(path, CAP_FFMPEG).map_err(ocv("open reader"))?;
    if !cap.is_opened().map_err(ocv("open reader"))? {
        return Err(VideoError::NotOpened {
            path: path.to_path_buf(),
        });
    }
    let mut out = Vec::new();
    let mut mat = Mat::default();
    while cap.read(&mut mat).map_err(ocv("decode frame"))? {
        out.push(mat.data_bytes().map_err(ocv("frame bytes"))?.to_vec());
    }
    Ok(out)
}

/// Writes a contact sheet of BGR frames (`u8[h, w, 3]` each) as a PNG, `cols` frames per row,
/// for eyeballing a clip.
pub fn write_contact_sheet(
    path: &Path,
    width: u32,
    height: u32,
    frames: &[&[u8]],
    cols: usize,
) -> Result<(), VideoError> {
    let ocv = |what| {
        move |source| VideoError::OpenCv {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    let (w, h) = (width as usize, height as usize);
    let cols = cols.clamp(1, frames.len().max(1));
    let rows = frames.len().div_ceil(cols).max(1);
    let sheet_w = w * cols;
    let mut sheet = vec![Vec3b::from([0, 0, 0]); sheet_w * h * rows];
    for (k, f) in frames.iter().enumerate() {
        let expected = w * h * 3;
        if f.len() != expected {
            return Err(VideoError::FrameSize {
                path: path.to_path_buf(),
                frame: k,
                got: f.len(),
                width,
                height,
                expected,
            });
        }
        let (ox, oy) = ((k % cols) * w, (k / cols) * h);
        for y in 0..h {
            for x in 0..w {
                let i = (y * w + x) * 3;
                sheet[(oy + y) * sheet_w + ox + x] = Vec3b::from([f[i], f[i + 1], f[i + 2]]);
            }
        }
    }
    let mat = Mat::new_rows_cols_with_data((h * rows) as i32, sheet_w as i32, &sheet)
        .map_err(ocv("wrap sheet"))?;
    let ok = opencv::imgcodecs::imwrite_def(path, &mat).map_err(ocv("write png"))?;
    if !ok {
        return Err(VideoError::NotOpened {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}
