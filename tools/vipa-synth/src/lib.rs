//! `vipa-synth`: a deterministic, mocap-like synthetic world of hands manipulating objects on a
//! table, rendered to H.264 clips with a ground-truth sidecar per clip.
//!
//! It is vipa's embedded default dataset and the source of ground truth for tests, standing in
//! for real 3D-hand video datasets (ARCTIC, DexYCB) that cannot be downloaded here. See
//! `README.md` for the scene model, the coordinate frames and the sidecar schema.
//!
//! Readers need only the `vipa-truth` crate (re-exported here as [`sidecar`]):
//! [`sidecar::read_clip_truth`] returns a [`sidecar::ClipTruth`], without linking this crate.
//! Generation: [`generate::generate_clip`] renders one clip in memory and
//! [`generate::write_clip`] writes `clip_XXXX.mp4` + `clip_XXXX.truth.parquet`.
//!
//! Determinism: a clip depends only on `(seed, clip_index)` and the [`generate::SynthConfig`];
//! the same inputs give the same frames and the same sidecar bytes.

pub mod episode;
pub mod generate;
pub mod hand;
pub mod manifest;
pub mod math;
pub mod render;
pub mod scene;
/// The sidecar layout, writer and reader live in `vipa-truth` (Arrow and Parquet only), so
/// readers on the production path never link the generator.
pub use vipa_truth::sidecar;
pub mod video;

pub use generate::{GeneratedClip, SynthConfig, SynthError, generate_clip, write_clip};
pub use sidecar::{
    ClipInfo, ClipTruth, FrameTruth, HandSide, HandTruth, Intrinsics, ObjectTruth, SidecarError,
    read_clip_truth,
};
