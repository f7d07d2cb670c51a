//! The motion of one clip: reach → grasp → move → place → retreat.
//!
//! The wrist follows minimum-jerk segments between key poses; the fingers open while reaching,
//! close around the target, and open again to release it. While held (the `move` phase) the
//! target rides rigidly with the hand: the hand keeps its orientation, so the object only
//! translates and stays upright, and ends exactly at the planned place on the table. An optional
//! second hand rests on the table and drifts slightly.

use crate::hand::{HandPose, grip_centre_local, hand_rotation};
use crate::math::{Pose, V3, min_jerk, v3};
use crate::scene::ClipPlan;
use crate::sidecar::HandSide;

/// Phase names, as stored in the sidecar's `phase` column.
pub const PHASES: [&str; 5] = ["reach", "grasp", "move", "place", "retreat"];

/// One hand's state in a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct HandState {
    pub pose: HandPose,
    /// Index (into the plan's objects) of the object held, if any.
    pub grasped: Option<usize>,
}

/// The world at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct WorldState {
    pub phase: &'static str,
    pub world_from_camera: Pose,
    pub hands: Vec<HandState>,
    /// `world_from_object` per object of the plan.
    pub objects: Vec<Pose>,
}

/// Precomputed key poses of the active hand.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    plan: ClipPlan,
    start: V3,
    pre_grasp: V3,
    grasp: V3,
    place: V3,
    retreat: V3,
    yaw: f32,
    grasp_amount: f32,
}

const PITCH_START: f32 = 0.25;
const PITCH_GRASP: f32 = 0.6;
const OPEN_RELAXED: f32 = 0.15;

/// How far a hand must rise so that every joint sphere clears the table top by 1 mm.
fn table_clearance(pose: &HandPose) -> f32 {
    let lowest = pose
        .joints_world()
        .iter()
        .zip(pose.joint_radii())
        .map(|(p, r)| p.z - r)
        .fold(f32::INFINITY, f32::min);
    (0.001 - lowest).max(0.0)
}

fn bump(t: f32) -> f32 {
    // 16 t²(1−t)²: 0 with zero slope at both ends, 1 at the middle.
    let t = t.clamp(0.0, 1.0);
    16.0 * t * t * (1.0 - t) * (1.0 - t)
}

impl Episode {
    pub fn new(plan: ClipPlan) -> Episode {
        let side = plan.hands[0];
        let target = &plan.objects[plan.target];
        let side_sign = match side {
            HandSide::Right => 1.0,
            HandSide::Left => -1.0,
        };
        let start = v3(0.30 * side_sign, -0.26, 0.20);
        let obj = target.start.t;
        let to_obj = obj - start;
        let yaw = (-to_obj.x).atan2(to_obj.y).clamp(-0.7, 0.7);
        let grasp_amount = target.kind.grasp_amount();
        let rot = hand_rotation(yaw, PITCH_GRASP, 0.0);
        let height = target.kind.size().z;
        let grip_point = obj + v3(0.0, 0.0, (0.6 * height).min(height - 0.012));
        let grip_local = grip_centre_local(side, plan.hand_scale, grasp_amount);
        let mut grasp = grip_point - rot.apply(grip_local);
        // Keep every joint sphere above the table at the grasp (flat objects would otherwise
        // pull the curled fingertips into the table top).
        grasp.z += table_clearance(&HandPose {
            side,
            scale: plan.hand_scale,
            grasp: grasp_amount,
            spread: 1.0 - 0.3 * grasp_amount,
            world_from_hand: Pose::new(rot, grasp),
        });
        let fwd = rot.apply(v3(1.0, 0.0, 0.0));
        let back = v3(fwd.x, fwd.y, 0.0).normalized() * -0.035;
        let pre_grasp = grasp + v3(0.0, 0.0, 0.06) + back;
        let place = grasp + (plan.place_at - obj);
        let retreat = place.lerp(start, 0.5) + v3(0.0, 0.0, 0.08);
        Episode {
            plan,
            start,
            pre_grasp,
            grasp,
            place,
            retreat,
            yaw,
            grasp_amount,
        }
    }

    pub fn plan(&self) -> &ClipPlan {
        &self.plan
    }

    /// The world at clip fraction `s ∈ [0, 1]`.
    pub fn state(&self, s: f32) -> WorldState {
        let [a, b, c, d] = self.plan.phases;
        let g_max = self.grasp_amount;
        let seg = |lo: f32, hi: f32| ((s - lo) / (hi - lo)).clamp(0.0, 1.0);
        let (phase, wrist, pitch, grasp, held) = if s < a {
            let t = min_jerk(seg(0.0, a));
            let w = self.start.lerp(self.pre_grasp, t);
            let p = PITCH_START + (PITCH_GRASP - PITCH_START) * t;
            (0, w, p, OPEN_RELAXED * (1.0 - t), false)
        } else if s < b {
            let t = seg(a, b);
            let w = self.pre_grasp.lerp(self.grasp, min_jerk(t / 0.6));
            (
                1,
                w,
                PITCH_GRASP,
                g_max * min_jerk((t - 0.45) / 0.55),
                false,
            )
        } else if s < c {
            let t = seg(b, c);
            let w =
                self.grasp.lerp(self.place, min_jerk(t)) + v3(0.0, 0.0, self.plan.lift * bump(t));
            (2, w, PITCH_GRASP, g_max, true)
        } else if s < d {
            let t = seg(c, d);
            (
                3,
                self.place,
                PITCH_GRASP,
                g_max * (1.0 - min_jerk(t)),
                t < 0.3,
            )
        } else {
            let t = min_jerk(seg(d, 1.0));
            let w = self.place.lerp(self.retreat, t);
            let p = PITCH_GRASP + (PITCH_START - PITCH_GRASP) * t;
            (4, w, p, OPEN_RELAXED * t, false)
        };

        let active = HandState {
            pose: HandPose {
                side: self.plan.hands[0],
                scale: self.plan.hand_scale,
                grasp,
                spread: 1.0 - 0.3 * grasp,
                world_from_hand: Pose::new(hand_rotation(self.yaw, pitch, 0.0), wrist),
            },
            grasped: held.then_some(self.plan.target),
        };

        // Objects: the target follows the wrist's displacement from the grasp pose while held
        // (orientation is constant then), and stays at the place after release.
        let mut objects: Vec<Pose> = self.plan.objects.iter().map(|o| o.start).collect();
        let target = &mut objects[self.plan.target];
        if phase == 2 || (phase == 3 && held) {
            target.t += wrist - self.grasp;
        } else if phase >= 3 {
            target.t += self.place - self.grasp;
        }

        let mut hands = vec![active];
        if let Some(&side) = self.plan.hands.get(1) {
            hands.push(self.idle_hand(side, s));
        }
        let cam_s = if self.plan.camera_moving {
            min_jerk(s)
        } else {
            0.0
        };
        WorldState {
            phase: PHASES[phase],
            world_from_camera: self.plan.camera.pose(cam_s),
            hands,
            objects,
        }
    }

    /// A resting hand on its own side of the table, drifting a centimetre or so.
    fn idle_hand(&self, side: HandSide, s: f32) -> HandState {
        let sign = match side {
            HandSide::Right => 1.0,
            HandSide::Left => -1.0,
        };
        let ph = self.plan.idle_phase;
        let w = std::f32::consts::TAU * s;
        let wrist = v3(0.32 * sign, -0.20, 0.035)
            + v3(
                0.012 * (1.3 * w + ph).sin(),
                0.010 * (0.9 * w + 2.0 * ph).sin(),
                0.006 * (1.7 * w + ph).sin().abs(),
            );
        let yaw = 0.3 * sign + 0.05 * (0.7 * w + ph).sin();
        let mut pose = HandPose {
            side,
            scale: self.plan.hand_scale,
            grasp: 0.3 + 0.12 * (1.1 * w + ph).sin(),
            spread: 1.0,
            world_from_hand: Pose::new(hand_rotation(yaw, 0.12, 0.0), wrist),
        };
        // Rest on the table, not in it.
        pose.world_from_hand.t.z += table_clearance(&pose);
        HandState {
            pose,
            grasped: None,
        }
    }
}
