//! Metric scale calibration, exactly as the paper (§2.2 step 5):
//!
//! `s = median_{k ∈ Ω} ( j_k^z / j̃_k^z )`
//!
//! with `j_k^z` the metric depth of joint `k` (from MANO / the sidecar), `j̃_k^z` the point
//! map's z at the joint's pixel (nearest sample, see [`crate::geometry::PointMap::sample_nearest`]),
//! and Ω the joints that pass the visibility test of [`crate::observe`]. The calibrated map is
//! `s·P`, so hands (metric) and objects (from `P`) share one metric camera frame.
//! `per_clip` pools the ratios of all frames of the clip; `per_frame` gives each frame its own
//! `s` (frames with fewer than `min_valid_joints` ratios are dropped and counted).
//!
//! **Surface bias.** The point map sees the hand's *skin*, not the joint centre inside the
//! finger, so `j̃_k^z` is short by about the finger radius `r` (≈ 7–10 mm) and the ratio is
//! high by ≈ `r / z` (1–2 % at 0.5–0.8 m). The paper's formula has no correction; ours keeps it
//! by default (`surface_offset_m = 0`) and optionally subtracts a fixed offset from the joint
//! depth: `s = median((j_k^z − offset) / j̃_k^z)`. The tests measure the bias with and
//! without the offset.

use serde::{Deserialize, Serialize};

use crate::observe::FrameObservation;
use crate::stats::median;

/// Whether one scale is fitted per clip or per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationMode {
    #[default]
    PerClip,
    PerFrame,
}

/// A fitted scale and how well the joints agree with it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Multiply the point map by this to get metres.
    pub scale: f32,
    /// |Ω|: how many joint ratios went into the median.
    pub n_joints: usize,
    /// `median_k |ratio_k / s − 1|`: the typical relative disagreement of one joint.
    pub median_abs_rel_residual: f32,
}

/// The ratios `(j_k^z − offset) / j̃_k^z` of one frame's valid joints, all hands.
pub fn joint_ratios(frame: &FrameObservation, surface_offset_m: f32) -> Vec<f32> {
    let mut out = Vec::new();
    for h in &frame.hands {
        for k in 0..h.joints.len() {
            if h.valid[k] && h.map_z[k] > 0.0 {
                let r = (h.joints[k][2] - surface_offset_m) / h.map_z[k];
                if r.is_finite() && r > 0.0 {
                    out.push(r);
                }
            }
        }
    }
    out
}

/// Fits `s = median(ratios)`; `None` with fewer than `min_valid` ratios.
pub fn fit_scale(ratios: &[f32], min_valid: usize) -> Option<Calibration> {
    if ratios.len() < min_valid.max(1) {
        return None;
    }
    let scale = median(ratios.iter().copied())?;
    let residual = median(ratios.iter().map(|r| (r / scale - 1.0).abs()))?;
    Some(Calibration {
        scale,
        n_joints: ratios.len(),
        median_abs_rel_residual: residual,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_scale_ignores_outlier_joints() {
        // 9 joints agree on 2.0, 4 occluded-looking joints say nonsense.
        let mut r = vec![2.0f32; 9];
        r.extend([0.1, 9.0, 7.0, 0.5]);
        let c = fit_scale(&r, 3).unwrap();
        assert_eq!(c.scale, 2.0);
        assert_eq!(c.n_joints, 13);
        assert_eq!(c.median_abs_rel_residual, 0.0);
        assert!(fit_scale(&r[..2], 3).is_none());
    }
}
