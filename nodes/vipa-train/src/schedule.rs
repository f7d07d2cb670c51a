//! Cosine learning-rate schedule with linear warmup, as the paper uses (warmup ratio 0.03).

use serde::{Deserialize, Serialize};

/// `lr(step)`: linear from 0 to `base_lr` over the first `warmup_ratio · total_steps` optimizer
/// steps, then half a cosine down to `min_lr_ratio · base_lr` at `total_steps`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CosineSchedule {
    pub base_lr: f64,
    pub warmup_ratio: f64,
    pub total_steps: u64,
    pub min_lr_ratio: f64,
}

impl CosineSchedule {
    /// Learning rate for optimizer step `step` (0-based).
    pub fn lr(&self, step: u64) -> f64 {
        let total = self.total_steps.max(1) as f64;
        let warmup = (self.warmup_ratio * total).ceil();
        let s = step as f64;
        if warmup > 0.0 && s < warmup {
            return self.base_lr * (s + 1.0) / warmup;
        }
        let span = (total - warmup).max(1.0);
        let progress = ((s - warmup) / span).clamp(0.0, 1.0);
        let min_lr = self.min_lr_ratio * self.base_lr;
        min_lr + (self.base_lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched() -> CosineSchedule {
        CosineSchedule {
            base_lr: 1e-3,
            warmup_ratio: 0.1,
            total_steps: 100,
            min_lr_ratio: 0.0,
        }
    }

    #[test]
    fn warmup_rises_linearly_to_base_lr() {
        let s = sched();
        assert!((s.lr(0) - 1e-4).abs() < 1e-12);
        assert!((s.lr(4) - 5e-4).abs() < 1e-12);
        assert!((s.lr(9) - 1e-3).abs() < 1e-12);
        for step in 0..9 {
            assert!(s.lr(step) < s.lr(step + 1));
        }
    }

    #[test]
    fn cosine_decays_to_min_and_stays() {
        let s = CosineSchedule {
            min_lr_ratio: 0.1,
            ..sched()
        };
        assert!((s.lr(10) - 1e-3).abs() < 1e-12, "peak right after warmup");
        // Half-way through the decay the cosine is at its midpoint.
        assert!((s.lr(55) - (1e-4 + 0.5 * 9e-4)).abs() < 1e-12);
        assert!((s.lr(100) - 1e-4).abs() < 1e-12);
        assert!((s.lr(1000) - 1e-4).abs() < 1e-12);
        for step in 10..100 {
            assert!(s.lr(step) >= s.lr(step + 1));
        }
    }

    #[test]
    fn no_warmup_starts_at_base_lr() {
        let s = CosineSchedule {
            warmup_ratio: 0.0,
            ..sched()
        };
        assert!((s.lr(0) - 1e-3).abs() < 1e-12);
    }
}
