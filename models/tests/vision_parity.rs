//! Parity with the Hugging Face `transformers` InternVL port (fixtures from
//! `models/scripts/make_vision_fixtures.py`): InternViT features, pixel shuffle, projector, and
//! Pillow-bicubic preprocessing.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a panic is a failed test

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use vipa_models::checkpoint::Checkpoint;
use vipa_models::vision::config::InternVlConfig;
use vipa_models::vision::intern_vit::SemanticEncoder;
use vipa_models::vision::preprocess::preprocess_rgb;
use vipa_models::vision::resize::pil_resize_bicubic;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/vision")
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

fn check_model(name: &str) {
    let dev = Device::Cpu;
    let dir = fixtures();
    let cfg: InternVlConfig = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{name}.config.json"))).unwrap(),
    )
    .unwrap();
    let ckpt = Arc::new(Checkpoint::open(&[dir.join(format!("{name}.safetensors"))]).unwrap());
    let vb = ckpt.frozen(DType::F32, &dev);
    let enc = SemanticEncoder::new(&cfg, vb.clone(), vb).unwrap();
    let io =
        candle_core::safetensors::load(dir.join(format!("{name}.io.safetensors")), &dev).unwrap();
    for tag in ["square", "wide"] {
        let px = &io[&format!("{tag}.pixel_values")];
        let feats = enc.vit_features(px).unwrap();
        let d = max_diff(&feats.tokens, &io[&format!("{tag}.vit_features")]);
        assert!(d < 1e-4, "{name}/{tag}: ViT features differ by {d}");
        let shuffled = enc.shuffle(&feats).unwrap();
        let d = max_diff(&shuffled, &io[&format!("{tag}.shuffled")]);
        assert!(d < 1e-4, "{name}/{tag}: pixel shuffle differs by {d}");
        let projected = enc.forward(px).unwrap();
        let d = max_diff(&projected, &io[&format!("{tag}.projected")]);
        assert!(d < 1e-4, "{name}/{tag}: projector output differs by {d}");
    }
}

/// The same fixture in transformers' own layout (`make_hf_layout_fixtures.py`): its
/// `config.json` (`text_config`, `[h, w]` sizes, `attention_bias`, …) gives the same config,
/// and its weights (`model.vision_tower.*` with split q/k/v, `model.multi_modal_projector.*`)
/// give exactly the outputs of the upstream-named file.
fn check_transformers_layout(name: &str) {
    let dev = Device::Cpu;
    let dir = fixtures();
    let up = InternVlConfig::from_json_file(&dir.join(format!("{name}.config.json"))).unwrap();
    let mut hf =
        InternVlConfig::from_json_file(&dir.join(format!("{name}.hf.config.json"))).unwrap();
    // The layer-scale init value only seeds a random init; the two layouts name it apart.
    hf.vision_config.initializer_factor = up.vision_config.initializer_factor;
    assert_eq!(hf, up, "{name}: the two config layouts differ");
    let encoder = |file: &str| {
        let ckpt = Arc::new(Checkpoint::open(&[dir.join(file)]).unwrap());
        let vb = ckpt.frozen(DType::F32, &dev);
        (
            ckpt.is_transformers_naming(),
            SemanticEncoder::new(&up, vb.clone(), vb).unwrap(),
        )
    };
    let (up_named, upstream) = encoder(&format!("{name}.safetensors"));
    let (hf_named, transformers) = encoder(&format!("{name}.hf.safetensors"));
    assert!(!up_named && hf_named);
    let io =
        candle_core::safetensors::load(dir.join(format!("{name}.io.safetensors")), &dev).unwrap();
    for tag in ["square", "wide"] {
        let px = &io[&format!("{tag}.pixel_values")];
        let got = transformers.forward(px).unwrap();
        let d = max_diff(&got, &io[&format!("{tag}.projected")]);
        assert!(
            d < 1e-4,
            "{name}/{tag}: transformers layout differs from the reference by {d}"
        );
        assert_eq!(
            max_diff(&got, &upstream.forward(px).unwrap()),
            0.0,
            "{name}/{tag}: the two layouts load different values"
        );
    }
}

#[test]
fn the_transformers_layout_loads_and_matches() {
    check_transformers_layout("internvit_ln");
    check_transformers_layout("internvit_rms_qknorm");
}

#[test]
fn internvit_layer_norm_matches_reference() {
    check_model("internvit_ln");
}

#[test]
fn internvit_rms_norm_qk_norm_matches_reference() {
    check_model("internvit_rms_qknorm");
}

#[test]
fn preprocessing_matches_pillow_and_torchvision_normalize() {
    let dev = Device::Cpu;
    let io =
        candle_core::safetensors::load(fixtures().join("preprocess.safetensors"), &dev).unwrap();
    for tag in ["down", "up"] {
        let img = &io[&format!("{tag}.image")];
        let (h, w, _) = img.dims3().unwrap();
        let bytes: Vec<u8> = img.flatten_all().unwrap().to_vec1().unwrap();
        let want_resized: Vec<u8> = io[&format!("{tag}.resized")]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let size = io[&format!("{tag}.resized")].dims()[0];
        let got_resized = pil_resize_bicubic(&bytes, (h, w), (size, size));
        assert_eq!(
            got_resized, want_resized,
            "{tag}: resize differs from Pillow"
        );
        let px = preprocess_rgb(&bytes, h, w, size, &dev).unwrap();
        let d = max_diff(&px, &io[&format!("{tag}.pixel_values")]);
        assert!(d < 1e-6, "{tag}: normalised pixels differ by {d}");
    }
}
