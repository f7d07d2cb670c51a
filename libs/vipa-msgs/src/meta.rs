//! Metadata: a small typed key-value map that travels with every message.
//!
//! The variants mirror dora's `Parameter` so that `vipa-node-kit` converts losslessly, while this
//! crate stays free of dora. Typed getters turn a missing key or a wrong type into a
//! [`MsgError`] naming the key.

use std::collections::BTreeMap;

use crate::MsgError;

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    Bool(bool),
    Integer(i64),
    Float(f64),
    String(String),
    ListInt(Vec<i64>),
    ListFloat(Vec<f64>),
    ListString(Vec<String>),
}

/// Metadata of one message, ordered by key.
pub type Metadata = BTreeMap<String, MetaValue>;

/// Well-known metadata keys. Payload modules add their own.
pub mod keys {
    /// Per-output sequence number, starting at 0, +1 per message.
    pub const SEQ: &str = "seq";
    /// Clip (video file, episode or camera session) the message belongs to.
    pub const CLIP_ID: &str = "clip_id";
    /// Index of the source frame within its clip.
    pub const FRAME_IDX: &str = "frame_idx";
    /// Capture (or presentation) time of the source frame, nanoseconds since the clip start.
    pub const TIMESTAMP_NS: &str = "timestamp_ns";
    /// Payload kind (`image`, `tensor`, `clip_end`, ...), so a generic sink can dispatch.
    pub const KIND: &str = "kind";
    /// `vipa_msgs::SCHEMA_VERSION` of the sender.
    pub const SCHEMA_VERSION: &str = "schema_version";
    /// Tensor shape (`ListInt`).
    pub const SHAPE: &str = "shape";
    /// Tensor element type (`String`: `f32`, `u8`, ...).
    pub const DTYPE: &str = "dtype";
    /// Names of the tensor axes (`ListString`), e.g. `["tokens", "channels"]`.
    pub const AXES: &str = "axes";
    /// Image width in pixels (dora hub convention).
    pub const WIDTH: &str = "width";
    /// Image height in pixels (dora hub convention).
    pub const HEIGHT: &str = "height";
    /// Image encoding (dora hub convention): `rgb8`, `bgr8`, `mono8`.
    pub const ENCODING: &str = "encoding";
    /// Marks an image for dora hub viewers (`"image"`).
    pub const PRIMITIVE: &str = "primitive";
    /// Coordinate frame of 3D quantities; always [`super::CAMERA_FRAME`] in vipa streams.
    pub const FRAME: &str = "frame";
    /// Length unit of 3D quantities; always [`super::METRES`] in vipa streams.
    pub const UNITS: &str = "units";
    /// Names of the entries along the last axis (`ListString`), e.g. robot state dimensions.
    pub const NAMES: &str = "names";

    // The pretraining feed (dataset-reader → encoders → trainer). A sample's frames and its
    // features carry these, so the trainer can join them.
    /// Integer: a training sample's number over the run (dataset-reader).
    pub const SAMPLE_SEQ: &str = "sample_seq";
    /// Integer: frames in the sample.
    pub const N_FRAMES: &str = "n_frames";
    /// Integer: position of a frame in its sample, 0 = oldest.
    pub const FRAME_SLOT: &str = "frame_slot";
    /// The keys an encoder copies from a sample's frame to the frame's features.
    pub const SAMPLE_KEYS: [&str; 3] = [SAMPLE_SEQ, FRAME_SLOT, N_FRAMES];
    /// `ListInt` of 0/1 per token: which 3D tokens saw valid points (encoder-3d).
    pub const TOKEN_VALID: &str = "token_valid";
}

/// The one coordinate frame of vipa's 3D streams: the camera frame with OpenCV axes
/// (x right, y down, z forward).
pub const CAMERA_FRAME: &str = "camera";
/// The one length unit of vipa's 3D streams.
pub const METRES: &str = "m";

/// Typed access to a [`Metadata`] map on behalf of a payload kind, for error messages.
#[derive(Clone, Copy)]
pub struct MetaReader<'a> {
    kind: &'static str,
    meta: &'a Metadata,
}

impl<'a> MetaReader<'a> {
    pub fn new(kind: &'static str, meta: &'a Metadata) -> Self {
        Self { kind, meta }
    }

    fn get(&self, key: &str) -> Result<&'a MetaValue, MsgError> {
        self.meta.get(key).ok_or_else(|| MsgError::MissingKey {
            kind: self.kind,
            key: key.to_owned(),
        })
    }

    pub(crate) fn bad(&self, key: &str, problem: impl Into<String>) -> MsgError {
        MsgError::BadMeta {
            kind: self.kind,
            key: key.to_owned(),
            problem: problem.into(),
        }
    }

    /// Whether `key` is present.
    pub fn has(&self, key: &str) -> bool {
        self.meta.contains_key(key)
    }

    pub fn int(&self, key: &str) -> Result<i64, MsgError> {
        match self.get(key)? {
            MetaValue::Integer(v) => Ok(*v),
            other => Err(self.bad(key, format!("must be an integer, got {other:?}"))),
        }
    }

    /// A non-negative integer that fits `u64`.
    pub fn uint(&self, key: &str) -> Result<u64, MsgError> {
        let v = self.int(key)?;
        u64::try_from(v).map_err(|_| self.bad(key, format!("must be >= 0, got {v}")))
    }

    /// A positive integer that fits `u32` (image sizes).
    pub fn dim(&self, key: &str) -> Result<u32, MsgError> {
        let v = self.int(key)?;
        match u32::try_from(v) {
            Ok(d) if d > 0 => Ok(d),
            _ => Err(self.bad(key, format!("must be a positive 32-bit size, got {v}"))),
        }
    }

    pub fn float(&self, key: &str) -> Result<f64, MsgError> {
        match self.get(key)? {
            MetaValue::Float(v) => Ok(*v),
            MetaValue::Integer(v) => Ok(*v as f64),
            other => Err(self.bad(key, format!("must be a number, got {other:?}"))),
        }
    }

    pub fn bool(&self, key: &str) -> Result<bool, MsgError> {
        match self.get(key)? {
            MetaValue::Bool(v) => Ok(*v),
            other => Err(self.bad(key, format!("must be a bool, got {other:?}"))),
        }
    }

    pub fn str(&self, key: &str) -> Result<&'a str, MsgError> {
        match self.get(key)? {
            MetaValue::String(v) => Ok(v.as_str()),
            other => Err(self.bad(key, format!("must be a string, got {other:?}"))),
        }
    }

    pub fn list_int(&self, key: &str) -> Result<&'a [i64], MsgError> {
        match self.get(key)? {
            MetaValue::ListInt(v) => Ok(v.as_slice()),
            other => Err(self.bad(key, format!("must be a list of integers, got {other:?}"))),
        }
    }

    pub fn list_float(&self, key: &str) -> Result<&'a [f64], MsgError> {
        match self.get(key)? {
            MetaValue::ListFloat(v) => Ok(v.as_slice()),
            other => Err(self.bad(key, format!("must be a list of numbers, got {other:?}"))),
        }
    }

    pub fn list_string(&self, key: &str) -> Result<&'a [String], MsgError> {
        match self.get(key)? {
            MetaValue::ListString(v) => Ok(v.as_slice()),
            other => Err(self.bad(key, format!("must be a list of strings, got {other:?}"))),
        }
    }

    /// A shape: a list of non-negative integers.
    pub fn shape(&self, key: &str) -> Result<Vec<usize>, MsgError> {
        self.list_int(key)?
            .iter()
            .map(|&d| {
                usize::try_from(d).map_err(|_| self.bad(key, format!("has a negative axis {d}")))
            })
            .collect()
    }
}

/// Shorthand used by payload encoders.
pub(crate) fn put(meta: &mut Metadata, key: &str, value: MetaValue) {
    meta.insert(key.to_owned(), value);
}
