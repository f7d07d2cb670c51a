//! `vipa-models`: the VIPA-VLA model in candle — semantic encoder (InternViT), 3D encoder
//! (Cut3R or a point-map ViT), cross-attention fusion, LLM (Qwen3 or Llama) with motion tokens,
//! and the flow-matching action head. No dora here: nodes wrap these types.
//!
//! Trainable modules use [`ops`] (differentiable), never candle's fused ops.

pub mod checkpoint;
pub mod device;
pub mod hf_internvl;
pub mod llm;
pub mod ops;
pub mod preset;
pub mod seeded;
pub mod stage;
pub mod vipa;
pub mod vipa_lm;
pub mod vision;
pub mod vlm;
pub use preset::Preset;
