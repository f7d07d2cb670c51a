//! Hand3D-action: wrist trajectories → chunks → motion tokens → the three motion tasks.
//!
//! **Token math** is `vipa_msgs::motion::MotionBins::PAPER` (x, y ∈ [−0.5, 0.5] m,
//! z ∈ [0, 1] m, 1024 bins per axis, clipped, decoded at bin centres); this module only adds
//! the text spelling and the trajectory handling.
//!
//! **Text spelling of motion tokens:** each waypoint is three special tokens, no spaces,
//! `<mx_{i}><my_{j}><mz_{k}>` with `i, j, k` decimal bin indices without padding (`0..=1023`):
//! `<mx_512><my_400><mz_300>`. The LLM adds the 3 × 1024 tokens `<mx_0>…<mx_1023>`,
//! `<my_0>…<my_1023>`, `<mz_0>…<mz_1023>` to its vocabulary.
//!
//! **Trajectories.** The wrist is joint 0 of each visible hand. A track is cut where it is not
//! observed for more than `max_gap_s`, then into `chunk_s` chunks (the last one may be
//! shorter), resampled at `waypoints_per_s` by linear interpolation. Waypoints are expressed in
//! the camera frame of the chunk's *first* frame (the image the model sees): when camera poses
//! are known, later wrist positions are moved through the world into that frame, so camera
//! motion does not masquerade as hand motion. A chunk whose wrist never leaves a
//! `min_motion_m` ball around its first waypoint is filtered as insignificant motion.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vipa_msgs::motion::MotionBins;

use crate::answer::Directions;
use crate::config::ActionConfig;
use crate::geometry::{Pose, Vec3, norm, sub};
use crate::observe::Side;
use crate::sample::{Sample, Task};
use crate::stats::mix_seed;

/// The tokenizer box used everywhere (the paper's).
pub const BINS: MotionBins = MotionBins::PAPER;

/// `<mx_i><my_j><mz_k>` per waypoint, concatenated.
pub fn tokens_to_text(tokens: &[[u32; 3]]) -> String {
    let mut s = String::with_capacity(tokens.len() * 24);
    for t in tokens {
        s.push_str(&format!("<mx_{}><my_{}><mz_{}>", t[0], t[1], t[2]));
    }
    s
}

/// Inverse of [`tokens_to_text`]: every `<mA_n>` token in order, grouped in (x, y, z)
/// triples. `None` if the tokens are not in x, y, z order, a bin is out of range, or the count
/// is not a multiple of 3. Text between tokens is ignored.
pub fn parse_token_text(text: &str) -> Option<Vec<[u32; 3]>> {
    let mut flat: Vec<u32> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<m") {
        let after = &rest[start + 2..];
        let end = after.find('>')?;
        let body = &after[..end];
        let (axis, num) = body.split_once('_')?;
        let want = ["x", "y", "z"][flat.len() % 3];
        if axis != want {
            return None;
        }
        let bin: u32 = num.parse().ok()?;
        if bin >= BINS.bins {
            return None;
        }
        flat.push(bin);
        rest = &after[end + 1..];
    }
    if !flat.len().is_multiple_of(3) {
        return None;
    }
    Some(flat.chunks(3).map(|c| [c[0], c[1], c[2]]).collect())
}

/// One observation of a wrist.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WristSample {
    pub time_s: f64,
    pub frame_idx: u32,
    /// In the camera frame of this sample's frame, metres.
    pub position: Vec3,
    /// Camera → world pose of this frame, when known.
    pub pose: Option<Pose>,
}

/// A resampled wrist trajectory chunk of one hand.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub side: Side,
    /// Waypoints in the camera frame of `frame_idxs[0]`, metres, `f32[waypoints, 3]`.
    pub points: Vec<Vec3>,
    /// Nearest observed frame of each waypoint.
    pub frame_idxs: Vec<u32>,
}

impl Chunk {
    /// Largest distance of any waypoint from the first one.
    pub fn max_excursion(&self) -> f32 {
        let p0 = self.points.first().copied().unwrap_or([0.0; 3]);
        self.points
            .iter()
            .map(|p| norm(sub(*p, p0)))
            .fold(0.0, f32::max)
    }

    pub fn tokens(&self) -> Vec<[u32; 3]> {
        self.points.iter().map(|p| BINS.encode(*p)).collect()
    }
}

/// Cuts a time-sorted track into chunks (see the module docs). Chunks shorter than
/// `min_waypoints` are dropped.
pub fn wrist_chunks(side: Side, track: &[WristSample], cfg: &ActionConfig) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut seg_start = 0;
    for i in 1..=track.len() {
        let split =
            i == track.len() || track[i].time_s - track[i - 1].time_s > f64::from(cfg.max_gap_s);
        if split {
            chunk_segment(side, &track[seg_start..i], cfg, &mut out);
            seg_start = i;
        }
    }
    out
}

fn chunk_segment(side: Side, seg: &[WristSample], cfg: &ActionConfig, out: &mut Vec<Chunk>) {
    let (Some(first), Some(last)) = (seg.first(), seg.last()) else {
        return;
    };
    let step = 1.0 / f64::from(cfg.waypoints_per_s);
    let chunk_s = f64::from(cfg.chunk_s);
    let mut cs = first.time_s;
    while cs <= last.time_s {
        let ce = cs + chunk_s;
        let mut points = Vec::new();
        let mut frames = Vec::new();
        let mut reference: Option<Option<Pose>> = None;
        let mut j = 0usize; // index of the sample at or before t
        let mut k = 0u32;
        loop {
            let t = cs + f64::from(k) * step;
            if t >= ce - 1e-9 || t > last.time_s + 1e-9 {
                break;
            }
            while j + 1 < seg.len() && seg[j + 1].time_s <= t {
                j += 1;
            }
            let a = &seg[j];
            let b = seg.get(j + 1).unwrap_or(a);
            let nearest = if (t - a.time_s).abs() <= (b.time_s - t).abs() {
                a
            } else {
                b
            };
            let ref_pose = *reference.get_or_insert(nearest.pose);
            let pa = to_reference(a, ref_pose);
            let pb = to_reference(b, ref_pose);
            let w = if b.time_s > a.time_s {
                ((t - a.time_s) / (b.time_s - a.time_s)).clamp(0.0, 1.0) as f32
            } else {
                0.0
            };
            points.push([0, 1, 2].map(|i| pa[i] + w * (pb[i] - pa[i])));
            frames.push(nearest.frame_idx);
            k += 1;
        }
        if points.len() >= cfg.min_waypoints {
            out.push(Chunk {
                side,
                points,
                frame_idxs: frames,
            });
        }
        cs = ce;
    }
}

fn to_reference(s: &WristSample, reference: Option<Pose>) -> Vec3 {
    match (reference, s.pose) {
        (Some(r), Some(p)) => r.apply_inverse(p.apply(s.position)),
        _ => s.position,
    }
}

/// A description of a waypoint sequence from its geometry:
/// `"move the right hand left and forward by 0.21m, then down by 0.10m"`.
pub fn describe_motion(side: Side, points: &[Vec3], cfg: &ActionConfig, gamma: f32) -> String {
    let seg = ((cfg.description_segment_s * cfg.waypoints_per_s).round() as usize).max(1);
    let mut phases: Vec<(Directions, Vec3)> = Vec::new();
    let mut s = 0;
    while s + 1 < points.len() {
        let e = (s + seg).min(points.len() - 1);
        let d = sub(points[e], points[s]);
        if norm(d) >= cfg.min_segment_m {
            let dir = Directions::of_translation(d, gamma);
            if let Some((_, acc)) = phases.last_mut().filter(|(last, _)| *last == dir) {
                *acc = [acc[0] + d[0], acc[1] + d[1], acc[2] + d[2]];
            } else {
                phases.push((dir, d));
            }
        }
        s = e;
    }
    if phases.is_empty() {
        return format!("keep the {} hand roughly still", side.as_str());
    }
    let parts: Vec<String> = phases
        .iter()
        .map(|(dir, d)| format!("{} by {:.2}m", dir.translation_phrase(), norm(*d)))
        .collect();
    format!("move the {} hand {}", side.as_str(), parts.join(", then "))
}

const GENERATION_TEMPLATES: [&str; 3] = [
    "Instruction: {instruction}. Generate the {side} hand's wrist motion for the next {secs} seconds.",
    "The task is to {instruction}. Predict the 3D trajectory of the {side} wrist as motion tokens.",
    "How should the {side} hand move to {instruction}? Answer with motion tokens.",
];
const TRANSLATION_TEMPLATES: [&str; 3] = [
    "Describe this {side} hand motion in words: {tokens}",
    "What does the {side} hand do in this wrist trajectory? {tokens}",
    "Translate the motion tokens of the {side} hand into an instruction: {tokens}",
];
const PREDICTION_TEMPLATES: [&str; 3] = [
    "Instruction: {instruction}. The {side} wrist has moved like this: {tokens} Continue the motion.",
    "While trying to {instruction}, the {side} hand followed {tokens} What comes next?",
    "Given the earlier {side} hand motion {tokens} and the current image, predict the next motion tokens for: {instruction}.",
];

fn fill(t: &str, side: Side, instruction: &str, tokens: &str, secs: f32) -> String {
    t.replace("{side}", side.as_str())
        .replace("{instruction}", instruction.trim_end_matches('.'))
        .replace("{tokens}", tokens)
        .replace("{secs}", &format!("{secs:.0}"))
}

/// Counts of the action step of one clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ActionCounts {
    pub chunks: usize,
    /// Chunks dropped for insignificant wrist motion.
    pub filtered_static: usize,
}

/// The three motion tasks for every significant chunk (each task switchable in the config).
pub fn action_samples(
    clip_id: &str,
    instruction: &str,
    chunks: &[Chunk],
    cfg: &ActionConfig,
    gamma: f32,
    seed: u64,
) -> (Vec<Sample>, ActionCounts) {
    let mut out = Vec::new();
    let mut counts = ActionCounts {
        chunks: chunks.len(),
        filtered_static: 0,
    };
    for (ci, chunk) in chunks.iter().enumerate() {
        if chunk.max_excursion() < cfg.min_motion_m {
            counts.filtered_static += 1;
            continue;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(seed, clip_id, 0xAC7_0000 + ci as u64));
        let tokens = chunk.tokens();
        let text = tokens_to_text(&tokens);
        let secs = chunk.points.len() as f32 / cfg.waypoints_per_s;
        let base = |task: Task,
                    template: usize,
                    frames: Vec<u32>,
                    q: String,
                    a: String,
                    toks: &[[u32; 3]]| Sample {
            clip_id: clip_id.to_owned(),
            task,
            frame_idxs: frames,
            template: template as u32,
            question: q,
            answer: a,
            side: Some(chunk.side),
            object: None,
            truth: None,
            vector: None,
            camera_translation: None,
            motion_tokens: toks.iter().flatten().copied().collect(),
        };
        if cfg.motion_generation {
            let t = rng.random_range(0..GENERATION_TEMPLATES.len());
            let q = fill(GENERATION_TEMPLATES[t], chunk.side, instruction, "", secs);
            out.push(base(
                Task::MotionGeneration,
                t,
                vec![chunk.frame_idxs[0]],
                q,
                text.clone(),
                &tokens,
            ));
        }
        if cfg.motion_translation {
            let t = rng.random_range(0..TRANSLATION_TEMPLATES.len());
            let q = fill(
                TRANSLATION_TEMPLATES[t],
                chunk.side,
                instruction,
                &text,
                secs,
            );
            let a = describe_motion(chunk.side, &chunk.points, cfg, gamma);
            out.push(base(Task::MotionTranslation, t, Vec::new(), q, a, &tokens));
        }
        if cfg.motion_prediction && tokens.len() >= 2 {
            let split = tokens.len() / 2;
            let t = rng.random_range(0..PREDICTION_TEMPLATES.len());
            let q = fill(
                PREDICTION_TEMPLATES[t],
                chunk.side,
                instruction,
                &tokens_to_text(&tokens[..split]),
                secs,
            );
            let a = tokens_to_text(&tokens[split..]);
            out.push(base(
                Task::MotionPrediction,
                t,
                vec![chunk.frame_idxs[split]],
                q,
                a,
                &tokens[split..],
            ));
        }
    }
    (out, counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_within_half_a_bin_inside_the_box() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..5000 {
            let p = [
                rng.random_range(-0.5f32..0.5),
                rng.random_range(-0.5f32..0.5),
                rng.random_range(0.0f32..1.0),
            ];
            let q = BINS.decode(BINS.encode(p));
            for i in 0..3 {
                assert!((p[i] - q[i]).abs() <= 0.5e-3, "{p:?} -> {q:?}");
            }
        }
    }

    #[test]
    fn outside_points_clip_to_edge_bins_not_wrap() {
        assert_eq!(BINS.encode([-0.9, 0.7, 1.8]), [0, 1023, 1023]);
        assert_eq!(BINS.encode([0.5001, -3.0, -0.2]), [1023, 0, 0]);
        let q = BINS.decode(BINS.encode([2.0, -2.0, 5.0]));
        assert!(q[0] > 0.499 && q[1] < -0.499 && q[2] > 0.999);
    }

    #[test]
    fn token_text_round_trips_and_rejects_disorder() {
        let toks = vec![[0, 512, 1023], [17, 4, 999]];
        let s = tokens_to_text(&toks);
        assert_eq!(s, "<mx_0><my_512><mz_1023><mx_17><my_4><mz_999>");
        assert_eq!(parse_token_text(&s), Some(toks));
        assert_eq!(parse_token_text("<my_1><mx_2><mz_3>"), None);
        assert_eq!(parse_token_text("<mx_1><my_2>"), None);
        assert_eq!(parse_token_text("<mx_1024><my_2><mz_3>"), None);
    }

    fn line_track(n: usize, fps: f64, v: Vec3) -> Vec<WristSample> {
        (0..n)
            .map(|i| {
                let t = i as f64 / fps;
                WristSample {
                    time_s: t,
                    frame_idx: i as u32,
                    position: [
                        v[0] * t as f32,
                        0.1 + v[1] * t as f32,
                        0.5 + v[2] * t as f32,
                    ],
                    pose: None,
                }
            })
            .collect()
    }

    #[test]
    fn chunks_resample_linear_motion_exactly() {
        let cfg = ActionConfig {
            chunk_s: 2.0,
            ..ActionConfig::default()
        };
        // 5 s at 30 fps moving 0.04 m/s right.
        let track = line_track(150, 30.0, [0.04, 0.0, 0.0]);
        let chunks = wrist_chunks(Side::Right, &track, &cfg);
        // Chunks [0,2), [2,4), [4,4.97]: 8, 8 and 4 waypoints at 4 Hz.
        assert_eq!(
            chunks.iter().map(|c| c.points.len()).collect::<Vec<_>>(),
            vec![8, 8, 4]
        );
        let p = chunks[1].points[3]; // t = 2.75 s
        assert!((p[0] - 0.11).abs() < 1e-5, "{p:?}");
        assert_eq!(chunks[1].frame_idxs[0], 60);
        // A gap longer than max_gap_s splits the track.
        let mut gapped = track.clone();
        gapped.drain(40..70);
        let c2 = wrist_chunks(Side::Right, &gapped, &cfg);
        assert!(
            c2.iter()
                .all(|c| c.frame_idxs.iter().all(|&f| !(40..70).contains(&f)))
        );
    }

    #[test]
    fn camera_motion_is_removed_from_wrist_chunks() {
        // The wrist is still in the world; the camera slides right at 0.05 m/s, so in each
        // frame's own camera the wrist drifts left. In the first frame's camera it is still.
        let cfg = ActionConfig::default();
        let track: Vec<WristSample> = (0..60)
            .map(|i| {
                let t = i as f64 / 10.0;
                let cam_x = 0.05 * t as f32;
                WristSample {
                    time_s: t,
                    frame_idx: i,
                    position: [0.1 - cam_x, 0.0, 0.6],
                    pose: Some(Pose {
                        translation: [cam_x, 0.0, 0.0],
                        ..Pose::IDENTITY
                    }),
                }
            })
            .collect();
        let chunks = wrist_chunks(Side::Left, &track, &cfg);
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].max_excursion() < 1e-5);
        let (samples, counts) = action_samples("c", "wave", &chunks, &cfg, 0.3, 0);
        assert!(samples.is_empty());
        assert_eq!(counts.filtered_static, 1);
    }

    #[test]
    fn description_follows_the_geometry() {
        let cfg = ActionConfig::default();
        // 2 s left+forward 0.15 m each axis, then 2 s down 0.10 m (4 Hz waypoints).
        let mut pts = Vec::new();
        for k in 0..=8 {
            let f = k as f32 / 8.0;
            pts.push([-0.15 * f, 0.0, 0.5 + 0.15 * f]);
        }
        for k in 1..=8 {
            let f = k as f32 / 8.0;
            pts.push([-0.15, 0.10 * f, 0.65]);
        }
        let d = describe_motion(Side::Right, &pts, &cfg, 0.3);
        let lf = (2.0f32 * 0.15 * 0.15).sqrt();
        assert_eq!(
            d,
            format!("move the right hand left and forward by {lf:.2}m, then down by 0.10m")
        );
    }

    #[test]
    fn three_tasks_per_moving_chunk_with_consistent_tokens() {
        let cfg = ActionConfig::default();
        let track = line_track(300, 30.0, [0.03, 0.0, 0.01]);
        let chunks = wrist_chunks(Side::Right, &track, &cfg);
        let (samples, counts) = action_samples("clip", "pick up the cup", &chunks, &cfg, 0.3, 9);
        assert_eq!(counts.filtered_static, 0);
        assert_eq!(samples.len(), 3 * chunks.len());
        let generation = &samples[0];
        assert_eq!(generation.task, Task::MotionGeneration);
        let parsed = parse_token_text(&generation.answer).unwrap();
        assert_eq!(parsed.len(), chunks[0].points.len());
        let prediction = &samples[2];
        let ctx = parse_token_text(&prediction.question).unwrap();
        let next = parse_token_text(&prediction.answer).unwrap();
        assert_eq!([ctx, next].concat(), parsed);
        assert!(samples[1].answer.starts_with("move the right hand right"));
    }
}
