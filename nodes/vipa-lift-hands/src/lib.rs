//! `vipa-lift-hands`: metric 3D hand joints per video frame for the Hand3D annotation graph
//! (`dataflows/annotate.yml`).
//!
//! # Inputs
//! - `image`: [`vipa_msgs::ImageFrame`] from video-ingest.
//! - `clip_end`: ingest's [`vipa_msgs::ClipEnd`] / [`vipa_msgs::StreamEnd`] (frees the cached
//!   sidecar; sequence-checked).
//!
//! # Output `hands`
//! One message per `image`, in order, with the image's `clip_id`, `frame_idx`, `timestamp_ns`
//! and this output's own `seq`: a [`vipa_msgs::HandsMsg`] (21 joints per hand, camera frame,
//! metres; `confidence` 1 for a joint the source marks visible, 0 for an occluded one;
//! `joints_uv` pixel centres at integer coordinates), possibly with no hand; or a
//! [`vipa_msgs::FrameError`] when the frame cannot be lifted (no sidecar, …).
//!
//! # Backends (`backend` in `VIPA_CONFIG`)
//! - `sidecar` (default): ground-truth joints from `<sidecar_dir>/<clip_id>.truth.parquet`.
//!   A learned backend (e.g. a MANO regressor) plugs in here later.

pub mod config;
pub mod lift;
pub mod node;

pub use config::{HandsBackend, LiftHandsConfig};
pub use lift::{LiftHands, VISIBLE_CONFIDENCE};
