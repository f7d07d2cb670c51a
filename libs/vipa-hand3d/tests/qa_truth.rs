//! Hand3D-visual answers against the synthetic world's ground truth: the
//! issue's "with `sidecar`, Q&A distances match ground truth within 1 cm, and direction words
//! match the ground-truth vector".
//!
//! ```sh
//! cargo test -p vipa-hand3d --test qa_truth -- --nocapture
//! cargo test -p vipa-hand3d --test qa_truth -- --ignored --nocapture  # all 24
//! ```
//!
//! Clips come from `vipa_synth::generate_clip` with the default sample's settings (`make
//! data`: seed 0, 320×240, 15 fps, 4 s). The annotation sees what a dataflow sees: the
//! sidecar's millimetre depth, joints and boxes. The ground truth is computed here, from what
//! the annotation never sees — the renderer's per-pixel labels and float depth:
//! - the hand point: the palm centre (mean of joints 0, 5, 9, 13, 17; `qa.hand_point`) of the
//!   sidecar's joints;
//! - the object position: per-axis median of the camera-frame points of the pixels whose front
//!   surface is that object (its exact visible surface; `objects.complete_depth` off, see
//!   `vipa_hand3d::objects`).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use vipa_hand3d::answer::{Directions, parse_answer};
use vipa_hand3d::backend::ScaledBackend;
use vipa_hand3d::geometry::{Vec3, norm, sub};
use vipa_hand3d::truth::{SynthBackend, clip_inputs, clip_seed};
use vipa_hand3d::{Config, Task, annotate_clip};
use vipa_synth::render::label_object;
use vipa_synth::{GeneratedClip, SynthConfig, generate_clip};

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

fn palm(j: &[[f32; 3]; 21]) -> Vec3 {
    let idx = [0usize, 5, 9, 13, 17];
    [0, 1, 2].map(|a| idx.iter().map(|&i| j[i][a]).sum::<f32>() / 5.0)
}

/// Exact visible-surface position of object `k` in frame `f`: per-axis median over its
/// labelled pixels, back-projected with the renderer's float depth and its own pixel
/// convention (centres at integer coordinates). `None` when no pixel shows it.
fn visible_truth(g: &GeneratedClip, f: usize, k: usize) -> Option<Vec3> {
    let img = &g.frames[f];
    let kk = g.truth.info.intrinsics;
    let label = label_object(k);
    let (mut xs, mut ys, mut zs) = (Vec::new(), Vec::new(), Vec::new());
    for v in 0..img.height {
        for u in 0..img.width {
            let i = v * img.width + u;
            if img.label[i] == label && img.depth[i] > 0.0 {
                let p = kk.unproject(u as f32, v as f32, img.depth[i]);
                xs.push(p[0]);
                ys.push(p[1]);
                zs.push(p[2]);
            }
        }
    }
    (!xs.is_empty()).then(|| [median(xs), median(ys), median(zs)])
}

/// Whether `words` are the direction words of some vector within `eps` of `truth`: per axis,
/// the word (or its absence) of `truth` itself, or either where `truth`'s share of its unit
/// vector is within `eps / (|truth| − eps)` of γ (a vector that close can cross γ: the share
/// `v_i/|v|` moves by at most `|dv|/|v|`).
fn directions_consistent(words: Directions, truth: Vec3, gamma: f32, eps: f32) -> bool {
    let n = norm(truth);
    let want = Directions::of_translation(truth, gamma);
    let slack = if n > eps {
        eps / (n - eps)
    } else {
        f32::INFINITY
    };
    (0..3).all(|a| {
        let share = truth[a] / n;
        words.0[a] == want.0[a]
            || ((share.abs() - gamma).abs() <= slack
                && (words.0[a] == 0 || words.0[a] == share.signum() as i8))
    })
}

#[derive(Default)]
struct Tally {
    answers: usize,
    within_1cm: usize,
    consistent_dirs: usize,
    exact_dirs: usize,
    errors: Vec<f32>,
    scale_errors: Vec<f32>,
    worst: Vec<String>,
}

/// Annotates clips `0..n` of the default sample settings and scores every spatial-relation
/// and task-completion answer.
fn score(n: u32, cfg: &Config, backend: SynthBackend) -> Tally {
    let mut t = Tally::default();
    for index in 0..n {
        let g = generate_clip(SynthConfig::default(), 0, index).unwrap();
        let truth = &g.truth;
        let ann = annotate_clip(&clip_inputs(truth, backend, cfg).unwrap(), cfg).unwrap();
        let factor = match backend {
            SynthBackend::Sidecar => 1.0,
            SynthBackend::Scaled(_) => ScaledBackend::clip_factor(clip_seed(&truth.info)),
        };
        t.scale_errors.push((ann.stats.scale * factor - 1.0).abs());
        for s in &ann.samples {
            if !matches!(s.task, Task::SpatialRelation | Task::TaskCompletion) {
                continue;
            }
            let f = *s.frame_idxs.last().unwrap() as usize;
            let frame = &truth.frames[f];
            let hand = frame
                .hands
                .iter()
                .find(|h| Some(h.side.as_str()) == s.side.map(|x| x.as_str()))
                .unwrap();
            let k = truth
                .info
                .objects
                .iter()
                .position(|o| Some(&o.name) == s.object.as_ref())
                .unwrap();
            let gt = sub(
                visible_truth(&g, f, k).expect("an asked-about object is visible"),
                palm(&hand.joints_cam),
            );
            let p = parse_answer(&s.answer).unwrap();
            let err = (p.value - norm(gt)).abs();
            t.answers += 1;
            t.errors.push(err);
            t.within_1cm += usize::from(err <= 0.01);
            t.consistent_dirs +=
                usize::from(directions_consistent(p.directions, gt, cfg.qa.gamma, 0.01));
            t.exact_dirs +=
                usize::from(p.directions == Directions::of_translation(gt, cfg.qa.gamma));
            if err > 0.01 {
                t.worst.push(format!(
                    "{} frame {f} {:?} '{}' vs truth {:.4} m",
                    truth.info.clip_id,
                    s.object,
                    s.answer,
                    norm(gt)
                ));
            }
        }
    }
    t
}

/// The calibration the tests run with: the paper's formula with each joint's skin offset
/// modelled (`calibration.joint_thickness_prior`; the map sees the skin, a joint's
/// half-thickness in front of its centre; see `vipa_hand3d::calibrate`).
fn config() -> Config {
    let mut cfg = Config::default();
    cfg.calibration.joint_thickness_prior = true;
    cfg
}

/// The same with the single 9 mm offset the dataflow tests use.
fn config_offset() -> Config {
    let mut cfg = Config::default();
    cfg.calibration.surface_offset_m = 0.009;
    cfg
}

fn check(n: u32, cfg: &Config, what: &str) {
    let t = score(n, cfg, SynthBackend::Sidecar);
    let within = t.within_1cm as f32 / t.answers as f32;
    let consistent = t.consistent_dirs as f32 / t.answers as f32;
    println!(
        "{what}: {n} clips, {} object answers: distance within 1 cm {:.4} (median error {:.4} \
         m, max {:.4} m); direction words consistent {:.4}, identical to the truth's {:.4}; \
         scale |s − 1| median {:.4} max {:.4}",
        t.answers,
        within,
        median(t.errors.clone()),
        t.errors.iter().copied().fold(0.0, f32::max),
        consistent,
        t.exact_dirs as f32 / t.answers as f32,
        median(t.scale_errors.clone()),
        t.scale_errors.iter().copied().fold(0.0, f32::max),
    );
    for w in &t.worst {
        println!("  over 1 cm: {w}");
    }
    assert!(t.answers >= 20 * n as usize, "{} answers", t.answers);
    assert!(within >= 0.99, "{what}: distance within 1 cm: {within}");
    assert!(
        consistent >= 0.99,
        "{what}: direction words consistent: {consistent}"
    );
}

#[test]
fn object_answers_match_the_synthetic_truth() {
    check(6, &config(), "joint-thickness calibration");
}

#[test]
#[ignore = "the whole default sample (24 clips, twice; 20–60 s): run with --ignored --nocapture"]
fn object_answers_match_the_synthetic_truth_on_the_default_sample() {
    check(24, &config(), "joint-thickness calibration");
    check(24, &config_offset(), "9 mm offset calibration");
}

/// The `scaled` backend (depth × a hidden per-clip factor in [0.3, 3] × 1 % per-pixel noise,
/// ≈ 5 mm at the table): calibration recovers the factor and the object statistic copes with
/// the noise (the table band widens with the ring's residuals). Looser than the sidecar
/// criterion, which the issue sets for ground-truth depth only.
#[test]
fn object_answers_survive_scaled_noisy_depth() {
    let t = score(6, &config(), SynthBackend::Scaled(ScaledBackend::default()));
    let within_2cm = t.errors.iter().filter(|e| **e <= 0.02).count() as f32 / t.answers as f32;
    println!(
        "scaled backend, 6 clips, {} object answers: within 1 cm {:.4}, within 2 cm {:.4}, \
         median error {:.4} m; clip scale |s·factor − 1| median {:.4}",
        t.answers,
        t.within_1cm as f32 / t.answers as f32,
        within_2cm,
        median(t.errors.clone()),
        median(t.scale_errors.clone()),
    );
    assert!(t.answers >= 120, "{} answers", t.answers);
    assert!(within_2cm >= 0.97, "within 2 cm: {within_2cm}");
    assert!(t.within_1cm as f32 >= 0.9 * t.answers as f32);
}
