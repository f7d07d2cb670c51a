//! Image frames in the dora hub convention.
//!
//! # Wire format
//! - array: `UInt8Array`, `u8[height, width, channels]` row-major, no padding;
//! - metadata: `width`, `height`, `encoding` (`rgb8` | `bgr8` | `mono8`), `primitive = "image"`,
//!   plus the [`StreamHeader`] keys `seq`, `clip_id`, `frame_idx`, `timestamp_ns`.
//!
//! This is what dora hub nodes (`opencv-video-capture`, `dora-rerun`) send and read, so a vipa
//! graph can take a hub camera node as its source.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, UInt8Array};

use crate::meta::{MetaReader, MetaValue, Metadata, keys, put};
use crate::{MsgError, Payload, StreamHeader};

/// Pixel layout of an [`ImageFrame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Rgb8,
    Bgr8,
    Mono8,
}

impl Encoding {
    pub fn channels(self) -> usize {
        match self {
            Self::Rgb8 | Self::Bgr8 => 3,
            Self::Mono8 => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rgb8 => "rgb8",
            Self::Bgr8 => "bgr8",
            Self::Mono8 => "mono8",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rgb8" => Some(Self::Rgb8),
            "bgr8" => Some(Self::Bgr8),
            "mono8" => Some(Self::Mono8),
            _ => None,
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decoded video frame.
///
/// # Shapes
/// `pixels: u8[height, width, channels]`, channels from `encoding`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFrame {
    pub header: StreamHeader,
    pub width: u32,
    pub height: u32,
    pub encoding: Encoding,
    /// Shares the Arrow buffer it was received in (no copy).
    pub pixels: UInt8Array,
}

impl ImageFrame {
    const KIND: &'static str = "image";

    /// Builds a frame, checking that `pixels` has `height * width * channels` bytes.
    pub fn new(
        header: StreamHeader,
        width: u32,
        height: u32,
        encoding: Encoding,
        pixels: impl Into<UInt8Array>,
    ) -> Result<Self, MsgError> {
        let pixels = pixels.into();
        check_len(width, height, encoding, pixels.len())?;
        Ok(Self {
            header,
            width,
            height,
            encoding,
            pixels,
        })
    }

    /// The pixel bytes, `u8[height, width, channels]`.
    pub fn bytes(&self) -> &[u8] {
        self.pixels.values()
    }

    /// The pixels as `u8[height, width, 3]` RGB: borrowed for `rgb8` (no copy), channels
    /// swapped for `bgr8`, the grey value repeated for `mono8`.
    pub fn rgb(&self) -> std::borrow::Cow<'_, [u8]> {
        let b = self.bytes();
        match self.encoding {
            Encoding::Rgb8 => std::borrow::Cow::Borrowed(b),
            Encoding::Bgr8 => b.chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]).collect(),
            Encoding::Mono8 => b.iter().flat_map(|&g| [g, g, g]).collect(),
        }
    }
}

fn check_len(width: u32, height: u32, encoding: Encoding, len: usize) -> Result<(), MsgError> {
    let expected = width as usize * height as usize * encoding.channels();
    if expected != len {
        return Err(MsgError::WrongShape {
            kind: ImageFrame::KIND,
            field: "pixels".into(),
            expected: format!(
                "[{height}, {width}, {}] = {expected} bytes",
                encoding.channels()
            ),
            found: format!("{len} bytes"),
        });
    }
    Ok(())
}

impl Payload for ImageFrame {
    const KIND: &'static str = Self::KIND;

    fn to_arrow(&self) -> (ArrayRef, Metadata) {
        let mut meta = Metadata::new();
        self.header.write(&mut meta);
        put(&mut meta, keys::KIND, MetaValue::String(Self::KIND.into()));
        put(
            &mut meta,
            keys::WIDTH,
            MetaValue::Integer(self.width.into()),
        );
        put(
            &mut meta,
            keys::HEIGHT,
            MetaValue::Integer(self.height.into()),
        );
        put(
            &mut meta,
            keys::ENCODING,
            MetaValue::String(self.encoding.as_str().into()),
        );
        put(
            &mut meta,
            keys::PRIMITIVE,
            MetaValue::String("image".into()),
        );
        (Arc::new(self.pixels.clone()), meta)
    }

    fn from_arrow(array: &dyn Array, meta: &Metadata) -> Result<Self, MsgError> {
        let r = MetaReader::new(Self::KIND, meta);
        let header = StreamHeader::read(Self::KIND, meta)?;
        let width = r.dim(keys::WIDTH)?;
        let height = r.dim(keys::HEIGHT)?;
        let enc = r.str(keys::ENCODING)?;
        let encoding = Encoding::parse(enc).ok_or_else(|| MsgError::BadMeta {
            kind: Self::KIND,
            key: keys::ENCODING.into(),
            problem: format!("must be one of rgb8, bgr8, mono8, got {enc:?}"),
        })?;
        let pixels =
            array
                .as_any()
                .downcast_ref::<UInt8Array>()
                .ok_or_else(|| MsgError::WrongDtype {
                    kind: Self::KIND,
                    field: "pixels".into(),
                    expected: "UInt8".into(),
                    found: array.data_type().to_string(),
                })?;
        if pixels.null_count() > 0 {
            return Err(MsgError::Invalid {
                kind: Self::KIND,
                field: "pixels".into(),
                problem: format!("{} null bytes", pixels.null_count()),
            });
        }
        Self::new(header, width, height, encoding, pixels.clone())
    }
}
