//! The sizes of VIPA, as one type: which vision encoders, LLM and tokenizer a preset means,
//! and its training defaults. Every node and tool reads `preset: Preset` (YAML `tiny`,
//! `small`, `internvl3_5_2b`), so an unknown name is refused where it is parsed, with the
//! list of the known ones.
//!
//! | preset | vision side (encoder nodes) | LLM | tokenizer | trains in stage 1 | lr, batch |
//! |---|---|---|---|---|---|
//! | `tiny` | tiny InternViT + tiny point-map ViT, seeded random | 2-layer Llama, seeded random | bytes | fusion + projector + LLM | 1e-4, 8 |
//! | `small` | small InternViT (384 wide, 224 px) + small point-map ViT, seeded random | SmolLM2-135M-Instruct (`llm_weights`, GGUF) | the GGUF's | fusion + projector | 1e-4, 8 |
//! | `internvl3_5_2b` | InternViT-300M (checkpoint) + Cut3R-shaped point-map ViT | Qwen3 of InternVL3.5-2B (checkpoint) | `tokenizer.json` | fusion (paper) | 1e-5, 32 (paper) |
//!
//! Why the projector trains in `tiny` and `small`: no pretrained InternVL of that size exists,
//! so their projector starts random, and a frozen random projector would feed the frozen LLM
//! noise that no fusion layer can fix. The paper starts from a pretrained VLM whose projector
//! already speaks the LLM's language, so the full preset keeps the paper's set (fusion only).
//! `tiny` trains its LLM as well: a frozen *random* LLM has no language to align to, and
//! `tiny` exists to test the loop quickly.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::llm::{Arch, LlmConfig};
use crate::vipa::VipaVisionConfig;
use crate::vision::config::{InternVlConfig, PointMapVitConfig};

/// A VIPA model size (see the module docs for what each one means).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Preset {
    /// Unit tests: every part a few layers of width ≤ 64, all seeded random.
    #[serde(rename = "tiny")]
    Tiny,
    /// The CPU default: seeded random encoders (no pretrained weights of that size exist) and
    /// the real SmolLM2-135M.
    #[serde(rename = "small")]
    Small,
    /// The paper's: InternVL3.5-2B (InternViT-300M + Qwen3) and a Cut3R-shaped 3D branch.
    #[serde(rename = "internvl3_5_2b")]
    InternVl35_2b,
}

impl Preset {
    /// Every preset, smallest first.
    pub const ALL: [Self; 3] = [Self::Tiny, Self::Small, Self::InternVl35_2b];

    /// The name in configs and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tiny => "tiny",
            Self::Small => "small",
            Self::InternVl35_2b => "internvl3_5_2b",
        }
    }

    /// Both image encoders and the fusion layer.
    pub fn vision(self) -> VipaVisionConfig {
        match self {
            Self::Tiny => VipaVisionConfig::tiny(),
            Self::Small => VipaVisionConfig::small(),
            Self::InternVl35_2b => VipaVisionConfig::internvl3_5_2b(),
        }
    }

    /// The semantic encoder (InternViT and its projector to the LLM's width): [`Self::vision`]'s.
    pub fn semantic(self) -> InternVlConfig {
        self.vision().semantic
    }

    /// The point-map ViT of the 3D branch.
    pub fn spatial(self) -> PointMapVitConfig {
        match self {
            Self::Tiny => PointMapVitConfig::tiny(),
            Self::Small => PointMapVitConfig::small(),
            Self::InternVl35_2b => PointMapVitConfig::cut3r_shaped(),
        }
    }

    /// The LLM's shape (its weights come from `llm_weights`, except in `tiny`).
    pub fn llm(self) -> LlmConfig {
        match self {
            Self::Tiny => LlmConfig::tiny(Arch::Llama),
            Self::Small => LlmConfig::small(),
            Self::InternVl35_2b => LlmConfig::internvl3_5_2b(),
        }
    }

    /// Whether the LLM and its tokenizer are pretrained and loaded from a file: every preset
    /// but `tiny`, whose LLM is seeded random with a byte tokenizer.
    pub fn has_pretrained_llm(self) -> bool {
        self != Self::Tiny
    }

    /// Whether its projector comes pretrained with a VLM (only the full preset's does).
    pub fn has_pretrained_projector(self) -> bool {
        self == Self::InternVl35_2b
    }

    /// The projector trains in stage 1 unless it came pretrained.
    pub fn trains_projector(self) -> bool {
        !self.has_pretrained_projector()
    }

    /// The LLM trains in stage 1 only when it is random (`tiny`); the committed `small` graphs
    /// opt in with `train_llm: true` (README: the recipe's one deviation).
    pub fn trains_llm_in_stage1(self) -> bool {
        self == Self::Tiny
    }

    /// Peak learning rate: the paper's 1e-5 for the full preset, 1e-4 for the short CPU runs.
    pub fn default_lr(self) -> f64 {
        match self {
            Self::InternVl35_2b => 1e-5,
            Self::Tiny | Self::Small => 1e-4,
        }
    }

    /// Samples per optimizer step: the paper's 32 for the full preset, 8 on the CPU.
    pub fn default_batch_size(self) -> u32 {
        match self {
            Self::InternVl35_2b => 32,
            Self::Tiny | Self::Small => 8,
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|p| p.name()).collect();
                format!("unknown preset `{s}` (use {})", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_yaml_text_and_serde() {
        for p in Preset::ALL {
            assert_eq!(p.name().parse::<Preset>(), Ok(p));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.name()));
            assert_eq!(serde_json::from_str::<Preset>(&json).unwrap(), p);
        }
        let err = "smal".parse::<Preset>().unwrap_err();
        assert!(err.contains("tiny, small, internvl3_5_2b"), "{err}");
        assert!(serde_json::from_str::<Preset>("\"huge\"").is_err());
    }

    #[test]
    fn every_preset_fits_together() {
        for p in Preset::ALL {
            let v = p.vision();
            v.validate().unwrap();
            assert_eq!(v.spatial.as_ref(), Some(&p.spatial()), "{p}");
            p.llm().validate().unwrap();
        }
        // The small preset's projector speaks SmolLM2's width.
        assert_eq!(
            Preset::Small.semantic().llm_config.hidden_size,
            Preset::Small.llm().hidden_size
        );
        assert!(Preset::InternVl35_2b.has_pretrained_projector());
        assert!(!Preset::InternVl35_2b.trains_projector());
        assert_eq!(Preset::InternVl35_2b.default_lr(), 1e-5);
        assert_eq!(Preset::InternVl35_2b.default_batch_size(), 32);
    }
}
