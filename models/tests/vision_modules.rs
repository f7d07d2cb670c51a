//! Shape and hand-checked numeric tests for the vision modules (tiny presets).

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a panic is a failed test

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use vipa_models::checkpoint::Checkpoint;
use vipa_models::stage::{Stage, StagePolicy};
use vipa_models::vipa::{VipaVision, VipaVisionConfig};
use vipa_models::vision::config::{
    FusionPlacement, InternVisionConfig, InternVlConfig, NormType, PointMapVitConfig,
};
use vipa_models::vision::intern_vit::{SemanticEncoder, pixel_shuffle};
use vipa_models::vision::preprocess::{IMAGENET_MEAN, IMAGENET_STD, preprocess_rgb};
use vipa_models::vision::resize::{pil_resize_bicubic, torch_bicubic_matrix};
use vipa_models::vision::spatial::{PointMapVit, SpatialEncoder, SpatialInput, clean_point_map};

fn random_vb(dev: &Device) -> (VarMap, VarBuilder<'static>) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, dev);
    (vm, vb)
}

#[test]
fn pixel_shuffle_matches_hand_computed_example() {
    // 4×4 grid, 2 channels, value = 10·(4·row + col) + channel.
    let dev = Device::Cpu;
    let vals: Vec<f32> = (0..4)
        .flat_map(|r| {
            (0..4).flat_map(move |c| (0..2).map(move |ch| (10 * (4 * r + c) + ch) as f32))
        })
        .collect();
    let xs = Tensor::from_vec(vals, (1, 4, 4, 2), &dev).unwrap();
    let out = pixel_shuffle(&xs, 2).unwrap();
    assert_eq!(out.dims(), &[1, 2, 2, 8]);
    let got = out.squeeze(0).unwrap().to_vec3::<f32>().unwrap();
    // Token (i, j) = cells (2i, 2j), (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1), channels inner;
    // cell (r, c) has value 10·(4r + c) + ch.
    assert_eq!(got[0][0], vec![0., 1., 10., 11., 40., 41., 50., 51.]);
    assert_eq!(got[0][1], vec![20., 21., 30., 31., 60., 61., 70., 71.]);
    assert_eq!(got[1][0], vec![80., 81., 90., 91., 120., 121., 130., 131.]);
    assert_eq!(
        got[1][1],
        vec![100., 101., 110., 111., 140., 141., 150., 151.]
    );
}

#[test]
fn preprocessing_constants_are_imagenet() {
    assert_eq!(IMAGENET_MEAN, [0.485, 0.456, 0.406]);
    assert_eq!(IMAGENET_STD, [0.229, 0.224, 0.225]);
    // A uniform image stays uniform under resizing; each channel normalises to (v/255 - m)/s.
    let dev = Device::Cpu;
    let rgb: Vec<u8> = (0..7 * 5).flat_map(|_| [255u8, 0, 128]).collect();
    let px = preprocess_rgb(&rgb, 7, 5, 14, &dev).unwrap();
    assert_eq!(px.dims(), &[3, 14, 14]);
    let v = px.to_vec3::<f32>().unwrap();
    let expect = [
        (1.0 - 0.485) / 0.229,
        (0.0 - 0.456) / 0.224,
        (128.0 / 255.0 - 0.406) / 0.225,
    ];
    for (ch, e) in expect.iter().enumerate() {
        for row in &v[ch] {
            for x in row {
                assert!((x - e).abs() < 1e-6, "channel {ch}: {x} vs {e}");
            }
        }
    }
    assert!(preprocess_rgb(&rgb[..10], 7, 5, 14, &dev).is_err());
}

#[test]
fn bicubic_matrix_is_identity_at_same_size_and_rows_sum_to_one() {
    let m = torch_bicubic_matrix(5, 5);
    for i in 0..5 {
        for j in 0..5 {
            let e = if i == j { 1.0 } else { 0.0 };
            assert!((m[i * 5 + j] - e).abs() < 1e-6);
        }
    }
    let m = torch_bicubic_matrix(4, 7);
    for row in m.chunks(4) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // Pillow resize of a constant image is the same constant.
    let img = vec![77u8; 6 * 9 * 3];
    assert!(
        pil_resize_bicubic(&img, (6, 9), (13, 4))
            .iter()
            .all(|&v| v == 77)
    );
}

#[test]
fn semantic_encoder_shapes_tiny() {
    let dev = Device::Cpu;
    for (norm, qk) in [(NormType::LayerNorm, false), (NormType::RmsNorm, true)] {
        let mut cfg = InternVlConfig::tiny();
        cfg.vision_config.norm_type = norm;
        cfg.vision_config.qk_normalization = qk;
        let (_vm, vb) = random_vb(&dev);
        let enc = SemanticEncoder::new(&cfg, vb.clone(), vb).unwrap();
        let px = Tensor::randn(0f32, 1.0, (2, 3, 56, 56), &dev).unwrap();
        let feats = enc.vit_features(&px).unwrap();
        assert_eq!(feats.tokens.dims(), &[2, 16, 64]);
        assert_eq!(feats.grid, (4, 4));
        assert_eq!(enc.shuffle(&feats).unwrap().dims(), &[2, 4, 256]);
        assert_eq!(enc.forward(&px).unwrap().dims(), &[2, 4, 32]);
        // A different image size interpolates the position embeddings (6×4 patch grid).
        let px = Tensor::randn(0f32, 1.0, (1, 3, 84, 56), &dev).unwrap();
        assert_eq!(enc.forward(&px).unwrap().dims(), &[1, 6, 32]);
    }
    assert_eq!(
        InternVlConfig::internvl3_5_2b().tokens_per_image().unwrap(),
        256
    );
    assert_eq!(
        InternVlConfig::internvl3_5_2b().shuffled_width().unwrap(),
        4096
    );
}

#[test]
fn select_layer_indexes_like_python() {
    let mut cfg = InternVlConfig::tiny();
    assert_eq!(cfg.layers_to_run().unwrap(), 2);
    cfg.select_layer = -2;
    assert_eq!(cfg.layers_to_run().unwrap(), 1);
    cfg.select_layer = 0;
    assert_eq!(cfg.layers_to_run().unwrap(), 0);
    cfg.select_layer = -4;
    assert!(cfg.layers_to_run().is_err());
}

#[test]
fn upstream_config_json_deserialises() {
    // Trimmed from OpenGVLab/InternVL3_5-2B config.json: unknown fields must be ignored.
    let json = r#"{
        "architectures": ["InternVLChatModel"],
        "downsample_ratio": 0.5,
        "select_layer": -1,
        "ps_version": "v2",
        "template": "internvl2_5",
        "llm_config": {"hidden_size": 2048, "num_hidden_layers": 28},
        "vision_config": {
            "architectures": ["InternVisionModel"], "hidden_act": "gelu", "hidden_size": 1024,
            "image_size": 448, "intermediate_size": 4096, "layer_norm_eps": 1e-06,
            "model_type": "intern_vit_6b", "norm_type": "layer_norm", "num_attention_heads": 16,
            "num_channels": 3, "num_hidden_layers": 24, "patch_size": 14,
            "qk_normalization": false, "qkv_bias": true, "use_flash_attn": true,
            "initializer_factor": 1.0, "drop_path_rate": 0.0
        }
    }"#;
    let cfg: InternVlConfig = serde_json::from_str(json).unwrap();
    assert_eq!(cfg, InternVlConfig::internvl3_5_2b());
    assert_eq!(
        InternVisionConfig::internvit_300m().num_hidden_layers,
        24,
        "InternViT-300M has 24 layers"
    );
}

#[test]
fn point_map_cleaning_masks_nan_inf_and_zero() {
    let dev = Device::Cpu;
    let pts = Tensor::from_vec(
        vec![
            0.1f32,
            0.2,
            0.5, // valid
            0.0,
            0.0,
            0.0, // invalid: all zero
            f32::NAN,
            0.1,
            0.3, // invalid: NaN
            0.2,
            f32::INFINITY,
            0.4, // invalid: inf
        ],
        (1, 2, 2, 3),
        &dev,
    )
    .unwrap();
    let (clean, valid) = clean_point_map(&pts).unwrap();
    let valid: Vec<f32> = valid.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(valid, vec![1.0, 0.0, 0.0, 0.0]);
    let clean: Vec<f32> = clean.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(&clean[..3], &[0.1, 0.2, 0.5]);
    assert!(clean[3..].iter().all(|&v| v == 0.0));
}

#[test]
fn point_map_vit_shapes_and_validity() {
    let dev = Device::Cpu;
    let cfg = PointMapVitConfig::tiny();
    let (_vm, vb) = random_vb(&dev);
    let enc = PointMapVit::new(&cfg, vb).unwrap();
    let mut pts = Tensor::rand(0.1f32, 1.0, (2, 56, 56, 3), &dev).unwrap();
    // Zero the top-left 14×14 patch of the first map: its token must be marked invalid.
    let zero = Tensor::zeros((1, 14, 14, 3), DType::F32, &dev).unwrap();
    pts = pts
        .slice_assign(&[0..1, 0..14, 0..14, 0..3], &zero)
        .unwrap();
    let out = enc.encode(&SpatialInput::PointMaps(pts)).unwrap();
    assert_eq!(out.tokens.dims(), &[2, 16, 48]);
    assert_eq!(enc.output_size(), 48);
    let valid = out.valid.unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(valid[0][0], 0.0);
    assert!(valid[0][1..].iter().all(|&v| v == 1.0));
    assert!(valid[1].iter().all(|&v| v == 1.0));
    assert!(
        out.tokens
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .all(|v| v.is_finite())
    );
    // Another map size interpolates the position embeddings.
    let pts = Tensor::rand(0.1f32, 1.0, (1, 28, 42, 3), &dev).unwrap();
    assert_eq!(enc.forward(&pts).unwrap().tokens.dims(), &[1, 6, 48]);
}

#[test]
fn composite_shapes_for_both_placements_and_ablation() {
    let dev = Device::Cpu;
    let px = Tensor::randn(0f32, 1.0, (2, 3, 56, 56), &dev).unwrap();
    let pts = Tensor::rand(0.1f32, 1.0, (2, 56, 56, 3), &dev).unwrap();
    let input = SpatialInput::PointMaps(pts);
    let policy = StagePolicy::new(Stage::One);

    let cfg = VipaVisionConfig::tiny();
    let w = Arc::new(Checkpoint::from_tensors(
        "random",
        VipaVision::random_weights(&cfg, &dev).unwrap(),
    ));
    let model = VipaVision::new(&cfg, &policy, Some(w), &VarMap::new(), &dev).unwrap();
    assert_eq!(
        model.forward(&px, Some(&input), false).unwrap().dims(),
        &[2, 4, 32]
    );

    let mut after = VipaVisionConfig::tiny();
    if let Some(f) = after.fusion.as_mut() {
        f.placement = FusionPlacement::AfterProjector;
        f.semantic_size = after.semantic.llm_config.hidden_size;
    }
    let w = Arc::new(Checkpoint::from_tensors(
        "random",
        VipaVision::random_weights(&after, &dev).unwrap(),
    ));
    let model = VipaVision::new(&after, &policy, Some(w), &VarMap::new(), &dev).unwrap();
    assert_eq!(
        model.forward(&px, Some(&input), false).unwrap().dims(),
        &[2, 4, 32]
    );

    // Ablation without a 3D branch: plain InternVL features.
    let ablation = VipaVisionConfig::tiny().without_spatial();
    let weights = VipaVision::random_weights(&ablation, &dev).unwrap();
    assert!(
        weights
            .keys()
            .all(|k| !k.starts_with("fusion.") && !k.starts_with("spatial_encoder."))
    );
    let w = Arc::new(Checkpoint::from_tensors("random", weights));
    let model = VipaVision::new(&ablation, &policy, Some(w.clone()), &VarMap::new(), &dev).unwrap();
    let out = model.forward(&px, None, false).unwrap();
    let direct = model.semantic().forward(&px).unwrap();
    let diff = (out - direct)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(diff, 0.0);
    assert!(
        model.forward(&px, Some(&input), false).is_err(),
        "no 3D encoder configured"
    );
}

#[test]
fn mismatched_fusion_width_is_rejected() {
    let mut cfg = VipaVisionConfig::tiny();
    if let Some(f) = cfg.fusion.as_mut() {
        f.semantic_size = 32;
    }
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("semantic_size"), "{err}");
}

#[test]
fn preset_parameter_counts() {
    let dev = Device::Cpu;
    let count = |m: &HashMap<String, Tensor>, prefix: &str| -> usize {
        m.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, t)| t.elem_count())
            .sum()
    };
    let tiny = VipaVision::random_weights(&VipaVisionConfig::tiny(), &dev).unwrap();
    // InternViT tiny by hand: embeddings 64·3·14·14 + 64 + 64 + 17·64, per layer
    // qkv 64·192+192, proj 64·64+64, 2 norms 4·64, ls 2·64, mlp 64·128+128 + 128·64+64.
    let emb = 64 * 3 * 14 * 14 + 64 + 64 + 17 * 64;
    let layer = 64 * 192 + 192 + 64 * 64 + 64 + 4 * 64 + 2 * 64 + 64 * 128 + 128 + 128 * 64 + 64;
    assert_eq!(count(&tiny, "vision_model."), emb + 2 * layer);
    // mlp1: LN 256·2, 256·32+32, 32·32+32.
    assert_eq!(
        count(&tiny, "mlp1."),
        2 * 256 + 256 * 32 + 32 + 32 * 32 + 32
    );
    // fusion: 3 LNs (64, 48, 64)·2, q 64·64+64, k/v 48·64+64, out 64·64+64, α.
    assert_eq!(
        count(&tiny, "fusion."),
        2 * (64 + 48 + 64) + 2 * (64 * 64 + 64) + 2 * (48 * 64 + 64) + 1
    );
    let small = VipaVision::random_weights(&VipaVisionConfig::small(), &dev).unwrap();
    for (name, m) in [("tiny", &tiny), ("small", &small)] {
        eprintln!(
            "{name}: vision {} projector {} spatial {} fusion {}",
            count(m, "vision_model."),
            count(m, "mlp1."),
            count(m, "spatial_encoder."),
            count(m, "fusion.")
        );
    }
    assert!((8_000_000..30_000_000).contains(&count(&small, "vision_model.")));
}
