//! Parity with Hugging Face transformers on tiny random-weight Qwen3 and Llama models.
//!
//! Fixtures come from `models/scripts/make_llm_fixtures.py` (transformers' `Qwen3ForCausalLM`
//! / `LlamaForCausalLM`, eager attention, f32): logits, final hidden states and greedy tokens.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a panic is a failed test

mod llm_common;

use candle_core::{DType, Device, Tensor};
use llm_common::{ARCHS, config, fixture_dir, ids_u32, max_abs_diff, model, reference, to_vec_u32};
use vipa_models::llm::{Arch, GenerationConfig, GgufCheckpoint, StopReason};

const TOL: f32 = 1e-4;

#[test]
fn fixture_configs_parse_with_upstream_names() {
    let qwen = config("qwen3");
    assert_eq!(qwen.model_type, Arch::Qwen3);
    assert_eq!(
        (qwen.hidden_size, qwen.head_dim, qwen.num_key_value_heads),
        (32, 16, 2)
    );
    assert_eq!(qwen.rope_theta, 500.0);
    assert!(!qwen.tie_word_embeddings);
    let llama = config("llama");
    assert_eq!(llama.model_type, Arch::Llama);
    assert_eq!(
        (llama.head_dim, llama.rms_norm_eps, llama.rope_theta),
        (8, 1e-5, 1000.0)
    );
    assert!(llama.tie_word_embeddings);
    assert_eq!(llama.eos_token_id, vec![2]);
}

#[test]
fn full_forward_matches_transformers() {
    for arch in ARCHS {
        let m = model(arch);
        let r = reference(arch);
        let ids = ids_u32(&r["input_ids"]);
        let logits = m.forward(&ids, 0, None).unwrap();
        let d = max_abs_diff(&logits, &r["logits"]);
        assert!(d < TOL, "{arch}: logits differ by {d}");
        let hidden = m.forward_hidden(&m.embed(&ids).unwrap(), 0, None).unwrap();
        let d = max_abs_diff(&hidden, &r["hidden"]);
        assert!(d < TOL, "{arch}: hidden states differ by {d}");
    }
}

/// Prefill then one token at a time (and uneven chunks) must equal the full forward pass.
#[test]
fn kv_cache_decoding_matches_full_forward() {
    for arch in ARCHS {
        let m = model(arch);
        let r = reference(arch);
        let ids = ids_u32(&r["input_ids"]);
        let seq = ids.dim(1).unwrap();
        for chunks in [vec![5, 1, 1, 1, 1], vec![1; 9], vec![2, 3, 4]] {
            assert_eq!(chunks.iter().sum::<usize>(), seq);
            let mut cache = m.new_cache();
            let mut parts = Vec::new();
            let mut start = 0;
            for len in chunks.iter().copied() {
                let chunk = ids.narrow(1, start, len).unwrap();
                parts.push(m.forward(&chunk, start, Some(&mut cache)).unwrap());
                start += len;
                assert_eq!(cache.len(), start);
            }
            let logits = Tensor::cat(&parts, 1).unwrap();
            let d = max_abs_diff(&logits, &r["logits"]);
            assert!(
                d < TOL,
                "{arch} chunks {chunks:?}: cached logits differ by {d}"
            );
        }
    }
}

#[test]
fn cache_position_mismatch_is_an_error() {
    let m = model("llama");
    let ids = Tensor::new(&[[5u32, 6, 7]], &Device::Cpu).unwrap();
    let mut cache = m.new_cache();
    m.forward(&ids, 0, Some(&mut cache)).unwrap();
    let err = m
        .forward(&ids, 0, Some(&mut cache))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("start_pos") && err.contains("3 positions"),
        "{err}"
    );
    cache.clear();
    assert!(cache.is_empty());
    assert!(m.forward(&ids, 0, Some(&mut cache)).is_ok());
}

#[test]
fn out_of_vocab_ids_are_an_error() {
    let m = model("qwen3");
    let ids = Tensor::new(&[[5u32, 128]], &Device::Cpu).unwrap();
    let err = m.forward(&ids, 0, None).unwrap_err().to_string();
    assert!(err.contains("128") && err.contains("vocab"), "{err}");
}

#[test]
fn greedy_generation_matches_transformers() {
    for arch in ARCHS {
        let m = model(arch);
        let r = reference(arch);
        let prompt = to_vec_u32(&r["greedy_prompt"]);
        let expected = to_vec_u32(&r["greedy_tokens"]);
        let out = m
            .generate(&prompt, &GenerationConfig::greedy(expected.len(), vec![]))
            .unwrap();
        assert_eq!(out.tokens, expected, "{arch}");
        assert_eq!(out.stop, StopReason::MaxTokens);

        // Stopping at the 4th reference token keeps it and ends there.
        let stop = expected[3];
        let first = expected.iter().position(|&t| t == stop).unwrap();
        let out = m
            .generate(&prompt, &GenerationConfig::greedy(50, vec![stop]))
            .unwrap();
        assert_eq!(out.tokens, expected[..=first].to_vec(), "{arch}");
        assert_eq!(out.stop, StopReason::StopToken(stop));
    }
}

/// The GGUF copies of the fixtures (written with the `gguf` Python package, Llama Q/K rows
/// permuted as llama.cpp does) load to the same model.
#[test]
fn gguf_fixture_matches_transformers() {
    for arch in ARCHS {
        let ckpt =
            GgufCheckpoint::load(fixture_dir(arch).join("model.gguf"), &Device::Cpu).unwrap();
        assert_eq!(
            ckpt.config,
            config(arch),
            "{arch}: config from GGUF metadata"
        );
        let m = ckpt
            .into_model(DType::F32, &Device::Cpu, "model.gguf")
            .unwrap();
        let r = reference(arch);
        let logits = m.forward(&ids_u32(&r["input_ids"]), 0, None).unwrap();
        let d = max_abs_diff(&logits, &r["logits"]);
        assert!(d < TOL, "{arch}: GGUF logits differ by {d}");
    }
}
