//! `vipa-encoder-3d`: the frozen 3D encoder as a dora node.
//!
//! # Input
//! - `pointmap`: [`vipa_msgs::PointMap`] (calibrated, camera frame, metres, any size) or a
//!   [`vipa_msgs::StreamEnd`]. Sequence-checked: a gap stops the node with an error.
//! - `image` (backend `cut3r` only, instead of `pointmap`): [`vipa_msgs::ImageFrame`] (any
//!   size and encoding) or a [`vipa_msgs::StreamEnd`], sequence-checked the same way.
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
//! has no pretrained weights), `cut3r` ([`vipa_models::vision::cut3r::Cut3r`], the paper's
//! frozen 3D encoder, from the converted official checkpoint; it reads RGB frames on input
//! `image` instead of `pointmap` and sends `[1 + (size/16)², 768]` tokens: `[730, 768]` at the
//! default 432 px) and `none`. See [`config`] for the keys.

pub mod config;
pub mod encoder;
pub mod node;

pub use config::{Backend, Cut3rNodeConfig, Encoder3dConfig};
pub use encoder::{Encoder3d, EncoderError};
