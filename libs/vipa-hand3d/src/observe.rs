//! Per-frame reduction: from a (possibly uncalibrated) point map plus metric hand joints and
//! object boxes to a small [`FrameObservation`]. Nodes call [`observe_frame`] as frames arrive
//! and keep only the observations, so a clip never holds all its point maps in memory.
//!
//! **Visibility.** A joint counts (is in Ω, the calibration set) only if it projects inside
//! the image, the point map has a valid point at its pixel, and — when
//! `use_gt_visibility` is on and the flag is given — the ground-truth visibility flag is set
//! (an occluded joint's pixel shows the occluder, whose depth says nothing about the joint).
//! A hand is *visible* in a frame when at least `min_visible_joints` joints count.

use serde::{Deserialize, Serialize};

use crate::config::{CalibrationConfig, Config};
use crate::error::{Hand3dError, Result};
use crate::geometry::{Intrinsics, PointMap, Pose, Vec3, norm};
use crate::objects::{
    Capsule, JOINT_HALF_THICKNESS_M, Occluders, Solid, hand_capsules, hand_size_factor,
    hand_solids, raw_object_position,
};
use crate::stats::median;

/// Number of hand joints (MediaPipe / MANO-21 order, 0 = wrist).
pub const N_JOINTS: usize = 21;

/// Which hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Left,
    Right,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }
}

/// One hand in one frame: 21 metric joints in the camera frame.
#[derive(Debug, Clone, PartialEq)]
pub struct HandInput {
    pub side: Side,
    /// `f32[21, 3]`, metres, camera frame.
    pub joints: [Vec3; N_JOINTS],
    /// Ground-truth per-joint visibility, when the source has it.
    pub gt_visible: Option<[bool; N_JOINTS]>,
}

/// One detected object in one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectInput {
    pub name: String,
    /// `[x0, y0, x1, y1]` in pixels (continuous coordinates, `x0 < x1`, `y0 < y1`).
    pub bbox: [f32; 4],
}

/// Everything about one frame that the annotation needs.
#[derive(Debug, Clone)]
pub struct FrameInput<'a> {
    pub frame_idx: u32,
    /// The backend's point map (uncalibrated: any positive scale).
    pub point_map: &'a PointMap,
    pub hands: Vec<HandInput>,
    pub objects: Vec<ObjectInput>,
    /// Camera → world pose, when known (needed for camera-movement Q&A).
    pub camera_pose: Option<Pose>,
}

/// What survives of a hand after [`observe_frame`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandObservation {
    pub side: Side,
    pub joints: [Vec3; N_JOINTS],
    /// Per joint: in Ω (see the module docs).
    pub valid: [bool; N_JOINTS],
    /// Per joint: point-map z at the joint's pixel (NaN where not valid).
    pub map_z: [f32; N_JOINTS],
}

impl HandObservation {
    pub fn n_valid(&self) -> usize {
        self.valid.iter().filter(|v| **v).count()
    }
}

/// An object after [`observe_frame`]: its position in the *uncalibrated* point map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectObservation {
    pub name: String,
    pub bbox: [f32; 4],
    /// Robust position in point-map units; multiply by the scale to get metres.
    pub raw_position: Option<Vec3>,
}

/// The small per-frame summary the clip pipeline consumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameObservation {
    pub frame_idx: u32,
    pub hands: Vec<HandObservation>,
    pub objects: Vec<ObjectObservation>,
    pub camera_pose: Option<Pose>,
}

impl FrameObservation {
    /// The hand of `side` if it is visible (enough valid joints).
    pub fn visible_hand(&self, side: Side, min_joints: usize) -> Option<&HandObservation> {
        self.hands
            .iter()
            .find(|h| h.side == side && h.n_valid() >= min_joints)
    }

    pub fn any_hand_visible(&self, min_joints: usize) -> bool {
        self.hands.iter().any(|h| h.n_valid() >= min_joints)
    }
}

/// Reduces one frame (see the module docs). Fails on a point map whose size disagrees with
/// the intrinsics or on non-finite joints.
pub fn observe_frame(
    input: &FrameInput<'_>,
    k: &Intrinsics,
    cfg: &Config,
) -> Result<FrameObservation> {
    let pm = input.point_map;
    if pm.width() != k.width || pm.height() != k.height {
        return Err(Hand3dError::bad_input(
            format!("frame {} point map", input.frame_idx),
            format!(
                "is {}x{}, intrinsics say {}x{}",
                pm.width(),
                pm.height(),
                k.width,
                k.height
            ),
        ));
    }
    let mut hands = Vec::with_capacity(input.hands.len());
    for h in &input.hands {
        if !h.joints.iter().flatten().all(|c| c.is_finite()) {
            return Err(Hand3dError::bad_input(
                format!("frame {} {} hand joints", input.frame_idx, h.side.as_str()),
                "contain a non-finite coordinate",
            ));
        }
        let mut valid = [false; N_JOINTS];
        let mut map_z = [f32::NAN; N_JOINTS];
        for j in 0..N_JOINTS {
            let gt_ok = !cfg.visibility.use_gt_visibility || h.gt_visible.is_none_or(|v| v[j]);
            let Some((u, v)) = k.project(h.joints[j]) else {
                continue;
            };
            if !gt_ok || !k.contains(u, v) {
                continue;
            }
            if let Some(p) = pm.sample_nearest(u, v) {
                valid[j] = true;
                map_z[j] = p[2];
            }
        }
        hands.push(HandObservation {
            side: h.side,
            joints: h.joints,
            valid,
            map_z,
        });
    }
    let mask: Vec<Capsule> = if cfg.objects.hand_mask_radius_m > 0.0 {
        input
            .hands
            .iter()
            .flat_map(|h| hand_capsules(&h.joints, k, cfg.objects.hand_mask_radius_m))
            .collect()
    } else {
        Vec::new()
    };
    let solids: Vec<Solid> = input
        .hands
        .iter()
        .flat_map(|h| hand_solids(&h.joints))
        .collect();
    // The visible-surface estimator tests points against the hands in 3D, which needs the
    // map in metres: this frame's own calibration (the clip's scale is not known yet). With
    // too few joints for one, the 2D capsules stand in.
    let occluders = match frame_scale_hint(&hands, cfg) {
        Some(s) if !cfg.objects.complete_depth => Occluders {
            capsules: &[],
            solids: &solids,
            to_metres: s,
        },
        _ => Occluders {
            capsules: &mask,
            solids: &[],
            to_metres: 1.0,
        },
    };
    let objects = input
        .objects
        .iter()
        .map(|o| ObjectObservation {
            name: o.name.clone(),
            bbox: o.bbox,
            raw_position: raw_object_position(pm, k, o.bbox, &occluders, &cfg.objects),
        })
        .collect();
    Ok(FrameObservation {
        frame_idx: input.frame_idx,
        hands,
        objects,
        camera_pose: input.camera_pose,
    })
}

/// The frame's own scale (the paper's formula over its valid joints, with the configured
/// surface model, see [`crate::calibrate`]); `None` without a valid joint. One joint is
/// enough here: the hand solids only need the map in metres to within a few per cent (a held
/// object may leave just two or three joints in view).
fn frame_scale_hint(hands: &[HandObservation], cfg: &Config) -> Option<f32> {
    median(hand_ratios(hands, &cfg.calibration))
}

/// The ratios `(j_k^z − offset) / j̃_k^z` of one frame's valid joints, all hands.
pub fn joint_ratios(frame: &FrameObservation, surface_offset_m: f32) -> Vec<f32> {
    let cfg = CalibrationConfig {
        surface_offset_m,
        joint_thickness_prior: false,
        ..CalibrationConfig::default()
    };
    hand_ratios(&frame.hands, &cfg)
}

/// The ratios of one frame's valid joints (all hands) under `cfg`'s surface model:
/// `joint_thickness_prior` → [`joint_ratios_thickness`], else [`joint_ratios`] with
/// `surface_offset_m`.
pub fn frame_ratios(frame: &FrameObservation, cfg: &CalibrationConfig) -> Vec<f32> {
    hand_ratios(&frame.hands, cfg)
}

/// [`frame_ratios`] of some hands.
pub fn hand_ratios(hands: &[HandObservation], cfg: &CalibrationConfig) -> Vec<f32> {
    if cfg.joint_thickness_prior {
        joint_ratios_thickness(hands)
    } else {
        let offset = cfg.surface_offset_m;
        let mut out = Vec::new();
        for h in hands {
            for k in 0..h.joints.len() {
                if h.valid[k] && h.map_z[k] > 0.0 {
                    let r = (h.joints[k][2] - offset) / h.map_z[k];
                    if r.is_finite() && r > 0.0 {
                        out.push(r);
                    }
                }
            }
        }
        out
    }
}

/// The ratios `j_k^z·(1 − t_k/|j_k|) / j̃_k^z` of one frame's valid joints, all hands: the
/// skin seen at joint `k`'s pixel lies `t_k` in front of the joint centre *along the viewing
/// ray*, `t_k` the average adult half-thickness at that joint
/// ([`JOINT_HALF_THICKNESS_M`]) scaled by the hand's size ([`hand_size_factor`]).
pub fn joint_ratios_thickness(hands: &[HandObservation]) -> Vec<f32> {
    let mut out = Vec::new();
    for h in hands {
        let size = hand_size_factor(&h.joints);
        for (k, &half) in JOINT_HALF_THICKNESS_M.iter().enumerate() {
            if h.valid[k] && h.map_z[k] > 0.0 {
                let j = h.joints[k];
                let r = j[2] * (1.0 - half * size / norm(j)) / h.map_z[k];
                if r.is_finite() && r > 0.0 {
                    out.push(r);
                }
            }
        }
    }
    out
}
