//! End-to-end: `dataflows/annotate.yml` through the real `dora run`, on synthetic clips
//! generated here (vipa-synth, 160×120, 2 s at 10 fps) plus three bad inputs: a clip whose
//! hands never appear, a clip without its sidecar, and a corrupt mp4.
//!
//! Needs the dora 1.1 CLI (`make setup`, or `DORA=/path/to/dora`).
//!
//! Benchmark (ignored by default; `make bench` runs it):
//! `cargo test -p vipa-e2e --test annotate -- --ignored --nocapture bench_annotate_throughput`
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vipa_e2e::dora_run;
use vipa_hand3d::backend::ScaledBackend;
use vipa_hand3d::frames::read_clip_frames;
use vipa_hand3d::truth::clip_seed;
use vipa_hand3d::{DatasetReader, Split};
use vipa_synth::{SynthConfig, generate_clip, write_clip};

const STOP_AFTER: Duration = Duration::from_secs(120);
const NODES: [&str; 4] = [
    "vipa-video-ingest",
    "vipa-lift-depth",
    "vipa-lift-hands",
    "vipa-annotate",
];

/// Builds the node binaries (once per test process).
fn build() {
    let start = std::time::Instant::now();
    vipa_e2e::build_nodes(&NODES).unwrap();
    println!("node build: {:?}", start.elapsed());
}

/// Writes `n` synthetic clips into `dir`.
fn synth_clips(dir: &Path, n: u32, cfg: SynthConfig, seed: u64) {
    for i in 0..n {
        let clip = generate_clip(cfg, seed, i).unwrap();
        write_clip(dir, &clip).unwrap();
    }
}

/// The clips of the e2e test: 0–2 good, 3 without hands, 4 without sidecar, 5 corrupt.
fn test_clips(dir: &Path) {
    let cfg = SynthConfig {
        width: 160,
        height: 120,
        fps: 10.0,
        seconds: 2.0,
    };
    synth_clips(dir, 5, cfg, 21);
    let sidecar = |i: u32| dir.join(format!("clip_{i:04}.truth.parquet"));
    let mut truth = vipa_synth::read_clip_truth(&sidecar(3)).unwrap();
    for f in &mut truth.frames {
        f.hands.clear();
    }
    vipa_synth::sidecar::write_clip_truth(&sidecar(3), &truth).unwrap();
    std::fs::remove_file(sidecar(4)).unwrap();
    let bytes: Vec<u8> = (0..30_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(dir.join("clip_0005.mp4"), bytes).unwrap();
}

/// Writes the runnable dataflow for `videos` → `out`.
fn flow(dir: &Path, videos: &Path, out: &Path, depth_backend: &str, hand3d: &str) -> PathBuf {
    vipa_e2e::annotate_flow(dir, videos, out, depth_backend, hand3d).unwrap()
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
        "the dataflow did not end by itself (ran {:?}):\n{}",
        run.elapsed,
        run.log
    );
    run
}

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("annotate_report.json")).unwrap())
        .unwrap()
}

fn shard_mtimes(out: &Path) -> BTreeMap<String, std::time::SystemTime> {
    std::fs::read_dir(out.join("shards"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().modified().unwrap(),
            )
        })
        .collect()
}

#[test]
fn annotate_graph_writes_the_dataset_skips_bad_clips_and_resumes() {
    build();
    let dir = tempfile::tempdir().unwrap();
    let videos = dir.path().join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    test_clips(&videos);
    let out = dir.path().join("hand3d");
    // The joint-radius offset removes the hand-surface bias (see vipa_hand3d::calibrate), so
    // ground-truth depth must calibrate to a scale of 1.
    let yml = flow(
        dir.path(),
        &videos,
        &out,
        "sidecar",
        "{calibration: {surface_offset_m: 0.009}}",
    );

    let run = run_ok(&yml);
    println!("first run: {:?}", run.elapsed);
    let reader = DatasetReader::open(&out).unwrap();
    let m = reader.manifest().clone();
    let written: Vec<&str> = m.clips.iter().map(|c| c.clip_id.as_str()).collect();
    assert_eq!(
        written,
        ["clip_0000", "clip_0001", "clip_0002"],
        "{}",
        run.log
    );
    let skipped: BTreeMap<&str, &str> = m
        .skipped
        .iter()
        .map(|s| (s.clip_id.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(
        skipped["clip_0003"].contains("no visible hand"),
        "{skipped:?}"
    );
    assert!(
        skipped["clip_0004"].contains("no sidecar")
            && skipped["clip_0004"].contains("clip_0004.truth.parquet"),
        "{skipped:?}"
    );
    assert!(
        skipped["clip_0005"].contains("video-ingest sent no frame"),
        "{skipped:?}"
    );
    assert_eq!(m.counts.skipped_clips, 3);

    // The manifest's counts agree with what the reader finds in the shards.
    let mut per_task: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    for c in &m.clips {
        let samples = reader.read_clip(c).unwrap();
        total += samples.len();
        for s in &samples {
            *per_task.entry(s.task.as_str().to_owned()).or_default() += 1;
        }
        // Every frame a sample shows is in the frame store.
        let store = read_clip_frames(&out, &c.clip_id).unwrap();
        for s in &samples {
            for f in &s.frame_idxs {
                assert!(
                    store.get(*f).is_some(),
                    "{} frame {f} missing from the frame store",
                    c.clip_id
                );
            }
        }
        // Ground-truth depth: scale 1 (per clip within 2 %; the scaled-backend test checks
        // the median to 1 %).
        assert!(
            (c.stats.scale - 1.0).abs() < 0.02,
            "{}: {:?}",
            c.clip_id,
            c.stats
        );
    }
    assert_eq!(total, m.counts.samples);
    assert_eq!(per_task, m.counts.per_task);
    assert_eq!(
        reader.count(Split::Train) + reader.count(Split::Test),
        total
    );
    assert!(total > 0);

    // No frame lost anywhere: 5 decodable clips × 20 frames, every input gap-free.
    let r = report(&out);
    assert_eq!(r["frames_joined"].as_u64(), Some(100), "{r}");
    assert_eq!(r["all_inputs_clean"].as_bool(), Some(true), "{r}");
    for input in ["image", "pointmap", "hands", "clip_end"] {
        assert_eq!(
            r["inputs"][input]["dropped"].as_u64(),
            Some(0),
            "{input}: {r}"
        );
    }
    assert_eq!(r["ingest_bad_sources"].as_u64(), Some(1), "{r}");

    // Re-run: finished clips are skipped (shards untouched), the dataset is the same.
    let manifest_1 = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    let mtimes = shard_mtimes(&out);
    let run = run_ok(&yml);
    println!("resume run: {:?}", run.elapsed);
    assert_eq!(
        std::fs::read_to_string(out.join("manifest.json")).unwrap(),
        manifest_1
    );
    assert_eq!(shard_mtimes(&out), mtimes);
    let r = report(&out);
    assert_eq!(
        r["clips_already_done"].as_array().map(Vec::len),
        Some(3),
        "{r}"
    );
    assert_eq!(r["clips_written"].as_array().map(Vec::len), Some(0), "{r}");
}

#[test]
fn scaled_depth_is_calibrated_back_to_metric() {
    build();
    let dir = tempfile::tempdir().unwrap();
    let videos = dir.path().join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    let cfg = SynthConfig {
        width: 160,
        height: 120,
        fps: 10.0,
        seconds: 2.0,
    };
    synth_clips(&videos, 4, cfg, 5);
    let out = dir.path().join("hand3d");
    // The joint-radius offset removes the hand-surface bias (see vipa_hand3d::calibrate).
    let yml = flow(
        dir.path(),
        &videos,
        &out,
        "scaled",
        "{calibration: {surface_offset_m: 0.009}}",
    );
    let run = run_ok(&yml);
    let m = DatasetReader::open(&out).unwrap().manifest().clone();
    assert_eq!(m.counts.clips, 4, "{:?}\n{}", m.skipped, run.log);
    let mut errs = Vec::new();
    for c in &m.clips {
        let info = vipa_synth::sidecar::read_clip_info(
            &videos.join(format!("{}.truth.parquet", c.clip_id)),
        )
        .unwrap();
        // The hidden factor the backend applied; calibration must find its inverse.
        let factor = ScaledBackend::clip_factor(clip_seed(&info));
        errs.push((c.stats.scale * factor - 1.0).abs());
    }
    errs.sort_by(f32::total_cmp);
    let median = 0.5 * (errs[1] + errs[2]);
    println!("scaled backend: relative scale errors {errs:?}, median {median}");
    assert!(
        median < 0.01,
        "median relative scale error {median}: {errs:?}"
    );
}
