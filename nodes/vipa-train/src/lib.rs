//! `vipa-train`: the training node of the pretraining graph (stages 1 and 2), and its
//! evaluation mode (Hand3D-test).
//!
//! - model-independent parts: learning-rate [`schedule`], gradient clipping and accumulation
//!   ([`grads`]), crash-safe [`checkpoint`]s, [`metrics`] CSV, the loss [`plot`], [`optim`]
//!   (AdamW with checkpointable state);
//! - the node: [`join`] (three input streams → whole samples, in order), [`model`] (presets →
//!   [`vipa_models::vipa_lm::VipaLm`] + tokenizer), [`trainer`] (the loop, resume), [`eval`]
//!   (generate, parse, score), [`node`] (the dora pull protocol).
//!
//! Config: [`config::TrainConfig`]. Graphs: `dataflows/pretrain.yml`, `pretrain-no3d.yml`,
//! `eval.yml`.

pub mod checkpoint;
pub mod config;
pub mod eval;
pub mod grads;
pub mod join;
pub mod metrics;
pub mod model;
pub mod node;
pub mod optim;
pub mod plot;
pub mod schedule;
pub mod trainer;

pub use checkpoint::{CheckpointError, CheckpointMeta, Checkpoints, Loaded};
pub use config::{Mode, TrainConfig};
pub use grads::{GradAccumulator, clip_grad_norm};
pub use metrics::{MetricsRow, MetricsWriter};
pub use schedule::CosineSchedule;

/// Refuses a loss that is NaN or infinite: training on it would poison every weight. The caller
/// stops and keeps its last good checkpoint.
pub fn check_finite_loss(step: u64, loss: f32) -> Result<(), NonFiniteLoss> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(NonFiniteLoss { step, loss })
    }
}

/// A NaN or infinite loss.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error(
    "loss is {loss} at step {step}: stopping without applying this update; the last good \
     checkpoint is kept. Lower the learning rate, check the data of this batch, or raise \
     `max_grad_norm` clipping"
)]
pub struct NonFiniteLoss {
    pub step: u64,
    pub loss: f32,
}
