//! `vipa-video-ingest`: reads video files or a camera with OpenCV and sends frames into a dora
//! graph.
//!
//! # Outputs
//! - `image`: [`vipa_msgs::ImageFrame`] in the dora hub convention (flat `UInt8` pixels
//!   `u8[height, width, 3]`, `width`/`height`/`encoding`/`primitive = "image"`) with `seq`
//!   (0, 1, 2, … without gaps), `clip_id` (file stem), `frame_idx` (source frame index),
//!   `timestamp_ns` (since clip start, at the output rate) and `sent_unix_ns` (send time, for
//!   latency measurements).
//! - `clip_end`: a [`vipa_msgs::ClipEnd`] after each clip, then one
//!   [`vipa_msgs::StreamEnd`] as the very last message of the node.
//!
//! # Inputs (both optional)
//! - `ack`: [`vipa_msgs::Ack`] from the consumer, for credit-based flow control.
//! - `tick`: a timer; one message per tick.
//!
//! See [`node`] for pacing and the end-of-stream wait, [`config`] for the keys.

pub mod config;
pub mod ingest;
pub mod node;
pub mod resample;
pub mod source;

pub use config::IngestConfig;
pub use ingest::{Ingest, IngestError, IngestTotals, Source, Sources, Step};
