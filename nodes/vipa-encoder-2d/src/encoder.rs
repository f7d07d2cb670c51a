//! The semantic encoder's per-message logic, without dora: `image` in, `tokens_2d` out.
//!
//! Each [`ImageFrame`] is preprocessed as upstream InternVL (Pillow bicubic resize to the
//! preset's square size, ÷255, ImageNet normalisation; `vipa_models::vision::preprocess`), run
//! through the frozen InternViT, and sent as a [`TensorMsg`] `f32[tokens, channels]` (axes
//! `["tokens", "channels"]`). The output header keeps the input's `clip_id`, `frame_idx` and
//! `timestamp_ns` with the node's own gap-free `seq`; the keys `sample_seq`, `frame_slot` and
//! `n_frames` are passed through when present (pretraining), absent otherwise (control).
//! A [`vipa_msgs::StreamEnd`] on `image` is answered with a `StreamEnd` on `tokens_2d`.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use vipa_models::checkpoint::Checkpoint;
use vipa_models::vision::intern_vit::SemanticEncoder;
use vipa_models::vision::preprocess::preprocess_rgb;
use vipa_msgs::ports;
use vipa_msgs::{ImageFrame, Metadata, Payload, StreamHeader, TensorMsg};
use vipa_node_kit::{
    CachedFeatures, FeatureCache, InputMsg, Outputs, StreamLogic, StreamState, Triage, content_key,
};

use crate::config::{Encoder2dConfig, Features};
use vipa_models::seeded::seeded_builder;

/// Keys copied from an input frame to its features.
pub const PASS_THROUGH: [&str; 3] = vipa_msgs::meta::keys::SAMPLE_KEYS;

/// Why the encoder cannot go on (shared with the other encoder node).
pub use vipa_node_kit::EncoderError;

fn model(context: impl Into<String>) -> impl FnOnce(candle_core::Error) -> EncoderError {
    EncoderError::model(context)
}

/// The frozen semantic encoder node logic.
pub struct Encoder2d {
    cfg: Encoder2dConfig,
    encoder: SemanticEncoder,
    device: Device,
    image_size: usize,
    cache: Option<FeatureCache>,
    stream: StreamState,
}

impl std::fmt::Debug for Encoder2d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder2d")
            .field("cfg", &self.cfg)
            .field("sent", &self.stream.sent)
            .finish()
    }
}

impl Encoder2d {
    /// Builds the encoder: from `weights` when given (plain tensors, nothing trains), else
    /// from the seeded random init.
    pub fn new(cfg: &Encoder2dConfig) -> Result<Self, EncoderError> {
        let device = cfg.device.resolve().map_err(EncoderError::device)?;
        let vl = cfg.preset.semantic();
        let encoder = match &cfg.weights {
            Some(paths) => {
                let files = paths.to_vec();
                let ckpt = Arc::new(
                    Checkpoint::open(&files)
                        .map_err(model(format!("semantic encoder weights {files:?}")))?,
                );
                let vb = ckpt.frozen(candle_core::DType::F32, &device);
                SemanticEncoder::new(&vl, vb.clone(), vb).map_err(model(format!(
                    "semantic encoder `{}` from {files:?}",
                    cfg.preset
                )))?
            }
            None => {
                let vb = seeded_builder(cfg.seed, &device);
                SemanticEncoder::new(&vl, vb.clone(), vb).map_err(model(format!(
                    "semantic encoder `{}` (random init)",
                    cfg.preset
                )))?
            }
        };
        tracing::info!(
            preset = %cfg.preset,
            weights = cfg.weights.is_some(),
            seed = cfg.seed,
            features = ?cfg.features,
            device = %vipa_models::device::describe(&device),
            "semantic encoder ready"
        );
        let cache = FeatureCache::open_configured(cfg.cache.as_deref(), || cfg.fingerprint())
            .map_err(|(path, source)| EncoderError::Cache { path, source })?;
        Ok(Self {
            cfg: cfg.clone(),
            image_size: vl.vision_config.image_size,
            encoder,
            cache,
            device,
            stream: StreamState::default(),
        })
    }

    /// Features of one frame: `f32[tokens, channels]`.
    pub fn encode(&self, frame: &ImageFrame) -> Result<Tensor, EncoderError> {
        let rgb = frame.rgb();
        let (h, w) = (frame.height as usize, frame.width as usize);
        let pixels = preprocess_rgb(&rgb, h, w, self.image_size, &self.device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(model(format!("preprocessing a {w}x{h} frame")))?;
        let feats = self
            .encoder
            .vit_features(&pixels)
            .map_err(model("InternViT forward"))?;
        let out = match self.cfg.features {
            Features::VitTokens => feats.tokens,
            Features::Projected => self
                .encoder
                .shuffle(&feats)
                .and_then(|s| self.encoder.project(&s))
                .map_err(model("pixel shuffle + projector"))?,
        };
        out.squeeze(0).map_err(model("features"))
    }

    /// `[tokens, channels]` of this preset and feature choice.
    pub fn output_shape(&self) -> Result<[usize; 2], EncoderError> {
        let vl = self.encoder.config();
        let g = vl.vision_config.grid_size();
        Ok(match self.cfg.features {
            Features::VitTokens => [g * g, vl.vision_config.hidden_size],
            Features::Projected => [
                vl.tokens_per_image().map_err(model("preset"))?,
                vl.llm_config.hidden_size,
            ],
        })
    }

    /// Features of one frame as host values `(shape, values)`: from the cache when it holds
    /// them, else encoded (and stored).
    pub fn features(&mut self, frame: &ImageFrame) -> Result<(Vec<usize>, Vec<f32>), EncoderError> {
        let key = self.cache.as_ref().map(|_| {
            content_key(&[
                frame.bytes(),
                format!("{}x{} {:?}", frame.width, frame.height, frame.encoding).as_bytes(),
            ])
        });
        if let (Some(c), Some(k)) = (&mut self.cache, &key)
            && let Some(hit) = c.get(k)
        {
            return Ok((hit.shape, hit.values));
        }
        let feats = self.encode(frame)?;
        let (n, d) = feats.dims2().map_err(model("features"))?;
        let values = feats
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(model("features to host"))?;
        if let (Some(c), Some(k)) = (&self.cache, &key) {
            let entry = CachedFeatures {
                shape: vec![n, d],
                values,
                valid: None,
            };
            c.put(k, &entry).map_err(|source| EncoderError::Cache {
                path: c.dir().to_owned(),
                source,
            })?;
            return Ok((entry.shape, entry.values));
        }
        Ok((vec![n, d], values))
    }

    fn tensor_msg(
        &self,
        header: &StreamHeader,
        shape: Vec<usize>,
        values: Vec<f32>,
        input_meta: &Metadata,
    ) -> Result<(arrow::array::ArrayRef, Metadata), EncoderError> {
        let msg = TensorMsg::from_f32(
            StreamHeader {
                seq: self.stream.sent,
                ..header.clone()
            },
            shape,
            &["tokens", "channels"],
            values,
        )
        .map_err(EncoderError::decode(ports::TOKENS_2D))?;
        let (array, mut meta) = msg.to_arrow();
        for key in PASS_THROUGH {
            if let Some(v) = input_meta.get(key) {
                meta.insert(key.to_owned(), v.clone());
            }
        }
        Ok((array, meta))
    }
}

impl StreamLogic for Encoder2d {
    type Error = EncoderError;

    fn stream(&self) -> &StreamState {
        &self.stream
    }

    fn cache_stats(&self) -> Option<(u64, u64)> {
        self.cache.as_ref().map(FeatureCache::stats)
    }

    /// Handles one input message.
    fn on_input(&mut self, msg: &InputMsg, out: &mut impl Outputs) -> Result<(), EncoderError> {
        if msg.id != ports::IMAGE {
            tracing::warn!(input = %msg.id, "ignoring unexpected input");
            return Ok(());
        }
        let decode = EncoderError::decode(msg.id.clone());
        if self.stream.triage(msg, ports::TOKENS_2D, out)? != Triage::Data {
            return Ok(());
        }
        let frame = ImageFrame::from_arrow(msg.array.as_ref(), &msg.meta).map_err(decode)?;
        self.stream.seq.observe_gapless(&msg.id, frame.header.seq)?;
        let (shape, values) = self.features(&frame)?;
        let (array, meta) = self.tensor_msg(&frame.header, shape, values, &msg.meta)?;
        out.send_raw(ports::TOKENS_2D, array, meta)?;
        self.stream.sent += 1;
        Ok(())
    }
}
