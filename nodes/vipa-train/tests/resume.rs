//! The training loop without dora: the loss goes down on a learnable toy feed, a run that is
//! interrupted after a checkpoint and resumed reproduces the uninterrupted run's loss curve,
//! and a NaN feature never reaches the weights.

// Test helpers unwrap too: a panic there is a failed test with a line number.
#![allow(clippy::unwrap_used)]

use vipa_models::device::DeviceChoice;
use vipa_models::vipa::VipaVisionConfig;
use vipa_msgs::{QaSample, QaTarget, TaskType};
use vipa_train::join::{Features, Joined};
use vipa_train::metrics::read_losses;
use vipa_train::trainer::Trainer;
use vipa_train::{Checkpoints, TrainConfig};

fn cfg(out: &std::path::Path, max_steps: u64) -> TrainConfig {
    TrainConfig {
        out_dir: out.to_path_buf(),
        max_steps,
        batch_size: Some(2),
        checkpoint_every: 3,
        lr: Some(3e-2),
        warmup_ratio: 0.1,
        progress: false,
        // `VIPA_TEST_DEVICE=cuda` runs these on GPU 0 (a `--features cuda` build).
        device: match std::env::var("VIPA_TEST_DEVICE").as_deref() {
            Ok("cuda") => DeviceChoice::Cuda,
            _ => DeviceChoice::Cpu,
        },
        ..TrainConfig::default()
    }
}

/// Sample `k`: features whose sign says the answer (a learnable rule).
fn sample(k: u64) -> Joined {
    let v = VipaVisionConfig::tiny();
    let g = v.semantic.vision_config.grid_size();
    let d = v.semantic.vision_config.hidden_size;
    let spatial = v.spatial.as_ref().unwrap();
    let ns = (spatial.image_size / spatial.patch_size).pow(2);
    let ds = spatial.output_size;
    let left = !k.is_multiple_of(3);
    let sign = if left { -1.0 } else { 1.0 };
    let wobble = |i: usize| ((i * 7 + k as usize * 13) % 11) as f32 / 11.0 - 0.5;
    let vit: Vec<f32> = (0..g * g * d).map(|i| sign + 0.3 * wobble(i)).collect();
    let spa: Vec<f32> = (0..ns * ds).map(|i| -sign + 0.3 * wobble(i + 5)).collect();
    Joined {
        sample_seq: k,
        sample: QaSample {
            question_id: format!("q{k}"),
            task: TaskType::SpatialRelation,
            clip_id: "toy".into(),
            frame_indices: vec![0],
            question: "Where is the cup from the hand?".into(),
            answer: if left { "left, 0.12m" } else { "right, 0.30m" }.into(),
            target: QaTarget::default(),
            motion_tokens: None,
        },
        tokens_2d: vec![Features {
            shape: [g * g, d],
            values: vit,
            valid: None,
        }],
        tokens_3d: vec![Features {
            shape: [ns, ds],
            values: spa,
            valid: None,
        }],
    }
}

/// Trains until `max_steps`, feeding from the position the trainer asks for.
fn run(cfg: &TrainConfig, stop_after_samples: Option<u64>) -> Option<Trainer> {
    let dev = cfg.device.resolve().unwrap();
    let mut t = Trainer::new(cfg, &dev).unwrap();
    let mut k = t.samples_seen();
    while !t.done() {
        if stop_after_samples.is_some_and(|s| k >= s) {
            // Simulated crash: the trainer is dropped without finish().
            return Some(t);
        }
        t.train_sample(&sample(k)).unwrap();
        k += 1;
    }
    t.finish().unwrap();
    None
}

#[test]
fn loss_decreases_and_resume_reproduces_the_curve() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let steps = 12;
    run(&cfg(a.path(), steps), None);
    let full = read_losses(&a.path().join("metrics.csv")).unwrap();
    assert_eq!(full.len(), steps as usize);
    let head: f32 = full[..3].iter().map(|l| l.1).sum::<f32>() / 3.0;
    let tail: f32 = full[full.len() - 3..].iter().map(|l| l.1).sum::<f32>() / 3.0;
    assert!(tail < 0.7 * head, "loss did not go down: {full:?}");
    assert!(a.path().join("loss.png").is_file());
    assert!(a.path().join("summary.json").is_file());

    // Interrupted after step 7 (2 samples per step: 15 samples, one into step 8); the last
    // checkpoint is step 6; rows 7 were written after it and must be replaced on resume.
    let crashed = run(&cfg(b.path(), steps), Some(15));
    drop(crashed);
    let ckpts = Checkpoints::new(b.path().join("checkpoints"), 10);
    let steps_saved: Vec<u64> = ckpts.list().unwrap().iter().map(|c| c.0).collect();
    assert_eq!(steps_saved.last(), Some(&6), "{steps_saved:?}");
    run(&cfg(b.path(), steps), None);
    let resumed = read_losses(&b.path().join("metrics.csv")).unwrap();
    assert_eq!(resumed.len(), full.len(), "{resumed:?}");
    for ((s1, l1), (s2, l2)) in full.iter().zip(&resumed) {
        assert_eq!(s1, s2);
        assert!(
            (l1 - l2).abs() <= 1e-5 * l1.abs().max(1.0),
            "step {s1}: uninterrupted {l1}, resumed {l2}"
        );
    }
}

#[test]
fn nan_features_are_refused_before_any_update() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), 4);
    let dev = c.device.resolve().unwrap();
    let mut t = Trainer::new(&c, &dev).unwrap();
    let mut bad = sample(0);
    bad.tokens_2d[0].values[0] = f32::INFINITY;
    bad.tokens_2d[0].values[1] = f32::NAN;
    let err = t.train_sample(&bad).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("NaN") || text.contains("inf"), "{text}");
    assert!(text.contains("checkpoint"), "names what is kept: {text}");
    assert_eq!(t.step(), 0);
}

/// A motion sample: the answer is a waypoint sequence of motion tokens that the features
/// decide (two classes).
fn motion_sample(k: u64) -> Joined {
    let mut j = sample(k);
    j.sample.task = TaskType::MotionGeneration;
    j.sample.question = "Move the hand to the cup.".into();
    j.sample.answer = if !k.is_multiple_of(3) {
        "<mx_100><my_500><mz_300><mx_120><my_480><mz_310>"
    } else {
        "<mx_900><my_500><mz_700><mx_880><my_520><mz_690>"
    }
    .into();
    j
}

#[test]
fn stage_two_starts_from_stage_one_and_learns_motion_tokens() {
    let s1 = tempfile::tempdir().unwrap();
    let s2 = tempfile::tempdir().unwrap();
    run(&cfg(s1.path(), 3), None);
    let cfg2 = TrainConfig {
        stage: 2,
        init_from: Some(s1.path().join("checkpoints")),
        ..cfg(s2.path(), 12)
    };
    let dev = cfg2.device.resolve().unwrap();
    let mut t = Trainer::new(&cfg2, &dev).unwrap();
    let mut k = 0;
    while !t.done() {
        t.train_sample(&motion_sample(k)).unwrap();
        k += 1;
    }
    let s = t.finish().unwrap();
    assert!(
        s.last_loss.unwrap() < 0.5 * s.first_loss.unwrap(),
        "{:?} → {:?}",
        s.first_loss,
        s.last_loss
    );
    // The stage-2 checkpoint holds the grown vocabulary (258 bytes + 3072 motion rows).
    let ckpt = Checkpoints::new(s2.path().join("checkpoints"), 10)
        .latest(&dev)
        .unwrap()
        .unwrap();
    let embed = &ckpt.weights["language_model.model.embed_tokens.weight"];
    assert_eq!(embed.dims()[0], 258 + 3072);
}
