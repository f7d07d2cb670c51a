//! The trainer's half of VIPA: everything downstream of the frozen encoders.
//!
//! ```text
//! ViT tokens f32[n_img, gh·gw, d_vit] ─┐                    (from the encoder-2d node)
//! 3D tokens  f32[n_img, n_s, d_s] ─────┴─ fusion ─ pixel shuffle ─ mlp1 ─┐ (encoder-3d node)
//! prompt segments (text ids | image i) ── embed / splice ────────────────┴─ LLM ─ loss / text
//! ```
//!
//! In the dataflow the semantic and 3D encoders are frozen nodes; gradients cannot cross
//! processes, so the modules that train (fusion in stage 1; fusion + LLM in stage 2; the
//! projector where the preset says so) live here, in the training node. Parameter names are
//! those of [`crate::vlm::Vipa`] (`fusion.*`, `mlp1.*`, `language_model.*`), so checkpoints
//! move between the two.
//!
//! # Weights
//! - trainable groups ([`StagePolicy`]) are `Var`s in the caller's `VarMap`: their values come
//!   from `trainable_init` where it has the key (a pretrained part, or a run being resumed),
//!   otherwise from the deterministic init of [`crate::seeded`] with `seed` (so two runs with
//!   the same seed start from the same weights);
//! - frozen groups are plain tensors from `frozen` (e.g. the LLM of a GGUF file, keys under
//!   `language_model.`), or the seeded random init when `frozen` is `None` (the `tiny` test
//!   preset, which has no pretrained weights at all).
//!
//! # Sequences
//! One sample per sequence (no padding): `Segment`s from [`crate::llm::text::TextCodec::prompt`]
//! are embedded and concatenated with the sample's image features; the loss is next-token
//! cross-entropy over the answer tokens only, computed from the hidden states of the answer
//! positions alone (the LM head over the prompt would be wasted work).

use std::sync::Arc;

use candle_core::{DType, Device, Error, Module, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};

use crate::checkpoint::{Checkpoint, FreshInit, InitLog, trainable_builder_with};
use crate::llm::text::Segment;
use crate::llm::{CausalLm, Generation, GenerationConfig};
use crate::seeded::seeded_builder;
use crate::stage::{ParamGroup, StagePolicy};
use crate::vision::config::FusionPlacement;
use crate::vision::fusion::Fusion;
use crate::vision::intern_vit::{Projector, pixel_shuffle};
use crate::vision::spatial::SpatialTokens;
use crate::vlm::VipaConfig;

/// Where the weights of a [`VipaLm`] come from (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct VipaLmWeights {
    /// Frozen groups; `None` = seeded random.
    pub frozen: Option<Arc<Checkpoint>>,
    /// Starting values of trainable groups, where present.
    pub trainable_init: Option<Arc<Checkpoint>>,
    /// Seed of every random init.
    pub seed: u64,
    /// Trainable groups whose every tensor must come from `trainable_init` (a run being
    /// resumed, a pretrained LLM being fine-tuned, a stage-1 checkpoint stage 2 starts from):
    /// a tensor missing there is an error naming it, never a random init. The other
    /// trainable groups start from the seeded init where `trainable_init` lacks them (new
    /// modules such as fusion); [`VipaLm::fresh_init`] lists what did.
    pub required: Vec<ParamGroup>,
}

/// Fusion → pixel shuffle → projector → LLM.
#[derive(Debug)]
pub struct VipaLm {
    cfg: VipaConfig,
    fusion: Option<Fusion>,
    projector: Projector,
    llm: CausalLm,
    shuffle: usize,
    fresh: Vec<(String, usize)>,
}

impl VipaLm {
    /// Builds the model for `policy`; trainable groups become `Var`s in `varmap`.
    pub fn new(
        cfg: &VipaConfig,
        policy: &StagePolicy,
        weights: &VipaLmWeights,
        varmap: &VarMap,
        dev: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let log = InitLog::default();
        let builder = |group: ParamGroup| -> VarBuilder<'static> {
            if policy.is_trainable(group) {
                let fresh = if weights.required.contains(&group) {
                    FreshInit::Refused
                } else {
                    FreshInit::Seeded(weights.seed)
                };
                trainable_builder_with(
                    varmap,
                    weights.trainable_init.clone(),
                    fresh,
                    &log,
                    DType::F32,
                    dev,
                )
            } else {
                match &weights.frozen {
                    Some(ckpt) => ckpt.frozen(DType::F32, dev),
                    None => seeded_builder(weights.seed, dev),
                }
            }
        };
        let sem = &cfg.vision.semantic;
        let projector = Projector::new(
            sem.shuffled_width()?,
            sem.llm_config.hidden_size,
            builder(ParamGroup::Projector).pp("mlp1"),
        )?;
        let fusion = match &cfg.vision.fusion {
            Some(fc) => Some(Fusion::new(fc, builder(ParamGroup::Fusion).pp("fusion"))?),
            None => None,
        };
        let llm = CausalLm::new(&cfg.llm, builder(ParamGroup::Llm).pp("language_model"))?;
        let source = match &weights.trainable_init {
            Some(init) => format!("the trainable init ({})", init.describe()),
            None => "the trainable init (none given)".to_owned(),
        };
        log.check(&source)?;
        Ok(Self {
            cfg: cfg.clone(),
            fusion,
            projector,
            llm,
            shuffle: sem.shuffle_factor()?,
            fresh: log.fresh_by_group(),
        })
    }

    /// The trainable tensors that started from the seeded random init, counted per parameter
    /// group (`[("fusion", 12)]`): the builder logs them, so that a random start is always
    /// visible. Frozen groups without weights (`frozen: None`) are random too, by choice.
    pub fn fresh_init(&self) -> &[(String, usize)] {
        &self.fresh
    }

    /// The configuration.
    pub fn config(&self) -> &VipaConfig {
        &self.cfg
    }

    /// The LLM.
    pub fn llm(&self) -> &CausalLm {
        &self.llm
    }

    /// The fusion layer, if configured.
    pub fn fusion(&self) -> Option<&Fusion> {
        self.fusion.as_ref()
    }

    /// `[tokens, channels]` the semantic features must have (ViT patch tokens).
    pub fn vit_token_shape(&self) -> [usize; 2] {
        let vc = &self.cfg.vision.semantic.vision_config;
        let g = vc.grid_size();
        [g * g, vc.hidden_size]
    }

    /// `[tokens, channels]` the 3D features must have (when the fusion layer is configured).
    pub fn spatial_width(&self) -> Option<usize> {
        self.cfg.vision.fusion.as_ref().map(|f| f.spatial_size)
    }

    /// Visual embeddings: `vit: f32[n_img, gh·gw, d_vit]`, `spatial`: 3D tokens of the same
    /// images (or `None`: no 3D branch, the semantic features pass through) →
    /// `f32[n_img, gh·gw/k², d_llm]`. `dropout_seed`: see [`Fusion::forward_seeded`].
    pub fn visual_embeds(
        &self,
        vit: &Tensor,
        spatial: Option<&SpatialTokens>,
        dropout_seed: Option<u64>,
    ) -> Result<Tensor> {
        let (n, tokens, d) = vit.dims3()?;
        let [want_tokens, want_d] = self.vit_token_shape();
        if tokens != want_tokens || d != want_d {
            return Err(Error::Msg(format!(
                "semantic features are [{tokens}, {d}] per image, this model expects \
                 [{want_tokens}, {want_d}] (ViT patch tokens of the `{}`-sized InternViT); \
                 the encoder-2d node must run the same preset with `features: vit_tokens`",
                self.cfg.vision.semantic.vision_config.image_size
            )));
        }
        let fuse = |xs: &Tensor| -> Result<Tensor> {
            match &self.fusion {
                Some(f) => f.forward_seeded(xs, spatial, dropout_seed),
                None => Ok(xs.clone()),
            }
        };
        let placement = self.fusion.as_ref().map(|f| f.config().placement);
        let mut xs = vit.clone();
        if placement == Some(FusionPlacement::BeforeProjector) {
            xs = fuse(&xs)?;
        }
        let g = self.cfg.vision.semantic.vision_config.grid_size();
        let k = self.shuffle;
        let shuffled = pixel_shuffle(&xs.reshape((n, g, g, d))?, k)?.reshape((
            n,
            tokens / (k * k),
            d * k * k,
        ))?;
        let out = self.projector.forward(&shuffled)?;
        if placement == Some(FusionPlacement::AfterProjector) {
            return fuse(&out);
        }
        Ok(out)
    }

    /// Embeds text ids `[len]` → `f32[1, len, hidden]`. Detached when the embedding table is
    /// frozen: its gradient would be a dense `[vocab, hidden]` scatter per segment that
    /// nothing uses.
    fn embed_text(&self, ids: &[u32]) -> Result<Tensor> {
        let t = Tensor::new(ids, self.llm.device())?.unsqueeze(0)?;
        let e = self.llm.embed(&t)?;
        if self.llm.embed_weight().track_op() {
            Ok(e)
        } else {
            Ok(e.detach())
        }
    }

    /// The prompt's embeddings `f32[1, seq, hidden]`: text segments embedded, `Image(i)`
    /// replaced by `images[i]` (`images: f32[n_img, n_tok, hidden]`).
    pub fn prompt_embeds(&self, segments: &[Segment], images: &Tensor) -> Result<Tensor> {
        let n_img = images.dim(0)?;
        let mut parts = Vec::with_capacity(segments.len());
        for seg in segments {
            match seg {
                Segment::Text(ids) if ids.is_empty() => {}
                Segment::Text(ids) => parts.push(self.embed_text(ids)?),
                Segment::Image(i) if *i < n_img => parts.push(images.get(*i)?.unsqueeze(0)?),
                Segment::Image(i) => {
                    return Err(Error::Msg(format!(
                        "the prompt refers to image {i} but the sample has {n_img}"
                    )));
                }
            }
        }
        if parts.is_empty() {
            return Err(Error::Msg("empty prompt".to_string()));
        }
        Tensor::cat(&parts, 1)
    }

    /// Mean cross-entropy of the answer given the prompt (scalar). `answer` holds the answer
    /// ids with the end token last (the targets); the input is the prompt plus every answer
    /// id but the last.
    pub fn answer_loss(&self, prompt: &Tensor, answer: &[u32]) -> Result<Tensor> {
        let (_, p, _) = prompt.dims3()?;
        let m = answer.len();
        if m == 0 {
            return Err(Error::Msg("answer_loss: empty answer".to_string()));
        }
        let input = if m > 1 {
            Tensor::cat(&[prompt, &self.embed_text(&answer[..m - 1])?], 1)?
        } else {
            prompt.clone()
        };
        let hidden = self.llm.forward_hidden(&input, 0, None)?;
        // Positions p-1 … p+m-2 predict answer[0] … answer[m-1].
        let logits = self.llm.logits(&hidden.narrow(1, p - 1, m)?)?;
        let targets = Tensor::new(answer, self.llm.device())?.unsqueeze(0)?;
        let mask = Tensor::ones((1, m), DType::F32, self.llm.device())?;
        CausalLm::masked_cross_entropy(&logits, &targets, &mask)
    }

    /// Generates an answer after the prompt (detached; no gradients).
    pub fn generate(&self, prompt: &Tensor, cfg: &GenerationConfig) -> Result<Generation> {
        self.llm.generate_from_embeds(&prompt.detach(), cfg)
    }

    /// Generates an answer after each prompt (`[1, seq_r, hidden]`) in one left-padded batch
    /// ([`CausalLm::generate_batch_from_embeds`]): the same answers as [`Self::generate`]
    /// one at a time, for a fraction of the weight reads.
    pub fn generate_batch(
        &self,
        prompts: &[Tensor],
        cfg: &GenerationConfig,
    ) -> Result<Vec<Generation>> {
        self.llm.generate_batch_from_embeds(prompts, cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::text::TextCodec;
    use crate::llm::{Arch, LlmConfig};
    use crate::stage::Stage;
    use crate::vipa::VipaVisionConfig;
    use std::collections::HashMap;

    fn tiny_cfg() -> VipaConfig {
        let mut llm = LlmConfig::tiny(Arch::Llama);
        llm.vocab_size = TextCodec::bytes().min_vocab();
        VipaConfig {
            vision: VipaVisionConfig::tiny(),
            llm,
            image_token_id: 0,
        }
    }

    fn inputs(model: &VipaLm, dev: &Device) -> (Tensor, SpatialTokens) {
        let [t, d] = model.vit_token_shape();
        let vit = Tensor::randn(0f32, 1.0, (1, t, d), dev).unwrap();
        let ds = model.spatial_width().unwrap();
        let spa = Tensor::randn(0f32, 1.0, (1, 16, ds), dev).unwrap();
        (
            vit,
            SpatialTokens {
                tokens: spa,
                valid: None,
            },
        )
    }

    #[test]
    fn stage_one_loss_reaches_every_trainable_var_and_seed_fixes_init() {
        let dev = Device::Cpu;
        let mut policy = StagePolicy::new(Stage::One);
        policy.train_projector = true;
        let w = VipaLmWeights {
            seed: 3,
            ..Default::default()
        };
        let varmap = VarMap::new();
        let model = VipaLm::new(&tiny_cfg(), &policy, &w, &varmap, &dev).unwrap();
        let (vit, spa) = inputs(&model, &dev);
        let codec = TextCodec::bytes();
        let img = model.visual_embeds(&vit, Some(&spa), Some(7)).unwrap();
        let prompt = model
            .prompt_embeds(&codec.prompt("where is the cup?", 1).unwrap(), &img)
            .unwrap();
        let answer = codec.answer_ids("left, 0.21m").unwrap();
        let loss = model.answer_loss(&prompt, &answer).unwrap();
        let grads = loss.backward().unwrap();
        let vars = varmap.all_vars();
        let names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
        assert!(
            names
                .iter()
                .all(|n| n.starts_with("fusion.") || n.starts_with("mlp1."))
        );
        assert!(names.iter().any(|n| n.starts_with("mlp1.")));
        for var in &vars {
            let g = grads.get(var).expect("every trainable var gets a gradient");
            let s = g
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(s.is_finite() && s > 0.0);
        }
        // The same seed builds the same weights; another seed does not.
        let first = |seed| {
            let vm = VarMap::new();
            let w = VipaLmWeights {
                seed,
                ..Default::default()
            };
            VipaLm::new(&tiny_cfg(), &policy, &w, &vm, &dev).unwrap();
            let data = vm.data().lock().unwrap();
            data["fusion.q_proj.weight"]
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(first(3), first(3));
        assert_ne!(first(3), first(4));
        // Without 3D tokens the fusion layer is skipped: its vars get no gradient.
        let img = model.visual_embeds(&vit, None, None).unwrap();
        let prompt = model
            .prompt_embeds(&codec.prompt("q", 1).unwrap(), &img)
            .unwrap();
        let grads = model
            .answer_loss(&prompt, &answer)
            .unwrap()
            .backward()
            .unwrap();
        let data = varmap.data().lock().unwrap();
        assert!(
            grads
                .get(data["fusion.q_proj.weight"].as_tensor())
                .is_none()
        );
        assert!(grads.get(data["mlp1.1.weight"].as_tensor()).is_some());
    }

    #[test]
    fn a_required_group_missing_from_its_checkpoint_is_an_error_not_a_random_init() {
        let dev = Device::Cpu;
        let policy = StagePolicy::new(Stage::Two);
        // The "pretrained" LLM, built once; its tensors are the init of stage 2's LLM.
        let vm = VarMap::new();
        VipaLm::new(&tiny_cfg(), &policy, &VipaLmWeights::default(), &vm, &dev).unwrap();
        let llm: HashMap<String, Tensor> = vm
            .data()
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("language_model."))
            .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
            .collect();
        assert!(!llm.is_empty());
        let with = |tensors: HashMap<String, Tensor>| VipaLmWeights {
            trainable_init: Some(Arc::new(Checkpoint::from_tensors("llm.gguf", tensors))),
            required: vec![ParamGroup::Llm],
            ..Default::default()
        };
        // Complete: the LLM comes from it, only the new modules start at random.
        let model = VipaLm::new(
            &tiny_cfg(),
            &policy,
            &with(llm.clone()),
            &VarMap::new(),
            &dev,
        )
        .unwrap();
        let groups: Vec<&str> = model.fresh_init().iter().map(|(g, _)| g.as_str()).collect();
        assert!(groups.contains(&"fusion"), "{groups:?}");
        assert!(!groups.contains(&"language_model"), "{groups:?}");
        // Two tensors renamed away: an error naming both, not logits 2-4 off.
        let mut broken = llm.clone();
        let gone = [
            "language_model.model.norm.weight",
            "language_model.model.embed_tokens.weight",
        ];
        for name in gone {
            assert!(broken.remove(name).is_some(), "{name} in the tiny LLM");
        }
        let err = VipaLm::new(
            &tiny_cfg(),
            &policy,
            &with(broken.clone()),
            &VarMap::new(),
            &dev,
        )
        .unwrap_err()
        .to_string();
        for name in gone {
            assert!(err.contains(name), "{err}");
        }
        assert!(err.contains("llm.gguf"), "{err}");
        // Not required (the explicit choice): the same file starts the missing ones at random.
        let lenient = VipaLmWeights {
            required: Vec::new(),
            ..with(broken)
        };
        let model = VipaLm::new(&tiny_cfg(), &policy, &lenient, &VarMap::new(), &dev).unwrap();
        let llm_fresh = model
            .fresh_init()
            .iter()
            .find(|(g, _)| g == "language_model")
            .map(|(_, n)| *n);
        assert_eq!(llm_fresh, Some(2));
    }

    #[test]
    fn answer_loss_matches_full_logits_cross_entropy() {
        let dev = Device::Cpu;
        let policy = StagePolicy::new(Stage::One);
        let varmap = VarMap::new();
        let model = VipaLm::new(
            &tiny_cfg(),
            &policy,
            &VipaLmWeights::default(),
            &varmap,
            &dev,
        )
        .unwrap();
        let (vit, spa) = inputs(&model, &dev);
        let codec = TextCodec::bytes();
        let img = model.visual_embeds(&vit, Some(&spa), None).unwrap();
        let prompt = model
            .prompt_embeds(&codec.prompt("q?", 1).unwrap(), &img)
            .unwrap();
        let answer = codec.answer_ids("up").unwrap();
        let loss = model
            .answer_loss(&prompt, &answer)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        // Independent: full logits over prompt + answer, log-softmax by hand at the answer
        // positions.
        let ids = Tensor::new(&answer[..answer.len() - 1], &dev)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let input = Tensor::cat(&[&prompt, &model.llm().embed(&ids).unwrap()], 1).unwrap();
        let logits = model.llm().forward_embeds(&input, 0, None).unwrap();
        let logits = logits.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        let p = prompt.dim(1).unwrap();
        let mut sum = 0f64;
        for (j, &target) in answer.iter().enumerate() {
            let row = &logits[p - 1 + j];
            let max = row.iter().cloned().fold(f32::MIN, f32::max) as f64;
            let lse = max
                + row
                    .iter()
                    .map(|&x| (x as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            sum += lse - row[target as usize] as f64;
        }
        let want = sum / answer.len() as f64;
        assert!((loss as f64 - want).abs() < 1e-4, "{loss} vs {want}");
    }
}
