//! `vipa-annotate`: the sink of the Hand3D annotation graph (`dataflows/annotate.yml`). It
//! joins each frame's image, point map and hands, runs the `vipa-hand3d` pipeline per clip
//! (scale calibration, visibility, objects, Q&A, motion tokens) and writes the dataset that
//! pretraining reads.
//!
//! # Inputs
//! - `image` (video-ingest): [`vipa_msgs::ImageFrame`].
//! - `pointmap` (lift-depth): [`vipa_msgs::PointMap`] with `intrinsics` (and
//!   `world_from_camera`) keys, or a frame-error marker.
//! - `hands` (lift-hands): [`vipa_msgs::HandsMsg`], or a frame-error marker.
//! - `clip_end` (video-ingest): [`vipa_msgs::ClipEnd`] per clip, then the
//!   [`vipa_msgs::StreamEnd`].
//!
//! # Output
//! - `ack`: [`vipa_msgs::Ack`], the running count of ingest messages handled (wire it to
//!   video-ingest's `ack` input: credit-based flow control, see [`annotate`]).
//!
//! # On disk (`out`)
//! - `shards/<clip_id>.parquet`, `config.json`, `manifest.json`: the dataset
//!   (`vipa_hand3d::dataset`; the manifest lists skipped clips with their reasons).
//! - `frames/<clip_id>.parquet`: the frame store — RGB and calibrated depth of every frame a
//!   sample refers to (`vipa_hand3d::frames`, read with `vipa_hand3d::frames::read_clip_frames`).
//! - `annotate_report.json`: what this run did (clips written / already done / skipped,
//!   per-clip scale and residual, sequence stats per input, frames per second).

pub mod annotate;
pub mod config;
pub mod node;

pub use annotate::{AnnotateError, Annotator, ClipReport, REPORT_FILE, RunReport};
pub use config::{AnnotateConfig, ObjectSource};
