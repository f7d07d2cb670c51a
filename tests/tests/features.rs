//! The pretraining feature graph through the real `dora` CLI: `dataflows/features.yml` (reader
//! → frozen 2D/3D encoders → the `feature-check` requester) on a tiny dataset written with the
//! `vipa_hand3d` APIs, tiny presets, and the no-3D variant `features-no3d.yml`.

// Test helpers unwrap too: a panic there is a failed test with a line number.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use vipa_e2e::{Dataflow, dora_run, inline_yaml, read_summary, yaml_path};

/// Builds the four binaries of the graph (once per test process).
fn build() {
    vipa_e2e::build_nodes(&[
        "vipa-dataset-reader",
        "vipa-encoder-2d",
        "vipa-encoder-3d",
        "feature-check",
    ])
    .unwrap();
}

/// Runs `flow` on a fresh tiny dataset (2 clips, 5 samples of 2 frames) and returns the
/// summary.
fn run(flow: &str, dir: &Path) -> serde_json::Value {
    build();
    let data = dir.join("hand3d");
    vipa_dataset_reader::fixture::write_dataset(&data, &[("clip_a", 4), ("clip_b", 3)], 40, 30)
        .unwrap();
    let summary = dir.join("summary.json");
    let mut df = Dataflow::load(flow).unwrap();
    df.set_config(
        "reader",
        &inline_yaml(&[
            ("dataset", yaml_path(&data)),
            ("max_frames", "2".into()),
            ("seed", "5".into()),
            ("exit_grace_ms", "20000".into()),
        ]),
    )
    .unwrap();
    df.set_config(
        "check",
        &inline_yaml(&[
            ("summary_path", yaml_path(&summary)),
            ("credits", "2".into()),
            ("timeout_ms", "100000".into()),
        ]),
    )
    .unwrap();
    let yml = df.write_to(dir).unwrap();
    let out = dora_run(&yml, Duration::from_secs(150)).unwrap();
    assert!(
        out.success,
        "dora run failed ({:?}):\n{}",
        out.code, out.log
    );
    eprintln!("{flow}: dora run took {:.1} s", out.elapsed.as_secs_f64());
    let s = read_summary(&summary).unwrap_or_else(|e| panic!("{e}\n{}", out.log));
    assert_eq!(s["problems"], serde_json::json!([]), "{s:#}\n{}", out.log);
    assert_eq!(s["all_delivered"], true, "{s:#}");
    // 3 + 2 samples, 2 frames each: every sample with both token streams.
    assert_eq!(s["samples"], 5, "{s:#}");
    assert_eq!(s["samples_complete"], 5, "{s:#}");
    assert_eq!(s["tokens_2d"], 10, "{s:#}");
    assert_eq!(s["tokens_3d"], 10, "{s:#}");
    assert_eq!(s["n_frames"], serde_json::json!([2]), "{s:#}");
    // 2 credits per request: 5 samples need 3 requests (the third answered by one sample and
    // the stream end).
    assert_eq!(s["requests"], 3, "{s:#}");
    // tiny InternViT: 16 patch tokens of width 64.
    assert_eq!(s["shape_2d"], serde_json::json!([16, 64]), "{s:#}");
    s
}

#[test]
fn features_graph_delivers_every_requested_sample_with_both_token_streams() {
    let dir = tempfile::tempdir().unwrap();
    let s = run("features.yml", dir.path());
    // tiny point-map ViT: 16 tokens of width 48.
    assert_eq!(s["shape_3d"], serde_json::json!([16, 48]), "{s:#}");
}

#[test]
fn no_3d_variant_sends_empty_3d_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let s = run("features-no3d.yml", dir.path());
    assert_eq!(s["shape_3d"], serde_json::json!([0, 48]), "{s:#}");
}
