//! Hand3D-visual Q&A (paper §2.2 step 6): four question types, answers computed from the
//! calibrated geometry, in the paper's answer form (see [`crate::answer`]).
//!
//! - **Spatial relation** — 1–4 consecutive frames sampled at `sample_fps`; where is an object
//!   relative to a hand *in the last frame*: vector `object − hand`.
//! - **Task completion** — one frame; how the hand should move to reach the clip's target
//!   object: vector `target − hand`.
//! - **Hand movement** — two sampled frames 1..=`max_pair_gap` apart; the hand's displacement
//!   expressed in the camera frame of the *first* frame (with camera poses the second
//!   position is moved through the world into that frame; without poses the camera is
//!   assumed static).
//! - **Camera movement** — two sampled frames with poses; rotation of camera 2 relative to
//!   camera 1 as direction words + degrees, then `"; moved <words>, <d>m"` for where camera 2
//!   sits in camera 1's frame (`"; no translation"` when it would print as 0.00m). Static pairs (below `camera_min_deg` and `camera_min_m`) are
//!   skipped, so a fixed camera yields none.
//!
//! "The hand" is the palm centre or the wrist ([`HandPoint`]). Questions come from several
//! templates per type, chosen by a ChaCha RNG seeded from `(seed, clip_id, type)`, and each
//! type is capped at `max_per_type` per clip by a seeded random subset.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::answer::{AnswerTruth, Directions, Unit, format_rotation, format_translation};
use crate::config::{HandPoint, QaConfig};
use crate::geometry::{Pose, Vec3, axis_angle, norm, sub};
use crate::observe::{HandObservation, Side};
use crate::sample::{Sample, Task};
use crate::stats::mix_seed;

/// A frame after calibration: visible hands (metric) and located objects (metric).
#[derive(Debug, Clone, PartialEq)]
pub struct CalibratedFrame {
    pub frame_idx: u32,
    pub time_s: f64,
    pub hands: Vec<HandObservation>,
    /// `(name, centre)` of each object with a position, metres, camera frame.
    pub objects: Vec<(String, Vec3)>,
    pub pose: Option<Pose>,
}

impl CalibratedFrame {
    fn hand(&self, side: Side) -> Option<&HandObservation> {
        self.hands.iter().find(|h| h.side == side)
    }
}

/// The position "the hand" refers to.
pub fn hand_point(h: &HandObservation, which: HandPoint) -> Vec3 {
    match which {
        HandPoint::Wrist => h.joints[0],
        HandPoint::Palm => {
            let idx = [0usize, 5, 9, 13, 17];
            let mut p = [0.0f32; 3];
            for &j in &idx {
                for (a, c) in p.iter_mut().zip(h.joints[j]) {
                    *a += c / idx.len() as f32;
                }
            }
            p
        }
    }
}

const SPATIAL_TEMPLATES: [&str; 4] = [
    "Where is the {object} in relation to the {side} hand, and how far away is it?",
    "In the last frame, in which direction and at what distance is the {object} from the {side} hand?",
    "Relative to the {side} hand, where is the {object} now? Give the direction and the distance.",
    "How far is the {object} from the {side} hand in the final image, and in which direction?",
];
const TASK_TEMPLATES: [&str; 4] = [
    "How should the {side} hand move to {instruction}?",
    "To {instruction}, in which direction and how far should the {side} hand move?",
    "The goal is to {instruction}. Where should the {side} hand go, and how far?",
    "Which way and how far must the {side} hand travel to reach the {object}?",
];
const HAND_TEMPLATES: [&str; 4] = [
    "How far and in what direction did the {side} hand travel?",
    "Between these two frames, how did the {side} hand move?",
    "Describe the {side} hand's movement from the first frame to the second: direction and distance.",
    "In which direction and how far did the {side} hand move between the two images?",
];
const CAMERA_TEMPLATES: [&str; 3] = [
    "How did the camera move between these two frames?",
    "Describe the camera's rotation and translation from the first frame to the second.",
    "Between the two images, how did the camera turn, by how many degrees, and how did it move?",
];

fn fill(t: &str, side: Side, object: &str, instruction: &str) -> String {
    t.replace("{side}", side.as_str())
        .replace("{object}", object)
        .replace("{instruction}", instruction.trim_end_matches('.'))
}

/// One candidate before templating.
struct Candidate {
    frames: Vec<u32>,
    side: Option<Side>,
    object: Option<String>,
    vector: Vec3,
    camera: Option<(Vec3, f32, Vec3)>,
}

/// Frames nearest to each tick `t0 + k/sample_fps` (within half a period), deduplicated.
pub fn sample_frames(frames: &[CalibratedFrame], t0: f64, sample_fps: f32) -> Vec<usize> {
    let period = 1.0 / f64::from(sample_fps);
    let Some(last) = frames.last() else {
        return Vec::new();
    };
    let mut out: Vec<usize> = Vec::new();
    let mut k = 0u64;
    loop {
        let tick = t0 + k as f64 * period;
        if tick > last.time_s + 0.5 * period {
            break;
        }
        let best = frames.iter().enumerate().min_by(|a, b| {
            (a.1.time_s - tick)
                .abs()
                .total_cmp(&(b.1.time_s - tick).abs())
        });
        if let Some((i, f)) = best
            && (f.time_s - tick).abs() <= 0.5 * period
            && out.last() != Some(&i)
        {
            out.push(i);
        }
        k += 1;
    }
    out
}

/// Generates the visual samples of one clip. `frames` must be sorted by time and hold only
/// frames with a visible hand; `t0` is the clip's first frame time.
pub fn visual_samples(
    clip_id: &str,
    instruction: &str,
    target_object: Option<&str>,
    frames: &[CalibratedFrame],
    t0: f64,
    cfg: &QaConfig,
    seed: u64,
) -> Vec<Sample> {
    let picked = sample_frames(frames, t0, cfg.sample_fps);
    let sf: Vec<&CalibratedFrame> = picked.iter().map(|&i| &frames[i]).collect();
    let hp = |h: &HandObservation| hand_point(h, cfg.hand_point);
    let mut out = Vec::new();

    if cfg.spatial_relation {
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(seed, clip_id, 1));
        let mut cands = Vec::new();
        for i in 0..sf.len() {
            let len = rng.random_range(1..=cfg.max_context_frames.min(i + 1));
            let frames_idx: Vec<u32> = sf[i + 1 - len..=i].iter().map(|f| f.frame_idx).collect();
            let last = sf[i];
            for h in &last.hands {
                for (name, pos) in &last.objects {
                    cands.push(Candidate {
                        frames: frames_idx.clone(),
                        side: Some(h.side),
                        object: Some(name.clone()),
                        vector: sub(*pos, hp(h)),
                        camera: None,
                    });
                }
            }
        }
        emit(
            &mut out,
            clip_id,
            Task::SpatialRelation,
            cands,
            &SPATIAL_TEMPLATES,
            instruction,
            cfg,
            &mut rng,
        );
    }

    if cfg.task_completion
        && let Some(target) = target_object
    {
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(seed, clip_id, 2));
        let mut cands = Vec::new();
        for f in &sf {
            let Some((_, pos)) = f.objects.iter().find(|(n, _)| n == target) else {
                continue;
            };
            for h in &f.hands {
                cands.push(Candidate {
                    frames: vec![f.frame_idx],
                    side: Some(h.side),
                    object: Some(target.to_owned()),
                    vector: sub(*pos, hp(h)),
                    camera: None,
                });
            }
        }
        emit(
            &mut out,
            clip_id,
            Task::TaskCompletion,
            cands,
            &TASK_TEMPLATES,
            instruction,
            cfg,
            &mut rng,
        );
    }

    if cfg.hand_movement {
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(seed, clip_id, 3));
        let mut cands = Vec::new();
        for i in 0..sf.len() {
            for j in i + 1..=(i + cfg.max_pair_gap).min(sf.len().saturating_sub(1)) {
                let (a, b) = (sf[i], sf[j]);
                for ha in &a.hands {
                    let Some(hb) = b.hand(ha.side) else {
                        continue;
                    };
                    let pb = match (a.pose, b.pose) {
                        (Some(pa), Some(pbp)) => pa.apply_inverse(pbp.apply(hp(hb))),
                        _ => hp(hb),
                    };
                    cands.push(Candidate {
                        frames: vec![a.frame_idx, b.frame_idx],
                        side: Some(ha.side),
                        object: None,
                        vector: sub(pb, hp(ha)),
                        camera: None,
                    });
                }
            }
        }
        emit(
            &mut out,
            clip_id,
            Task::HandMovement,
            cands,
            &HAND_TEMPLATES,
            instruction,
            cfg,
            &mut rng,
        );
    }

    if cfg.camera_movement {
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(seed, clip_id, 4));
        let mut cands = Vec::new();
        for i in 0..sf.len() {
            for j in i + 1..=(i + cfg.max_pair_gap).min(sf.len().saturating_sub(1)) {
                let (Some(pa), Some(pb)) = (sf[i].pose, sf[j].pose) else {
                    continue;
                };
                let rel = pa.relative_to_self(&pb);
                let (axis, angle) = axis_angle(&rel.rotation);
                let deg = angle.to_degrees();
                let t = rel.translation;
                if deg < cfg.camera_min_deg && norm(t) < cfg.camera_min_m {
                    continue;
                }
                cands.push(Candidate {
                    frames: vec![sf[i].frame_idx, sf[j].frame_idx],
                    side: None,
                    object: None,
                    vector: axis,
                    camera: Some((axis, deg, t)),
                });
            }
        }
        emit(
            &mut out,
            clip_id,
            Task::CameraMovement,
            cands,
            &CAMERA_TEMPLATES,
            instruction,
            cfg,
            &mut rng,
        );
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn emit(
    out: &mut Vec<Sample>,
    clip_id: &str,
    task: Task,
    mut cands: Vec<Candidate>,
    templates: &[&str],
    instruction: &str,
    cfg: &QaConfig,
    rng: &mut ChaCha8Rng,
) {
    if cands.len() > cfg.max_per_type {
        let mut idx: Vec<usize> = (0..cands.len()).collect();
        idx.shuffle(rng);
        idx.truncate(cfg.max_per_type);
        idx.sort_unstable();
        let mut keep = vec![false; cands.len()];
        for i in idx {
            keep[i] = true;
        }
        let mut k = keep.into_iter();
        cands.retain(|_| k.next().unwrap_or(false));
    }
    for c in cands {
        let t = rng.random_range(0..templates.len());
        let side = c.side.unwrap_or(Side::Right);
        let object = c.object.clone().unwrap_or_default();
        let instr = if instruction.trim().is_empty() {
            format!("reach the {object}")
        } else {
            instruction.to_owned()
        };
        let question = fill(templates[t], side, &object, &instr);
        let (answer, truth, camera_translation) = match c.camera {
            Some((axis, deg, trans)) => (
                // A translation that prints as 0.00m gets no clause of its own.
                if norm(trans) >= 0.005 {
                    format!(
                        "{}; moved {}",
                        format_rotation(axis, deg, cfg.gamma),
                        format_translation(trans, cfg.gamma)
                    )
                } else {
                    format!("{}; no translation", format_rotation(axis, deg, cfg.gamma))
                },
                AnswerTruth {
                    directions: Directions::of_rotation(axis, cfg.gamma),
                    value: deg,
                    unit: Unit::Degrees,
                },
                Some(trans),
            ),
            None => (
                format_translation(c.vector, cfg.gamma),
                AnswerTruth {
                    directions: Directions::of_translation(c.vector, cfg.gamma),
                    value: norm(c.vector),
                    unit: Unit::Metres,
                },
                None,
            ),
        };
        out.push(Sample {
            clip_id: clip_id.to_owned(),
            task,
            frame_idxs: c.frames,
            template: t as u32,
            question,
            answer,
            side: c.side,
            object: c.object,
            truth: Some(truth),
            vector: Some(c.vector),
            camera_translation,
            motion_tokens: Vec::new(),
        });
    }
}
