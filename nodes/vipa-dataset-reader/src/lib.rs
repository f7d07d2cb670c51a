//! `vipa-dataset-reader`: the pull-driven sample source of pretraining.
//!
//! Reads a finished Hand3D dataset ([`vipa_hand3d::DatasetReader`]) and its per-clip frame
//! store, and sends exactly one sample per credit the trainer asks for, so dora's drop-oldest
//! queues never drop a training sample.
//!
//! # Inputs
//! - `request`: [`vipa_msgs::Request`] `{ seq, credits, skip }` — "send me `credits` more
//!   samples"; a resumed trainer's first request also says "pass over the first `skip`"
//!   (built, not sent: their `sample_seq` numbers stay taken, nothing is encoded again).
//!   Sequence-checked; a lost request is an error (its credits would be unknown). A request
//!   with an already seen `seq` is ignored, so a requester may safely resend its last request
//!   when nothing arrives for a while (a request sent before the reader was ready is lost).
//!
//! # Outputs (nothing is sent unrequested)
//! - `sample`: a [`vipa_msgs::QaBatch`] with one [`vipa_msgs::QaSample`]; header `seq` = the
//!   output's count (= `sample_seq` unless resumed with `skip`), `clip_id`, `frame_idx` = the last frame; extra metadata `sample_seq`,
//!   `n_frames`, `epoch` (Integer), `split` (String). `question_id` = `<clip_id>#<sample_seq>`,
//!   `frame_indices` = the frames actually sent (the last `max_frames`).
//! - `image`: one [`vipa_msgs::ImageFrame`] (rgb8, stored size) per frame, extra keys
//!   `sample_seq`, `frame_slot`, `n_frames`; its own gap-free `seq`.
//! - `pointmap`: one calibrated [`vipa_msgs::PointMap`] (camera frame, metres, NaN where no
//!   depth) per frame, same extra keys.
//! - At the end of the data (`epochs` or `max_samples` reached) a [`vipa_msgs::StreamEnd`] on
//!   every output (`seq` continues the output's count, `frames` = messages sent on it,
//!   `bad_sources` = samples skipped for missing frames).
//!
//! Order: deterministic per `(seed, epoch)` ([`vipa_hand3d::DatasetReader::epoch`]).
//! See [`config`] for the keys and [`reader`] for the per-message logic.

pub mod config;
pub mod fixture;
pub mod node;
pub mod reader;

pub use config::ReaderConfig;
pub use reader::{Reader, ReaderError, ReaderTotals, SampleError};
