//! Builds the trainer's model ([`VipaLm`]) and tokenizer for a preset, and turns a joined
//! sample into model inputs.
//!
//! | preset | vision side (encoder nodes) | LLM | tokenizer | trains in stage 1 |
//! |---|---|---|---|---|
//! | `tiny` | tiny InternViT + tiny point-map ViT, seeded random | 2-layer Llama, seeded random, 258-token byte vocabulary | bytes | fusion + projector + LLM |
//! | `small` | small InternViT (384 wide, 224 px) + small point-map ViT, seeded random | SmolLM2-135M-Instruct (GGUF, frozen) | the GGUF's | fusion + projector |
//! | `internvl3_5_2b` | InternViT-300M (checkpoint) + point-map ViT | Qwen3 of InternVL3.5-2B (checkpoint) | `tokenizer.json` | fusion (paper) |
//!
//! Why the projector trains in `tiny` and `small`: no pretrained InternVL of that size exists,
//! so their projector starts random and a frozen random projector would feed the frozen LLM
//! noise that no fusion layer can fix. The paper starts from a pretrained VLM whose projector
//! already speaks the LLM's language, so the full preset keeps the paper's set (fusion only).
//! `tiny` trains its LLM as well: a frozen *random* LLM has no language to align to (its
//! logits barely move whatever its inputs), and `tiny` exists to test the loop quickly.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use eyre::{WrapErr, bail, eyre};
use vipa_models::checkpoint::Checkpoint;
use vipa_models::llm::text::TextCodec;
use vipa_models::llm::{Arch, GgufCheckpoint, LlmConfig, load_tokenizer, tokenizer_from_gguf};
use vipa_models::stage::{Stage, StagePolicy};
use vipa_models::vipa::VipaVisionConfig;
use vipa_models::vipa_lm::{VipaLm, VipaLmWeights};
use vipa_models::vision::spatial::SpatialTokens;
use vipa_models::vlm::VipaConfig;

use crate::config::TrainConfig;
use crate::join::{Features, Joined};

/// The model, its trainable variables and its tokenizer.
pub struct Built {
    pub model: VipaLm,
    pub varmap: VarMap,
    pub codec: TextCodec,
    pub policy: StagePolicy,
}

/// The stage policy of a config.
pub fn policy(cfg: &TrainConfig) -> StagePolicy {
    let mut p = StagePolicy::new(if cfg.stage == 2 {
        Stage::Two
    } else {
        Stage::One
    });
    p.train_projector = cfg.trains_projector();
    p.train_llm_in_stage1 = cfg.preset == "tiny";
    // The point-map ViT is a frozen node in the dataflow (its tokens arrive precomputed).
    p.train_spatial_encoder = false;
    p
}

/// Prefixes every key with `language_model.` (HF LLM keys → InternVL layout).
fn under_language_model(tensors: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    tensors
        .into_iter()
        .map(|(k, v)| (format!("language_model.{k}"), v))
        .collect()
}

/// Builds the model. `trainable_init`: weights of a checkpoint being resumed or evaluated.
pub fn build(
    cfg: &TrainConfig,
    trainable_init: Option<HashMap<String, Tensor>>,
    dev: &Device,
) -> eyre::Result<Built> {
    let policy = policy(cfg);
    let vision = VipaVisionConfig::preset(&cfg.preset)
        .map_err(|e| eyre!("vision preset `{}`: {e}", cfg.preset))?;
    let (llm, codec, frozen) = match cfg.preset.as_str() {
        "tiny" => {
            if cfg.llm_weights.is_some() || cfg.tokenizer.is_some() {
                bail!(
                    "preset `tiny` runs a seeded random LLM with a byte tokenizer; remove \
                     `llm_weights` / `tokenizer` or use preset `small`"
                );
            }
            let mut llm = LlmConfig::tiny(Arch::Llama);
            llm.vocab_size = TextCodec::Bytes.min_vocab();
            llm.max_position_embeddings = 4096;
            (llm, TextCodec::Bytes, None)
        }
        _ => {
            let path = cfg.llm_weights.as_deref().ok_or_else(|| {
                eyre!(
                    "preset `{}` needs `llm_weights` in the trainer config",
                    cfg.preset
                )
            })?;
            load_llm(cfg, path, dev)?
        }
    };
    let model_cfg = VipaConfig {
        vision,
        llm,
        image_token_id: 0,
    };
    let varmap = VarMap::new();
    let weights = VipaLmWeights {
        frozen,
        trainable_init: trainable_init
            .map(|w| Arc::new(Checkpoint::from_tensors("the checkpoint being resumed", w))),
        seed: cfg.seed,
    };
    let model = VipaLm::new(&model_cfg, &policy, &weights, &varmap, dev)
        .map_err(|e| eyre!("building the `{}` model: {e}", cfg.preset))?;
    if codec.min_vocab() > model_cfg.llm.vocab_size {
        bail!(
            "the tokenizer has {} tokens but the LLM only {}; they do not belong together",
            codec.min_vocab(),
            model_cfg.llm.vocab_size
        );
    }
    Ok(Built {
        model,
        varmap,
        codec,
        policy,
    })
}

/// Loads the LLM (GGUF, or safetensors with `language_model.*` keys) and the tokenizer.
fn load_llm(
    cfg: &TrainConfig,
    path: &Path,
    dev: &Device,
) -> eyre::Result<(LlmConfig, TextCodec, Option<Arc<Checkpoint>>)> {
    if !path.is_file() {
        bail!(
            "LLM weights {} do not exist; `make weights` fetches SmolLM2-135M for the `small` preset",
            path.display()
        );
    }
    let is_gguf = path.extension().is_some_and(|e| e == "gguf");
    if is_gguf {
        let gguf = GgufCheckpoint::load(path, dev)
            .map_err(|e| eyre!("{e}"))
            .wrap_err_with(|| format!("loading the GGUF LLM {}", path.display()))?;
        let tokenizer = match &cfg.tokenizer {
            Some(t) => load_tokenizer(t).map_err(|e| eyre!("{e}"))?,
            None => tokenizer_from_gguf(&gguf.content).map_err(|e| eyre!("{e}"))?,
        };
        let llm = gguf.config.clone();
        let codec = TextCodec::hf(tokenizer, llm.eos_token_id.first().copied())
            .map_err(|e| eyre!("{e}"))?;
        let mut tensors = under_language_model(gguf.tensors);
        for extra in cfg.weights.to_vec() {
            let more = candle_core::safetensors::load(&extra, dev)
                .map_err(|e| eyre!("{e}"))
                .wrap_err_with(|| format!("loading frozen weights {}", extra.display()))?;
            tensors.extend(more);
        }
        let ckpt = Checkpoint::from_tensors(&path.display().to_string(), tensors);
        return Ok((llm, codec, Some(Arc::new(ckpt))));
    }
    let tok_path = cfg.tokenizer.as_deref().ok_or_else(|| {
        eyre!("safetensors LLM weights need `tokenizer` (the checkpoint's tokenizer.json)")
    })?;
    let tokenizer = load_tokenizer(tok_path).map_err(|e| eyre!("{e}"))?;
    let llm = match cfg.preset.as_str() {
        "internvl3_5_2b" => LlmConfig::internvl3_5_2b(),
        _ => LlmConfig::small(),
    };
    let codec =
        TextCodec::hf(tokenizer, llm.eos_token_id.first().copied()).map_err(|e| eyre!("{e}"))?;
    let mut files = vec![path.to_path_buf()];
    files.extend(cfg.weights.to_vec());
    let ckpt = Checkpoint::open(&files)
        .map_err(|e| eyre!("{e}"))
        .wrap_err("opening the frozen weights")?;
    Ok((llm, codec, Some(Arc::new(ckpt))))
}

fn stack(feats: &[Features], dev: &Device) -> candle_core::Result<Tensor> {
    let parts = feats
        .iter()
        .map(|f| Tensor::from_slice(&f.values, (f.shape[0], f.shape[1]), dev))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Tensor::stack(&parts, 0)
}

/// The sample's features as model inputs: semantic `f32[n, t, d]` and 3D tokens (or `None`
/// when there are none: the no-3D ablation sends empty token sets).
pub fn inputs(
    j: &Joined,
    model: &VipaLm,
    dev: &Device,
) -> eyre::Result<(Tensor, Option<SpatialTokens>)> {
    let vit = stack(&j.tokens_2d, dev).map_err(|e| eyre!("semantic features: {e}"))?;
    let Some(ds) = model.spatial_width() else {
        return Ok((vit, None));
    };
    if j.tokens_3d.is_empty() || j.tokens_3d.iter().all(|f| f.shape[0] == 0) {
        return Ok((vit, None));
    }
    if let Some(f) = j.tokens_3d.iter().find(|f| f.shape[1] != ds) {
        bail!(
            "3D features have width {}, the fusion layer expects {ds}; the encoder-3d node must run the trainer's preset",
            f.shape[1]
        );
    }
    let tokens = stack(&j.tokens_3d, dev).map_err(|e| eyre!("3D features: {e}"))?;
    let valid = if j.tokens_3d.iter().any(|f| f.valid.is_some()) {
        let rows: Vec<f32> = j
            .tokens_3d
            .iter()
            .flat_map(|f| match &f.valid {
                Some(v) => v.clone(),
                None => vec![1.0; f.shape[0]],
            })
            .collect();
        let n = j.tokens_3d.len();
        Some(Tensor::from_vec(rows, (n, j.tokens_3d[0].shape[0]), dev)?)
    } else {
        None
    };
    Ok((vit, Some(SpatialTokens { tokens, valid })))
}
