//! `vipa-frame-check`: a checking sink for frame streams.
//!
//! Receives `image` frames ([`vipa_msgs::ImageFrame`]) and `clip_end` control messages,
//! validates each (decoding, sizes, optional expected size/encoding), counts sequence gaps per
//! input, acks every message on its `ack` output (credit flow control for the sender), and
//! writes a JSON [`check::Summary`] to `summary_path` that tells "all delivered" from "some
//! dropped" — for tests and benchmarks (receive fps, send→receive latency). An incomplete
//! stream is also a non-zero exit, so `dora run` fails with it.

pub mod check;
pub mod config;
pub mod node;

pub use check::{FrameCheck, Summary};
pub use config::FrameCheckConfig;
