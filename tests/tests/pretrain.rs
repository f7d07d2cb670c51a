//! The main job's chain through the real `dora` CLI with the `tiny` preset: synthetic clips →
//! `annotate.yml` → `pretrain.yml` (stage 1) → `eval.yml` on the held-out clips. Checks that
//! the loss went down, that every output exists, that a trainer killed with SIGKILL resumes and
//! reproduces the uninterrupted run's loss curve, and that evaluation scores the test split.

// Test helpers unwrap too: a panic there is a failed test with a line number.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vipa_e2e::{Dataflow, dora_cli, dora_run, inline_yaml, yaml_path};
use vipa_hand3d::{DatasetReader, Split};
use vipa_synth::{SynthConfig, generate_clip, write_clip};

const STOP_AFTER: Duration = Duration::from_secs(240);

fn build() {
    vipa_e2e::build_nodes(&[
        "vipa-video-ingest",
        "vipa-lift-depth",
        "vipa-lift-hands",
        "vipa-annotate",
        "vipa-dataset-reader",
        "vipa-encoder-2d",
        "vipa-encoder-3d",
        "vipa-train",
        "vipa-ablation",
    ])
    .unwrap();
}

/// Six short synthetic clips annotated into a Hand3D dataset with a 40 % test split.
fn dataset(dir: &Path) -> PathBuf {
    let videos = dir.join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    let cfg = SynthConfig {
        width: 160,
        height: 120,
        fps: 10.0,
        seconds: 3.0,
    };
    for i in 0..6 {
        write_clip(&videos, &generate_clip(cfg, 7, i).unwrap()).unwrap();
    }
    let out = dir.join("hand3d");
    let yml = vipa_e2e::annotate_flow(
        dir,
        &videos,
        &out,
        "sidecar",
        "{split: {test_fraction: 0.4}}",
    )
    .unwrap();
    let run = dora_run(&yml, STOP_AFTER).unwrap();
    assert!(run.success, "annotation failed:\n{}", run.log);
    out
}

/// `pretrain.yml` or `eval.yml` with the tiny presets; `trainer` is the trainer's extra config.
fn flow(name: &str, dir: &Path, data: &Path, split: &str, trainer: &[(&str, String)]) -> PathBuf {
    let mut df = Dataflow::load(name).unwrap();
    let epochs = if split == "train" { "40" } else { "1" };
    df.set_config(
        "reader",
        &inline_yaml(&[
            ("dataset", yaml_path(data)),
            ("split", split.into()),
            ("tasks", "[visual]".into()),
            ("seed", "3".into()),
            ("epochs", epochs.into()),
            ("max_frames", "1".into()),
            ("exit_grace_ms", "20000".into()),
        ]),
    )
    .unwrap();
    df.set_config("encoder-2d", "{preset: tiny, seed: 0}")
        .unwrap();
    df.set_config(
        "encoder-3d",
        "{backend: point_map_vit, preset: tiny, seed: 0}",
    )
    .unwrap();
    let mut cfg = vec![("preset", "tiny".to_string()), ("progress", "false".into())];
    cfg.extend(trainer.iter().map(|(k, v)| (*k, v.clone())));
    df.set_config("trainer", &inline_yaml(&cfg)).unwrap();
    let sub = dir.join(name.trim_end_matches(".yml"));
    std::fs::create_dir_all(&sub).unwrap();
    df.write_to(&sub).unwrap()
}

fn train_cfg(out: &Path, max_steps: u64) -> Vec<(&'static str, String)> {
    vec![
        ("out_dir", yaml_path(out)),
        ("max_steps", max_steps.to_string()),
        ("batch_size", "2".into()),
        ("lr", "3.0e-2".into()),
        ("warmup_ratio", "0.1".into()),
        ("checkpoint_every", "4".into()),
        ("credits", "3".into()),
    ]
}

fn losses(out: &Path) -> Vec<(u64, f32)> {
    vipa_train::metrics::read_losses(&out.join("metrics.csv")).unwrap()
}

fn run_ok(yml: &Path) -> vipa_e2e::RunOutput {
    let run = dora_run(yml, STOP_AFTER).unwrap();
    assert!(
        run.success,
        "dora run failed ({:?}):\n{}",
        run.code, run.log
    );
    assert!(
        run.elapsed < STOP_AFTER - Duration::from_secs(5),
        "the dataflow did not end by itself:\n{}",
        run.log
    );
    run
}

/// PIDs of `vipa-train` processes whose environment mentions `marker` (our run's out_dir).
fn trainer_pids(marker: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let env = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.contains("vipa-train") && String::from_utf8_lossy(&env).contains(marker) {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn tiny_chain_trains_resumes_after_sigkill_and_evaluates() {
    build();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dataset(dir);
    let reader = DatasetReader::open(&data).unwrap();
    let visual = |split| {
        reader
            .samples(split)
            .unwrap()
            .iter()
            .filter(|s| s.task.is_visual())
            .count()
    };
    assert!(
        visual(Split::Test) > 0,
        "the test split needs Hand3D-visual samples"
    );
    assert!(visual(Split::Train) > 10);

    // 1. Uninterrupted run.
    let steps = 24;
    let full_dir = dir.join("run-full");
    let yml = flow(
        "pretrain.yml",
        dir,
        &data,
        "train",
        &train_cfg(&full_dir, steps),
    );
    let run = run_ok(&yml);
    eprintln!("pretrain: {:.1} s", run.elapsed.as_secs_f64());
    let full = losses(&full_dir);
    assert_eq!(full.len(), steps as usize, "{full:?}\n{}", run.log);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(full_dir.join("summary.json")).unwrap()).unwrap();
    let first = summary["first_loss"].as_f64().unwrap();
    let last = summary["last_loss"].as_f64().unwrap();
    assert!(
        last < first,
        "loss did not decrease: {first} → {last}; {full:?}"
    );
    assert!(full_dir.join("loss.png").is_file());
    assert!(
        full_dir
            .join("checkpoints")
            .join(format!("step-{steps:08}"))
            .join("weights.safetensors")
            .is_file()
    );

    // 2. The same run, its trainer killed with SIGKILL after a checkpoint, then run again.
    let killed_dir = dir.join("run-killed");
    let marker = killed_dir.display().to_string();
    let yml = flow(
        "pretrain.yml",
        dir,
        &data,
        "train",
        &train_cfg(&killed_dir, steps),
    );
    let mut child = Command::new(dora_cli().unwrap())
        .current_dir(yml.parent().unwrap())
        .args(["run", yml.to_str().unwrap(), "--stop-after", "240s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut killed_at = None;
    while start.elapsed() < Duration::from_secs(200) {
        let done = killed_dir
            .join("metrics.csv")
            .is_file()
            .then(|| losses(&killed_dir).len());
        if let Some(n) = done
            && (6..steps as usize).contains(&n)
        {
            for pid in trainer_pids(&marker) {
                Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status()
                    .unwrap();
                killed_at = Some(n);
            }
            if killed_at.is_some() {
                break;
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.wait();
    let killed_at = killed_at.expect("the trainer was caught mid-run and killed");
    let partial = losses(&killed_dir);
    assert!(
        partial.len() < steps as usize,
        "killed after {killed_at} steps"
    );
    let run = run_ok(&yml);
    assert!(run.log.contains("resuming"), "{}", run.log);
    // The reader passed over what the checkpoint had trained on: not sent, not re-encoded.
    let passed_over = run
        .log
        .lines()
        .find(|l| l.contains("passed over the samples it already trained on"))
        .and_then(|l| l.split("passed_over=").nth(1))
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok());
    assert!(passed_over.is_some_and(|n| n > 0), "{}", run.log);
    let resumed = losses(&killed_dir);
    assert_eq!(resumed.len(), full.len(), "{resumed:?}");
    for ((s1, l1), (s2, l2)) in full.iter().zip(&resumed) {
        assert_eq!(s1, s2);
        assert!(
            (l1 - l2).abs() <= 1e-5 * l1.abs().max(1.0),
            "step {s1}: uninterrupted {l1}, killed at {killed_at} and resumed {l2}"
        );
    }

    // 3. Evaluation on the held-out clips, trained and untrained.
    let eval = |label: &str, checkpoint: &str| -> serde_json::Value {
        let yml = flow(
            "eval.yml",
            dir,
            &data,
            "test",
            &[
                ("mode", "eval".into()),
                ("out_dir", yaml_path(&full_dir)),
                (
                    "eval",
                    format!("{{checkpoint: {checkpoint}, max_new_tokens: 24, label: {label}}}"),
                ),
            ],
        );
        run_ok(&yml);
        serde_json::from_slice(&std::fs::read(full_dir.join("eval.json")).unwrap()).unwrap()
    };
    let trained = eval("trained", "latest");
    let trained_json = dir.join("trained-eval.json");
    std::fs::copy(full_dir.join("eval.json"), &trained_json).unwrap();
    assert_eq!(
        trained["overall"]["n"].as_u64().unwrap() as usize,
        visual(Split::Test)
    );
    assert_eq!(trained["trained_steps"], steps);
    let untrained = eval("untrained", "none");
    assert!(untrained["checkpoint"].is_null());
    for r in [&trained, &untrained] {
        let rate = r["overall"]["parse_rate"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&rate), "{r:#}");
        assert!(r["examples"].as_array().is_some_and(|e| !e.is_empty()));
    }
    eprintln!(
        "eval: trained parse rate {} direction {} | untrained parse rate {} direction {}",
        trained["overall"]["parse_rate"],
        trained["overall"]["direction_score"],
        untrained["overall"]["parse_rate"],
        untrained["overall"]["direction_score"]
    );

    // 4. The table tool: intervals, the prior on the same answers, a PNG; and a reproduction
    //    refused on a split this small.
    let ablation = |args: &[&str]| {
        Command::new(vipa_e2e::bin_dir().join("vipa-ablation"))
            .current_dir(vipa_e2e::repo_root())
            .args(args)
            .output()
            .unwrap()
    };
    let untrained_json = full_dir.join("eval.json");
    let png = dir.join("table.png");
    let data_s = data.display().to_string();
    let out = ablation(&[
        "report",
        trained_json.to_str().unwrap(),
        untrained_json.to_str().unwrap(),
        "--dataset",
        &data_s,
        "--png",
        png.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("image-blind prior"), "{text}");
    assert!(
        text.contains("| trained |") && text.contains("| untrained |"),
        "{text}"
    );
    assert!(text.contains(" ["), "intervals are printed: {text}");
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
    // The prior must come from the dataset that was evaluated: another one is refused.
    let other = dir.join("not-a-dataset");
    let out = ablation(&[
        "report",
        trained_json.to_str().unwrap(),
        "--dataset",
        other.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let out = ablation(&[
        "reproduce",
        "--dataset",
        &data_s,
        "--out",
        dir.join("repro").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a tiny split must be refused");
    assert!(
        err.contains("a reproduction needs at least 40 held-out clips"),
        "{err}"
    );
    assert!(!dir.join("repro").join("table.md").exists());
}
