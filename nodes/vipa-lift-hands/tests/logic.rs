//! lift-hands logic without dora: real vipa-synth sidecars in, hands (or frame errors) out.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use vipa_lift_hands::{LiftHands, LiftHandsConfig};
use vipa_msgs::ports;
use vipa_msgs::{
    Encoding, FrameError, HandsMsg, ImageFrame, MetaValue, Payload, StreamHeader, kind_of,
};
use vipa_node_kit::{InputMsg, RecordingOutputs};
use vipa_synth::{SynthConfig, generate_clip};

fn image(seq: u64, clip: &str, idx: u64) -> InputMsg {
    let header = StreamHeader {
        seq,
        clip_id: clip.into(),
        frame_idx: idx,
        timestamp_ns: idx,
    };
    let (array, meta) = ImageFrame::new(header, 2, 1, Encoding::Rgb8, vec![0u8; 6])
        .unwrap()
        .to_arrow();
    InputMsg {
        id: "image".into(),
        array,
        meta,
    }
}

#[test]
fn sidecar_joints_and_visibility_come_through_and_missing_sidecar_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        width: 40,
        height: 30,
        fps: 5.0,
        seconds: 1.0,
    };
    let truth = generate_clip(cfg, 5, 2).unwrap().truth;
    let id = truth.info.clip_id.clone();
    vipa_synth::sidecar::write_clip_truth(&dir.path().join(format!("{id}.truth.parquet")), &truth)
        .unwrap();
    let mut lift = LiftHands::new(LiftHandsConfig {
        sidecar_dir: dir.path().to_path_buf(),
        ..Default::default()
    });
    let mut out = RecordingOutputs::new();
    lift.on_input(&image(0, &id, 4), &mut out).unwrap();
    lift.on_input(&image(1, "clip_0042", 0), &mut out).unwrap();
    lift.on_input(&image(2, &id, 99), &mut out).unwrap();
    let sent: Vec<_> = out.on(ports::HANDS).collect();
    assert_eq!(sent.len(), 3);

    let hands: HandsMsg = sent[0].decode().unwrap();
    assert_eq!((hands.header.seq, hands.header.frame_idx), (0, 4));
    let want = &truth.frames[4].hands;
    assert_eq!(hands.hands.len(), want.len());
    for (got, want) in hands.hands.iter().zip(want) {
        assert_eq!(got.side.as_str(), want.side.as_str());
        assert_eq!(got.joints_xyz, want.joints_cam);
        assert_eq!(got.joints_uv, want.joints_2d);
        for j in 0..21 {
            assert_eq!(got.confidence[j] > 0.5, want.visible[j], "joint {j}");
        }
    }

    for (i, needle) in [(1, "clip_0042.truth.parquet"), (2, "no frame 99")] {
        assert_eq!(kind_of(&sent[i].meta), Some(<FrameError as Payload>::KIND));
        assert_eq!(sent[i].meta["seq"], MetaValue::Integer(i as i64));
        let MetaValue::String(e) = &sent[i].meta[FrameError::KEY_ERROR] else {
            panic!()
        };
        assert!(e.contains(needle), "{e}");
    }
    assert_eq!(lift.totals().frame_errors, 2);
    assert!(lift.seq().is_clean());
}
