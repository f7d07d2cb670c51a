//! Point-map backends that need no model: plain functions a lift-depth node (or a test) calls
//! per frame. The learned backends (depth-anything-v2, CUT3R) live in nodes, not here.
//!
//! - [`sidecar_point_map`]: ground-truth depth → point map. Metric up to the hand-surface bias
//!   that calibration sees (see [`crate::calibrate`]).
//! - [`ScaledBackend`]: a *test* backend that reproduces the failure mode calibration must
//!   fix — a depth estimator that is right up to an unknown per-clip scale, plus noise.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Hand3dError, Result};
use crate::geometry::{Intrinsics, PointMap, backproject};

/// Ground-truth depth (`f32[h, w]`, metres) → camera-frame point map.
pub fn sidecar_point_map(depth: &[f32], k: &Intrinsics) -> Result<PointMap> {
    backproject(depth, k)
}

/// Smallest and largest per-clip scale factor of [`ScaledBackend`].
pub const SCALE_RANGE: (f32, f32) = (0.3, 3.0);

/// Test backend: depth × an unknown per-clip factor × per-pixel multiplicative noise.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaledBackend {
    /// Standard deviation of the per-pixel multiplicative noise (`0.01` = 1 %).
    pub noise_rel: f32,
}

impl Default for ScaledBackend {
    fn default() -> Self {
        Self { noise_rel: 0.01 }
    }
}

impl ScaledBackend {
    /// The clip's hidden factor, log-uniform in [`SCALE_RANGE`] so that shrinking by 3 and
    /// stretching by 3 are equally likely. Deterministic in `clip_seed`.
    pub fn clip_factor(clip_seed: u64) -> f32 {
        let mut rng = ChaCha8Rng::seed_from_u64(clip_seed ^ 0x5CA1_ED00_0000_0001);
        let (lo, hi) = (SCALE_RANGE.0.ln(), SCALE_RANGE.1.ln());
        rng.random_range(lo..hi).exp()
    }

    /// Point map of one frame: `backproject(depth · factor · (1 + noise_rel·n))`, `n ~ N(0, 1)`
    /// per pixel, seeded by `(clip_seed, frame_idx)` so a re-run gives the same bytes.
    pub fn point_map(
        &self,
        depth: &[f32],
        k: &Intrinsics,
        clip_seed: u64,
        frame_idx: u32,
    ) -> Result<PointMap> {
        if !(self.noise_rel.is_finite() && (0.0..0.5).contains(&self.noise_rel)) {
            return Err(Hand3dError::Config {
                key: "scaled.noise_rel",
                problem: format!("is {}, must be in [0, 0.5)", self.noise_rel),
            });
        }
        let factor = Self::clip_factor(clip_seed);
        let mut rng = ChaCha8Rng::seed_from_u64(
            clip_seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(frame_idx),
        );
        let noisy: Vec<f32> = depth
            .iter()
            .map(|&z| z * factor * (1.0 + self.noise_rel * standard_normal(&mut rng)))
            .collect();
        backproject(&noisy, k)
    }
}

/// One standard-normal draw (Box–Muller); keeps the dependency list short.
pub(crate) fn standard_normal(rng: &mut impl Rng) -> f32 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_factor_is_deterministic_in_range_and_varies() {
        let fs: Vec<f32> = (0..200).map(ScaledBackend::clip_factor).collect();
        assert_eq!(fs[7], ScaledBackend::clip_factor(7));
        assert!(fs.iter().all(|f| (0.3..=3.0).contains(f)));
        assert!(fs.iter().any(|&f| f < 0.6) && fs.iter().any(|&f| f > 1.5));
    }

    #[test]
    fn scaled_map_is_factor_times_truth_on_average() {
        let k = Intrinsics::from_hfov(40, 30, 60.0).unwrap();
        let depth = vec![0.8f32; 40 * 30];
        let b = ScaledBackend { noise_rel: 0.02 };
        let pm = b.point_map(&depth, &k, 11, 3).unwrap();
        let f = ScaledBackend::clip_factor(11);
        let zs: Vec<f32> = pm.as_slice().chunks(3).map(|p| p[2]).collect();
        let mean = zs.iter().sum::<f32>() / zs.len() as f32;
        assert!((mean / (0.8 * f) - 1.0).abs() < 0.005, "mean {mean}");
        let var = zs
            .iter()
            .map(|z| (z / (0.8 * f) - 1.0).powi(2))
            .sum::<f32>()
            / zs.len() as f32;
        assert!((var.sqrt() - 0.02).abs() < 0.004, "std {}", var.sqrt());
        assert_eq!(pm, b.point_map(&depth, &k, 11, 3).unwrap());
        assert_ne!(pm, b.point_map(&depth, &k, 11, 4).unwrap());
    }
}
