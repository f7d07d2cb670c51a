//! The semantic encoder's logic without dora (tiny preset).

// Test helpers unwrap too: a panic there is a failed test with a line number.
#![allow(clippy::unwrap_used)]

use vipa_encoder_2d::{Encoder2d, Encoder2dConfig, EncoderError};
use vipa_msgs::ports;
use vipa_msgs::{
    Encoding, ImageFrame, MetaValue, Payload, StreamEnd, StreamHeader, TensorMsg, kind_of,
};
use vipa_node_kit::{InputMsg, RecordingOutputs, StreamLogic, from_yaml_str};

fn frame(seq: u64, encoding: Encoding, w: u32, h: u32) -> ImageFrame {
    let c = encoding.channels() as u32;
    let pixels: Vec<u8> = (0..w * h * c)
        .map(|i| ((i * 37 + seq as u32 * 11) % 256) as u8)
        .collect();
    let header = StreamHeader {
        seq,
        clip_id: "clip".into(),
        frame_idx: 10 + seq,
        timestamp_ns: 5,
    };
    ImageFrame::new(header, w, h, encoding, pixels).unwrap()
}

fn input(frame: &ImageFrame, sample_seq: Option<i64>) -> InputMsg {
    let (array, mut meta) = frame.to_arrow();
    if let Some(s) = sample_seq {
        meta.insert("sample_seq".into(), MetaValue::Integer(s));
        meta.insert("frame_slot".into(), MetaValue::Integer(0));
        meta.insert("n_frames".into(), MetaValue::Integer(1));
    }
    InputMsg {
        id: ports::IMAGE.into(),
        array,
        meta,
    }
}

fn encoder(yaml: &str) -> Encoder2d {
    Encoder2d::new(&from_yaml_str::<Encoder2dConfig>(yaml).unwrap()).unwrap()
}

fn values(e: &Encoder2d, f: &ImageFrame) -> Vec<f32> {
    e.encode(f)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn tokens_have_the_fusion_input_shape_and_pass_keys_through() {
    let mut e = encoder("preset: tiny");
    // tiny InternViT: 56 px / patch 14 → 4×4 = 16 patch tokens of width 64.
    assert_eq!(e.output_shape().unwrap(), [16, 64]);
    let mut out = RecordingOutputs::new();
    for seq in 0..2 {
        e.on_input(
            &input(&frame(seq, Encoding::Rgb8, 20, 12), Some(7 + seq as i64)),
            &mut out,
        )
        .unwrap();
    }
    let sent: Vec<_> = out.on(ports::TOKENS_2D).collect();
    assert_eq!(sent.len(), 2);
    for (i, s) in sent.iter().enumerate() {
        let t: TensorMsg = s.decode().unwrap();
        assert_eq!(t.expect_axes(&["tokens", "channels"]).unwrap(), &[16, 64]);
        assert_eq!(t.header.seq, i as u64);
        assert_eq!(
            (t.header.clip_id.as_str(), t.header.frame_idx),
            ("clip", 10 + i as u64)
        );
        let v = t.f32_values().unwrap();
        assert!(v.iter().all(|x| x.is_finite()));
        assert!(
            v.iter().any(|&x| x.abs() > 1e-3),
            "features are not all zero"
        );
        assert_eq!(
            s.meta.get("sample_seq"),
            Some(&MetaValue::Integer(7 + i as i64))
        );
        assert_eq!(s.meta.get("n_frames"), Some(&MetaValue::Integer(1)));
    }
    // Different frames → different features.
    let a: TensorMsg = sent[0].decode().unwrap();
    let b: TensorMsg = sent[1].decode().unwrap();
    assert_ne!(a.f32_values().unwrap(), b.f32_values().unwrap());
}

#[test]
fn seeded_init_is_deterministic_and_encodings_agree() {
    let f = frame(0, Encoding::Rgb8, 30, 30);
    let a = values(&encoder("seed: 4"), &f);
    assert_eq!(
        a,
        values(&encoder("seed: 4"), &f),
        "same seed, new process state"
    );
    assert_ne!(a, values(&encoder("seed: 5"), &f));
    // The same picture as bgr8 gives the same features.
    let bgr: Vec<u8> = f
        .bytes()
        .chunks(3)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    let fb = ImageFrame::new(f.header.clone(), 30, 30, Encoding::Bgr8, bgr).unwrap();
    assert_eq!(a, values(&encoder("seed: 4"), &fb));
}

#[test]
fn projected_features_and_weights_from_a_file() {
    let e = encoder("{features: projected}");
    // 16 patches → pixel shuffle 2×2 → 4 tokens → mlp1 to the tiny LLM width 32.
    assert_eq!(e.output_shape().unwrap(), [4, 32]);
    let f = frame(0, Encoding::Rgb8, 16, 16);
    assert_eq!(e.encode(&f).unwrap().dims(), &[4, 32]);

    // Weights written to safetensors load by their upstream names and are used as given.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let cfg = vipa_models::vipa::VipaVisionConfig::tiny();
    let w = vipa_models::vipa::VipaVision::random_weights(&cfg, &candle_core::Device::Cpu).unwrap();
    candle_core::safetensors::save(&w, &path).unwrap();
    let from_file = encoder(&format!("weights: {}", path.display()));
    let again = encoder(&format!("weights: [{}]", path.display()));
    let v = values(&from_file, &f);
    assert_eq!(v, values(&again, &f));
    assert_ne!(
        v,
        values(&encoder(""), &f),
        "the file's weights, not the seeded ones"
    );

    let err = Encoder2d::new(
        &from_yaml_str(&format!(
            "weights: {}/none.safetensors",
            dir.path().display()
        ))
        .unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("none.safetensors"), "{err}");
}

#[test]
fn stream_end_is_forwarded_and_gaps_are_errors() {
    let mut e = encoder("");
    let mut out = RecordingOutputs::new();
    e.on_input(&input(&frame(0, Encoding::Mono8, 8, 8), None), &mut out)
        .unwrap();
    // Other control messages (a clip end wired into `image`) are ignored.
    let (array, meta) = vipa_msgs::ClipEnd {
        header: StreamHeader::default(),
        frames: 0,
        complete: true,
        last_seq: None,
    }
    .to_arrow();
    e.on_input(
        &InputMsg {
            id: ports::IMAGE.into(),
            array,
            meta,
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(out.on(ports::TOKENS_2D).count(), 1);
    let end = StreamEnd {
        header: StreamHeader {
            seq: 1,
            ..Default::default()
        },
        clips: 0,
        frames: 1,
        bad_sources: 2,
    };
    let (array, meta) = end.to_arrow();
    e.on_input(
        &InputMsg {
            id: ports::IMAGE.into(),
            array,
            meta,
        },
        &mut out,
    )
    .unwrap();
    assert!(e.is_ended());
    let last = out.on(ports::TOKENS_2D).last().unwrap();
    assert_eq!(kind_of(&last.meta), Some("stream_end"));
    let fwd: StreamEnd = last.decode().unwrap();
    assert_eq!((fwd.header.seq, fwd.frames, fwd.bad_sources), (1, 1, 2));

    let mut e = encoder("");
    e.on_input(&input(&frame(0, Encoding::Rgb8, 8, 8), None), &mut out)
        .unwrap();
    let err = e
        .on_input(&input(&frame(2, Encoding::Rgb8, 8, 8), None), &mut out)
        .unwrap_err();
    assert!(
        matches!(
            err,
            EncoderError::Gap(vipa_node_kit::SeqGap { missing: 1, .. })
        ),
        "{err}"
    );
}

#[test]
fn cuda_without_the_feature_is_a_clear_error() {
    if cfg!(feature = "cuda") {
        return;
    }
    let err = Encoder2d::new(&from_yaml_str("device: cuda").unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("--features cuda"), "{err}");
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
    let f = frame(0, Encoding::Rgb8, 40, 30);
    let fresh = values(&encoder("preset: tiny"), &f);
    let mut cached = encoder(&yaml(0));
    let (_, first) = cached.features(&f).unwrap();
    assert_eq!(first, fresh, "a miss returns the fresh encoding");
    let (shape, hit) = cached.features(&f).unwrap();
    assert_eq!(shape, vec![16, 64]);
    assert_eq!(hit, fresh, "a hit returns the same tensor");
    assert_eq!(cached.cache_stats(), Some((1, 1)));
    // A new encoder with the same config hits the entry the first one wrote.
    let mut again = encoder(&yaml(0));
    again.features(&f).unwrap();
    assert_eq!(again.cache_stats(), Some((1, 0)));
    // Other pixels miss.
    again.features(&frame(1, Encoding::Rgb8, 40, 30)).unwrap();
    assert_eq!(again.cache_stats(), Some((1, 1)));
    // Another seed is another encoder: it misses and returns its own features.
    let mut other = encoder(&yaml(1));
    let (_, v1) = other.features(&f).unwrap();
    assert_eq!(other.cache_stats(), Some((0, 1)));
    assert_ne!(v1, fresh);
    assert_eq!(v1, values(&encoder("{preset: tiny, seed: 1}"), &f));
    // Through the message path, the cached features are what goes out.
    let mut out = RecordingOutputs::new();
    cached.on_input(&input(&f, Some(0)), &mut out).unwrap();
    let msg = TensorMsg::from_arrow(out.sent[0].array.as_ref(), &out.sent[0].meta).unwrap();
    assert_eq!(msg.f32_values().unwrap(), fresh.as_slice());
}
