//! The cut3r backend with the tiny Cut3R fixture of `vipa-models` (random weights whose
//! outputs `vipa-models` checks against the official code): recurrent state per clip, point
//! maps at the frame's size, fitted intrinsics, clear setup errors.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use vipa_hand3d::geometry::PointMap as HandPointMap;
use vipa_lift_depth::cut3r::{estimate_intrinsics, input_size};
use vipa_lift_depth::{
    Backend, Cut3rBackendConfig, KEY_BACKEND, KEY_INTRINSICS, LiftDepth, LiftDepthConfig,
};
use vipa_models::vision::config::Cut3rConfig;
use vipa_models::vision::cut3r::{Cut3r, normalize_rgb01};
use vipa_models::vision::resize::pil_resize_bicubic;
use vipa_msgs::ports;
use vipa_msgs::{Encoding, ImageFrame, MetaValue, Payload, PointMap, StreamHeader, kind_of};
use vipa_node_kit::{InputMsg, RecordingOutputs};

const W: u32 = 40;
const H: u32 = 30;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/fixtures/cut3r")
}

fn cfg() -> LiftDepthConfig {
    LiftDepthConfig {
        backend: Backend::Cut3r,
        sidecar_dir: "/nonexistent".into(),
        cut3r: Cut3rBackendConfig {
            checkpoint: Some(fixtures().join("tiny.safetensors")),
            config: Some(fixtures().join("tiny.config.json")),
            size: 48,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn pixels(seed: u32) -> Vec<u8> {
    (0..W * H * 3)
        .map(|i| ((i * 37 + seed * 101) % 256) as u8)
        .collect()
}

fn image(clip: &str, frame_idx: u64, seq: u64, seed: u32) -> InputMsg {
    let header = StreamHeader {
        seq,
        clip_id: clip.into(),
        frame_idx,
        timestamp_ns: 0,
    };
    let (array, meta) = ImageFrame::new(header, W, H, Encoding::Rgb8, pixels(seed))
        .unwrap()
        .to_arrow();
    InputMsg {
        id: "image".into(),
        array,
        meta,
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn input_size_keeps_the_long_side_and_multiples_of_16() {
    assert_eq!(input_size(40, 30, 48), (32, 48));
    assert_eq!(input_size(1920, 1080, 512), (288, 512));
    assert_eq!(input_size(480, 640, 512), (512, 384));
    assert_eq!(input_size(100, 1, 16), (16, 16));
}

#[test]
fn clips_run_recurrently_and_reset_between_clips() {
    let mut lift = LiftDepth::new(cfg()).unwrap();
    let mut out = RecordingOutputs::new();
    // Clip a: frames P, Q; clip b: frame Q.
    lift.on_input(&image("a", 0, 0, 1), &mut out).unwrap();
    lift.on_input(&image("a", 1, 1, 2), &mut out).unwrap();
    lift.on_input(&image("b", 0, 2, 2), &mut out).unwrap();
    let sent: Vec<_> = out.on(ports::POINTMAP).collect();
    assert_eq!(sent.len(), 3);
    let maps: Vec<PointMap> = sent
        .iter()
        .map(|m| {
            assert_eq!(kind_of(&m.meta), Some("point_map"), "{:?}", m.meta);
            assert_eq!(m.meta[KEY_BACKEND], MetaValue::String("cut3r".into()));
            m.decode().unwrap()
        })
        .collect();
    for pm in &maps {
        assert_eq!((pm.width, pm.height), (W, H));
        assert!(pm.values().iter().all(|v| v.is_finite()));
    }
    // Q after P (state carried) differs from Q opening a clip (fresh state).
    assert_ne!(bits(maps[1].values()), bits(maps[2].values()));

    // Independent run: the model on the resized frame, as the first frame of a sequence,
    // sampled back by nearest neighbour, equals what clip b got.
    let model_cfg: Cut3rConfig = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("tiny.config.json")).unwrap(),
    )
    .unwrap();
    let model = Cut3r::load(
        &model_cfg,
        &[fixtures().join("tiny.safetensors")],
        &Device::Cpu,
    )
    .unwrap();
    let (hn, wn) = (32usize, 48usize);
    let small = pil_resize_bicubic(&pixels(2), (H as usize, W as usize), (hn, wn));
    let x = Tensor::from_vec(small, (hn, wn, 3), &Device::Cpu)
        .unwrap()
        .permute((2, 0, 1))
        .unwrap()
        .to_dtype(candle_core::DType::F32)
        .unwrap()
        .affine(1.0 / 255.0, 0.0)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let outs = model
        .forward_frames(&[normalize_rgb01(&x).unwrap()])
        .unwrap();
    let pts: Vec<f32> = outs[0].pts3d_self.flatten_all().unwrap().to_vec1().unwrap();
    for (r, c) in [(0usize, 0usize), (7, 13), (29, 39), (15, 20)] {
        let sr = ((r as f64 + 0.5) * hn as f64 / f64::from(H)) as usize;
        let sc = ((c as f64 + 0.5) * wn as f64 / f64::from(W)) as usize;
        let want = &pts[3 * (sr * wn + sc)..3 * (sr * wn + sc) + 3];
        let got = maps[2].at(r as u32, c as u32).unwrap();
        assert_eq!(bits(&got), bits(want), "pixel ({r}, {c})");
    }

    // Without a sidecar the intrinsics are fitted: centred principal point, positive focal.
    let MetaValue::ListFloat(k) = &sent[0].meta[KEY_INTRINSICS] else {
        panic!("no intrinsics")
    };
    assert!(k[0] > 0.0 && k[0] == k[1], "{k:?}");
    assert!(
        (k[2] - 19.5).abs() < 1e-6 && (k[3] - 14.5).abs() < 1e-6,
        "{k:?}"
    );
}

#[test]
fn fitted_focal_recovers_a_known_camera() {
    // Points on the rays of a camera with f = 30, at varying depths.
    let (w, h, f) = (20u32, 10u32, 30.0f32);
    let mut data = Vec::new();
    for r in 0..h {
        for c in 0..w {
            let z = 1.0 + 0.1 * ((r * w + c) % 7) as f32;
            let u = c as f32 + 0.5 - 0.5 * w as f32;
            let v = r as f32 + 0.5 - 0.5 * h as f32;
            data.extend_from_slice(&[u / f * z, v / f * z, z]);
        }
    }
    // A few invalid points are ignored.
    data[0] = f32::NAN;
    data[5] = -1.0;
    let k = estimate_intrinsics(&HandPointMap::new(w, h, data).unwrap()).unwrap();
    assert!((k.fx - f).abs() < 1e-3 && (k.fy - f).abs() < 1e-3, "{k:?}");
    assert_eq!((k.cx, k.cy), (10.0, 5.0));
    let nothing = HandPointMap::new(2, 1, vec![f32::NAN; 6]).unwrap();
    assert!(estimate_intrinsics(&nothing).is_none());
}

#[test]
fn setup_errors_name_the_file_or_key() {
    let mut c = cfg();
    c.cut3r.checkpoint = Some("/nonexistent/cut3r.safetensors".into());
    let e = LiftDepth::new(c).err().unwrap().to_string();
    assert!(
        e.contains("/nonexistent/cut3r.safetensors") && e.contains("does not exist"),
        "{e}"
    );

    // The tiny checkpoint under the full-size config: a shape error naming a tensor.
    let mut c = cfg();
    c.cut3r.config = None;
    c.cut3r.preset = vipa_models::vision::config::Cut3rPreset::Cut3r512;
    let e = LiftDepth::new(c).err().unwrap().to_string();
    assert!(e.contains("tiny.safetensors") && e.contains("shape"), "{e}");

    let mut c = cfg();
    c.cut3r.config = Some("/nonexistent/cut3r.json".into());
    let e = LiftDepth::new(c).err().unwrap().to_string();
    assert!(e.contains("/nonexistent/cut3r.json"), "{e}");
}
