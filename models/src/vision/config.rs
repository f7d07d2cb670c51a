//! The configurations of the vision models, each defined beside its model and gathered here:
//! InternViT + the InternVL projector ([`super::intern_vit::config`]), the point-map 3D encoder
//! ([`super::spatial::config`]), the fusion layer ([`super::fusion::config`]) and Cut3R
//! ([`super::cut3r::config`]). Which sizes go together is [`crate::Preset`].

pub use super::cut3r::config::{Cut3rConfig, Cut3rPreset, Cut3rRegMode};
pub use super::fusion::config::{FusionConfig, FusionPlacement};
pub use super::intern_vit::config::{InternVisionConfig, InternVlConfig, LlmWidth, NormType};
pub use super::spatial::config::PointMapVitConfig;
