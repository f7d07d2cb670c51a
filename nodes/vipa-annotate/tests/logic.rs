//! The annotate node's logic without dora: synthetic clips (vipa-synth ground truth) are fed as
//! the three streams the graph delivers, in scrambled order, and the dataset on disk is
//! checked against the ground truth.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::Path;
use std::sync::Arc;

use arrow::array::UInt8Array;
use vipa_annotate::{AnnotateConfig, Annotator, REPORT_FILE};
use vipa_hand3d::backend::sidecar_point_map;
use vipa_hand3d::frames::read_clip_frames;
use vipa_hand3d::truth::intrinsics;
use vipa_hand3d::{DatasetReader, Split};
use vipa_msgs::{
    Ack, ClipEnd, Encoding, Hand, HandSide, HandsMsg, ImageFrame, MetaValue, Payload, PointMap,
    StreamEnd, StreamHeader,
};
use vipa_node_kit::{InputMsg, RecordingOutputs};
use vipa_synth::{ClipTruth, SynthConfig, generate_clip};

fn clip(dir: &Path, index: u32, write_sidecar: bool) -> ClipTruth {
    let cfg = SynthConfig {
        width: 80,
        height: 60,
        fps: 5.0,
        seconds: 3.0,
    };
    let truth = generate_clip(cfg, 11, index).unwrap().truth;
    if write_sidecar {
        let path = dir.join(format!("{}.truth.parquet", truth.info.clip_id));
        vipa_synth::sidecar::write_clip_truth(&path, &truth).unwrap();
    }
    truth
}

fn header(seq: u64, clip: &str, idx: u32) -> StreamHeader {
    StreamHeader {
        seq,
        clip_id: clip.into(),
        frame_idx: u64::from(idx),
        timestamp_ns: u64::from(idx) * 200_000_000,
    }
}

fn msg(id: &str, (array, meta): (arrow::array::ArrayRef, vipa_msgs::Metadata)) -> InputMsg {
    InputMsg {
        id: id.into(),
        array,
        meta,
    }
}

/// The three messages of frame `f` of `truth`, as ingest / lift-depth / lift-hands send them;
/// `depth_error` replaces the point map by a frame-error marker.
fn frame_msgs(truth: &ClipTruth, f: usize, seq: u64, depth_error: bool) -> [InputMsg; 3] {
    let info = &truth.info;
    let fr = &truth.frames[f];
    let h = header(seq, &info.clip_id, fr.frame_idx);
    let rgb: Vec<u8> = (0..info.width * info.height * 3)
        .map(|i| (i % 251) as u8)
        .collect();
    let image = ImageFrame::new(h.clone(), info.width, info.height, Encoding::Rgb8, rgb).unwrap();
    let pm = if depth_error {
        let mut meta = vipa_msgs::Metadata::new();
        h.write(&mut meta);
        meta.insert("kind".into(), MetaValue::String("frame_error".into()));
        meta.insert(
            "error".into(),
            MetaValue::String("no sidecar /x/y.truth.parquet".into()),
        );
        meta.insert("node".into(), MetaValue::String("lift-depth".into()));
        msg(
            "pointmap",
            (Arc::new(UInt8Array::from(Vec::<u8>::new())), meta),
        )
    } else {
        let map = sidecar_point_map(&fr.depth_m(), &intrinsics(info)).unwrap();
        let (array, mut meta) =
            PointMap::new(h.clone(), info.height, info.width, map.as_slice().to_vec())
                .unwrap()
                .to_arrow();
        let k = info.intrinsics;
        meta.insert(
            "intrinsics".into(),
            MetaValue::ListFloat([k.fx, k.fy, k.cx, k.cy].map(f64::from).to_vec()),
        );
        meta.insert(
            "world_from_camera".into(),
            MetaValue::ListFloat(fr.world_from_camera.map(f64::from).to_vec()),
        );
        msg("pointmap", (array, meta))
    };
    let hands = HandsMsg {
        header: h,
        hands: fr
            .hands
            .iter()
            .map(|t| Hand {
                side: HandSide::parse(t.side.as_str()).unwrap(),
                joints_xyz: t.joints_cam,
                confidence: t.visible.map(|v| if v { 1.0 } else { 0.0 }),
                joints_uv: t.joints_2d,
            })
            .collect(),
    };
    [
        msg("image", image.to_arrow()),
        pm,
        msg("hands", hands.to_arrow()),
    ]
}

fn clip_end(seq: u64, clip: &str, frames: u64, last_seq: u64) -> InputMsg {
    let end = ClipEnd {
        header: header(seq, clip, frames as u32),
        frames,
        complete: true,
        last_seq: Some(last_seq),
    };
    msg("clip_end", end.to_arrow())
}

fn stream_end(seq: u64, clips: u64, frames: u64) -> InputMsg {
    let end = StreamEnd {
        header: header(seq, "", 0),
        clips,
        frames,
        bad_sources: 0,
    };
    msg("clip_end", end.to_arrow())
}

/// Feeds two clips (the second without a sidecar: frame errors from lift-depth); each frame's
/// parts arrive in a different order. Returns the acks.
fn feed(ann: &mut Annotator, a: &ClipTruth, b: &ClipTruth) -> Vec<Ack> {
    feed_lossy(ann, a, b, None)
}

/// [`feed`], losing the point map of the `lose`-th frame (as dora's transport can).
fn feed_lossy(ann: &mut Annotator, a: &ClipTruth, b: &ClipTruth, lose: Option<u64>) -> Vec<Ack> {
    let mut out = RecordingOutputs::new();
    let mut seq = 0;
    let mut ctrl = 0;
    for (truth, err) in [(a, false), (b, true)] {
        let n = truth.frames.len();
        let first = seq;
        for f in 0..n {
            let [img, pm, hands] = frame_msgs(truth, f, seq, err);
            let order = match f % 3 {
                0 => [img, pm, hands],
                1 => [hands, img, pm],
                _ => [pm, hands, img],
            };
            for m in order {
                if lose == Some(seq) && m.id == "pointmap" {
                    continue;
                }
                ann.on_input(&m, &mut out).unwrap();
            }
            seq += 1;
        }
        ann.on_input(
            &clip_end(ctrl, &truth.info.clip_id, n as u64, first + n as u64 - 1),
            &mut out,
        )
        .unwrap();
        ctrl += 1;
    }
    ann.on_input(&stream_end(ctrl, 2, seq), &mut out).unwrap();
    out.on("ack").map(|s| s.decode().unwrap()).collect()
}

#[test]
fn two_clips_give_one_shard_one_skip_a_frame_store_and_exact_acks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = clip(d, 0, true);
    let b = clip(d, 1, false);
    let cfg = AnnotateConfig {
        out: d.join("ds"),
        clip_info_dir: d.to_path_buf(),
        ..Default::default()
    };
    let mut ann = Annotator::new(cfg.clone()).unwrap();
    let acks = feed(&mut ann, &a, &b);
    assert!(ann.is_finished());
    let frames = (a.frames.len() + b.frames.len()) as u64;
    // Every frame, both clip ends and the stream end are acked, with a running count.
    let last = acks.last().unwrap();
    assert_eq!(last.received, frames + 3);
    assert_eq!(last.seq as usize, acks.len() - 1);
    assert!(acks.windows(2).all(|w| w[1].received == w[0].received + 1));
    assert!(ann.seq().is_clean());

    let reader = DatasetReader::open(d.join("ds")).unwrap();
    let m = reader.manifest();
    assert_eq!(m.counts.clips, 1);
    assert_eq!(m.clips[0].clip_id, a.info.clip_id);
    assert_eq!(m.skipped.len(), 1);
    assert_eq!(m.skipped[0].clip_id, b.info.clip_id);
    assert!(
        m.skipped[0].reason.contains("lift-depth: no sidecar"),
        "{}",
        m.skipped[0].reason
    );
    let entry = &m.clips[0];
    let samples = reader.read_clip(entry).unwrap();
    assert!(!samples.is_empty());
    assert_eq!(m.counts.samples, samples.len());
    // Ground-truth depth: the calibration scale is 1 up to the hand-surface bias (~1–2 %).
    assert!((entry.stats.scale - 1.0).abs() < 0.03, "{:?}", entry.stats);

    // Frame store: every referenced frame, with the calibrated depth = scale × truth depth.
    let store = read_clip_frames(&d.join("ds"), &a.info.clip_id).unwrap();
    let mut referenced: Vec<u32> = samples.iter().flat_map(|s| s.frame_idxs.clone()).collect();
    referenced.sort();
    referenced.dedup();
    let stored: Vec<u32> = store.frames.iter().map(|f| f.frame_idx).collect();
    assert_eq!(stored, referenced);
    for sf in &store.frames {
        let truth = &a.frames[sf.frame_idx as usize];
        assert_eq!(sf.rgb.len(), 80 * 60 * 3);
        assert_eq!(sf.rgb[5], 5);
        for (i, (&got, &want)) in sf.depth_mm.iter().zip(&truth.depth_mm).enumerate() {
            let want = (f32::from(want) * entry.stats.scale).round();
            assert!(
                (f32::from(got) - want).abs() <= 1.0,
                "pixel {i}: {got} vs {want}"
            );
        }
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("ds").join(REPORT_FILE)).unwrap())
            .unwrap();
    assert_eq!(report["frames_joined"].as_u64(), Some(frames));
    assert_eq!(report["all_inputs_clean"].as_bool(), Some(true));

    // Resume: the finished clip is not re-annotated, the dataset comes out the same.
    let manifest_1 = std::fs::read_to_string(d.join("ds/manifest.json")).unwrap();
    let mut ann = Annotator::new(cfg).unwrap();
    feed(&mut ann, &a, &b);
    assert_eq!(
        ann.report().clips_already_done,
        vec![a.info.clip_id.clone()]
    );
    assert!(ann.report().clips_written.is_empty());
    let manifest_2 = std::fs::read_to_string(d.join("ds/manifest.json")).unwrap();
    assert_eq!(manifest_1, manifest_2);
    assert_eq!(
        DatasetReader::open(d.join("ds"))
            .unwrap()
            .count(Split::Train)
            + DatasetReader::open(d.join("ds"))
                .unwrap()
                .count(Split::Test),
        samples.len()
    );
}

#[test]
fn a_clip_without_hands_is_skipped_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut a = clip(d, 2, false);
    for f in &mut a.frames {
        f.hands.clear();
    }
    vipa_synth::sidecar::write_clip_truth(&d.join(format!("{}.truth.parquet", a.info.clip_id)), &a)
        .unwrap();
    let b = clip(d, 3, false);
    let mut ann = Annotator::new(AnnotateConfig {
        out: d.join("ds"),
        clip_info_dir: d.to_path_buf(),
        ..Default::default()
    })
    .unwrap();
    feed(&mut ann, &a, &b);
    let m = DatasetReader::open(d.join("ds"))
        .unwrap()
        .manifest()
        .clone();
    assert_eq!(m.counts.clips, 0);
    let reasons: Vec<&str> = m.skipped.iter().map(|s| s.reason.as_str()).collect();
    assert!(reasons[0].contains("no visible hand"), "{reasons:?}");
}

#[test]
fn a_frame_lost_in_transport_skips_its_clip_without_stalling_the_acks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = clip(d, 4, true);
    let b = clip(d, 5, true);
    let mut ann = Annotator::new(AnnotateConfig {
        out: d.join("ds"),
        clip_info_dir: d.to_path_buf(),
        ..Default::default()
    })
    .unwrap();
    // Frame 2 of the first clip loses its point map.
    let acks = feed_lossy(&mut ann, &a, &b, Some(2));
    assert!(ann.is_finished());
    let frames = (a.frames.len() + b.frames.len()) as u64;
    assert_eq!(acks.last().unwrap().received, frames + 3);
    assert_eq!(ann.seq().stats("pointmap").unwrap().dropped, 1);
    let m = DatasetReader::open(d.join("ds"))
        .unwrap()
        .manifest()
        .clone();
    // The second clip is the frame-error clip of `feed`; the first lost a frame.
    assert_eq!(m.skipped.len(), 2);
    assert_eq!(m.skipped[0].clip_id, a.info.clip_id);
    assert!(
        m.skipped[0]
            .reason
            .contains("1 of 15 frames lost in transport"),
        "{}",
        m.skipped[0].reason
    );
    assert!(
        m.skipped[1].reason.contains("lift-depth"),
        "{}",
        m.skipped[1].reason
    );
    assert!(m.clips.is_empty());
}
