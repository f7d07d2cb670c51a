//! Decoder-only LLMs (Qwen3 for InternVL3.5-2B, Llama for SmolLM2) that take input
//! embeddings, with a KV cache, generation, image-feature splicing and the motion-token
//! vocabulary extension.
//!
//! ```text
//! ids ──CausalLm::embed──┐
//!                        ├─ splice_image_features ─▶ embeds[b, seq, hidden]
//! image feats[n, hidden] ┘        ─▶ CausalLm::forward_hidden ─▶ hidden[b, seq, hidden]
//!                                 ─▶ CausalLm::logits         ─▶ logits[b, seq, vocab]
//! ```
//!
//! - [`LlmConfig`]: Hugging Face `config.json` fields; presets [`LlmConfig::tiny`] (tests),
//!   [`LlmConfig::small`] (SmolLM2-135M), [`LlmConfig::internvl3_5_2b`] (Qwen3-1.7B class).
//! - [`CausalLm`]: weights under the Hugging Face keys via a `VarBuilder`
//!   ([`CausalLm::new`]), [`CausalLm::from_safetensors`], or GGUF ([`GgufCheckpoint`]).
//!   GGUF tensors are renamed and llama.cpp's Q/K row permutation is undone on load, so the
//!   model always runs half-split rope ([`crate::ops::rope`]).
//! - [`KvCache`] + [`CausalLm::generate`] / [`CausalLm::generate_from_embeds`]: greedy or
//!   seeded temperature sampling, stop tokens, token budget, optional allowed-token set.
//! - [`MotionVocab`]: 3 × 1024 `<mx_i>`/`<my_i>`/`<mz_i>` tokens appended after the base
//!   vocabulary, added to the tokenizer and to the checkpoint ([`resize_vocab`]).
//! - Every op is differentiable ([`crate::ops`], plain tensor algebra): build the model on a
//!   `VarMap` ([`varmap_from_tensors`]) to train it; [`CausalLm::masked_cross_entropy`] is the
//!   next-token loss.

pub mod config;
pub mod generate;
pub mod model;
pub mod motion;
pub mod splice;
pub mod text;
pub mod tokenizer;
pub mod weights;

pub use config::{Arch, LlmConfig};
pub use generate::{Generation, GenerationConfig, Sampling, StopReason};
pub use model::{CausalLm, KvCache};
pub use motion::{Axis, MOTION_BINS, MotionVocab, resize_vocab};
pub use splice::splice_image_features;
pub use tokenizer::{decode, encode, load_tokenizer, token_id, tokenizer_from_gguf};
pub use weights::{
    GgufCheckpoint, config_from_gguf, load_safetensors, model_from_tensors, varmap_from_tensors,
};
