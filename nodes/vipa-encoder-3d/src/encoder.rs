//! The 3D encoder's per-message logic, without dora: `pointmap` in, `tokens_3d` out.
//!
//! Each calibrated [`PointMap`] (camera frame, metres, NaN where no depth) is resized by
//! nearest neighbour to the encoder's square input (the same square the semantic encoder
//! resizes its image to, so 3D and 2D patches cover the same image regions; nearest neighbour
//! never blends a foreground point with the background across a depth edge) and run through
//! the frozen point-map ViT. The tokens go out as a [`TensorMsg`] `f32[tokens, channels]`
//! (axes `["tokens", "channels"]`) with the metadata key `token_valid` (`ListInt`, one 0/1
//! per token: 0 = the token's patch had no valid point; the fusion must not attend to it).
//! Backend `none` sends `f32[0, channels]` and an empty `token_valid`.
//!
//! Backend `cut3r` reads RGB [`ImageFrame`]s on input `image` instead: each frame is resized to
//! the square `cut3r.size` (Pillow-exact bicubic; VLM-3R interpolates its pixel values to
//! 432×432), normalised to `[-1, 1]` and stepped through the frozen Cut3R. Its tokens are the
//! last decoder layer, `f32[1 + (size/16)², 768]` (camera token first, all valid). The state
//! carries across the frames of one multi-frame sample (`frame_slot` > 0 with the same
//! `sample_seq` and clip as the previous frame, as VLM-3R runs Cut3R over a sample's frames) and
//! starts fresh otherwise (every single-frame sample, and messages without `frame_slot`).
//!
//! The header keeps the input's `clip_id` / `frame_idx` / `timestamp_ns` with the node's own
//! gap-free `seq`; `sample_seq`, `frame_slot` and `n_frames` are passed through when present.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use vipa_models::checkpoint::Checkpoint;
use vipa_models::vision::config::Cut3rConfig;
use vipa_models::vision::config::PointMapVitConfig;
use vipa_models::vision::cut3r::{Cut3r, Cut3rState, normalize_rgb01};
use vipa_models::vision::resize::pil_resize_bicubic;
use vipa_models::vision::spatial::PointMapVit;
use vipa_msgs::ports;
use vipa_msgs::{ImageFrame, MetaValue, Metadata, Payload, PointMap, StreamHeader, TensorMsg};
use vipa_node_kit::{
    CachedFeatures, FeatureCache, InputMsg, Outputs, StreamLogic, StreamState, Triage, content_key,
};

use crate::config::{Backend, Encoder3dConfig};
use vipa_models::seeded::seeded_builder;

/// Tokens on the host: `(shape [tokens, channels], values, per-token validity 0/1)`.
pub type HostTokens = (Vec<usize>, Vec<f32>, Vec<i64>);

/// Metadata key of the per-token validity (`ListInt` of 0/1).
pub const TOKEN_VALID: &str = vipa_msgs::meta::keys::TOKEN_VALID;
/// Keys copied from an input point map to its tokens.
pub const PASS_THROUGH: [&str; 3] = vipa_msgs::meta::keys::SAMPLE_KEYS;
/// Checkpoint prefix of the point-map ViT (as in `VipaVision`).
pub const PREFIX: &str = "spatial_encoder";

/// Why the encoder cannot go on (shared with the other encoder node).
pub use vipa_node_kit::EncoderError;

fn model(context: impl Into<String>) -> impl FnOnce(candle_core::Error) -> EncoderError {
    EncoderError::model(context)
}

/// Nearest-neighbour resize of `f32[h, w, 3]` to `f32[size, size, 3]` (pixel centres).
pub fn resize_nearest(points: &[f32], h: usize, w: usize, size: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(size * size * 3);
    for r in 0..size {
        let sr = (((r as f64 + 0.5) * h as f64 / size as f64) as usize).min(h - 1);
        for c in 0..size {
            let sc = (((c as f64 + 0.5) * w as f64 / size as f64) as usize).min(w - 1);
            let i = 3 * (sr * w + sc);
            out.extend_from_slice(&points[i..i + 3]);
        }
    }
    out
}

/// The loaded Cut3R and the state of the sample being encoded.
struct Cut3rRunner {
    model: Cut3r,
    size: usize,
    /// `(clip_id, sample_seq, state)` of the last frame.
    state: Option<(String, Option<i64>, Cut3rState)>,
}

fn load_cut3r(cfg: &Encoder3dConfig, device: &Device) -> Result<Cut3rRunner, EncoderError> {
    let c = &cfg.cut3r;
    let Some(path) = &c.checkpoint else {
        return Err(EncoderError::model_msg(
            "backend cut3r",
            "`cut3r.checkpoint` is not set (a safetensors file from convert_cut3r.py)",
        ));
    };
    let model_cfg = match &c.config {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Cut3rConfig>(&t).map_err(|e| e.to_string()))
            .map_err(|e| EncoderError::model_msg(format!("Cut3R config {}", p.display()), e))?,
        None => Cut3rConfig::preset(c.preset),
    };
    let model_ = Cut3r::load(&model_cfg, std::slice::from_ref(path), device)
        .map_err(model(format!("Cut3R from {}", path.display())))?;
    Ok(Cut3rRunner {
        model: model_,
        size: c.size,
        state: None,
    })
}

fn meta_int(meta: &Metadata, key: &str) -> Option<i64> {
    match meta.get(key) {
        Some(MetaValue::Integer(v)) => Some(*v),
        _ => None,
    }
}

/// The frozen 3D encoder node logic.
pub struct Encoder3d {
    cfg: Encoder3dConfig,
    vit_cfg: PointMapVitConfig,
    vit: Option<PointMapVit>,
    cut3r: Option<Cut3rRunner>,
    cache: Option<FeatureCache>,
    device: Device,
    stream: StreamState,
}

impl std::fmt::Debug for Encoder3d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder3d")
            .field("cfg", &self.cfg)
            .field("sent", &self.stream.sent)
            .finish()
    }
}

impl Encoder3d {
    /// Builds the encoder (nothing to build for backend `none`).
    pub fn new(cfg: &Encoder3dConfig) -> Result<Self, EncoderError> {
        let device = cfg.device.resolve().map_err(EncoderError::device)?;
        let vit_cfg = cfg.preset.spatial();
        let cut3r = match cfg.backend {
            Backend::Cut3r => Some(load_cut3r(cfg, &device)?),
            _ => None,
        };
        let vit = match cfg.backend {
            Backend::None | Backend::Cut3r => None,
            Backend::PointMapVit => Some(match &cfg.weights {
                Some(paths) => {
                    let files = paths.to_vec();
                    let ckpt = Arc::new(
                        Checkpoint::open(&files)
                            .map_err(model(format!("3D encoder weights {files:?}")))?,
                    );
                    let vb = ckpt.frozen(candle_core::DType::F32, &device);
                    PointMapVit::new(&vit_cfg, vb.pp(PREFIX)).map_err(model(format!(
                        "point-map ViT `{}` from {files:?}",
                        cfg.preset
                    )))?
                }
                None => PointMapVit::new(&vit_cfg, seeded_builder(cfg.seed, &device).pp(PREFIX))
                    .map_err(model(format!(
                        "point-map ViT `{}` (random init)",
                        cfg.preset
                    )))?,
            }),
        };
        tracing::info!(
            backend = ?cfg.backend,
            preset = %cfg.preset,
            weights = cfg.weights.is_some(),
            seed = cfg.seed,
            device = %vipa_models::device::describe(&device),
            "3D encoder ready"
        );
        // Backend `none` computes nothing worth caching; cut3r is refused by the config.
        let root = cfg
            .cache
            .as_deref()
            .filter(|_| cfg.backend == Backend::PointMapVit);
        let cache = FeatureCache::open_configured(root, || cfg.fingerprint())
            .map_err(|(path, source)| EncoderError::Cache { path, source })?;
        Ok(Self {
            cfg: cfg.clone(),
            vit_cfg,
            vit,
            cut3r,
            cache,
            device,
            stream: StreamState::default(),
        })
    }

    /// Token width `d_s` (also of the empty `none` tensors).
    pub fn channels(&self) -> usize {
        match &self.cut3r {
            Some(c) => c.model.config().dec_embed_dim,
            None => self.vit_cfg.output_size,
        }
    }

    /// Tokens per frame (0 for backend `none`).
    pub fn tokens(&self) -> usize {
        if let Some(c) = &self.cut3r {
            let g = c.size / c.model.config().patch_size;
            return 1 + g * g;
        }
        match self.vit {
            None => 0,
            Some(_) => {
                let g = self.vit_cfg.image_size / self.vit_cfg.patch_size;
                g * g
            }
        }
    }

    /// Tokens of one point map: `f32[tokens, channels]` and the per-token validity.
    pub fn encode(&self, pm: &PointMap) -> Result<(Tensor, Vec<i64>), EncoderError> {
        let Some(vit) = &self.vit else {
            let empty = Tensor::zeros((0, self.channels()), candle_core::DType::F32, &self.device)
                .map_err(model("empty tokens"))?;
            return Ok((empty, Vec::new()));
        };
        let s = self.vit_cfg.image_size;
        let resized = resize_nearest(pm.values(), pm.height as usize, pm.width as usize, s);
        let input = Tensor::from_vec(resized, (1, s, s, 3), &self.device)
            .map_err(model("point map to tensor"))?;
        let out = vit
            .forward(&input)
            .map_err(model("point-map ViT forward"))?;
        let tokens = out.tokens.squeeze(0).map_err(model("tokens"))?;
        let valid = match out.valid {
            Some(v) => v
                .squeeze(0)
                .and_then(|v| v.to_vec1::<f32>())
                .map_err(model("token validity"))?
                .into_iter()
                .map(|x| i64::from(x > 0.5))
                .collect(),
            None => vec![1; self.tokens()],
        };
        Ok((tokens, valid))
    }

    /// Tokens of one point map as host values `(shape, values, validity)`: from the cache when
    /// it holds them, else encoded (and stored).
    pub fn features(&mut self, pm: &PointMap) -> Result<HostTokens, EncoderError> {
        let key = self.cache.as_ref().map(|_| {
            let bytes: Vec<u8> = pm.values().iter().flat_map(|v| v.to_le_bytes()).collect();
            content_key(&[&bytes, format!("{}x{}x3", pm.height, pm.width).as_bytes()])
        });
        if let (Some(c), Some(k)) = (&mut self.cache, &key)
            && let Some(hit) = c.get(k)
        {
            let valid = hit
                .valid
                .unwrap_or_default()
                .into_iter()
                .map(|v| i64::from(v > 0.5))
                .collect();
            return Ok((hit.shape, hit.values, valid));
        }
        let (tokens, valid) = self.encode(pm)?;
        let (n, d) = tokens.dims2().map_err(model("tokens"))?;
        let values = tokens
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(model("tokens to host"))?;
        if let (Some(c), Some(k)) = (&self.cache, &key) {
            let entry = CachedFeatures {
                shape: vec![n, d],
                values,
                valid: Some(valid.iter().map(|&v| v as f32).collect()),
            };
            c.put(k, &entry).map_err(|source| EncoderError::Cache {
                path: c.dir().to_owned(),
                source,
            })?;
            return Ok((entry.shape, entry.values, valid));
        }
        Ok((vec![n, d], values, valid))
    }

    /// Cut3R tokens of one RGB frame, `f32[1 + (size/16)², channels]`, all valid. `meta` is the
    /// frame's metadata (`frame_slot`, `sample_seq` decide whether the state carries on).
    pub fn encode_image(
        &mut self,
        image: &ImageFrame,
        meta: &Metadata,
    ) -> Result<(Tensor, Vec<i64>), EncoderError> {
        let n_tokens = self.tokens();
        let device = self.device.clone();
        let Some(c) = &mut self.cut3r else {
            return Err(EncoderError::model_msg(
                "image input",
                format!(
                    "backend {:?} encodes point maps; only backend cut3r takes `{}`",
                    self.cfg.backend,
                    ports::IMAGE
                ),
            ));
        };
        let slot = meta_int(meta, vipa_msgs::meta::keys::FRAME_SLOT);
        let sample = meta_int(meta, vipa_msgs::meta::keys::SAMPLE_SEQ);
        let clip = &image.header.clip_id;
        let carry_on = slot.is_some_and(|s| s > 0)
            && c.state
                .as_ref()
                .is_some_and(|(cl, sa, _)| cl == clip && *sa == sample);
        if !carry_on {
            let fresh = c.model.init_state(1).map_err(model("Cut3R state"))?;
            c.state = Some((clip.clone(), sample, fresh));
        }
        let (w, h) = (image.width as usize, image.height as usize);
        let s = c.size;
        let rgb = image.rgb();
        let rgb = if (h, w) == (s, s) {
            rgb.into_owned()
        } else {
            pil_resize_bicubic(&rgb, (h, w), (s, s))
        };
        let x = Tensor::from_vec(rgb, (s, s, 3), &device)
            .and_then(|t| {
                t.permute((2, 0, 1))?
                    .to_dtype(DType::F32)?
                    .affine(1.0 / 255.0, 0.0)
            })
            .and_then(|t| normalize_rgb01(&t.unsqueeze(0)?))
            .map_err(model("frame to tensor"))?;
        let Some((_, _, state)) = &mut c.state else {
            return Err(EncoderError::model_msg("Cut3R", "no state"));
        };
        let out = c.model.step(state, &x).map_err(model("Cut3R forward"))?;
        let tokens = out.tokens.squeeze(0).map_err(model("tokens"))?;
        Ok((tokens, vec![1; n_tokens]))
    }
}

impl StreamLogic for Encoder3d {
    type Error = EncoderError;

    fn stream(&self) -> &StreamState {
        &self.stream
    }

    fn cache_stats(&self) -> Option<(u64, u64)> {
        self.cache.as_ref().map(FeatureCache::stats)
    }

    /// Handles one input message.
    fn on_input(&mut self, msg: &InputMsg, out: &mut impl Outputs) -> Result<(), EncoderError> {
        let data_input = if self.cut3r.is_some() {
            ports::IMAGE
        } else {
            ports::POINTMAP
        };
        if msg.id != data_input {
            if self.cut3r.is_some() && msg.id == ports::POINTMAP {
                // Dropping it would silently lose a training sample.
                return Err(EncoderError::model_msg(
                    format!("input `{}`", ports::POINTMAP),
                    format!(
                        "backend cut3r encodes RGB frames: wire the frames to `{}`",
                        ports::IMAGE
                    ),
                ));
            }
            tracing::warn!(input = %msg.id, "ignoring unexpected input");
            return Ok(());
        }
        let decode = EncoderError::decode(msg.id.clone());
        if self.stream.triage(msg, ports::TOKENS_3D, out)? != Triage::Data {
            return Ok(());
        }
        let (header, (shape, values, valid)) = if self.cut3r.is_some() {
            let image = ImageFrame::from_arrow(msg.array.as_ref(), &msg.meta).map_err(decode)?;
            self.stream.seq.observe_gapless(&msg.id, image.header.seq)?;
            let (tokens, valid) = self.encode_image(&image, &msg.meta)?;
            let (n, d) = tokens.dims2().map_err(model("tokens"))?;
            let values = tokens
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(model("tokens to host"))?;
            (image.header, (vec![n, d], values, valid))
        } else {
            let pm = PointMap::from_arrow(msg.array.as_ref(), &msg.meta).map_err(decode)?;
            self.stream.seq.observe_gapless(&msg.id, pm.header.seq)?;
            let enc = self.features(&pm)?;
            (pm.header, enc)
        };
        let tmsg = TensorMsg::from_f32(
            StreamHeader {
                seq: self.stream.sent,
                ..header
            },
            shape,
            &["tokens", "channels"],
            values,
        )
        .map_err(EncoderError::decode(ports::TOKENS_3D))?;
        let (array, mut meta) = tmsg.to_arrow();
        meta.insert(TOKEN_VALID.into(), MetaValue::ListInt(valid));
        pass_through(&msg.meta, &mut meta);
        out.send_raw(ports::TOKENS_3D, array, meta)?;
        self.stream.sent += 1;
        Ok(())
    }
}

fn pass_through(from: &Metadata, to: &mut Metadata) {
    for key in PASS_THROUGH {
        if let Some(v) = from.get(key) {
            to.insert(key.to_owned(), v.clone());
        }
    }
}
