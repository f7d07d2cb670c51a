//! Benchmark of the per-clip Hand3D step — back-projection, joint sampling, object positions,
//! scale calibration, Q&A answers and motion tokenization — on a deterministic synthetic
//! clip. Its NumPy twin is `benches/hand3d_step.py`; both print the same `CHECK` lines, so
//! equal outputs can be confirmed before comparing `RESULT` timings.
//!
//! `target/debug/hand3d-step [repeats]` (`make bench` runs it with its twin)
//!
//! Workload (identical in the twin): 320×240 pixels, horizontal FOV 60°, 100 frames. True depth
//! = a table plane (y = 0.3 m) and a wall (z = 1.3 m); the 21 joints of a right hand drawn as
//! 7×7-pixel billboards at their own depth; two cube fronts as objects. The "estimated" depth
//! is the truth × 1.7 × (1 + 0.02·(hash noise − ½)), so calibration has a scale to find.
//! Printed: `RESULT hand3d_step_rust median_ms min_ms frames` and `CHECK` lines.

use std::time::Instant;

use vipa_hand3d::answer::format_translation;
use vipa_hand3d::calibrate::{fit_scale, joint_ratios};
use vipa_hand3d::config::HandPoint;
use vipa_hand3d::geometry::{Vec3, backproject, sub};
use vipa_hand3d::motion::{BINS, tokens_to_text};
use vipa_hand3d::qa::hand_point;
use vipa_hand3d::stats::fnv1a;
use vipa_hand3d::{Config, FrameInput, HandInput, Intrinsics, ObjectInput, Side, observe_frame};

const W: u32 = 320;
const H: u32 = 240;
const N: u32 = 100;
const FACTOR: f64 = 1.7;
/// `(name, centre, half size)` of the two cubes.
const CUBES: [(&str, [f32; 3], f32); 2] = [
    ("green cube", [-0.1, 0.15, 0.8], 0.04),
    ("red cube", [0.12, 0.2, 0.7], 0.03),
];

struct Frame {
    depth_est: Vec<f32>,
    joints: [Vec3; 21],
    boxes: Vec<(String, [f32; 4])>,
}

fn joints(f: u32) -> [Vec3; 21] {
    let t = f as f32 / (N - 1) as f32;
    let w = [0.15 - 0.2 * t, 0.1, 0.55 + 0.15 * t];
    let mut j = [w; 21];
    for finger in 0..5usize {
        let (x, y0) = if finger == 0 {
            (-0.035f32, -0.015f32)
        } else {
            ((finger as f32 - 1.5) * 0.02, -0.07)
        };
        for s in 0..4usize {
            j[1 + finger * 4 + s] = [
                w[0] + x,
                w[1] + y0 - 0.022 * s as f32,
                w[2] + 0.002 * s as f32,
            ];
        }
    }
    j
}

fn noise(i: u64, f: u64) -> f64 {
    let h = (i
        .wrapping_mul(2_654_435_761)
        .wrapping_add(f.wrapping_mul(40_503)))
        % (1u64 << 32);
    h as f64 / (1u64 << 32) as f64 - 0.5
}

fn workload(k: &Intrinsics) -> Vec<Frame> {
    let (w, h) = (W as usize, H as usize);
    (0..N)
        .map(|f| {
            let mut depth = vec![0f64; w * h];
            for row in 0..h {
                let dy = (row as f64 + 0.5 - f64::from(k.cy)) / f64::from(k.fy);
                let table = if dy > 0.0 { 0.3 / dy } else { f64::INFINITY };
                for d in &mut depth[row * w..(row + 1) * w] {
                    *d = table.min(1.3);
                }
            }
            let mut paint = |u0: f32, v0: f32, u1: f32, v1: f32, z: f32| {
                let c0 = (u0.floor().max(0.0)) as usize;
                let c1 = (u1.floor().min(W as f32 - 1.0)) as usize;
                let r0 = (v0.floor().max(0.0)) as usize;
                let r1 = (v1.floor().min(H as f32 - 1.0)) as usize;
                for row in r0..=r1 {
                    for col in c0..=c1 {
                        let d = &mut depth[row * w + col];
                        *d = d.min(f64::from(z));
                    }
                }
            };
            let mut boxes = Vec::new();
            for (name, c, hs) in CUBES {
                let z = c[2] - hs;
                let u0 = k.fx * (c[0] - hs) / z + k.cx;
                let u1 = k.fx * (c[0] + hs) / z + k.cx;
                let v0 = k.fy * (c[1] - hs) / z + k.cy;
                let v1 = k.fy * (c[1] + hs) / z + k.cy;
                paint(u0, v0, u1, v1, z);
                boxes.push((name.to_owned(), [u0, v0, u1, v1]));
            }
            let js = joints(f);
            for p in js {
                let u = (k.fx * p[0] / p[2] + k.cx).floor();
                let v = (k.fy * p[1] / p[2] + k.cy).floor();
                paint(u - 3.0, v - 3.0, u + 3.0, v + 3.0, p[2]);
            }
            let depth_est = depth
                .iter()
                .enumerate()
                .map(|(i, d)| (d * FACTOR * (1.0 + 0.02 * noise(i as u64, u64::from(f)))) as f32)
                .collect();
            Frame {
                depth_est,
                joints: js,
                boxes,
            }
        })
        .collect()
}

struct Out {
    scale: f32,
    answers: Vec<String>,
    tokens: String,
}

fn step(frames: &[Frame], k: &Intrinsics, cfg: &Config) -> Result<Out, Box<dyn std::error::Error>> {
    let mut obs = Vec::with_capacity(frames.len());
    for (f, fr) in frames.iter().enumerate() {
        let pm = backproject(&fr.depth_est, k)?;
        let input = FrameInput {
            frame_idx: f as u32,
            point_map: &pm,
            hands: vec![HandInput {
                side: Side::Right,
                joints: fr.joints,
                gt_visible: None,
            }],
            objects: fr
                .boxes
                .iter()
                .map(|(name, bbox)| ObjectInput {
                    name: name.clone(),
                    bbox: *bbox,
                })
                .collect(),
            camera_pose: None,
        };
        obs.push(observe_frame(&input, k, cfg)?);
    }
    let ratios: Vec<f32> = obs.iter().flat_map(|o| joint_ratios(o, 0.0)).collect();
    let cal = fit_scale(&ratios, 5).ok_or("no joints to calibrate")?;
    let s = cal.scale;
    let gamma = cfg.qa.gamma;
    let mut answers = Vec::new();
    for o in &obs {
        let palm = hand_point(&o.hands[0], HandPoint::Palm);
        for obj in &o.objects {
            if let Some(p) = obj.raw_position {
                answers.push(format_translation(sub(p.map(|c| c * s), palm), gamma));
            }
        }
    }
    for i in 0..obs.len().saturating_sub(10) {
        let a = hand_point(&obs[i].hands[0], HandPoint::Palm);
        let b = hand_point(&obs[i + 10].hands[0], HandPoint::Palm);
        answers.push(format_translation(sub(b, a), gamma));
    }
    let toks: Vec<[u32; 3]> = obs
        .iter()
        .map(|o| BINS.encode(o.hands[0].joints[0]))
        .collect();
    Ok(Out {
        scale: s,
        answers,
        tokens: tokens_to_text(&toks),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1);
    if matches!(arg.as_deref(), Some("-h" | "--help")) {
        println!(
            "hand3d-step: times the annotation step (calibration, Q&A, motion tokens) of one \
             100-frame clip, against benches/hand3d_step.py\n\nUsage: hand3d-step [REPEATS] \
             (default 5)"
        );
        return Ok(());
    }
    let repeats: usize = match arg {
        None => 5,
        Some(a) => a
            .parse()
            .map_err(|_| format!("REPEATS must be a positive integer, not `{a}`; see --help"))?,
    };
    // 60° horizontal FOV, written out so that both twins start from the same f32 bits.
    let k = Intrinsics {
        fx: 277.128_13,
        fy: 277.128_13,
        cx: 160.0,
        cy: 120.0,
        width: W,
        height: H,
    };
    let frames = workload(&k);
    // The NumPy twin implements the simplest object statistic (central box median, 2D hand
    // mask, thickness prior): the centre estimator without table segmentation.
    let mut cfg = Config::default();
    cfg.objects.complete_depth = true;
    cfg.objects.segment_table = false;
    let mut times = Vec::new();
    let mut out = None;
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        out = Some(step(&frames, &k, &cfg)?);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let out = out.ok_or("no run")?;
    times.sort_by(f64::total_cmp);
    println!(
        "RESULT hand3d_step_rust {:.3} {:.3} {}",
        times[times.len() / 2],
        times[0],
        frames.len()
    );
    println!("CHECK scale {:.6} (true {:.6})", out.scale, 1.0 / FACTOR);
    println!(
        "CHECK answers {} first {:?}",
        out.answers.len(),
        out.answers[0]
    );
    println!(
        "CHECK answers_fnv {:016x}",
        fnv1a(out.answers.join("|").as_bytes())
    );
    println!(
        "CHECK tokens_fnv {:016x} head {}",
        fnv1a(out.tokens.as_bytes()),
        &out.tokens[..24.min(out.tokens.len())]
    );
    Ok(())
}
