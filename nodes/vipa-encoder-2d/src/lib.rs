//! `vipa-encoder-2d`: the frozen semantic (InternViT) encoder as a dora node.
//!
//! # Input
//! - `image`: [`vipa_msgs::ImageFrame`] (rgb8, bgr8 or mono8, any size) or a
//!   [`vipa_msgs::StreamEnd`]. Sequence-checked: a gap stops the node with an error.
//!
//! # Output
//! - `tokens_2d`: [`vipa_msgs::TensorMsg`] `f32[tokens, channels]`, axes
//!   `["tokens", "channels"]`: the ViT patch tokens of the last layer, class token dropped,
//!   before pixel shuffle — the fusion input with placement `before_projector` (default; see
//!   `models/VISION.md`) — or, with `features: projected`, the `mlp1` output. Shapes per preset
//!   (`vit_tokens`): tiny `[16, 64]`, small `[256, 384]`, internvl3_5_2b `[1024, 1024]`.
//!   Header: own `seq`, the frame's `clip_id` / `frame_idx` / `timestamp_ns`; pass-through keys
//!   `sample_seq`, `frame_slot`, `n_frames`. A `StreamEnd` follows the input's `StreamEnd`.
//!
//! Frozen: every weight is a plain tensor (no `Var`). Without `weights` the encoder is a
//! deterministic random init from `seed` ([`vipa_models::seeded`]). See [`config`] for the keys.

pub mod config;
pub mod encoder;
pub mod node;

pub use config::{Encoder2dConfig, Features};
pub use encoder::{Encoder2d, EncoderError};
