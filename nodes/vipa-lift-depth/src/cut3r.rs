//! The `cut3r` backend: the paper's annotation depth source. `vipa_models`' Cut3R runs
//! recurrently over each clip's frames (its state carries from frame to frame and is reset when
//! a new clip starts) and its DPT head's camera-frame point map (`pts3d_in_self_view`,
//! OpenCV axes, metric up to Cut3R's own scale) becomes the frame's point map.
//!
//! # Checkpoint
//! A safetensors file made from the official `cut3r_512_dpt_4_64.pth` by
//! `models/scripts/convert_cut3r.py` (official key names), plus optionally the config JSON the
//! script writes (`config`; default: the `preset`, `cut3r_512` for the released model). Nothing
//! is downloaded; a missing key, wrong shape or truncated file is one error naming it.
//!
//! # Frames in, points out
//! Each RGB frame is resized (Pillow-exact bicubic, antialiased; upstream's `load_images` uses
//! Lanczos) so that its long side is `size` and both sides are multiples of 16 (the aspect ratio
//! is kept up to that rounding; upstream crops instead), normalised to `[-1, 1]` and stepped
//! through the model. The network-resolution point map is brought back to the frame's size by
//! nearest neighbour (no blending of foreground and background points across depth edges).
//! Pixels whose confidence is below `min_conf` (Cut3R's confidence is `1 + exp(·) ≥ 1`) are NaN.
//!
//! # Intrinsics
//! Cut3R predicts points, not a camera. The message's intrinsics come from the clip's sidecar
//! when it has one of the frame's size; otherwise they are estimated from the point map itself:
//! principal point at the image centre and the focal length that best maps the points' rays to
//! their pixels in least squares (`f = Σ(du·x/z + dv·y/z) / Σ((x/z)² + (y/z)²)`).

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use vipa_hand3d::geometry::{Intrinsics, PointMap};
use vipa_models::vision::config::{Cut3rConfig, Cut3rPreset};
use vipa_models::vision::cut3r::{Cut3r, Cut3rState, normalize_rgb01};
use vipa_models::vision::resize::pil_resize_bicubic;

use crate::depth_anything::DeviceChoice;

/// Cut3R's patch size: network inputs are multiples of it.
const PATCH: usize = 16;

/// `cut3r:` block of the lift-depth config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cut3rBackendConfig {
    /// Converted safetensors checkpoint (required for this backend).
    pub checkpoint: Option<PathBuf>,
    /// Config JSON written by `convert_cut3r.py`; `null` = `preset`.
    pub config: Option<PathBuf>,
    /// `cut3r_512` (the release) or `tiny` (tests), used without `config`.
    pub preset: Cut3rPreset,
    /// Long side of the network input in pixels (512 as upstream's demo).
    pub size: usize,
    /// Points with confidence below this become NaN (0 = keep all).
    pub min_conf: f32,
    pub device: DeviceChoice,
}

impl Default for Cut3rBackendConfig {
    fn default() -> Self {
        Self {
            checkpoint: None,
            config: None,
            preset: Cut3rPreset::Cut3r512,
            size: 512,
            min_conf: 0.0,
            device: DeviceChoice::Auto,
        }
    }
}

impl Cut3rBackendConfig {
    /// Checks what serde cannot (called by the node config's `validate`).
    pub fn validate(&self) -> Result<(), String> {
        if !(PATCH..=4096).contains(&self.size) {
            return Err(format!(
                "`cut3r.size` must be in [16, 4096] pixels, got {}",
                self.size
            ));
        }
        if !(self.min_conf.is_finite() && self.min_conf >= 0.0) {
            return Err(format!(
                "`cut3r.min_conf` must be ≥ 0, got {}",
                self.min_conf
            ));
        }
        Ok(())
    }
}

/// Why the Cut3R backend could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum Cut3rBackendError {
    #[error(
        "the cut3r backend needs `cut3r.checkpoint` (a safetensors file from models/scripts/convert_cut3r.py) in VIPA_CONFIG"
    )]
    NoCheckpoint,
    #[error("cut3r checkpoint {0} does not exist; fix `cut3r.checkpoint`")]
    Missing(PathBuf),
    #[error(
        "cut3r config {path}: {message}; fix `cut3r.config` (the JSON convert_cut3r.py writes)"
    )]
    Config { path: PathBuf, message: String },
    #[error("cannot load Cut3R: {0}")]
    Load(String),
    #[error(transparent)]
    Device(#[from] vipa_models::device::DeviceError),
    #[error("cut3r inference: {0}")]
    Inference(String),
}

/// A loaded Cut3R and the state of the clip being lifted.
pub struct Cut3rBackend {
    model: Cut3r,
    device: Device,
    size: usize,
    min_conf: f32,
    clip: Option<(String, Cut3rState)>,
}

impl std::fmt::Debug for Cut3rBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cut3rBackend")
            .field("size", &self.size)
            .field("clip", &self.clip.as_ref().map(|(c, s)| (c, s.frames_seen)))
            .finish()
    }
}

/// Network input `(height, width)` for a `w × h` frame: long side `size`, each side rounded to
/// a multiple of 16 (at least 16).
pub fn input_size(w: usize, h: usize, size: usize) -> (usize, usize) {
    let scale = size as f64 / w.max(h).max(1) as f64;
    let round = |x: usize| (((x as f64 * scale) / PATCH as f64).round() as usize).max(1) * PATCH;
    (round(h), round(w))
}

impl Cut3rBackend {
    /// Loads the checkpoint named in `cfg`.
    pub fn load(cfg: &Cut3rBackendConfig) -> Result<Self, Cut3rBackendError> {
        let path = cfg
            .checkpoint
            .as_ref()
            .ok_or(Cut3rBackendError::NoCheckpoint)?;
        if !path.is_file() {
            return Err(Cut3rBackendError::Missing(path.clone()));
        }
        let model_cfg = match &cfg.config {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| Cut3rBackendError::Config {
                    path: p.clone(),
                    message: e.to_string(),
                })?;
                serde_json::from_str::<Cut3rConfig>(&text).map_err(|e| {
                    Cut3rBackendError::Config {
                        path: p.clone(),
                        message: e.to_string(),
                    }
                })?
            }
            None => Cut3rConfig::preset(cfg.preset),
        };
        let device = cfg.device.resolve()?;
        tracing::info!(device = %vipa_models::device::describe(&device), "cut3r backend device");
        let model = Cut3r::load(&model_cfg, std::slice::from_ref(path), &device)
            .map_err(|e| Cut3rBackendError::Load(e.to_string()))?;
        Ok(Self {
            model,
            device,
            size: cfg.size,
            min_conf: cfg.min_conf,
            clip: None,
        })
    }

    /// Forgets the clip's state (its end arrived).
    pub fn end_clip(&mut self, clip_id: &str) {
        if self.clip.as_ref().is_some_and(|(c, _)| c == clip_id) {
            self.clip = None;
        }
    }

    /// Forgets any state (end of stream).
    pub fn reset(&mut self) {
        self.clip = None;
    }

    /// The camera-frame point map `h × w` of the next frame of clip `clip_id`, from RGB
    /// `u8[h, w, 3]`. A frame of another clip than the current one starts a fresh state.
    pub fn points(
        &mut self,
        clip_id: &str,
        rgb: &[u8],
        width: u32,
        height: u32,
    ) -> Result<PointMap, Cut3rBackendError> {
        let (w, h) = (width as usize, height as usize);
        if w == 0 || h == 0 || rgb.len() != w * h * 3 {
            return Err(Cut3rBackendError::Inference(format!(
                "frame {width}x{height} with {} bytes is not RGB8",
                rgb.len()
            )));
        }
        if self.clip.as_ref().is_none_or(|(c, _)| c != clip_id) {
            let state = self
                .model
                .init_state(1)
                .map_err(|e| Cut3rBackendError::Inference(e.to_string()))?;
            self.clip = Some((clip_id.to_owned(), state));
        }
        let (hn, wn) = input_size(w, h, self.size);
        let resized = if (hn, wn) == (h, w) {
            rgb.to_vec()
        } else {
            pil_resize_bicubic(rgb, (h, w), (hn, wn))
        };
        let Some((_, state)) = self.clip.as_mut() else {
            return Err(Cut3rBackendError::Inference("no clip state".into()));
        };
        let run = || -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
            let x = Tensor::from_vec(resized, (hn, wn, 3), &self.device)?
                .permute((2, 0, 1))?
                .to_dtype(DType::F32)?
                .affine(1.0 / 255.0, 0.0)?
                .unsqueeze(0)?;
            let out = self.model.step(state, &normalize_rgb01(&x)?)?;
            Ok((
                out.pts3d_self.flatten_all()?.to_vec1::<f32>()?,
                out.conf.flatten_all()?.to_vec1::<f32>()?,
            ))
        };
        let (pts, conf) = run().map_err(|e| Cut3rBackendError::Inference(e.to_string()))?;
        let mut data = Vec::with_capacity(w * h * 3);
        for r in 0..h {
            let sr = (((r as f64 + 0.5) * hn as f64 / h as f64) as usize).min(hn - 1);
            for c in 0..w {
                let sc = (((c as f64 + 0.5) * wn as f64 / w as f64) as usize).min(wn - 1);
                let i = sr * wn + sc;
                let p = &pts[3 * i..3 * i + 3];
                if conf[i] >= self.min_conf && p.iter().all(|v| v.is_finite()) {
                    data.extend_from_slice(p);
                } else {
                    data.extend_from_slice(&[f32::NAN; 3]);
                }
            }
        }
        PointMap::new(width, height, data).map_err(|e| Cut3rBackendError::Inference(e.to_string()))
    }
}

/// Intrinsics fitted to a point map: principal point at the image centre (vipa-hand3d's
/// convention, pixel centres at +0.5), one focal length minimising the pixel error of the points'
/// rays in least squares. `None` if no valid point lies in front of the camera.
pub fn estimate_intrinsics(pm: &PointMap) -> Option<Intrinsics> {
    let (w, h) = (pm.width(), pm.height());
    let (cx, cy) = (0.5 * w as f64, 0.5 * h as f64);
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (i, p) in pm.as_slice().chunks_exact(3).enumerate() {
        let (x, y, z) = (f64::from(p[0]), f64::from(p[1]), f64::from(p[2]));
        if !(x.is_finite() && y.is_finite() && z.is_finite() && z > 1e-6) {
            continue;
        }
        let (row, col) = ((i / w as usize) as f64, (i % w as usize) as f64);
        let (a, b) = (x / z, y / z);
        num += (col + 0.5 - cx) * a + (row + 0.5 - cy) * b;
        den += a * a + b * b;
    }
    let f = num / den;
    (den > 0.0 && f.is_finite() && f > 0.0).then_some(Intrinsics {
        fx: f as f32,
        fy: f as f32,
        cx: cx as f32,
        cy: cy as f32,
        width: w,
        height: h,
    })
}
