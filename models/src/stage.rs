//! Which parameter groups train in each VIPA stage (paper §3–4.1; reference §1.3).
//!
//! | stage | trainable | frozen |
//! |---|---|---|
//! | 1 (3D-visual alignment) | fusion | InternViT, projector, LLM, 3D encoder |
//! | 2 (3D-action pretraining) | fusion, LLM, motion-token embeddings | InternViT, projector, 3D encoder |
//! | 3 (robot post-training) | LLM, action head, fusion if [`StagePolicy::train_fusion_in_stage3`] | InternViT, projector, 3D encoder |
//!
//! The paper contradicts itself on the fusion layer in stage 3 (§3.3 "only the LLM backbone and
//! the action head are updated" vs §4.1 "we freeze the visual encoder and the 3D encoder"), so it
//! is an option; the default follows §3.3 (frozen). The projector is frozen throughout
//! ("freeze all pretrained parameters"), also an inference.
//!
//! Two options exist for presets without a pretrained vision side or LLM (the paper has both):
//! [`StagePolicy::train_projector`] (a random projector must learn to feed the LLM) and
//! [`StagePolicy::train_llm_in_stage1`] (a random LLM has nothing to align to). Both default to
//! false, the paper's sets.
//!
//! Cut3R is frozen in every stage. The point-map ViT stand-in has no pretrained weights, so by
//! default it trains wherever the fusion layer trains ([`StagePolicy::train_spatial_encoder`]).
//!
//! Frozen groups are built from plain tensors; trainable ones from `Var`s in a `VarMap`, whose
//! names carry the group prefix ([`ParamGroup::prefix`]), so an optimizer over
//! `varmap.all_vars()` updates exactly the stage's trainable set.

use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

/// Training stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// 3D-visual alignment on Hand3D-visual.
    One,
    /// 3D-action pretraining on Hand3D-action.
    Two,
    /// Robot post-training with the action head.
    Three,
}

/// A named group of parameters, identified by its key prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ParamGroup {
    /// InternViT (`vision_model.`).
    Vision,
    /// InternVL `mlp1` projector (`mlp1.`).
    Projector,
    /// Fusion layer (`fusion.`).
    Fusion,
    /// Point-map ViT 3D encoder (`spatial_encoder.`).
    SpatialEncoder,
    /// LLM backbone (`language_model.`, upstream InternVL prefix).
    Llm,
    /// New motion-token embedding rows (`motion_embeddings.`).
    MotionEmbeddings,
    /// Flow-matching DiT action head (`action_head.`).
    ActionHead,
}

impl ParamGroup {
    /// Every group.
    pub const ALL: [ParamGroup; 7] = [
        ParamGroup::Vision,
        ParamGroup::Projector,
        ParamGroup::Fusion,
        ParamGroup::SpatialEncoder,
        ParamGroup::Llm,
        ParamGroup::MotionEmbeddings,
        ParamGroup::ActionHead,
    ];

    /// Key prefix (checkpoint and `VarMap` names), including the trailing dot.
    pub fn prefix(self) -> &'static str {
        match self {
            ParamGroup::Vision => "vision_model.",
            ParamGroup::Projector => "mlp1.",
            ParamGroup::Fusion => "fusion.",
            ParamGroup::SpatialEncoder => "spatial_encoder.",
            ParamGroup::Llm => "language_model.",
            ParamGroup::MotionEmbeddings => "motion_embeddings.",
            ParamGroup::ActionHead => "action_head.",
        }
    }

    /// The group a parameter name belongs to.
    pub fn of(name: &str) -> Option<ParamGroup> {
        Self::ALL.into_iter().find(|g| name.starts_with(g.prefix()))
    }
}

/// Stage plus the options the paper leaves open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagePolicy {
    /// The stage.
    pub stage: Stage,
    /// Train the fusion layer in stage 3 (paper ambiguous; default false, §3.3).
    pub train_fusion_in_stage3: bool,
    /// Train the point-map ViT wherever the fusion layer trains (default true: it has no
    /// pretrained weights). Ignored for a frozen backend such as Cut3R.
    pub train_spatial_encoder: bool,
    /// Train the InternVL projector (`mlp1`) in stages 1 and 2 (default false: the paper
    /// freezes every pretrained part). A preset whose vision side has no pretrained weights
    /// (the CPU `small` preset) needs it: a random projector gives the frozen LLM noise.
    #[serde(default)]
    pub train_projector: bool,
    /// Train the LLM in stage 1 too (default false, as the paper). Only for a preset whose
    /// LLM is random-init (`tiny`): a frozen random LLM has no language to align to.
    #[serde(default)]
    pub train_llm_in_stage1: bool,
}

impl StagePolicy {
    /// Defaults for `stage`.
    pub fn new(stage: Stage) -> Self {
        Self {
            stage,
            train_fusion_in_stage3: false,
            train_spatial_encoder: true,
            train_projector: false,
            train_llm_in_stage1: false,
        }
    }

    /// Trainable groups of this stage.
    pub fn trainable_groups(&self) -> Vec<ParamGroup> {
        let fusion = match self.stage {
            Stage::One | Stage::Two => true,
            Stage::Three => self.train_fusion_in_stage3,
        };
        let mut groups = Vec::new();
        if fusion {
            groups.push(ParamGroup::Fusion);
            if self.train_spatial_encoder {
                groups.push(ParamGroup::SpatialEncoder);
            }
        }
        if self.train_projector && matches!(self.stage, Stage::One | Stage::Two) {
            groups.push(ParamGroup::Projector);
        }
        match self.stage {
            Stage::One if self.train_llm_in_stage1 => groups.push(ParamGroup::Llm),
            Stage::One => {}
            Stage::Two => groups.extend([ParamGroup::Llm, ParamGroup::MotionEmbeddings]),
            Stage::Three => groups.extend([ParamGroup::Llm, ParamGroup::ActionHead]),
        }
        groups
    }

    /// Whether `group` trains in this stage.
    pub fn is_trainable(&self, group: ParamGroup) -> bool {
        self.trainable_groups().contains(&group)
    }
}

/// The trainable groups of a stage and the `Var` names actually created for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainableSet {
    /// Groups that train.
    pub groups: Vec<ParamGroup>,
    /// Sorted names of the `Var`s in the model's `VarMap`.
    pub var_names: Vec<String>,
}

impl TrainableSet {
    /// Lists the vars of `varmap` for `policy`.
    pub fn new(policy: &StagePolicy, varmap: &VarMap) -> Self {
        let mut var_names: Vec<String> = varmap
            .data()
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        var_names.sort();
        Self {
            groups: policy.trainable_groups(),
            var_names,
        }
    }

    /// Names that do not belong to a trainable group (should be empty).
    pub fn stray_names(&self) -> Vec<&str> {
        self.var_names
            .iter()
            .filter(|n| ParamGroup::of(n).is_none_or(|g| !self.groups.contains(&g)))
            .map(String::as_str)
            .collect()
    }
}
