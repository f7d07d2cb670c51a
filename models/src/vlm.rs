//! The composite VIPA vision-language model: the visual path of [`crate::vipa`] spliced into
//! the LLM of [`crate::llm`] (InternVL layout: the LLM's keys live under `language_model.`).
//!
//! ```text
//! ids u32[b, seq] ──embed──┐
//! pixels + 3D ─► VipaVision ─► f32[n_img, 256, hidden] ─┴─ splice ─► CausalLm ─► hidden / logits
//! ```
//!
//! Stage control is the same [`StagePolicy`]: the LLM group trains in stages 2 and 3. Motion
//! tokens are new rows of `language_model.model.embed_tokens.weight` (grown with
//! [`crate::llm::resize_vocab`] on the checkpoint tensors before building), so they train with
//! the LLM; the action head (stage 3) is a separate module fed by [`Vipa::hidden_states`].

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Error, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, InitLog};
use crate::llm::{Arch, CausalLm, LlmConfig};
use crate::stage::{ParamGroup, StagePolicy};
use crate::vipa::{VipaVision, VipaVisionConfig, builder_for};
use crate::vision::spatial::SpatialInput;
/// Configuration of the whole VIPA VLM: visual path + LLM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VipaConfig {
    /// Visual path (InternViT, 3D encoder, fusion, projector).
    pub vision: VipaVisionConfig,
    /// LLM (Hugging Face `config.json` field names).
    pub llm: LlmConfig,
    /// Id of the image placeholder token (`<IMG_CONTEXT>`; one per visual token).
    pub image_token_id: u32,
}

impl VipaConfig {
    /// Unit-test size: tiny vision (projects to 32) + tiny Qwen3 (hidden 32, vocab 128);
    /// placeholder id 127 (the last row of the tiny vocabulary).
    pub fn tiny() -> Self {
        Self {
            vision: VipaVisionConfig::tiny(),
            llm: LlmConfig::tiny(Arch::Qwen3),
            image_token_id: 127,
        }
    }

    /// InternVL3.5-2B (Qwen3-1.7B LLM). `image_token_id` is the id of `<IMG_CONTEXT>` in the
    /// checkpoint's tokenizer (look it up with [`crate::llm::token_id`]; not hard-coded here).
    pub fn internvl3_5_2b(image_token_id: u32) -> Self {
        Self {
            vision: VipaVisionConfig::internvl3_5_2b(),
            llm: LlmConfig::internvl3_5_2b(),
            image_token_id,
        }
    }

    /// Checks that the projector feeds the LLM's width.
    pub fn validate(&self) -> Result<()> {
        self.vision.validate()?;
        self.llm.validate()?;
        let proj = self.vision.semantic.llm_config.hidden_size;
        if proj != self.llm.hidden_size {
            return Err(Error::Msg(format!(
                "vision.semantic.llm_config.hidden_size {proj} must equal llm.hidden_size {}",
                self.llm.hidden_size
            )));
        }
        Ok(())
    }
}

/// The VIPA vision-language model: visual embeddings spliced into the LLM input.
#[derive(Debug)]
pub struct Vipa {
    cfg: VipaConfig,
    vision: VipaVision,
    llm: CausalLm,
}

impl Vipa {
    /// Builds the model for `policy` (see [`VipaVision::new`]); the LLM lives under
    /// `language_model.` as in InternVL checkpoints and trains in stages 2 and 3.
    pub fn new(
        cfg: &VipaConfig,
        policy: &StagePolicy,
        weights: Option<Arc<Checkpoint>>,
        varmap: &VarMap,
        dev: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let vision = VipaVision::new(&cfg.vision, policy, weights.clone(), varmap, dev)?;
        let log = InitLog::default();
        let vb = builder_for(ParamGroup::Llm, policy, weights.as_ref(), varmap, &log, dev)?;
        let llm = CausalLm::new(&cfg.llm, vb.pp("language_model"))?;
        if let Some(ckpt) = &weights {
            log.check(&format!("checkpoint {}", ckpt.describe()))?;
        }
        Ok(Self {
            cfg: cfg.clone(),
            vision,
            llm,
        })
    }

    /// Freshly initialised weights for every group (plain tensors), for tests.
    pub fn random_weights(cfg: &VipaConfig, dev: &Device) -> Result<HashMap<String, Tensor>> {
        cfg.validate()?;
        let mut out = VipaVision::random_weights(&cfg.vision, dev)?;
        let scratch = VarMap::new();
        CausalLm::new(
            &cfg.llm,
            VarBuilder::from_varmap(&scratch, DType::F32, dev).pp("language_model"),
        )?;
        let data = scratch
            .data()
            .lock()
            .map_err(|_| Error::Msg("VarMap lock poisoned".to_string()))?;
        out.extend(
            data.iter()
                .map(|(k, v)| (k.clone(), v.as_tensor().detach())),
        );
        Ok(out)
    }

    /// The configuration.
    pub fn config(&self) -> &VipaConfig {
        &self.cfg
    }

    /// The visual path.
    pub fn vision(&self) -> &VipaVision {
        &self.vision
    }

    /// The LLM.
    pub fn llm(&self) -> &CausalLm {
        &self.llm
    }

    /// Input embeddings with the images spliced in.
    ///
    /// `ids: u32[b, seq]` holding `n_img · tokens_per_image` placeholder ids in total,
    /// `pixel_values: f32[n_img, 3, H, W]`, `spatial`: the matching 3D input (or `None`)
    /// → `f32[b, seq, hidden]`. Images fill the placeholders in order (batch row 0 first).
    pub fn embed(
        &self,
        ids: &Tensor,
        pixel_values: &Tensor,
        spatial: Option<&SpatialInput>,
        train: bool,
    ) -> Result<Tensor> {
        let feats = self.vision.forward(pixel_values, spatial, train)?;
        let (n_img, n_tok, hidden) = feats.dims3()?;
        let feats = feats.reshape((n_img * n_tok, hidden))?;
        self.llm
            .embed_with_images(ids, self.cfg.image_token_id, &feats)
    }

    /// Final-normed hidden states `f32[b, seq, hidden]` (what action queries read).
    pub fn hidden_states(
        &self,
        ids: &Tensor,
        pixel_values: &Tensor,
        spatial: Option<&SpatialInput>,
        train: bool,
    ) -> Result<Tensor> {
        let embeds = self.embed(ids, pixel_values, spatial, train)?;
        self.llm.forward_hidden(&embeds, 0, None)
    }

    /// Logits `f32[b, seq, vocab]` for next-token training (stages 1–2).
    pub fn forward(
        &self,
        ids: &Tensor,
        pixel_values: &Tensor,
        spatial: Option<&SpatialInput>,
        train: bool,
    ) -> Result<Tensor> {
        let hidden = self.hidden_states(ids, pixel_values, spatial, train)?;
        self.llm.logits(&hidden)
    }
}
