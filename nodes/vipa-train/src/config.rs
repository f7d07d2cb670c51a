//! Configuration of the training node (YAML in `VIPA_CONFIG`).
//!
//! ```yaml
//! mode: train             # train | eval (generate answers on the incoming samples and score them)
//! preset: tiny            # tiny | small | internvl3_5_2b (must match the encoder nodes' preset)
//! stage: 1                # 1: Hand3D-visual (fusion [+ projector]); 2: + LLM on motion tokens
//! llm_weights: null       # GGUF file (e.g. SmolLM2-135M for `small`) or safetensors with
//!                         # `language_model.*` keys; null = seeded random LLM (tiny only)
//! weights: []             # more safetensors for frozen groups (e.g. the InternVL3.5-2B
//!                         # shards: `mlp1.*`, `language_model.*`)
//! tokenizer: null         # tokenizer.json; null = the GGUF's tokenizer, or bytes for `tiny`
//! init_from: null         # start trainable weights from this checkpoint (folder, or a
//!                         # checkpoints/ folder: its newest), e.g. stage 2 from stage 1
//! train_projector: null   # null = the preset's default (true for tiny/small: their vision
//!                         # side is random-init; false for internvl3_5_2b, as the paper)
//! train_llm: null         # stage 1 only: null = the preset's default (true for tiny; false
//!                         # else, as the paper); stage 2 always trains the LLM
//! lr_llm: null            # the LLM's peak learning rate when it trains; null = `lr`
//! seed: 0                 # init, dropout masks; the data order is the reader's seed
//! device: auto            # auto | cpu | cuda (vipa_models::device: auto = GPU 0 in a
//!                         # `--features cuda` build when one answers, else the CPU)
//! out_dir: ../out/pretrain  # checkpoints/, metrics.csv, loss.png, summary.json, eval.json
//! lr: null               # null = the preset's: 1.0e-5 for internvl3_5_2b (paper), 1.0e-4 else
//! warmup_ratio: 0.03
//! min_lr_ratio: 0.0
//! weight_decay: 0.01      # AdamW, not applied to 1-D tensors (biases, norms, α)
//! betas: [0.9, 0.999]
//! eps: 1.0e-8
//! max_grad_norm: 1.0      # 0 = no clipping
//! batch_size: null        # samples per optimizer step, accumulated one sample at a time;
//!                         # null = the preset's: 32 for internvl3_5_2b (paper), 8 else
//! max_steps: 50           # optimizer steps (also the cosine schedule's length)
//! checkpoint_every: 10    # steps; the last step is always saved
//! keep_checkpoints: 2
//! resume: true            # continue from out_dir/checkpoints/latest when it exists
//! credits: 4              # samples requested ahead of training (pull protocol)
//! resend_ms: 20000        # resend the last request after this long without data
//! progress: true          # write out_dir/progress.json each step / answer (`vipa-run` draws it)
//! eval:                   # mode: eval only
//!   checkpoint: latest    # latest (out_dir/checkpoints) | none (untrained) | a checkpoint folder
//!   max_new_tokens: 32
//!   batch_size: 8         # answers generated together (one left-padded batch; same answers)
//!   max_samples: null     # score at most this many samples
//!   label: null           # name in eval.json / the ablation table (default: preset + stage)
//! ```
//!
//! The full preset defaults to the paper's settings (lr 1e-5, warmup 0.03, weight decay 0.01,
//! batch 32); the CPU presets to a larger learning rate and smaller batches, for short runs.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use vipa_models::Preset;
use vipa_models::device::DeviceChoice;

/// Train or evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Train,
    Eval,
}

/// Which checkpoint an evaluation loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// `latest`, `none`, or a checkpoint folder.
    pub checkpoint: String,
    pub max_new_tokens: usize,
    /// Answers generated together in one left-padded batch.
    pub batch_size: usize,
    pub max_samples: Option<u64>,
    pub label: Option<String>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            checkpoint: "latest".into(),
            max_new_tokens: 32,
            batch_size: 8,
            max_samples: None,
            label: None,
        }
    }
}

pub use vipa_node_kit::Paths;

/// The training node's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub mode: Mode,
    pub preset: Preset,
    pub stage: u8,
    pub llm_weights: Option<PathBuf>,
    pub weights: Paths,
    pub tokenizer: Option<PathBuf>,
    pub init_from: Option<PathBuf>,
    pub train_projector: Option<bool>,
    pub train_llm: Option<bool>,
    pub lr_llm: Option<f64>,
    pub seed: u64,
    pub device: DeviceChoice,
    pub out_dir: PathBuf,
    pub lr: Option<f64>,
    pub warmup_ratio: f64,
    pub min_lr_ratio: f64,
    pub weight_decay: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub max_grad_norm: f64,
    pub batch_size: Option<u32>,
    pub max_steps: u64,
    pub checkpoint_every: u64,
    pub keep_checkpoints: usize,
    pub resume: bool,
    pub credits: u32,
    pub resend_ms: u64,
    pub progress: bool,
    pub eval: EvalConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Train,
            preset: Preset::Tiny,
            stage: 1,
            llm_weights: None,
            weights: Paths::default(),
            tokenizer: None,
            init_from: None,
            train_projector: None,
            train_llm: None,
            lr_llm: None,
            seed: 0,
            device: DeviceChoice::Auto,
            out_dir: PathBuf::from("../out/pretrain"),
            lr: None,
            warmup_ratio: 0.03,
            min_lr_ratio: 0.0,
            weight_decay: 0.01,
            betas: [0.9, 0.999],
            eps: 1e-8,
            max_grad_norm: 1.0,
            batch_size: None,
            max_steps: 50,
            checkpoint_every: 10,
            keep_checkpoints: 2,
            resume: true,
            credits: 4,
            resend_ms: 20_000,
            progress: true,
            eval: EvalConfig::default(),
        }
    }
}

impl TrainConfig {
    /// Peak learning rate: the config's, else the preset's (paper: 1e-5 for the full preset).
    pub fn lr(&self) -> f64 {
        self.lr.unwrap_or(self.preset.default_lr())
    }

    /// Samples per optimizer step: the config's, else the preset's (paper: 32).
    pub fn batch_size(&self) -> u32 {
        self.batch_size.unwrap_or(self.preset.default_batch_size())
    }

    /// The config with every preset-dependent default written out (what checkpoints record).
    pub fn resolved(&self) -> Self {
        Self {
            lr: Some(self.lr()),
            batch_size: Some(self.batch_size()),
            ..self.clone()
        }
    }

    /// Whether the projector trains: the config's choice, else the preset's default.
    pub fn trains_projector(&self) -> bool {
        self.train_projector
            .unwrap_or(self.preset.trains_projector())
    }

    /// Whether the LLM trains in stage 1: the config's choice, else the preset's (only `tiny`,
    /// whose LLM is random).
    pub fn trains_llm_in_stage1(&self) -> bool {
        self.train_llm.unwrap_or(self.preset.trains_llm_in_stage1())
    }

    pub fn checkpoint_dir(&self) -> PathBuf {
        self.out_dir.join("checkpoints")
    }

    /// Label of an evaluation.
    pub fn eval_label(&self) -> String {
        self.eval
            .label
            .clone()
            .unwrap_or_else(|| format!("{} stage {}", self.preset, self.stage))
    }
}

impl vipa_node_kit::NodeConfig for TrainConfig {
    fn validate(&self) -> Result<(), String> {
        if self.stage != 1 && self.stage != 2 {
            return Err(format!(
                "`stage` must be 1 or 2 (stage 3, robot post-training, is the action-head node), got {}",
                self.stage
            ));
        }
        if self.preset.has_pretrained_llm()
            && self.llm_weights.is_none()
            && self.mode == Mode::Train
        {
            return Err(format!(
                "preset `{}` needs `llm_weights` (e.g. ../data/weights/SmolLM2-135M-Instruct.Q4_1.gguf, made by `make weights`); only `tiny` runs on a random LLM",
                self.preset
            ));
        }
        if !(self.lr() > 0.0 && self.lr().is_finite()) {
            return Err(format!("`lr` must be > 0, got {}", self.lr()));
        }
        if let Some(l) = self.lr_llm
            && !(l > 0.0 && l.is_finite())
        {
            return Err(format!("`lr_llm` must be > 0, got {l}"));
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return Err(format!(
                "`warmup_ratio` must be in [0, 1), got {}",
                self.warmup_ratio
            ));
        }
        if self.weight_decay < 0.0 || self.max_grad_norm < 0.0 {
            return Err("`weight_decay` and `max_grad_norm` must be >= 0".into());
        }
        if self.betas.iter().any(|b| !(0.0..1.0).contains(b)) || self.eps <= 0.0 {
            return Err("`betas` must be in [0, 1) and `eps` > 0".into());
        }
        if self.batch_size() == 0 || self.max_steps == 0 || self.credits == 0 {
            return Err("`batch_size`, `max_steps` and `credits` must be >= 1".into());
        }
        if self.checkpoint_every == 0 || self.keep_checkpoints == 0 {
            return Err("`checkpoint_every` and `keep_checkpoints` must be >= 1".into());
        }
        if self.eval.max_new_tokens == 0 {
            return Err("`eval.max_new_tokens` must be >= 1".into());
        }
        if self.eval.batch_size == 0 {
            return Err("`eval.batch_size` must be >= 1 (1 generates one answer at a time)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vipa_node_kit::NodeConfig;

    #[test]
    fn defaults_validate_and_typos_are_rejected() {
        TrainConfig::default().validate().unwrap();
        let cfg: TrainConfig =
            vipa_node_kit::from_yaml_str("{preset: tiny, max_steps: 3, eval: {checkpoint: none}}")
                .unwrap();
        assert_eq!(cfg.max_steps, 3);
        assert_eq!(cfg.eval.checkpoint, "none");
        let err = vipa_node_kit::from_yaml_str::<TrainConfig>("{max_step: 3}").unwrap_err();
        assert!(err.to_string().contains("max_step"), "{err}");
        let err = vipa_node_kit::from_yaml_str::<TrainConfig>("{preset: small}").unwrap_err();
        assert!(err.to_string().contains("llm_weights"), "{err}");
        assert!(TrainConfig::default().trains_projector());
        let full = TrainConfig {
            preset: Preset::InternVl35_2b,
            ..TrainConfig::default()
        };
        assert_eq!((full.lr(), full.batch_size()), (1e-5, 32));
        assert!(!full.trains_projector());
        assert_eq!(full.resolved().batch_size, Some(32));
        // The LLM trains in stage 1 only where asked (or for the random `tiny` LLM).
        assert!(TrainConfig::default().trains_llm_in_stage1());
        assert!(!full.trains_llm_in_stage1());
        let cfg: TrainConfig =
            vipa_node_kit::from_yaml_str("{preset: tiny, train_llm: false, lr_llm: 1.0e-5}")
                .unwrap();
        assert!(!cfg.trains_llm_in_stage1());
        let err = vipa_node_kit::from_yaml_str::<TrainConfig>("{lr_llm: -1}").unwrap_err();
        assert!(err.to_string().contains("lr_llm"), "{err}");
    }
}
