//! `vipa-encoder-3d`: the frozen 3D encoder as a dora node.
//!
//! # Input
//! - `pointmap`: [`vipa_msgs::PointMap`] (calibrated, camera frame, metres, any size) or a
//!   [`vipa_msgs::StreamEnd`]. Sequence-checked: a gap stops the node with an error.
//!
//! # Output
//! - `tokens_3d`: [`vipa_msgs::TensorMsg`] `f32[tokens, channels]`, axes
//!   `["tokens", "channels"]`, plus `token_valid` (`ListInt`, 0/1 per token). Shapes per
//!   preset: tiny `[16, 48]`, small `[196, 256]`, internvl3_5_2b (`cut3r_shaped`) `[729, 768]`;
//!   backend `none`: `[0, channels]` — so the no-3D graph differs from the normal one only in
//!   this node's config. Header: own `seq`, the frame's `clip_id` / `frame_idx` /
//!   `timestamp_ns`; pass-through keys `sample_seq`, `frame_slot`, `n_frames`. A `StreamEnd`
//!   follows the input's `StreamEnd`.
//!
//! Backends: `point_map_vit` ([`vipa_models::vision::spatial::PointMapVit`]; frozen, plain
//! tensors; without `weights` a deterministic random init from `seed`, since the point-map ViT
//! has no pretrained weights) and `none`. Cut3R, the paper's 3D encoder, is not implemented in
//! `vipa-models` and therefore not offered. See [`config`] for the keys.

pub mod config;
pub mod encoder;
pub mod node;

pub use config::{Backend, Encoder3dConfig};
pub use encoder::{Encoder3d, EncoderError};
