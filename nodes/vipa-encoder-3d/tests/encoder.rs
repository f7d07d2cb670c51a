//! The 3D encoder's logic without dora (tiny preset).

// Test helpers unwrap too: a panic there is a failed test with a line number.
#![allow(clippy::unwrap_used)]

use vipa_encoder_3d::encoder::{TOKEN_VALID, resize_nearest};
use vipa_encoder_3d::{Encoder3d, Encoder3dConfig, EncoderError};
use vipa_msgs::ports;
use vipa_msgs::{MetaValue, Payload, PointMap, StreamEnd, StreamHeader, TensorMsg, kind_of};
use vipa_node_kit::{InputMsg, RecordingOutputs, StreamLogic, from_yaml_str};

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
        id: ports::POINTMAP.into(),
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
    let s = out.on(ports::TOKENS_3D).next().unwrap();
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
    let s = out.on(ports::TOKENS_3D).next().unwrap();
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
            id: ports::POINTMAP.into(),
            array,
            meta,
        },
        &mut out,
    )
    .unwrap();
    let last = out.on(ports::TOKENS_3D).last().unwrap();
    assert_eq!(kind_of(&last.meta), Some("stream_end"));
    assert!(e.is_ended());

    let mut e = encoder("");
    let err = e
        .on_input(&input(&plane(3, 8, 8, 0.5, 0)), &mut out)
        .unwrap_err();
    assert!(
        matches!(
            err,
            EncoderError::Gap(vipa_node_kit::SeqGap { missing: 3, .. })
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------- backend cut3r (tiny fixture)

fn cut3r_yaml() -> String {
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/fixtures/cut3r");
    format!(
        "{{backend: cut3r, cut3r: {{checkpoint: {}, config: {}, size: 32}}}}",
        dir.join("tiny.safetensors").display(),
        dir.join("tiny.config.json").display()
    )
}

fn frame(seq: u64, seed: u32, slot: Option<i64>, sample: i64) -> InputMsg {
    let (w, h) = (24u32, 20u32);
    let pixels: Vec<u8> = (0..w * h * 3)
        .map(|i| ((i * 31 + seed * 97) % 256) as u8)
        .collect();
    let header = StreamHeader {
        seq,
        clip_id: "clip".into(),
        frame_idx: seq,
        timestamp_ns: 0,
    };
    let (array, mut meta) =
        vipa_msgs::ImageFrame::new(header, w, h, vipa_msgs::Encoding::Rgb8, pixels)
            .unwrap()
            .to_arrow();
    meta.insert("sample_seq".into(), MetaValue::Integer(sample));
    if let Some(s) = slot {
        meta.insert("frame_slot".into(), MetaValue::Integer(s));
        meta.insert("n_frames".into(), MetaValue::Integer(2));
    }
    InputMsg {
        id: ports::IMAGE.into(),
        array,
        meta,
    }
}

fn tokens_of(out: &RecordingOutputs, i: usize) -> Vec<f32> {
    let t: TensorMsg = out.on(ports::TOKENS_3D).nth(i).unwrap().decode().unwrap();
    assert_eq!(
        t.expect_axes(&["tokens", "channels"]).unwrap(),
        &[1 + 2 * 2, 16]
    );
    t.f32_values().unwrap().to_vec()
}

#[test]
fn cut3r_tokens_and_state_within_a_sample() {
    let mut e = encoder(&cut3r_yaml());
    assert_eq!((e.tokens(), e.channels()), (5, 16));
    let mut out = RecordingOutputs::new();
    // Sample 7: frames A (slot 0), B (slot 1); sample 8: frame B alone (slot 0); then B without
    // any slot (single-frame use).
    e.on_input(&frame(0, 1, Some(0), 7), &mut out).unwrap();
    e.on_input(&frame(1, 2, Some(1), 7), &mut out).unwrap();
    e.on_input(&frame(2, 2, Some(0), 8), &mut out).unwrap();
    e.on_input(&frame(3, 2, None, 9), &mut out).unwrap();
    let s = out.on(ports::TOKENS_3D).next().unwrap();
    assert_eq!(
        s.meta.get(TOKEN_VALID),
        Some(&MetaValue::ListInt(vec![1; 5]))
    );
    assert_eq!(s.meta.get("frame_slot"), Some(&MetaValue::Integer(0)));
    let b_after_a = tokens_of(&out, 1);
    let b_fresh = tokens_of(&out, 2);
    assert!(b_after_a.iter().all(|x| x.is_finite()));
    assert_ne!(b_after_a, b_fresh, "the state must carry within a sample");
    assert_eq!(
        b_fresh,
        tokens_of(&out, 3),
        "a new sample starts from a fresh state"
    );
    // Independent run: the model on the resized frame from a fresh state gives what the
    // fresh sample got.
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/fixtures/cut3r");
    let model_cfg: vipa_models::vision::config::Cut3rConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tiny.config.json")).unwrap())
            .unwrap();
    let dev = candle_core::Device::Cpu;
    let model =
        vipa_models::vision::cut3r::Cut3r::load(&model_cfg, &[dir.join("tiny.safetensors")], &dev)
            .unwrap();
    let pixels: Vec<u8> = (0..24u32 * 20 * 3)
        .map(|i| ((i * 31 + 2 * 97) % 256) as u8)
        .collect();
    let small = vipa_models::vision::resize::pil_resize_bicubic(&pixels, (20, 24), (32, 32));
    let x = candle_core::Tensor::from_vec(small, (32, 32, 3), &dev)
        .unwrap()
        .permute((2, 0, 1))
        .unwrap()
        .to_dtype(candle_core::DType::F32)
        .unwrap()
        .affine(1.0 / 255.0, 0.0)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let x = vipa_models::vision::cut3r::normalize_rgb01(&x).unwrap();
    let want: Vec<f32> = model.forward_frames(&[x]).unwrap()[0]
        .tokens
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(b_fresh, want);

    // A point map on a cut3r encoder is a wiring error, not a silent drop.
    let err = e
        .on_input(&input(&plane(4, 8, 8, 0.5, 0)), &mut out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("image"), "{err}");
}

#[test]
fn cut3r_setup_errors_name_the_file() {
    let err = Encoder3d::new(
        &from_yaml_str::<Encoder3dConfig>(
            "{backend: cut3r, cut3r: {checkpoint: /nonexistent/c.safetensors, preset: tiny}}",
        )
        .unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("/nonexistent/c.safetensors"), "{err}");
}

#[test]
fn feature_cache_hits_equal_a_fresh_encode_and_another_config_misses() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = |seed: u64| {
        format!(
            "{{preset: tiny, seed: {seed}, cache: {:?}}}",
            dir.path().display().to_string()
        )
    };
    let pm = plane(0, 24, 24, 0.5, 6);
    let (fresh, fresh_valid) = encoder("preset: tiny").encode(&pm).unwrap();
    let fresh: Vec<f32> = fresh.flatten_all().unwrap().to_vec1().unwrap();
    let mut cached = encoder(&yaml(0));
    let miss = cached.features(&pm).unwrap();
    let hit = cached.features(&pm).unwrap();
    assert_eq!(cached.cache_stats(), Some((1, 1)));
    assert_eq!(miss, hit);
    assert_eq!(hit.1, fresh, "a hit returns the fresh tokens");
    assert_eq!(hit.2, fresh_valid, "and their validity");
    assert!(hit.2.contains(&0), "the test plane has invalid tokens");
    // Another seed misses; another geometry misses.
    let mut other = encoder(&yaml(1));
    assert_ne!(other.features(&pm).unwrap().1, fresh);
    other.features(&plane(0, 24, 24, 0.7, 6)).unwrap();
    assert_eq!(other.cache_stats(), Some((0, 2)));
    // Cut3R's state runs across frames: a cache with it is refused by the config.
    let err = from_yaml_str::<Encoder3dConfig>(
        "{backend: cut3r, cache: /tmp/x, cut3r: {checkpoint: c.safetensors}}",
    )
    .unwrap_err();
    assert!(err.to_string().contains("cache"), "{err}");
}
