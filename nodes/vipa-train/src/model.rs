//! Builds the trainer's model ([`VipaLm`]) and tokenizer for a preset, and turns a joined
//! sample into model inputs.
//!
//! What each preset means (encoders, LLM, tokenizer, what trains in stage 1, and why) is
//! [`vipa_models::Preset`]'s documentation. In stage 2 every preset trains fusion + projector +
//! LLM (the full preset: fusion + LLM, as the paper; GGUF LLM weights only so far).
//!
//! Stage 2 adds the 3 × 1024 motion tokens to the tokenizer and grows the LLM's embedding
//! rows (mean-of-rows init, `vipa_models::llm::motion`); motion answers are the tokens.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use eyre::{WrapErr, bail, eyre};
use vipa_models::Preset;
use vipa_models::checkpoint::Checkpoint;
use vipa_models::llm::text::TextCodec;
use vipa_models::llm::{GgufCheckpoint, LlmConfig, load_tokenizer, tokenizer_from_gguf};
use vipa_models::stage::{ParamGroup, Stage, StagePolicy};
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
    p.train_llm_in_stage1 = cfg.trains_llm_in_stage1();
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

/// Where the LLM comes from.
struct LlmSource {
    cfg: LlmConfig,
    codec: TextCodec,
    /// Frozen weights (`language_model.*` and any `weights` files); `None` = seeded random.
    frozen: Option<Checkpoint>,
    /// The same tensors when they are in memory (GGUF), for fine-tuning the LLM.
    tensors: Option<HashMap<String, Tensor>>,
}

/// Builds the model. `trainable_init`: weights of a checkpoint being resumed or evaluated.
///
/// Trainable values are looked up in order: `trainable_init`, then the `init_from` checkpoint
/// (e.g. stage 2 starting from stage 1's fusion and projector), then the frozen weights (the
/// pretrained LLM that stage 2 fine-tunes); what none holds gets the seeded init.
pub fn build(
    cfg: &TrainConfig,
    trainable_init: Option<HashMap<String, Tensor>>,
    dev: &Device,
) -> eyre::Result<Built> {
    let policy = policy(cfg);
    let vision = cfg.preset.vision();
    let src = match cfg.preset {
        Preset::Tiny => {
            if cfg.llm_weights.is_some() || cfg.tokenizer.is_some() {
                bail!(
                    "preset `tiny` runs a seeded random LLM with a byte tokenizer; remove \
                     `llm_weights` / `tokenizer` or use preset `small`"
                );
            }
            let mut codec = TextCodec::bytes();
            if cfg.stage == 2 {
                codec = codec.with_motion().map_err(|e| eyre!("{e}"))?.0;
            }
            let mut llm = cfg.preset.llm();
            llm.vocab_size = codec.min_vocab();
            llm.max_position_embeddings = 4096;
            LlmSource {
                cfg: llm,
                codec,
                frozen: None,
                tensors: None,
            }
        }
        Preset::Small | Preset::InternVl35_2b => {
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
        llm: src.cfg,
        image_token_id: 0,
    };
    let frozen = src.frozen.map(Arc::new);
    let codec = src.codec;
    // The trainable init, as one layered checkpoint, and the trainable groups that must come
    // from it whole (a random start is only ever the choice of a module that has no weights).
    let mut init: Option<Checkpoint> = None;
    let mut required: Vec<ParamGroup> = Vec::new();
    let trains = |g: ParamGroup| policy.is_trainable(g);
    if trains(ParamGroup::Llm)
        && let Some(t) = &src.tensors
    {
        // The pretrained LLM is the starting point of its own fine-tuning (the same tensors:
        // cloning the map shares their storage).
        init = Some(Checkpoint::from_tensors("the pretrained LLM", t.clone()));
        required.push(ParamGroup::Llm);
    }
    if cfg.init_from.is_some() {
        // Stage 2 starts from what stage 1 trained: fusion always, the projector where the
        // preset trains it.
        required.extend(
            [ParamGroup::Fusion, ParamGroup::Projector]
                .into_iter()
                .filter(|&g| trains(g) && model_cfg_has(g, &model_cfg)),
        );
    }
    if trainable_init.is_some() {
        // Resuming or evaluating: every trainable tensor is in the checkpoint.
        required.extend(
            ParamGroup::ALL
                .into_iter()
                .filter(|&g| trains(g) && g != ParamGroup::MotionEmbeddings),
        );
    }
    required.sort_by_key(|g| g.prefix());
    required.dedup();
    if let Some(from) = &cfg.init_from {
        let mut loaded = load_init_from(from, dev)?;
        grow_vocab(&mut loaded.1, &model_cfg.llm, cfg.seed)?;
        let label = format!("init_from {}", loaded.0.display());
        init = Some(match init {
            Some(base) => base.prepend_tensors(&label, loaded.1),
            None => Checkpoint::from_tensors(&label, loaded.1),
        });
    }
    if let Some(w) = trainable_init {
        let label = "the checkpoint being resumed";
        init = Some(match init {
            Some(base) => base.prepend_tensors(label, w),
            None => Checkpoint::from_tensors(label, w),
        });
    }
    let varmap = VarMap::new();
    let weights = VipaLmWeights {
        frozen,
        trainable_init: init.map(Arc::new),
        seed: cfg.seed,
        required,
    };
    let model = VipaLm::new(&model_cfg, &policy, &weights, &varmap, dev)
        .map_err(|e| eyre!("building the `{}` model: {e}", cfg.preset))?;
    for (group, n) in model.fresh_init() {
        tracing::info!(group = %group, tensors = n, seed = cfg.seed, "seeded random init");
    }
    if weights.frozen.is_none() {
        tracing::info!(
            preset = %cfg.preset,
            seed = cfg.seed,
            "frozen parts: seeded random init (the preset has no pretrained weights)"
        );
    }
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

/// Whether the model has a group at all (fusion only with a fusion layer configured).
fn model_cfg_has(group: ParamGroup, cfg: &VipaConfig) -> bool {
    match group {
        ParamGroup::Fusion => cfg.vision.fusion.is_some(),
        _ => true,
    }
}

/// A stage-1 checkpoint whose LLM trained (`tiny`) has the vocabulary without motion tokens;
/// grow its embedding (and untied head) rows to the stage-2 vocabulary the same way the
/// pretrained LLM is grown ([`vipa_models::llm::resize_vocab`]).
fn grow_vocab(
    weights: &mut HashMap<String, Tensor>,
    llm: &LlmConfig,
    seed: u64,
) -> eyre::Result<()> {
    const EMBED: &str = "language_model.model.embed_tokens.weight";
    const HEAD: &str = "language_model.lm_head.weight";
    let Some(rows) = weights.get(EMBED).and_then(|t| t.dims().first().copied()) else {
        return Ok(());
    };
    if rows >= llm.vocab_size {
        return Ok(());
    }
    let mut plain: HashMap<String, Tensor> = HashMap::new();
    for key in [EMBED, HEAD] {
        if let Some(t) = weights.remove(key) {
            plain.insert(key.trim_start_matches("language_model.").to_owned(), t);
        }
    }
    let mut old = llm.clone();
    old.vocab_size = rows;
    vipa_models::llm::resize_vocab(&mut plain, &mut old, llm.vocab_size, seed).map_err(|e| {
        eyre!(
            "growing the init_from vocabulary to {}: {e}",
            llm.vocab_size
        )
    })?;
    weights.extend(
        plain
            .into_iter()
            .map(|(k, v)| (format!("language_model.{k}"), v)),
    );
    Ok(())
}

/// The trainable weights of `init_from`: a checkpoint folder, or a checkpoints folder (its
/// newest checkpoint).
fn load_init_from(
    from: &Path,
    dev: &Device,
) -> eyre::Result<(std::path::PathBuf, HashMap<String, Tensor>)> {
    let loaded = if from.join("state.json").is_file() {
        crate::checkpoint::load(from, dev)?
    } else {
        crate::Checkpoints::new(from, usize::MAX)
            .latest(dev)?
            .ok_or_else(|| {
                eyre!(
                    "`init_from` {} holds no checkpoint (run the stage it names first)",
                    from.display()
                )
            })?
    };
    tracing::info!(path = %loaded.path.display(), step = loaded.meta.step, "initialising from");
    Ok((loaded.path, loaded.weights))
}

/// Loads the LLM (GGUF, or safetensors with `language_model.*` keys) and the tokenizer; in
/// stage 2 with the motion tokens added to both.
fn load_llm(cfg: &TrainConfig, path: &Path, dev: &Device) -> eyre::Result<LlmSource> {
    if !path.is_file() {
        bail!(
            "LLM weights {} do not exist; `make weights` fetches SmolLM2-135M for the `small` preset",
            path.display()
        );
    }
    let is_gguf = path.extension().is_some_and(|e| e == "gguf");
    if !is_gguf {
        if cfg.stage == 2 {
            bail!(
                "stage 2 grows the LLM vocabulary by the motion tokens; that is implemented for \
                 GGUF LLM weights (the `small` preset) only so far"
            );
        }
        let tok_path = cfg.tokenizer.as_deref().ok_or_else(|| {
            eyre!("safetensors LLM weights need `tokenizer` (the checkpoint's tokenizer.json)")
        })?;
        let tokenizer = load_tokenizer(tok_path).map_err(|e| eyre!("{e}"))?;
        let llm = cfg.preset.llm();
        let codec = TextCodec::hf(tokenizer, llm.eos_token_id.first().copied())
            .map_err(|e| eyre!("{e}"))?;
        let mut files = vec![path.to_path_buf()];
        files.extend(cfg.weights.to_vec());
        let ckpt = Checkpoint::open(&files)
            .map_err(|e| eyre!("{e}"))
            .wrap_err("opening the frozen weights")?;
        return Ok(LlmSource {
            cfg: llm,
            codec,
            frozen: Some(ckpt),
            tensors: None,
        });
    }
    let gguf = GgufCheckpoint::load(path, dev)
        .map_err(|e| eyre!("{e}"))
        .wrap_err_with(|| format!("loading the GGUF LLM {}", path.display()))?;
    let tokenizer = match &cfg.tokenizer {
        Some(t) => load_tokenizer(t).map_err(|e| eyre!("{e}"))?,
        None => tokenizer_from_gguf(&gguf.content).map_err(|e| eyre!("{e}"))?,
    };
    let mut llm = gguf.config.clone();
    let mut codec =
        TextCodec::hf(tokenizer, llm.eos_token_id.first().copied()).map_err(|e| eyre!("{e}"))?;
    let mut tensors = gguf.tensors;
    if cfg.stage == 2 {
        let (with_motion, vocab) = codec.with_motion().map_err(|e| eyre!("{e}"))?;
        codec = with_motion;
        vocab
            .extend_checkpoint(&mut tensors, &mut llm, cfg.seed)
            .map_err(|e| eyre!("adding the motion tokens to the LLM: {e}"))?;
    }
    let mut tensors = under_language_model(tensors);
    for extra in cfg.weights.to_vec() {
        let more = candle_core::safetensors::load(&extra, dev)
            .map_err(|e| eyre!("{e}"))
            .wrap_err_with(|| format!("loading frozen weights {}", extra.display()))?;
        tensors.extend(more);
    }
    Ok(LlmSource {
        cfg: llm,
        codec,
        frozen: Some(Checkpoint::from_tensors(
            &path.display().to_string(),
            tensors.clone(),
        )),
        tensors: Some(tensors),
    })
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
