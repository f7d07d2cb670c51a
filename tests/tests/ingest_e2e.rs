//! End-to-end: `dataflows/ingest.yml` through the real `dora run`, on clips generated here.
//!
//! Needs the dora 1.1 CLI (`make setup`, or `DORA=/path/to/dora`); fails with that hint if it
//! is missing rather than skipping.

// Test helpers outside `#[test]` functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use vipa_e2e::{
    ClipSpec, Dataflow, build_nodes, clip_frames, dora_run, inline_yaml, read_summary,
    write_test_clip, yaml_path,
};

/// Upper bound for one dataflow run; a healthy run takes a few seconds.
const STOP_AFTER: Duration = Duration::from_secs(60);

fn spec(frames: usize, background: [u8; 3]) -> ClipSpec {
    ClipSpec {
        width: 64,
        height: 48,
        fps: 10.0,
        frames,
        background,
    }
}

fn assert_close(got: &serde_json::Value, want: [f64; 3], tol: f64, what: &str) {
    for (k, w) in want.iter().enumerate() {
        let g = got[k].as_f64().unwrap();
        assert!(
            (g - w).abs() <= tol,
            "{what}: channel {k}: got {g}, want {w} ± {tol}"
        );
    }
}

fn run_ok(dir: &Path, flow: &mut Dataflow) -> vipa_e2e::RunOutput {
    let yml = flow.write_to(dir).unwrap();
    let run = dora_run(&yml, STOP_AFTER).unwrap();
    eprintln!("dora run took {:?}", run.elapsed);
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

#[test]
fn every_frame_arrives_and_bad_files_are_skipped() {
    build_nodes(&["vipa-video-ingest", "vipa-frame-check"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let clips = [
        ("clip_0000", spec(12, [200, 30, 30])),
        ("clip_0001", spec(15, [30, 200, 30])),
        ("clip_0002", spec(9, [30, 30, 200])),
    ];
    let mut means = Vec::new();
    for (name, s) in &clips {
        means.push(write_test_clip(&d.join(format!("{name}.mp4")), s).unwrap());
    }
    // A corrupt file (random bytes with an mp4 name) and a missing one, between good clips.
    let corrupt = d.join("corrupt.mp4");
    let bytes: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&corrupt, bytes).unwrap();
    let missing = d.join("missing.mp4");
    let files = [
        d.join("clip_0000.mp4"),
        corrupt.clone(),
        d.join("clip_0001.mp4"),
        missing.clone(),
        d.join("clip_0002.mp4"),
    ];
    let list: Vec<String> = files.iter().map(|p| yaml_path(p)).collect();
    let summary_path = d.join("summary.json");

    let mut flow = Dataflow::load("ingest.yml").unwrap();
    flow.set_config(
        "ingest",
        &inline_yaml(&[("files", format!("[{}]", list.join(", ")))]),
    )
    .unwrap()
    .set_config(
        "check",
        &inline_yaml(&[
            ("summary_path", yaml_path(&summary_path)),
            ("expect_width", "64".into()),
            ("expect_height", "48".into()),
            ("expect_encoding", "rgb8".into()),
        ]),
    )
    .unwrap();
    let run = run_ok(d, &mut flow);

    let s = read_summary(&summary_path).unwrap();
    assert_eq!(s["all_delivered"], true, "{s:#}\n{}", run.log);
    assert_eq!(s["sender_bad_sources"], 2, "{s:#}");
    assert_eq!(s["sender_clips"], 3);
    assert_eq!(s["bad_messages"], 0);
    // Every frame of every clip, counted independently of the sender's own totals.
    let want: Vec<(String, u64)> = clips
        .iter()
        .map(|(n, c)| (n.to_string(), c.frames as u64))
        .collect();
    assert_eq!(clip_frames(&s).into_iter().collect::<Vec<_>>(), want);
    assert_eq!(s["frames"], 36);
    assert_eq!(s["seq"]["image"]["dropped"], 0);
    assert_eq!(s["seq"]["image"]["last_seq"], 35);
    // 3 clip ends + 1 stream end on the control input.
    assert_eq!(s["seq"]["clip_end"]["received"], 4);
    // Colours survived decoding and BGR→RGB (H.264 is lossy: a few levels of tolerance).
    for ((name, _), mean) in clips.iter().zip(&means) {
        assert_close(&s["clips"][name]["first_frame_mean_rgb"], *mean, 6.0, name);
        assert_eq!(s["clips"][name]["first_frame_idx"], 0);
    }
    // One error log per bad file, naming it.
    let corrupt_name = corrupt.display().to_string();
    let missing_name = missing.display().to_string();
    assert!(
        run.log.contains(&corrupt_name),
        "no error naming {corrupt_name}:\n{}",
        run.log
    );
    assert!(
        run.log.contains(&missing_name),
        "no error naming {missing_name}:\n{}",
        run.log
    );
}

#[test]
fn folder_source_resamples_resizes_and_loops() {
    build_nodes(&["vipa-video-ingest", "vipa-frame-check"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let videos = dir.path().join("videos");
    std::fs::create_dir(&videos).unwrap();
    // 20 frames at 10 fps = 2 s; at 5 fps that is 10 output frames, capped at 8.
    let mean_a = write_test_clip(&videos.join("a.mp4"), &spec(20, [250, 250, 0])).unwrap();
    write_test_clip(&videos.join("b.mp4"), &spec(6, [0, 0, 250])).unwrap();
    std::fs::write(videos.join("notes.txt"), "not a video").unwrap();
    let summary_path = dir.path().join("out/summary.json");

    let mut flow = Dataflow::load("ingest.yml").unwrap();
    flow.set_config(
        "ingest",
        &inline_yaml(&[
            ("folder", yaml_path(&videos)),
            ("fps", "5".into()),
            ("resize", "[32, 24]".into()),
            ("encoding", "bgr8".into()),
            ("max_frames_per_clip", "8".into()),
            ("loops", "2".into()),
        ]),
    )
    .unwrap()
    .set_config(
        "check",
        &inline_yaml(&[
            ("summary_path", yaml_path(&summary_path)),
            ("expect_width", "32".into()),
            ("expect_height", "24".into()),
            ("expect_encoding", "bgr8".into()),
        ]),
    )
    .unwrap();
    let run = run_ok(dir.path(), &mut flow);

    let s = read_summary(&summary_path).unwrap();
    assert_eq!(s["all_delivered"], true, "{s:#}\n{}", run.log);
    assert_eq!(s["sender_bad_sources"], 0);
    let frames = clip_frames(&s);
    // b: 6 frames at 10 fps resampled to 5 fps = 3 frames. Two passes: `@0` and `@1`.
    let want = [("a@0", 8), ("a@1", 8), ("b@0", 3), ("b@1", 3)];
    assert_eq!(
        frames
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect::<Vec<_>>(),
        want
    );
    // Resampling 10 → 5 fps keeps every other source frame: the 8th output is source frame 14.
    assert_eq!(s["clips"]["a@0"]["last_frame_idx"], 14);
    // The summary reports RGB order even for bgr8 frames; resizing keeps the mean colour.
    assert_close(
        &s["clips"]["a@1"]["first_frame_mean_rgb"],
        mean_a,
        8.0,
        "a@1",
    );
}

/// A slow consumer: with the ack input and backpressure (as committed) nothing is lost;
/// without the ack, dora's drop-oldest queue loses frames and the sink says so.
#[test]
fn flow_control_protects_a_slow_consumer_and_losses_are_reported() {
    build_nodes(&["vipa-video-ingest", "vipa-frame-check"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("a.mp4");
    write_test_clip(&clip, &spec(40, [90, 90, 90])).unwrap();
    let mut results = Vec::new();
    for with_ack in [true, false] {
        let summary_path = dir.path().join(format!("summary-{with_ack}.json"));
        let mut flow = Dataflow::load("ingest.yml").unwrap();
        flow.set_config(
            "ingest",
            &inline_yaml(&[("files", format!("[{}]", yaml_path(&clip)))]),
        )
        .unwrap()
        .set_config(
            "check",
            &inline_yaml(&[
                ("summary_path", yaml_path(&summary_path)),
                // 40 frames × 15 ms: the sender decodes far faster than this.
                ("process_delay_ms", "15".into()),
            ]),
        )
        .unwrap();
        if !with_ack {
            // Open loop on dora's default drop-oldest queues (the committed graph's
            // backpressure policy would hide the overflow this half is about).
            flow.remove_input("ingest", "ack")
                .unwrap()
                .set_queue_policy("check", "image", "drop_oldest")
                .unwrap()
                .set_queue_policy("check", "clip_end", "drop_oldest")
                .unwrap();
        }
        let log = if with_ack {
            run_ok(dir.path(), &mut flow).log
        } else {
            // The sink reports the loss and fails, so `dora run` fails too.
            let yml = flow.write_to(dir.path()).unwrap();
            let run = dora_run(&yml, STOP_AFTER).unwrap();
            assert!(!run.success, "an incomplete stream exited 0:\n{}", run.log);
            assert!(run.log.contains("stream incomplete"), "{}", run.log);
            run.log
        };
        let s = read_summary(&summary_path).unwrap();
        results.push((with_ack, s, log));
    }
    let (_, acked, log) = &results[0];
    assert_eq!(acked["all_delivered"], true, "{acked:#}\n{log}");
    assert_eq!(acked["frames"], 40);
    let (_, open_loop, log) = &results[1];
    assert_eq!(open_loop["all_delivered"], false, "{open_loop:#}\n{log}");
    assert_eq!(open_loop["stream_end_received"], true);
    assert_eq!(open_loop["sender_frames"], 40);
    let got = open_loop["frames"].as_u64().unwrap();
    let dropped = open_loop["seq"]["image"]["dropped"].as_u64().unwrap();
    assert!(got < 40, "{open_loop:#}");
    // The sink's gap count accounts for every frame that did not arrive before the last one.
    assert!(dropped > 0 && got + dropped <= 40, "{open_loop:#}");
}
