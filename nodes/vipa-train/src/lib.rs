//! `vipa-train`: the parts of a training run that do not depend on the model — learning-rate
//! schedule, gradient clipping and accumulation, crash-safe checkpoints, metrics and the loss
//! plot. The training node wires them to the model and the dataflow.

pub mod checkpoint;
pub mod grads;
pub mod metrics;
pub mod plot;
pub mod schedule;

pub use checkpoint::{CheckpointError, CheckpointMeta, Checkpoints, Loaded};
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
