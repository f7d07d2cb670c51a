//! Ground truth of a clip, read from its sidecar: `clip_XXXX.truth.parquet` next to
//! `clip_XXXX.mp4`, one row per video frame (camera pose, depth, hand joints, objects).
//!
//! The synthetic world (`tools/vipa-synth`) writes these files; the ground-truth backends of
//! lift-depth and lift-hands, the annotator and the probes read them. Those readers sit on the
//! production path, so this crate is Arrow and Parquet only: reading a sidecar never links
//! the generator or OpenCV.
//!
//! - [`sidecar`]: the layout ([`sidecar_schema`], [`ClipInfo`], [`FrameTruth`], …),
//!   [`write_clip_truth`] and [`read_clip_truth`];
//! - [`ClipCache`]: the one clip in memory that a frame-by-frame node reads from.

pub mod cache;
pub mod sidecar;

pub use cache::{ClipCache, sidecar_path};
pub use sidecar::{
    CLIP_INFO_KEY, ClipInfo, ClipTruth, FrameTruth, HandSide, HandTruth, Intrinsics, NUM_JOINTS,
    ObjectInfo, ObjectTruth, SIDECAR_SCHEMA_VERSION, SidecarError, read_clip_info, read_clip_truth,
    sidecar_schema, write_clip_truth, write_clip_truth_to,
};
