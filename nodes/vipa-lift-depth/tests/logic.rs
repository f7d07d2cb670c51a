//! lift-depth logic without dora: real vipa-synth sidecars in, point maps (or frame errors) out.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::Path;

use vipa_hand3d::backend::ScaledBackend;
use vipa_hand3d::truth::clip_seed;
use vipa_lift_depth::{Backend, KEY_INTRINSICS, KEY_POSE, LiftDepth, LiftDepthConfig};
use vipa_msgs::ports;
use vipa_msgs::{
    ClipEnd, Encoding, FrameError, ImageFrame, MetaValue, Payload, PointMap, StreamEnd,
    StreamHeader, kind_of,
};
use vipa_node_kit::{InputMsg, RecordingOutputs};
use vipa_synth::{ClipTruth, SynthConfig, generate_clip};

fn write_sidecar(dir: &Path, index: u32) -> ClipTruth {
    let cfg = SynthConfig {
        width: 40,
        height: 30,
        fps: 5.0,
        seconds: 1.0,
    };
    let truth = generate_clip(cfg, 3, index).unwrap().truth;
    let path = dir.join(format!("{}.truth.parquet", truth.info.clip_id));
    vipa_synth::sidecar::write_clip_truth(&path, &truth).unwrap();
    truth
}

fn image(seq: u64, clip: &str, idx: u64, w: u32, h: u32) -> InputMsg {
    let header = StreamHeader {
        seq,
        clip_id: clip.into(),
        frame_idx: idx,
        timestamp_ns: idx * 200_000_000,
    };
    let frame = ImageFrame::new(
        header,
        w,
        h,
        Encoding::Rgb8,
        vec![7u8; (w * h * 3) as usize],
    )
    .unwrap();
    let (array, meta) = frame.to_arrow();
    InputMsg {
        id: "image".into(),
        array,
        meta,
    }
}

fn control<P: Payload>(p: &P) -> InputMsg {
    let (array, meta) = p.to_arrow();
    InputMsg {
        id: "clip_end".into(),
        array,
        meta,
    }
}

fn cfg(dir: &Path, backend: Backend) -> LiftDepthConfig {
    LiftDepthConfig {
        backend,
        sidecar_dir: dir.to_path_buf(),
        noise_rel: 0.0,
        ..Default::default()
    }
}

#[test]
fn sidecar_backend_back_projects_ground_truth_depth() {
    let dir = tempfile::tempdir().unwrap();
    let truth = write_sidecar(dir.path(), 0);
    let id = truth.info.clip_id.clone();
    let mut lift = LiftDepth::new(cfg(dir.path(), Backend::Sidecar)).unwrap();
    let mut out = RecordingOutputs::new();
    lift.on_input(&image(0, &id, 0, 40, 30), &mut out).unwrap();
    lift.on_input(&image(1, &id, 3, 40, 30), &mut out).unwrap();
    let sent: Vec<_> = out.on(ports::POINTMAP).collect();
    assert_eq!(sent.len(), 2);
    let pm: PointMap = sent[1].decode().unwrap();
    assert_eq!(
        (
            pm.header.seq,
            pm.header.frame_idx,
            pm.header.clip_id.as_str()
        ),
        (1, 3, id.as_str())
    );
    // Every pixel: z equals the sidecar depth, x and y follow the synth intrinsics (pixel
    // centres at integer coordinates).
    let k = truth.info.intrinsics;
    let f = &truth.frames[3];
    let mut checked = 0;
    for row in 0..30u32 {
        for col in 0..40u32 {
            match (f.depth_m_at(col as usize, row as usize), pm.at(row, col)) {
                (Some(z), Some(p)) => {
                    let want = k.unproject(col as f32, row as f32, z);
                    for c in 0..3 {
                        assert!(
                            (p[c] - want[c]).abs() < 1e-5,
                            "({col},{row}) {p:?} vs {want:?}"
                        );
                    }
                    checked += 1;
                }
                (None, None) => {}
                (a, b) => panic!("pixel ({col},{row}): sidecar {a:?}, map {b:?}"),
            }
        }
    }
    assert!(checked > 600, "{checked}");
    let MetaValue::ListFloat(kk) = &sent[1].meta[KEY_INTRINSICS] else {
        panic!()
    };
    assert_eq!(
        kk,
        &vec![
            f64::from(k.fx),
            f64::from(k.fy),
            f64::from(k.cx),
            f64::from(k.cy)
        ]
    );
    let MetaValue::ListFloat(pose) = &sent[1].meta[KEY_POSE] else {
        panic!()
    };
    assert_eq!(pose.len(), 16);
    assert!(lift.seq().is_clean());
}

#[test]
fn scaled_backend_multiplies_depth_by_the_hidden_clip_factor() {
    let dir = tempfile::tempdir().unwrap();
    let truth = write_sidecar(dir.path(), 1);
    let id = truth.info.clip_id.clone();
    let factor = ScaledBackend::clip_factor(clip_seed(&truth.info));
    let mut lift = LiftDepth::new(cfg(dir.path(), Backend::Scaled)).unwrap();
    let mut out = RecordingOutputs::new();
    lift.on_input(&image(0, &id, 2, 40, 30), &mut out).unwrap();
    let pm: PointMap = out.sent[0].decode().unwrap();
    let f = &truth.frames[2];
    let (row, col) = (15, 20);
    let z = f.depth_m_at(col, row).unwrap();
    let p = pm.at(row as u32, col as u32).unwrap();
    assert!(
        (p[2] / (z * factor) - 1.0).abs() < 1e-5,
        "{} vs {}",
        p[2],
        z * factor
    );
    assert!(
        (factor - 1.0).abs() > 1e-3,
        "the factor must be hidden, got {factor}"
    );
}

#[test]
fn missing_sidecar_and_wrong_size_give_frame_errors_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let truth = write_sidecar(dir.path(), 0);
    let id = truth.info.clip_id.clone();
    let mut lift = LiftDepth::new(cfg(dir.path(), Backend::Sidecar)).unwrap();
    let mut out = RecordingOutputs::new();
    lift.on_input(&image(0, "clip_0099", 0, 40, 30), &mut out)
        .unwrap();
    lift.on_input(&image(1, "clip_0099", 1, 40, 30), &mut out)
        .unwrap();
    lift.on_input(&image(2, &id, 0, 20, 15), &mut out).unwrap();
    lift.on_input(&image(3, &id, 1, 40, 30), &mut out).unwrap();
    let sent: Vec<_> = out.on(ports::POINTMAP).collect();
    assert_eq!(sent.len(), 4);
    for (i, s) in sent.iter().enumerate().take(3) {
        assert_eq!(
            kind_of(&s.meta),
            Some(<FrameError as Payload>::KIND),
            "message {i}"
        );
        assert_eq!(s.meta["seq"], MetaValue::Integer(i as i64));
        assert!(s.array.is_empty());
    }
    let MetaValue::String(e) = &sent[0].meta[FrameError::KEY_ERROR] else {
        panic!()
    };
    assert!(
        e.contains("clip_0099.truth.parquet") && e.contains("sidecar_dir"),
        "{e}"
    );
    let MetaValue::String(e) = &sent[2].meta[FrameError::KEY_ERROR] else {
        panic!()
    };
    assert!(e.contains("20x15") && e.contains("40x30"), "{e}");
    assert!(sent[3].decode::<PointMap>().is_ok());
    assert_eq!(lift.totals().frame_errors, 3);
    assert_eq!(lift.totals().point_maps, 1);
}

#[test]
fn control_messages_are_sequence_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut lift = LiftDepth::new(cfg(dir.path(), Backend::Sidecar)).unwrap();
    let mut out = RecordingOutputs::new();
    let h = |seq| StreamHeader {
        seq,
        clip_id: "c".into(),
        frame_idx: 0,
        timestamp_ns: 0,
    };
    let end = ClipEnd {
        header: h(0),
        frames: 0,
        complete: true,
        last_seq: None,
    };
    lift.on_input(&control(&end), &mut out).unwrap();
    let stream_end = StreamEnd {
        header: h(2),
        clips: 2,
        frames: 0,
        bad_sources: 0,
    };
    lift.on_input(&control(&stream_end), &mut out).unwrap();
    assert!(out.sent.is_empty());
    assert!(lift.totals().stream_ended);
    assert_eq!(lift.seq().stats("clip_end").unwrap().dropped, 1);
}
