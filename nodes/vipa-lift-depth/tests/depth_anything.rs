//! The depth-anything-v2 backend with tiny random weights made here (a `VarMap` saved to
//! safetensors): no download, a few hundred milliseconds on a CPU.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};
use vipa_lift_depth::depth_anything::{CustomArch, DepthAnythingConfig, Encoder, build_model};
use vipa_lift_depth::{Backend, KEY_INTRINSICS, LiftDepth, LiftDepthConfig};
use vipa_models::seeded::seeded_tensor;
use vipa_msgs::ports;
use vipa_msgs::{Encoding, ImageFrame, MetaValue, Payload, PointMap, StreamHeader, kind_of};
use vipa_node_kit::{InputMsg, RecordingOutputs};

fn tiny() -> DepthAnythingConfig {
    DepthAnythingConfig {
        encoder: Encoder::Custom,
        custom: Some(CustomArch {
            depth: 4,
            embed_dim: 32,
            num_heads: 2,
            out_channels: [8, 8, 16, 16],
            features: 8,
            layers: [0, 1, 2, 3],
        }),
        hfov_deg: 60.0,
        ..Default::default()
    }
}

/// Random weights for the tiny architecture, with the last layer set so that the (ReLU)
/// output is a valid disparity near 10 everywhere.
///
/// Seeded: candle's own init draws from an unseedable thread-local generator, so every
/// tensor is redrawn from a ChaCha stream of its name with the mean and spread candle's init
/// gave it (constants stay constants). The test then sees the same network on every run.
fn write_checkpoint(path: &Path) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    build_model(&vb, &tiny()).unwrap();
    let mut varmap = varmap;
    {
        let data = varmap.data().lock().unwrap();
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let var = &data[name];
            let t = var.as_tensor();
            let mean = t.mean_all().unwrap().to_scalar::<f32>().unwrap();
            let var_ = t.affine(1.0, -f64::from(mean)).unwrap().sqr().unwrap();
            let stdev = var_.mean_all().unwrap().to_scalar::<f32>().unwrap().sqrt();
            let init = Init::Randn {
                mean: f64::from(mean),
                stdev: f64::from(stdev),
            };
            let seeded = seeded_tensor(7, t.shape(), name, init, DType::F32, &Device::Cpu).unwrap();
            var.set(&seeded).unwrap();
        }
    }
    // Disparity ≈ 10 ± a little image-dependent variation: a small random last layer on a
    // bias of 10.
    let w = "depth_head.scratch.output_conv2.2.weight";
    let small = (varmap.data().lock().unwrap()[w].as_tensor() * 1e-3).unwrap();
    varmap.set_one(w, small).unwrap();
    let b = "depth_head.scratch.output_conv2.2.bias";
    varmap
        .set_one(b, Tensor::new(&[10.0f32], &Device::Cpu).unwrap())
        .unwrap();
    varmap.save(path).unwrap();
}

fn cfg(checkpoint: PathBuf) -> LiftDepthConfig {
    LiftDepthConfig {
        backend: Backend::DepthAnythingV2,
        sidecar_dir: "/nonexistent".into(),
        depth_anything: DepthAnythingConfig {
            checkpoint: Some(checkpoint),
            ..tiny()
        },
        ..Default::default()
    }
}

fn image() -> InputMsg {
    let (w, h) = (24u32, 18u32);
    let pixels: Vec<u8> = (0..w * h * 3).map(|i| (i * 37 % 256) as u8).collect();
    let header = StreamHeader {
        seq: 0,
        clip_id: "cam".into(),
        frame_idx: 0,
        timestamp_ns: 0,
    };
    let (array, meta) = ImageFrame::new(header, w, h, Encoding::Rgb8, pixels)
        .unwrap()
        .to_arrow();
    InputMsg {
        id: "image".into(),
        array,
        meta,
    }
}

#[test]
fn tiny_model_gives_a_point_map_on_the_guessed_camera_rays() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("tiny.safetensors");
    write_checkpoint(&ckpt);
    let mut lift = LiftDepth::new(cfg(ckpt)).unwrap();
    let mut out = RecordingOutputs::new();
    lift.on_input(&image(), &mut out).unwrap();
    let sent: Vec<_> = out.on(ports::POINTMAP).collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        kind_of(&sent[0].meta),
        Some("point_map"),
        "{:?}",
        sent[0].meta
    );
    let pm: PointMap = sent[0].decode().unwrap();
    assert_eq!((pm.width, pm.height), (24, 18));
    // 60° field of view on 24 px: fx = 12 / tan(30°); principal point at the centre.
    let MetaValue::ListFloat(k) = &sent[0].meta[KEY_INTRINSICS] else {
        panic!()
    };
    let fx = 12.0 / 30f64.to_radians().tan();
    assert!(
        (k[0] - fx).abs() < 1e-4 && (k[1] - fx).abs() < 1e-4,
        "{k:?}"
    );
    assert!(
        (k[2] - 11.5).abs() < 1e-6 && (k[3] - 8.5).abs() < 1e-6,
        "{k:?}"
    );
    let mut valid = 0;
    let mut varies = false;
    for row in 0..18 {
        for col in 0..24 {
            if let Some(p) = pm.at(row, col) {
                valid += 1;
                // Each point lies on its pixel's ray.
                let u = k[0] * f64::from(p[0]) / f64::from(p[2]) + k[2];
                let v = k[1] * f64::from(p[1]) / f64::from(p[2]) + k[3];
                assert!((u - f64::from(col)).abs() < 1e-3 && (v - f64::from(row)).abs() < 1e-3);
                // z = 1 / disparity ≈ 1 / 10.
                assert!((p[2] - 0.1).abs() < 0.01, "z {}", p[2]);
                varies |= (p[2] - pm.at(0, 0).unwrap()[2]).abs() > 1e-7;
            }
        }
    }
    assert_eq!(valid, 24 * 18);
    assert!(varies, "the depth does not depend on the image");
    // Deterministic: the same frame again gives the same points.
    lift.on_input(&image(), &mut out).unwrap();
    let again: PointMap = out.on(ports::POINTMAP).nth(1).unwrap().decode().unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(again.values()), bits(pm.values()));
}

#[test]
fn missing_or_truncated_checkpoint_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.safetensors");
    let e = LiftDepth::new(cfg(missing)).err().unwrap().to_string();
    assert!(
        e.contains("nope.safetensors") && e.contains("does not exist"),
        "{e}"
    );

    let ckpt = dir.path().join("tiny.safetensors");
    write_checkpoint(&ckpt);
    let bytes = std::fs::read(&ckpt).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = LiftDepth::new(cfg(cut)).err().unwrap().to_string();
    assert!(
        e.contains("cut.safetensors") && e.contains("truncated"),
        "{e}"
    );

    // A checkpoint for another architecture.
    let mut c = cfg(ckpt);
    c.depth_anything.encoder = Encoder::Vits;
    let e = LiftDepth::new(c).err().unwrap().to_string();
    assert!(
        e.contains("tiny.safetensors") && e.contains("does not match"),
        "{e}"
    );
}
