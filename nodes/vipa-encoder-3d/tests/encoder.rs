//! The 3D encoder's logic without dora (tiny preset).

// Test helpers unwrap too: a panic there is a failed test with a line number.
#![allow(clippy::unwrap_used)]

use vipa_encoder_3d::encoder::{IN_POINTMAP, OUT_TOKENS, TOKEN_VALID, resize_nearest};
use vipa_encoder_3d::{Encoder3d, Encoder3dConfig, EncoderError};
use vipa_msgs::{MetaValue, Payload, PointMap, StreamEnd, StreamHeader, TensorMsg, kind_of};
use vipa_node_kit::{InputMsg, RecordingOutputs, from_yaml_str};

/// A `w × h` plane at depth `z`; the left `invalid_cols` columns have no depth (NaN).
fn plane(seq: u64, w: u32, h: u32, z: f32, invalid_cols: u32) -> PointMap {
    let mut pts = Vec::new();
    for r in 0..h {
        for c in 0..w {
            if c < invalid_cols {
                pts.extend([f32::NAN; 3]);
            } else {
                pts.extend([
                    (c as f32 - w as f32 / 2.0) * 0.01,
                    (r as f32 - h as f32 / 2.0) * 0.01,
                    z,
                ]);
            }
        }
    }
    let header = StreamHeader {
        seq,
        clip_id: "clip".into(),
        frame_idx: 3,
        timestamp_ns: 0,
    };
    PointMap::new(header, h, w, pts).unwrap()
}

fn input(pm: &PointMap) -> InputMsg {
    let (array, mut meta) = pm.to_arrow();
    meta.insert("sample_seq".into(), MetaValue::Integer(4));
    meta.insert("frame_slot".into(), MetaValue::Integer(1));
    meta.insert("n_frames".into(), MetaValue::Integer(2));
    InputMsg {
        id: IN_POINTMAP.into(),
        array,
        meta,
    }
}

fn encoder(yaml: &str) -> Encoder3d {
    Encoder3d::new(&from_yaml_str::<Encoder3dConfig>(yaml).unwrap()).unwrap()
}

#[test]
fn point_map_vit_tokens_shape_validity_and_pass_through() {
    let mut e = encoder("preset: tiny");
    let mut out = RecordingOutputs::new();
    // 28 wide, left quarter invalid: after resizing to 56 px the first 14 columns, i.e. the
    // first patch column (patch 14, 4×4 grid), have no valid point.
    e.on_input(&input(&plane(0, 28, 20, 0.6, 7)), &mut out)
        .unwrap();
    let s = out.on(OUT_TOKENS).next().unwrap();
    let t: TensorMsg = s.decode().unwrap();
    assert_eq!(t.expect_axes(&["tokens", "channels"]).unwrap(), &[16, 48]);
    assert_eq!((t.header.seq, t.header.frame_idx), (0, 3));
    assert!(t.f32_values().unwrap().iter().all(|x| x.is_finite()));
    let Some(MetaValue::ListInt(valid)) = s.meta.get(TOKEN_VALID) else {
        panic!("no {TOKEN_VALID}");
    };
    let want: Vec<i64> = (0..16).map(|i| i64::from(i % 4 != 0)).collect();
    assert_eq!(valid, &want);
    for (k, v) in [("sample_seq", 4), ("frame_slot", 1), ("n_frames", 2)] {
        assert_eq!(s.meta.get(k), Some(&MetaValue::Integer(v)), "{k}");
    }
}

#[test]
fn geometry_changes_tokens_and_seed_is_deterministic() {
    let v = |e: &Encoder3d, pm: &PointMap| {
        e.encode(pm)
            .unwrap()
            .0
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let near = plane(0, 16, 16, 0.5, 0);
    let far = plane(0, 16, 16, 0.9, 0);
    let a = v(&encoder("seed: 1"), &near);
    assert_eq!(a, v(&encoder("seed: 1"), &near));
    assert_ne!(a, v(&encoder("seed: 2"), &near));
    assert_ne!(a, v(&encoder("seed: 1"), &far));
}

#[test]
fn backend_none_sends_empty_tokens_of_the_preset_width() {
    let mut e = encoder("{backend: none, preset: small}");
    let mut out = RecordingOutputs::new();
    e.on_input(&input(&plane(0, 8, 8, 0.5, 0)), &mut out)
        .unwrap();
    let s = out.on(OUT_TOKENS).next().unwrap();
    let t: TensorMsg = s.decode().unwrap();
    assert_eq!(t.shape, vec![0, 256]);
    assert_eq!(s.meta.get(TOKEN_VALID), Some(&MetaValue::ListInt(vec![])));
    assert_eq!(s.meta.get("sample_seq"), Some(&MetaValue::Integer(4)));
}

#[test]
fn nearest_resize_picks_pixel_centres() {
    // 2×2 → 4×4: each source pixel becomes a 2×2 block.
    let src: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let out = resize_nearest(&src, 2, 2, 4);
    let first_channel: Vec<f32> = out.chunks(3).map(|p| p[0]).collect();
    assert_eq!(
        first_channel,
        vec![
            0., 0., 3., 3., 0., 0., 3., 3., 6., 6., 9., 9., 6., 6., 9., 9.
        ]
    );
}

#[test]
fn weights_file_stream_end_and_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let cfg = vipa_models::vipa::VipaVisionConfig::tiny();
    let w = vipa_models::vipa::VipaVision::random_weights(&cfg, &candle_core::Device::Cpu).unwrap();
    candle_core::safetensors::save(&w, &path).unwrap();
    let pm = plane(0, 16, 16, 0.5, 0);
    let a = encoder(&format!("weights: {}", path.display()))
        .encode(&pm)
        .unwrap()
        .0;
    let b = encoder("").encode(&pm).unwrap().0;
    let diff = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff > 0.0, "the file's weights are used");

    let mut e = encoder("");
    let mut out = RecordingOutputs::new();
    e.on_input(&input(&plane(0, 8, 8, 0.5, 0)), &mut out)
        .unwrap();
    let (array, meta) = StreamEnd {
        header: StreamHeader {
            seq: 1,
            ..Default::default()
        },
        clips: 0,
        frames: 1,
        bad_sources: 0,
    }
    .to_arrow();
    e.on_input(
        &InputMsg {
            id: IN_POINTMAP.into(),
            array,
            meta,
        },
        &mut out,
    )
    .unwrap();
    let last = out.on(OUT_TOKENS).last().unwrap();
    assert_eq!(kind_of(&last.meta), Some("stream_end"));
    assert!(e.is_ended());

    let mut e = encoder("");
    let err = e
        .on_input(&input(&plane(3, 8, 8, 0.5, 0)), &mut out)
        .unwrap_err();
    assert!(matches!(err, EncoderError::Gap { missing: 3, .. }), "{err}");
}
