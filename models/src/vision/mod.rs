//! The vision side of VIPA: InternViT semantic encoder + projector, 3D encoders, fusion.

pub mod config;
pub mod cut3r;
pub mod fusion;
pub mod intern_vit;
pub mod layers;
pub mod preprocess;
pub mod resize;
pub mod spatial;
