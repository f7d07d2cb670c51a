//! `vipa-lift-depth`: turns video frames into camera-frame **point maps** for the Hand3D
//! annotation graph (`dataflows/annotate.yml`).
//!
//! # Inputs
//! - `image`: [`vipa_msgs::ImageFrame`] from video-ingest (`seq`, `clip_id`, `frame_idx`,
//!   `timestamp_ns`).
//! - `clip_end`: ingest's [`vipa_msgs::ClipEnd`] / [`vipa_msgs::StreamEnd`] (frees the clip's
//!   cached sidecar; sequence-checked).
//!
//! # Output `pointmap`
//! One message per `image`, in order, with the image's `clip_id`, `frame_idx` and
//! `timestamp_ns` (the join key downstream) and this output's own `seq`:
//! - a [`vipa_msgs::PointMap`] `f32[h, w, xyz=3]` (camera frame, metres up to the backend's
//!   scale, NaN = no depth) plus the extra keys [`KEY_INTRINSICS`] (`[fx, fy, cx, cy]`, pixel
//!   centres at integer coordinates as in `vipa_msgs::CameraIntrinsics`), [`KEY_POSE`]
//!   (`world_from_camera`, 16 floats row-major, when the backend knows it) and
//!   [`KEY_BACKEND`];
//! - or, when the frame cannot be lifted (no sidecar for the clip, size mismatch, …), a
//!   **frame error** ([`vipa_msgs::FrameError`]): empty array, header keys,
//!   `kind = "frame_error"`, `error` = the reason, `node`. The annotate node skips the clip with that reason, and the frame is
//!   still accounted for, so flow control and gap counting stay exact.
//!
//! # Backends (`backend` in `VIPA_CONFIG`, see [`config`])
//! - `sidecar`: ground-truth depth from `<sidecar_dir>/<clip_id>.truth.parquet`.
//! - `scaled`: the same depth × a hidden per-clip factor in [0.3, 3] + per-pixel noise
//!   (`vipa_hand3d::backend::ScaledBackend`), to exercise scale calibration.
//! - `depth-anything-v2`: candle's Depth Anything V2 from a safetensors checkpoint
//!   ([`depth_anything`]), back-projected with the sidecar's intrinsics when the clip has one,
//!   else a field-of-view guess.
//! - `cut3r`: `vipa_models`' Cut3R (the paper's choice) from a converted checkpoint
//!   ([`cut3r`]), recurrent over each clip; its camera-frame point map, with the sidecar's
//!   intrinsics when the clip has one, else intrinsics fitted to the points.

pub mod config;
pub mod cut3r;
pub mod depth_anything;
pub mod lift;
pub mod node;

pub use config::{Backend, LiftDepthConfig};
pub use cut3r::{Cut3rBackend, Cut3rBackendConfig, Cut3rBackendError};
pub use depth_anything::{DepthAnything, DepthAnythingConfig, DepthAnythingError};
pub use lift::{KEY_BACKEND, KEY_INTRINSICS, KEY_POSE, LiftDepth, LiftSetupError, LiftTotals};
