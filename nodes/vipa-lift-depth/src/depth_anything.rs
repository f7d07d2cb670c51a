//! The `depth-anything-v2` backend: candle-transformers' Depth Anything V2 (a DINOv2 encoder
//! and a DPT head) from a user-given safetensors checkpoint, back-projected to a point map.
//!
//! # Checkpoint
//! One safetensors file with the encoder under `pretrained.*` and the head under
//! `depth_head.*` (the layout of the published Depth Anything V2 weights converted for
//! candle). Nothing is downloaded: a missing, truncated or mismatched file is one error that
//! names the file.
//!
//! # From network output to points
//! The image (`u8[h, w, 3]` RGB) is scaled to `[0, 1]`, normalised with the ImageNet mean and
//! std, resized (bilinear) to the network's fixed 518×518 input, and the output map is resized
//! back to `h×w`. The relative models predict *disparity* up to an unknown affine map; we take
//! `z = 1 / d` (the shift is ignored: calibration only fixes a scale) and mark `d ≤ 1e-6` as
//! invalid. Metric checkpoints predict depth: `output: depth` uses it as is. Either way the
//! point map is only right up to scale, which the annotate node's calibration recovers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::depth_anything_v2::{DepthAnythingV2, DepthAnythingV2Config};
use candle_transformers::models::dinov2::DinoVisionTransformer;
use serde::Deserialize;

/// The network's fixed input size (DINOv2 patch 14 × 37 patches).
pub const INPUT_SIZE: usize = 518;
const PATCHES: usize = INPUT_SIZE / 14;
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Disparities at or below this are "infinitely far": invalid points.
pub const MIN_DISPARITY: f32 = 1e-6;

/// Encoder size of a published checkpoint, or a custom (small) architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Encoder {
    #[default]
    Vits,
    Vitb,
    Vitl,
    /// The architecture in `custom`.
    Custom,
}

/// A custom architecture (tests use a tiny one).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomArch {
    /// DINOv2 blocks.
    pub depth: usize,
    pub embed_dim: usize,
    pub num_heads: usize,
    /// DPT channels of the four feature levels.
    pub out_channels: [usize; 4],
    /// DPT fusion width.
    pub features: usize,
    /// The four encoder blocks the head reads (distinct, ascending, < `depth`).
    pub layers: [usize; 4],
}

/// What the network predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Output {
    /// Relative models: affine-invariant disparity, `z = 1/d`.
    #[default]
    Disparity,
    /// Metric models: depth in metres.
    Depth,
}

pub use vipa_models::device::DeviceChoice;

/// `depth_anything:` block of the lift-depth config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DepthAnythingConfig {
    /// The safetensors checkpoint (required for this backend).
    pub checkpoint: Option<PathBuf>,
    pub encoder: Encoder,
    pub custom: Option<CustomArch>,
    pub output: Output,
    pub device: DeviceChoice,
    /// Horizontal field of view (degrees) assumed for clips without known intrinsics.
    pub hfov_deg: f32,
}

impl Default for DepthAnythingConfig {
    fn default() -> Self {
        Self {
            checkpoint: None,
            encoder: Encoder::Vits,
            custom: None,
            output: Output::Disparity,
            device: DeviceChoice::Auto,
            hfov_deg: 60.0,
        }
    }
}

impl DepthAnythingConfig {
    /// Checks what serde cannot (called by the node config's `validate`).
    pub fn validate(&self) -> Result<(), String> {
        if !(self.hfov_deg.is_finite() && (1.0..179.0).contains(&self.hfov_deg)) {
            return Err(format!(
                "`depth_anything.hfov_deg` must be in [1, 179), got {}",
                self.hfov_deg
            ));
        }
        if self.encoder == Encoder::Custom {
            let Some(c) = &self.custom else {
                return Err(
                    "`depth_anything.encoder: custom` needs a `depth_anything.custom` block".into(),
                );
            };
            let ascending = c.layers.windows(2).all(|w| w[0] < w[1]);
            if !ascending || c.layers[3] >= c.depth {
                return Err(format!(
                    "`depth_anything.custom.layers` must be 4 distinct ascending block indices < depth {}, got {:?}",
                    c.depth, c.layers
                ));
            }
            if c.num_heads == 0 || c.embed_dim % c.num_heads != 0 {
                return Err(
                    "`depth_anything.custom.embed_dim` must be a multiple of `num_heads`".into(),
                );
            }
        }
        Ok(())
    }

    fn arch(&self) -> CustomArch {
        match (self.encoder, &self.custom) {
            (Encoder::Custom, Some(c)) => c.clone(),
            (Encoder::Vitb, _) => CustomArch {
                depth: 12,
                embed_dim: 768,
                num_heads: 12,
                out_channels: [96, 192, 384, 768],
                features: 128,
                layers: [2, 5, 8, 11],
            },
            (Encoder::Vitl, _) => CustomArch {
                depth: 24,
                embed_dim: 1024,
                num_heads: 16,
                out_channels: [256, 512, 1024, 1024],
                features: 256,
                layers: [4, 11, 17, 23],
            },
            _ => CustomArch {
                depth: 12,
                embed_dim: 384,
                num_heads: 6,
                out_channels: [48, 96, 192, 384],
                features: 64,
                layers: [2, 5, 8, 11],
            },
        }
    }
}

/// Why the model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum DepthAnythingError {
    #[error(
        "the depth-anything-v2 backend needs `depth_anything.checkpoint` (a safetensors file with `pretrained.*` and `depth_head.*` tensors) in VIPA_CONFIG"
    )]
    NoCheckpoint,
    #[error("depth-anything-v2 checkpoint {0} does not exist; fix `depth_anything.checkpoint`")]
    Missing(PathBuf),
    #[error(
        "depth-anything-v2 checkpoint {path} cannot be read (truncated or not safetensors?): {message}"
    )]
    Unreadable { path: PathBuf, message: String },
    #[error(
        "depth-anything-v2 checkpoint {path} does not match the `{arch}` architecture ({message}); set `depth_anything.encoder` to the checkpoint's size"
    )]
    Mismatch {
        path: PathBuf,
        arch: String,
        message: String,
    },
    #[error(transparent)]
    Device(#[from] vipa_models::device::DeviceError),
    #[error("depth-anything-v2 inference: {0}")]
    Inference(String),
}

/// A loaded Depth Anything V2 model.
pub struct DepthAnything {
    model: DepthAnythingV2,
    device: Device,
    output: Output,
}

fn build(vb: &VarBuilder<'_>, arch: &CustomArch) -> candle_core::Result<DepthAnythingV2> {
    let encoder = DinoVisionTransformer::new(
        vb.pp("pretrained"),
        arch.depth,
        arch.embed_dim,
        arch.num_heads,
    )?;
    let conf = DepthAnythingV2Config::new(
        arch.out_channels,
        arch.embed_dim,
        arch.features,
        false,
        false,
        arch.layers.to_vec(),
        INPUT_SIZE,
        PATCHES,
    );
    DepthAnythingV2::new(Arc::new(encoder), conf, vb.clone())
}

/// Builds a model with the config's architecture from `vb` (tests: a `VarMap`; the node:
/// [`DepthAnything::load`]).
pub fn build_model(
    vb: &VarBuilder<'_>,
    cfg: &DepthAnythingConfig,
) -> candle_core::Result<DepthAnythingV2> {
    build(vb, &cfg.arch())
}

impl DepthAnything {
    /// Loads the checkpoint named in `cfg`.
    pub fn load(cfg: &DepthAnythingConfig) -> Result<Self, DepthAnythingError> {
        let path = cfg
            .checkpoint
            .as_ref()
            .ok_or(DepthAnythingError::NoCheckpoint)?;
        if !path.is_file() {
            return Err(DepthAnythingError::Missing(path.clone()));
        }
        let device = cfg.device.resolve()?;
        tracing::info!(device = %vipa_models::device::describe(&device), "depth-anything-v2 backend device");
        let tensors: HashMap<String, Tensor> = candle_core::safetensors::load(path, &device)
            .map_err(|e| DepthAnythingError::Unreadable {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let arch = cfg.arch();
        let model = build(&vb, &arch).map_err(|e| DepthAnythingError::Mismatch {
            path: path.clone(),
            arch: format!("{:?} {arch:?}", cfg.encoder),
            message: e.to_string(),
        })?;
        Ok(Self {
            model,
            device,
            output: cfg.output,
        })
    }

    /// Depth up to scale, `f32[h, w]` row-major (NaN = invalid), of an RGB image
    /// `u8[h, w, 3]`.
    pub fn depth(
        &self,
        rgb: &[u8],
        width: u32,
        height: u32,
    ) -> Result<Vec<f32>, DepthAnythingError> {
        self.run(rgb, width as usize, height as usize)
            .map_err(|e| DepthAnythingError::Inference(e.to_string()))
    }

    fn run(&self, rgb: &[u8], w: usize, h: usize) -> candle_core::Result<Vec<f32>> {
        let x = Tensor::from_slice(rgb, (h, w, 3), &self.device)?
            .permute((2, 0, 1))?
            .to_dtype(DType::F32)?
            .affine(1.0 / 255.0, 0.0)?;
        let mean = Tensor::new(&MEAN, &self.device)?.reshape((3, 1, 1))?;
        let std = Tensor::new(&STD, &self.device)?.reshape((3, 1, 1))?;
        let x = x.broadcast_sub(&mean)?.broadcast_div(&std)?.unsqueeze(0)?;
        let x = x.upsample_bilinear2d(INPUT_SIZE, INPUT_SIZE, false)?;
        let y = self.model.forward(&x)?; // [1, 1, 518, 518]
        let y = y
            .upsample_bilinear2d(h, w, false)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(match self.output {
            Output::Depth => y
                .into_iter()
                .map(|z| {
                    if z.is_finite() && z > 0.0 {
                        z
                    } else {
                        f32::NAN
                    }
                })
                .collect(),
            Output::Disparity => y
                .into_iter()
                .map(|d| {
                    if d.is_finite() && d > MIN_DISPARITY {
                        1.0 / d
                    } else {
                        f32::NAN
                    }
                })
                .collect(),
        })
    }
}
