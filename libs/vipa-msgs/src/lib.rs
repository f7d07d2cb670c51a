//! `vipa-msgs`: the payloads that travel between vipa's dora nodes, as Arrow arrays plus metadata.
//!
//! Every payload is one Arrow array (usually a flat primitive array, zero-copy over shared
//! memory) and a small [`Metadata`] map that names its shape, dtype and stream position. This
//! crate knows nothing about dora or candle: `vipa-node-kit` converts [`Metadata`] to and from
//! dora's `MetadataParameters`, and model crates convert [`tensor::TensorMsg`] to their tensors.
//!
//! Conventions (see `ARCHITECTURE.md`):
//! - Decoding never panics: a wrong shape, dtype or a missing key is a [`MsgError`] that names
//!   the field.
//! - Decoding never copies pixel or tensor data: payloads keep the Arrow buffer they arrived in.
//! - Every stream message carries a [`StreamHeader`] with a per-output sequence number, so that a
//!   receiver can count dropped messages (`vipa-node-kit::SeqTracker`).
//! - Shapes are documented with named axes, e.g. `f32[h, w, 3]`.
//! - 3D data is in the camera frame (OpenCV: x right, y down, z forward), in metres, and says
//!   so in its metadata (`frame = "camera"`, `units = "m"`).
//!
//! Payloads, one module each (the crate README has the full wire table):
//! - [`frame`]: [`ImageFrame`] (dora hub image convention);
//! - [`tensor`]: [`TensorMsg`] (any dense tensor: features, tokens);
//! - [`depth`]: [`DepthMap`] `f32[h, w]`, [`PointMap`] `f32[h, w, xyz]`;
//! - [`camera`]: [`CameraIntrinsics`] (project / unproject), [`RigidTransform`], and their
//!   messages [`CameraIntrinsicsMsg`], [`CameraPoseMsg`];
//! - [`hands`]: [`HandsMsg`] (21 MediaPipe/MANO joints per hand);
//! - [`detections`]: [`DetectionsMsg`] (name, box, 3D centre, score);
//! - [`motion`]: [`MotionBins`] (the paper's 1024-bin motion tokenizer) and [`MotionTokens`];
//! - [`qa`]: [`QaBatch`] of [`QaSample`]s (Hand3D-visual / Hand3D-action tasks);
//! - [`robot`]: [`RobotState`], [`ActionChunk`];
//! - [`control`]: [`ClipEnd`], [`StreamEnd`], [`Request`], [`Ack`], dispatched via [`Control`].

pub mod camera;
pub mod control;
pub mod depth;
pub mod detections;
pub mod error;
pub mod frame;
pub mod hands;
pub mod header;
pub mod meta;
pub mod motion;
pub mod ports;
pub mod qa;
pub mod robot;
pub mod tensor;
mod wire;

pub use camera::{CameraIntrinsics, CameraIntrinsicsMsg, CameraPoseMsg, RigidTransform};
pub use control::{Ack, ClipEnd, Control, FrameError, Request, StreamEnd, kind_of};
pub use depth::{DepthMap, PointMap};
pub use detections::{Detection, DetectionsMsg};
pub use error::MsgError;
pub use frame::{Encoding, ImageFrame};
pub use hands::{Hand, HandSide, HandsMsg, JOINT_NAMES, WRIST};
pub use header::StreamHeader;
pub use meta::{CAMERA_FRAME, METRES, MetaValue, Metadata};
pub use motion::{Axis, MotionBins, MotionTokens};
pub use qa::{QaBatch, QaSample, QaTarget, TaskType};
pub use robot::{ActionChunk, RobotState};
pub use tensor::{DType, TensorMsg};

/// Version of the wire schema. Bump it on any change to a payload's array layout or keys, and
/// stamp it into anything persisted (recordings, datasets).
pub const SCHEMA_VERSION: i64 = 1;

/// A message payload: one Arrow array plus metadata, convertible both ways.
pub trait Payload: Sized {
    /// Short name used in errors and logs (`"image"`, `"tensor"`, ...).
    const KIND: &'static str;

    /// Encodes the payload. The array is cheap to build: it shares the payload's buffers.
    fn to_arrow(&self) -> (arrow::array::ArrayRef, Metadata);

    /// Decodes a payload from what a node received, without copying bulk data.
    fn from_arrow(array: &dyn arrow::array::Array, meta: &Metadata) -> Result<Self, MsgError>;
}
