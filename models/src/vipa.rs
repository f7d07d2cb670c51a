//! The composite VIPA visual path: InternViT → (fusion with 3D tokens) → pixel shuffle →
//! projector, giving the visual embeddings that replace the image placeholders in the LLM input.
//!
//! ```text
//! pixel_values f32[b,3,H,W] ──InternViT──► V_sem f32[b, gh·gw, d_vit] ─┐
//! point maps  f32[b,h,w,3] ──3D encoder─► V_spa f32[b, n_s, d_s] ──────┴─► fusion ─► pixel
//!   shuffle ─► mlp1 ─► visual embeddings f32[b, gh·gw/4, d_llm]
//! ```
//! (with [`FusionPlacement::AfterProjector`] the fusion runs on the projector output instead).
//!
//! Weights: one [`Checkpoint`] (any number of safetensors files: the InternVL3.5 checkpoint by
//! upstream names, plus our fusion / 3D-encoder checkpoints). Each parameter group is loaded
//! frozen (plain tensors) or trainable (`Var`s in the caller's `VarMap`) according to the
//! [`StagePolicy`]; missing trainable weights (a fresh fusion layer) are initialised randomly.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Error, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{
    Checkpoint, FreshInit, InitLog, trainable_builder, trainable_builder_with,
};
use crate::stage::{ParamGroup, StagePolicy};
use crate::vision::config::{FusionConfig, FusionPlacement, InternVlConfig, PointMapVitConfig};
use crate::vision::fusion::Fusion;
use crate::vision::intern_vit::SemanticEncoder;
use crate::vision::spatial::{PointMapVit, SpatialEncoder, SpatialInput, SpatialTokens};

/// Configuration of the visual path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VipaVisionConfig {
    /// InternViT + projector (upstream InternVL names).
    pub semantic: InternVlConfig,
    /// Point-map ViT 3D encoder; `None` = no 3D branch ("− dual encoder" ablation).
    #[serde(default)]
    pub spatial: Option<PointMapVitConfig>,
    /// Fusion layer; required with `spatial`.
    #[serde(default)]
    pub fusion: Option<FusionConfig>,
}

impl VipaVisionConfig {
    /// Unit-test size: tiny InternViT (64 wide) + tiny point-map ViT (d_s 48) + 4-head fusion.
    pub fn tiny() -> Self {
        let semantic = InternVlConfig::tiny();
        let spatial = PointMapVitConfig::tiny();
        let fusion =
            FusionConfig::paper(semantic.vision_config.hidden_size, spatial.output_size, 4);
        Self {
            semantic,
            spatial: Some(spatial),
            fusion: Some(fusion),
        }
    }

    /// CPU default: small InternViT (384) + small point-map ViT (d_s 256) + 6-head fusion.
    pub fn small() -> Self {
        let semantic = InternVlConfig::small();
        let spatial = PointMapVitConfig::small();
        let fusion =
            FusionConfig::paper(semantic.vision_config.hidden_size, spatial.output_size, 6);
        Self {
            semantic,
            spatial: Some(spatial),
            fusion: Some(fusion),
        }
    }

    /// Full size: InternVL3.5-2B's InternViT-300M + projector, Cut3R-shaped point-map ViT
    /// (729 tokens of width 768) and a 16-head fusion layer at width 1024.
    pub fn internvl3_5_2b() -> Self {
        let semantic = InternVlConfig::internvl3_5_2b();
        let spatial = PointMapVitConfig::cut3r_shaped();
        let fusion =
            FusionConfig::paper(semantic.vision_config.hidden_size, spatial.output_size, 16);
        Self {
            semantic,
            spatial: Some(spatial),
            fusion: Some(fusion),
        }
    }

    /// The same configuration without the 3D branch (ablation).
    pub fn without_spatial(mut self) -> Self {
        self.spatial = None;
        self.fusion = None;
        self
    }

    /// Checks that the parts fit together.
    pub fn validate(&self) -> Result<()> {
        self.semantic.validate()?;
        match (&self.spatial, &self.fusion) {
            (None, None) => Ok(()),
            (Some(_), None) | (None, Some(_)) => Err(Error::Msg(
                "VIPA vision config: `spatial` and `fusion` must be set together".to_string(),
            )),
            (Some(spatial), Some(fusion)) => {
                spatial.validate()?;
                fusion.validate()?;
                let want = match fusion.placement {
                    FusionPlacement::BeforeProjector => self.semantic.vision_config.hidden_size,
                    FusionPlacement::AfterProjector => self.semantic.llm_config.hidden_size,
                };
                if fusion.semantic_size != want {
                    return Err(Error::Msg(format!(
                        "fusion.semantic_size {} does not match the {:?} width {want}",
                        fusion.semantic_size, fusion.placement
                    )));
                }
                if fusion.spatial_size != spatial.output_size {
                    return Err(Error::Msg(format!(
                        "fusion.spatial_size {} does not match spatial.output_size {}",
                        fusion.spatial_size, spatial.output_size
                    )));
                }
                Ok(())
            }
        }
    }
}

/// The visual path of VIPA (everything before the LLM).
pub struct VipaVision {
    cfg: VipaVisionConfig,
    semantic: SemanticEncoder,
    spatial: Option<Box<dyn SpatialEncoder + Send + Sync>>,
    fusion: Option<Fusion>,
}

impl std::fmt::Debug for VipaVision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VipaVision")
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// Whether a trainable group may start at random where a given checkpoint lacks it: only the
/// modules VIPA adds (fusion, the point-map ViT, motion rows, the action head). The pretrained
/// parts (InternViT, the projector, the LLM) must come from the checkpoint when one is given.
fn may_start_fresh(group: ParamGroup) -> bool {
    !matches!(
        group,
        ParamGroup::Vision | ParamGroup::Projector | ParamGroup::Llm
    )
}

/// Picks the builder for a group: `Var`s in `varmap` if it trains, plain tensors otherwise.
/// With a checkpoint, a trainable pretrained group missing from it is recorded in `log` (check
/// it once the model is built); without one, every trainable group starts at random.
pub(crate) fn builder_for(
    group: ParamGroup,
    policy: &StagePolicy,
    weights: Option<&Arc<Checkpoint>>,
    varmap: &VarMap,
    log: &InitLog,
    dev: &Device,
) -> Result<VarBuilder<'static>> {
    if policy.is_trainable(group) {
        let fresh = if weights.is_some() && !may_start_fresh(group) {
            FreshInit::Refused
        } else {
            FreshInit::Unseeded
        };
        return Ok(trainable_builder_with(
            varmap,
            weights.cloned(),
            fresh,
            log,
            DType::F32,
            dev,
        ));
    }
    match weights {
        Some(ckpt) => Ok(ckpt.frozen(DType::F32, dev)),
        None => Err(Error::Msg(format!(
            "the frozen parameter group {group:?} (`{}*`) needs weights: pass a checkpoint \
             (or VipaVision::random_weights for tests)",
            group.prefix()
        ))),
    }
}

impl VipaVision {
    /// Builds the visual path for `policy`. Trainable groups become `Var`s in `varmap`
    /// (initialised from `weights` where present); frozen groups are read from `weights`.
    pub fn new(
        cfg: &VipaVisionConfig,
        policy: &StagePolicy,
        weights: Option<Arc<Checkpoint>>,
        varmap: &VarMap,
        dev: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let w = weights.as_ref();
        let log = InitLog::default();
        let vision_vb = builder_for(ParamGroup::Vision, policy, w, varmap, &log, dev)?;
        let projector_vb = builder_for(ParamGroup::Projector, policy, w, varmap, &log, dev)?;
        let semantic = SemanticEncoder::new(&cfg.semantic, vision_vb, projector_vb)?;
        let spatial = match &cfg.spatial {
            Some(sc) => {
                let vb = builder_for(ParamGroup::SpatialEncoder, policy, w, varmap, &log, dev)?;
                let enc: Box<dyn SpatialEncoder + Send + Sync> =
                    Box::new(PointMapVit::new(sc, vb.pp("spatial_encoder"))?);
                Some(enc)
            }
            None => None,
        };
        let fusion = match &cfg.fusion {
            Some(fc) => {
                let vb = builder_for(ParamGroup::Fusion, policy, w, varmap, &log, dev)?;
                Some(Fusion::new(fc, vb.pp("fusion"))?)
            }
            None => None,
        };
        if let Some(ckpt) = w {
            log.check(&format!("checkpoint {}", ckpt.describe()))?;
        }
        Ok(Self {
            cfg: cfg.clone(),
            semantic,
            spatial,
            fusion,
        })
    }

    /// Freshly initialised weights for every group (plain tensors), e.g. for tests and for
    /// the CPU `small` preset without a pretrained checkpoint.
    pub fn random_weights(cfg: &VipaVisionConfig, dev: &Device) -> Result<HashMap<String, Tensor>> {
        cfg.validate()?;
        let scratch = VarMap::new();
        // Build every group from the scratch map (fresh init), then copy the values out.
        let vb = trainable_builder(&scratch, None, DType::F32, dev);
        SemanticEncoder::new(&cfg.semantic, vb.clone(), vb.clone())?;
        if let Some(sc) = &cfg.spatial {
            PointMapVit::new(sc, vb.pp("spatial_encoder"))?;
        }
        if let Some(fc) = &cfg.fusion {
            Fusion::new(fc, vb.pp("fusion"))?;
        }
        let data = scratch
            .data()
            .lock()
            .map_err(|_| Error::Msg("VarMap lock poisoned".to_string()))?;
        Ok(data
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
            .collect())
    }

    /// The configuration.
    pub fn config(&self) -> &VipaVisionConfig {
        &self.cfg
    }

    /// The semantic encoder.
    pub fn semantic(&self) -> &SemanticEncoder {
        &self.semantic
    }

    /// The fusion layer, if configured.
    pub fn fusion(&self) -> Option<&Fusion> {
        self.fusion.as_ref()
    }

    /// Runs the 3D encoder: `input` → `f32[b, n_s, d_s]` tokens.
    pub fn encode_spatial(&self, input: &SpatialInput) -> Result<SpatialTokens> {
        match &self.spatial {
            Some(enc) => enc.encode(input),
            None => Err(Error::Msg(
                "this VIPA model has no 3D encoder (config `spatial` is unset)".to_string(),
            )),
        }
    }

    /// Visual embeddings from pixels and optional precomputed 3D tokens.
    ///
    /// `pixel_values: f32[b, 3, H, W]`, `spatial: f32[b, n_s, d_s]` → `f32[b, n_img, d_llm]`.
    /// `spatial = None` (or no fusion layer) skips fusion: the plain InternVL features.
    pub fn forward_with_tokens(
        &self,
        pixel_values: &Tensor,
        spatial: Option<&SpatialTokens>,
        train: bool,
    ) -> Result<Tensor> {
        let fuse = |xs: &Tensor| -> Result<Tensor> {
            match &self.fusion {
                Some(f) => f.forward(xs, spatial, train),
                None => Ok(xs.clone()),
            }
        };
        let mut feats = self.semantic.vit_features(pixel_values)?;
        let placement = self.fusion.as_ref().map(|f| f.config().placement);
        if placement == Some(FusionPlacement::BeforeProjector) {
            feats.tokens = fuse(&feats.tokens)?;
        }
        let out = self.semantic.project(&self.semantic.shuffle(&feats)?)?;
        if placement == Some(FusionPlacement::AfterProjector) {
            return fuse(&out);
        }
        Ok(out)
    }

    /// Visual embeddings from pixels and an optional 3D input (encoded here).
    pub fn forward(
        &self,
        pixel_values: &Tensor,
        spatial: Option<&SpatialInput>,
        train: bool,
    ) -> Result<Tensor> {
        let tokens = match spatial {
            Some(input) => Some(self.encode_spatial(input)?),
            None => None,
        };
        self.forward_with_tokens(pixel_values, tokens.as_ref(), train)
    }
}
