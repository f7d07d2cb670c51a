//! The ingest logic without dora: real H.264 files written here, messages captured by
//! `RecordingOutputs`.

// Test helpers outside `#[test]` functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use opencv::core::{Mat, Scalar, Size};
use opencv::prelude::*;
use opencv::videoio;
use vipa_msgs::ports;
use vipa_msgs::{ClipEnd, Encoding, ImageFrame, StreamEnd};
use vipa_node_kit::{RecordingOutputs, from_yaml_str};
use vipa_video_ingest::ingest::resolve_sources;
use vipa_video_ingest::{Ingest, IngestConfig, Step};

/// Writes `frames` solid frames of colour `rgb` (32×24, 10 fps, H.264).
fn write_clip(path: &Path, frames: usize, rgb: [u8; 3]) {
    let fourcc = videoio::VideoWriter::fourcc('a', 'v', 'c', '1').unwrap();
    let mut w = videoio::VideoWriter::new(
        path.to_str().unwrap(),
        fourcc,
        10.0,
        Size::new(32, 24),
        true,
    )
    .unwrap();
    assert!(w.is_opened().unwrap());
    let [r, g, b] = rgb.map(f64::from);
    let m =
        Mat::new_rows_cols_with_default(24, 32, opencv::core::CV_8UC3, Scalar::new(b, g, r, 0.0))
            .unwrap();
    for _ in 0..frames {
        w.write(&m).unwrap();
    }
    w.release().unwrap();
}

fn run_all(cfg: &IngestConfig) -> (RecordingOutputs, Ingest) {
    let mut ingest = Ingest::new(cfg, resolve_sources(cfg).unwrap());
    let mut out = RecordingOutputs::new();
    let mut steps = 0;
    while ingest.step(&mut out).unwrap() != Step::StreamEnd {
        steps += 1;
        assert!(steps < 1000, "no stream end");
    }
    assert_eq!(ingest.step(&mut out).unwrap(), Step::Finished);
    (out, ingest)
}

fn files_cfg(files: &[PathBuf], extra: &str) -> IngestConfig {
    let list: Vec<String> = files
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    from_yaml_str(&format!("files: [{}]\n{extra}", list.join(", "))).unwrap()
}

#[test]
fn clips_are_framed_and_bad_files_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.mp4");
    let b = dir.path().join("b.mp4");
    write_clip(&a, 4, [220, 20, 20]);
    write_clip(&b, 3, [20, 20, 220]);
    let corrupt = dir.path().join("corrupt.mp4");
    std::fs::write(&corrupt, b"this is not an mp4 file at all").unwrap();
    let missing = dir.path().join("missing.mp4");
    let cfg = files_cfg(&[a, missing, corrupt, b], "");
    let (out, ingest) = run_all(&cfg);

    let frames: Vec<ImageFrame> = out.on(ports::IMAGE).map(|s| s.decode().unwrap()).collect();
    assert_eq!(frames.len(), 7);
    // seq 0..7 without gaps across clips; frame_idx restarts per clip.
    assert_eq!(
        frames.iter().map(|f| f.header.seq).collect::<Vec<_>>(),
        (0..7).collect::<Vec<_>>()
    );
    assert_eq!(
        frames
            .iter()
            .map(|f| (f.header.clip_id.as_str(), f.header.frame_idx))
            .collect::<Vec<_>>(),
        [
            ("a", 0),
            ("a", 1),
            ("a", 2),
            ("a", 3),
            ("b", 0),
            ("b", 1),
            ("b", 2)
        ]
    );
    // 10 fps: 100 ms apart.
    assert_eq!(frames[2].header.timestamp_ns, 200_000_000);
    // RGB order: clip a is red, b is blue (H.264 tolerance).
    let px = |f: &ImageFrame| f.bytes()[..3].to_vec();
    let near = |got: Vec<u8>, want: [u8; 3]| got.iter().zip(want).all(|(&g, w)| g.abs_diff(w) <= 8);
    assert!(near(px(&frames[0]), [220, 20, 20]), "{:?}", px(&frames[0]));
    assert!(near(px(&frames[6]), [20, 20, 220]), "{:?}", px(&frames[6]));
    assert!(
        frames
            .iter()
            .all(|f| (f.width, f.height, f.encoding) == (32, 24, Encoding::Rgb8))
    );
    assert!(
        frames
            .iter()
            .all(|f| f.header.clip_id != "missing" && f.header.clip_id != "corrupt")
    );

    let control: Vec<_> = out.on(ports::CLIP_END).collect();
    assert_eq!(control.len(), 3);
    let ends: Vec<ClipEnd> = control[..2].iter().map(|s| s.decode().unwrap()).collect();
    assert_eq!(
        (
            ends[0].header.clip_id.as_str(),
            ends[0].frames,
            ends[0].complete
        ),
        ("a", 4, true)
    );
    assert_eq!((ends[1].header.clip_id.as_str(), ends[1].frames), ("b", 3));
    let end: StreamEnd = control[2].decode().unwrap();
    assert_eq!((end.clips, end.frames, end.bad_sources), (2, 7, 2));
    assert_eq!(end.header.seq, 2);
    assert_eq!(ingest.sent_messages(), 10);
    assert_eq!(ingest.totals().bad_sources, 2);
}

#[test]
fn resample_cap_resize_and_bgr() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.mp4");
    write_clip(&a, 10, [10, 200, 60]);
    // 10 fps → 20 fps doubles frames; capped at 5; resized to 16×12; BGR order.
    let cfg = files_cfg(
        &[a],
        "fps: 20\nmax_frames_per_clip: 5\nresize: [16, 12]\nencoding: bgr8\n",
    );
    let (out, _) = run_all(&cfg);
    let frames: Vec<ImageFrame> = out.on(ports::IMAGE).map(|s| s.decode().unwrap()).collect();
    assert_eq!(frames.len(), 5);
    assert_eq!(
        frames
            .iter()
            .map(|f| f.header.frame_idx)
            .collect::<Vec<_>>(),
        [0, 1, 1, 2, 2]
    );
    assert_eq!(
        frames
            .iter()
            .map(|f| f.header.timestamp_ns)
            .collect::<Vec<_>>(),
        [0, 50_000_000, 100_000_000, 150_000_000, 200_000_000]
    );
    let f = &frames[0];
    assert_eq!((f.width, f.height, f.encoding), (16, 12, Encoding::Bgr8));
    let bgr = &f.bytes()[..3];
    assert!(
        bgr[0].abs_diff(60) <= 8 && bgr[1].abs_diff(200) <= 8 && bgr[2].abs_diff(10) <= 8,
        "{bgr:?}"
    );
    let end: ClipEnd = out.on(ports::CLIP_END).next().unwrap().decode().unwrap();
    assert_eq!(end.frames, 5);
}

#[test]
fn only_bad_sources_still_end_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = files_cfg(&[dir.path().join("nope.mp4")], "");
    let (out, _) = run_all(&cfg);
    assert_eq!(out.on(ports::IMAGE).count(), 0);
    let end: StreamEnd = out.on(ports::CLIP_END).next().unwrap().decode().unwrap();
    assert_eq!((end.clips, end.frames, end.bad_sources), (0, 0, 1));
}

#[test]
fn a_send_failure_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.mp4");
    write_clip(&a, 2, [0, 0, 0]);
    let cfg = files_cfg(&[a], "");
    let mut ingest = Ingest::new(&cfg, resolve_sources(&cfg).unwrap());
    let mut out = RecordingOutputs {
        fail_with: Some("daemon gone".into()),
        ..Default::default()
    };
    let err = ingest.step(&mut out).unwrap_err().to_string();
    assert!(
        err.contains("image") && err.contains("daemon gone"),
        "{err}"
    );
}

#[test]
fn a_missing_folder_is_a_clear_error() {
    let cfg: IngestConfig = from_yaml_str("folder: /nonexistent/vipa/videos").unwrap();
    let err = resolve_sources(&cfg).unwrap_err().to_string();
    assert!(
        err.contains("/nonexistent/vipa/videos") && err.contains("vipa-synth"),
        "{err}"
    );
}

/// Two files with the same name in two folders stay two clips (the stem alone would merge
/// them into one clip announcing the frames of one).
#[test]
fn files_that_share_a_name_stay_separate_clips() {
    let dir = tempfile::tempdir().unwrap();
    let (d1, d2) = (dir.path().join("day1"), dir.path().join("day2"));
    std::fs::create_dir_all(&d1).unwrap();
    std::fs::create_dir_all(&d2).unwrap();
    write_clip(&d1.join("b.mp4"), 2, [200, 0, 0]);
    write_clip(&d2.join("b.mp4"), 3, [0, 0, 200]);
    let cfg = files_cfg(&[d1.join("b.mp4"), d2.join("b.mp4")], "");
    let (out, _) = run_all(&cfg);
    let ends: Vec<(String, u64)> = out
        .on(ports::CLIP_END)
        .filter_map(|s| s.decode::<ClipEnd>().ok())
        .map(|c| (c.header.clip_id, c.frames))
        .collect();
    assert_eq!(
        ends,
        [("day1/b.mp4".to_owned(), 2), ("day2/b.mp4".to_owned(), 3)]
    );
}

/// A folder or glob with nothing to read is an error, not an empty success; an entry named
/// like a video that is not one (a folder `x.mp4`) is a bad source, a `.txt` a glob matched is
/// only left out.
#[test]
fn nothing_to_read_is_an_error_and_left_out_entries_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("notes.txt"), b"hello").unwrap();
    let cfg: IngestConfig =
        from_yaml_str(&format!("folder: {:?}", d.display().to_string())).unwrap();
    let err = resolve_sources(&cfg).unwrap_err().to_string();
    assert!(err.contains("no video file"), "{err}");
    let glob = format!("glob: {:?}", format!("{}/*", d.display()));
    let err = resolve_sources(&from_yaml_str(&glob).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("matches no video file"), "{err}");

    // One video among other entries: it is read, the .txt and a folder named x.mp4 are not.
    write_clip(&d.join("a.mp4"), 2, [0, 200, 0]);
    std::fs::create_dir(d.join("x.mp4")).unwrap();
    let cfg: IngestConfig = from_yaml_str(&glob).unwrap();
    let sources = resolve_sources(&cfg).unwrap();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources.skipped.len(), 2, "{:?}", sources.skipped);
    let (out, _) = run_all(&cfg);
    let end: StreamEnd = out.on(ports::CLIP_END).last().unwrap().decode().unwrap();
    assert_eq!((end.clips, end.frames, end.bad_sources), (1, 2, 1));
}
