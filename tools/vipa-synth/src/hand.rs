//! Articulated hand: 21 joints (MediaPipe / MANO-21 order) from a handful of pose parameters.
//!
//! Hand-local frame (metres): origin at the wrist joint, **x** from the wrist towards the middle
//! finger's MCP joint, **z** out of the back of the hand (dorsal), **y = z × x**. For a right
//! hand the thumb lies towards +y; a left hand is the mirror image (y negated). Bone lengths are
//! those of an average adult hand (metacarpals ~8–9 cm, index phalanges 4.0/2.4/2.1 cm), scaled
//! per clip by ±8%.
//!
//! Joint order: 0 wrist; thumb 1–4 (CMC, MCP, IP, TIP); index 5–8 (MCP, PIP, DIP, TIP);
//! middle 9–12; ring 13–16; pinky 17–20.

use crate::math::{Pose, Rot, V3, v3};
use crate::sidecar::{HandSide, NUM_JOINTS};

/// MCP joint positions of index, middle, ring, pinky (right hand, metres).
const FINGER_MCP: [V3; 4] = [
    v3(0.090, 0.024, 0.0),
    v3(0.093, 0.003, 0.0),
    v3(0.087, -0.016, 0.0),
    v3(0.078, -0.033, 0.0),
];
/// Phalanx lengths (proximal, middle, distal) of index, middle, ring, pinky.
const FINGER_BONES: [[f32; 3]; 4] = [
    [0.040, 0.024, 0.021],
    [0.045, 0.028, 0.022],
    [0.042, 0.027, 0.021],
    [0.033, 0.019, 0.019],
];
/// Splay of each finger about the palm normal, radians (towards the thumb is positive).
const FINGER_SPLAY: [f32; 4] = [0.14, 0.0, -0.12, -0.26];
/// Thumb CMC position and its bone lengths (CMC→MCP, MCP→IP, IP→TIP).
const THUMB_CMC: V3 = v3(0.025, 0.022, -0.012);
const THUMB_BONES: [f32; 3] = [0.042, 0.032, 0.026];

/// Flexion (radians) at MCP, PIP, DIP for the relaxed-open and the full power-grasp pose.
const FLEX_OPEN: [f32; 3] = [0.08, 0.14, 0.08];
const FLEX_GRASP: [f32; 3] = [0.80, 1.00, 0.55];

/// Rendered radius of each joint sphere (metres, before the hand scale); bones use the
/// smaller radius of their two end joints minus a millimetre.
pub const JOINT_RADIUS: [f32; NUM_JOINTS] = [
    0.018, // wrist
    0.0140, 0.0125, 0.0115, 0.0100, // thumb
    0.0120, 0.0110, 0.0098, 0.0088, // index
    0.0125, 0.0115, 0.0102, 0.0090, // middle
    0.0120, 0.0108, 0.0097, 0.0086, // ring
    0.0110, 0.0098, 0.0088, 0.0080, // pinky
];

/// Pose parameters of one hand.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HandPose {
    pub side: HandSide,
    /// Overall size factor (1 = average adult).
    pub scale: f32,
    /// 0 = relaxed open hand, 1 = full power grasp.
    pub grasp: f32,
    /// Extra finger spread factor (1 = natural).
    pub spread: f32,
    /// `world_from_hand`: places the hand-local frame in the world.
    pub world_from_hand: Pose,
}

/// Joint positions in the hand-local frame.
pub fn joints_local(side: HandSide, scale: f32, grasp: f32, spread: f32) -> [V3; NUM_JOINTS] {
    let g = grasp.clamp(0.0, 1.0);
    let mut j = [V3::ZERO; NUM_JOINTS];

    // Thumb: swings from alongside the palm (open) into opposition (grasp), then curls.
    let dir_open = v3(0.55, 0.75, -0.30).normalized();
    let dir_grasp = v3(0.72, 0.30, -0.62).normalized();
    let mut dir = dir_open.lerp(dir_grasp, g).normalized();
    let axis = v3(-dir.y, dir.x, 0.0).normalized();
    let thumb_flex = [0.10 + 0.25 * g, 0.10 + 0.45 * g, 0.10 + 0.40 * g];
    j[1] = THUMB_CMC;
    for k in 0..3 {
        let bend = if k == 0 { 0.0 } else { thumb_flex[k] };
        dir = Rot::axis_angle(axis, bend).apply(dir);
        j[2 + k] = j[1 + k] + dir * THUMB_BONES[k];
    }

    // Fingers: splay about the palm normal, then flex about each finger's lateral axis.
    for f in 0..4 {
        let base = 5 + 4 * f;
        let splay = FINGER_SPLAY[f] * spread;
        let fwd = v3(splay.cos(), splay.sin(), 0.0);
        let lateral = v3(-splay.sin(), splay.cos(), 0.0);
        // Ring and pinky close a little more in a power grasp (as real hands do).
        let extra = 1.0 + 0.04 * f as f32;
        j[base] = FINGER_MCP[f];
        let mut angle = 0.0;
        for k in 0..3 {
            angle += FLEX_OPEN[k] + (FLEX_GRASP[k] * extra - FLEX_OPEN[k]) * g;
            let d = Rot::axis_angle(lateral, angle).apply(fwd);
            j[base + k + 1] = j[base + k] + d * FINGER_BONES[f][k];
        }
    }

    let mirror = match side {
        HandSide::Right => 1.0,
        HandSide::Left => -1.0,
    };
    j.map(|p| v3(p.x * scale, p.y * scale * mirror, p.z * scale))
}

impl HandPose {
    /// Joint positions in the world frame.
    pub fn joints_world(&self) -> [V3; NUM_JOINTS] {
        joints_local(self.side, self.scale, self.grasp, self.spread)
            .map(|p| self.world_from_hand.apply(p))
    }

    /// Rendered joint radii (scaled).
    pub fn joint_radii(&self) -> [f32; NUM_JOINTS] {
        JOINT_RADIUS.map(|r| r * self.scale)
    }
}

/// The point between thumb tip, index tip and middle tip in the local frame: where a grasped
/// object's centre sits.
pub fn grip_centre_local(side: HandSide, scale: f32, grasp: f32) -> V3 {
    let j = joints_local(side, scale, grasp, 1.0);
    // Weight the palm a little so that the grip centre sits inside the curled fingers.
    (j[4] + j[8] + j[12] + j[9]) * 0.25
}

/// Hand orientation from heading, pitch and roll.
///
/// At zero angles the fingers point along world +y (away from the camera), the back of the
/// hand faces world +z (palm down). `yaw` turns about world z, `pitch` tips the fingers down,
/// `roll` turns about the finger axis.
pub fn hand_rotation(yaw: f32, pitch: f32, roll: f32) -> Rot {
    let base = Rot {
        cx: v3(0.0, 1.0, 0.0),
        cy: v3(-1.0, 0.0, 0.0),
        cz: v3(0.0, 0.0, 1.0),
    };
    Rot::about_z(yaw)
        .compose(&base)
        .compose(&Rot::axis_angle(v3(0.0, 1.0, 0.0), pitch))
        .compose(&Rot::axis_angle(v3(1.0, 0.0, 0.0), roll))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(a: V3, b: V3) -> f32 {
        (a - b).norm()
    }

    /// Bone lengths are those of the tables, whatever the pose, and scale linearly.
    #[test]
    fn bone_lengths_are_pose_independent() {
        for &g in &[0.0, 0.5, 1.0] {
            let j = joints_local(HandSide::Right, 1.0, g, 1.0);
            assert!((dist(j[5], j[6]) - 0.040).abs() < 1e-5);
            assert!((dist(j[11], j[12]) - 0.022).abs() < 1e-5);
            assert!((dist(j[3], j[4]) - 0.026).abs() < 1e-5);
            let j2 = joints_local(HandSide::Right, 1.1, g, 1.0);
            assert!((dist(j2[9], j2[10]) - 0.045 * 1.1).abs() < 1e-5);
        }
    }

    /// Open hand: fingertips far from the wrist and in the palm plane; grasp: tips curl to the
    /// palmar side (−z) and come closer to the wrist.
    #[test]
    fn grasp_curls_fingers_palmward() {
        let open = joints_local(HandSide::Right, 1.0, 0.0, 1.0);
        let closed = joints_local(HandSide::Right, 1.0, 1.0, 1.0);
        for tip in [8, 12, 16, 20] {
            assert!(open[tip].z.abs() < 0.03, "open tip {tip} z {}", open[tip].z);
            assert!(
                closed[tip].z < -0.04,
                "closed tip {tip} z {}",
                closed[tip].z
            );
            assert!(closed[tip].norm() < open[tip].norm());
        }
        // Middle fingertip of an open hand is ~18–19 cm from the wrist (adult hand length).
        assert!(
            (open[12].norm() - 0.185).abs() < 0.01,
            "{}",
            open[12].norm()
        );
    }

    /// Left is the mirror of right; the right thumb is on +y.
    #[test]
    fn left_mirrors_right() {
        let r = joints_local(HandSide::Right, 1.0, 0.3, 1.0);
        let l = joints_local(HandSide::Left, 1.0, 0.3, 1.0);
        assert!(r[4].y > 0.03);
        for k in 0..NUM_JOINTS {
            assert_eq!(l[k], v3(r[k].x, -r[k].y, r[k].z));
        }
    }

    /// The default orientation points the fingers forward (+y) with the palm facing down, and
    /// puts a right thumb towards −x (left in the image).
    #[test]
    fn hand_rotation_axes() {
        let r = hand_rotation(0.0, 0.0, 0.0);
        assert_eq!(r.apply(v3(1.0, 0.0, 0.0)), v3(0.0, 1.0, 0.0));
        assert_eq!(r.apply(v3(0.0, 0.0, 1.0)), v3(0.0, 0.0, 1.0));
        assert_eq!(r.apply(v3(0.0, 1.0, 0.0)), v3(-1.0, 0.0, 0.0));
        // Positive pitch tips fingers down.
        assert!(hand_rotation(0.0, 0.5, 0.0).apply(v3(1.0, 0.0, 0.0)).z < -0.4);
    }
}
