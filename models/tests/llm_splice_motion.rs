//! Image-feature splicing, motion-token vocabulary extension and sampling.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a panic is a failed test

mod llm_common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use llm_common::{config, max_abs_diff, model, weights};
use tokenizers::Tokenizer;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use vipa_models::llm::{
    Axis, CausalLm, GenerationConfig, MotionVocab, Sampling, model_from_tensors,
    splice_image_features,
};

const IMG: u32 = 100;

#[test]
fn splice_replaces_placeholders_in_order() {
    let dev = Device::Cpu;
    let m = model("llama");
    let ids = Tensor::new(&[[3u32, IMG, IMG, 7], [IMG, 9, 10, 11]], &dev).unwrap();
    let features = Tensor::arange(0f32, 3.0 * 32.0, &dev)
        .unwrap()
        .reshape((3, 32))
        .unwrap();
    let out = m.embed_with_images(&ids, IMG, &features).unwrap();
    assert_eq!(out.dims(), [2, 4, 32]);
    let text = m.embed(&ids).unwrap();
    let row = |t: &Tensor, b: usize, s: usize| t.get(b).unwrap().get(s).unwrap();
    // Placeholders take feature rows 0, 1 (batch 0) and 2 (batch 1).
    assert_eq!(
        max_abs_diff(&row(&out, 0, 1), &features.get(0).unwrap()),
        0.0
    );
    assert_eq!(
        max_abs_diff(&row(&out, 0, 2), &features.get(1).unwrap()),
        0.0
    );
    assert_eq!(
        max_abs_diff(&row(&out, 1, 0), &features.get(2).unwrap()),
        0.0
    );
    // Text rows are the token embeddings.
    for (b, s) in [(0, 0), (0, 3), (1, 1), (1, 3)] {
        assert_eq!(max_abs_diff(&row(&out, b, s), &row(&text, b, s)), 0.0);
    }
}

#[test]
fn splice_count_mismatch_is_a_clear_error() {
    let dev = Device::Cpu;
    let m = model("llama");
    let ids = Tensor::new(&[[3u32, IMG, IMG, 7]], &dev).unwrap();
    let features = Tensor::zeros((3, 32), DType::F32, &dev).unwrap();
    let err = m
        .embed_with_images(&ids, IMG, &features)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2 image placeholder") && err.contains("3 image feature rows"),
        "{err}"
    );
    let wrong_width = Tensor::zeros((2, 16), DType::F32, &dev).unwrap();
    let text = m.embed(&ids).unwrap();
    let err = splice_image_features(&text, &ids, IMG, &wrong_width)
        .unwrap_err()
        .to_string();
    assert!(err.contains("width 16"), "{err}");
}

/// The placeholder id may lie outside the vocabulary (only its rows are replaced).
#[test]
fn placeholder_outside_vocab_is_fine() {
    let dev = Device::Cpu;
    let m = model("qwen3");
    let ids = Tensor::new(&[[3u32, 9999, 7]], &dev).unwrap();
    let features = Tensor::ones((1, 32), DType::F32, &dev).unwrap();
    let out = m.embed_with_images(&ids, 9999, &features).unwrap();
    assert_eq!(
        max_abs_diff(
            &out.get(0).unwrap().get(1).unwrap(),
            &features.get(0).unwrap()
        ),
        0.0
    );
}

fn word_tokenizer() -> Tokenizer {
    let vocab: HashMap<String, u32> = ["[UNK]", "pick", "up", "the", "mug"]
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), i as u32))
        .collect();
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("[UNK]".into())
        .build()
        .unwrap();
    let mut tok = Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(Whitespace {}));
    tok
}

#[test]
fn motion_tokens_encode_as_single_ids_after_the_base_vocab() {
    let mut tok = word_tokenizer();
    let motion = MotionVocab::add_to_tokenizer(&mut tok).unwrap();
    assert_eq!(motion.first_id(), 5);
    let ids = vipa_models::llm::encode(&tok, "pick up<mx_0><my_512> <mz_1023>the mug").unwrap();
    assert_eq!(
        ids,
        vec![
            1,
            2,
            motion.id(Axis::X, 0).unwrap(),
            motion.id(Axis::Y, 512).unwrap(),
            motion.id(Axis::Z, 1023).unwrap(),
            3,
            4
        ]
    );
    assert_eq!(ids[3], 5 + 1024 + 512);
    assert_eq!(motion.decode(ids[4]), Some((Axis::Z, 1023)));
    let text = vipa_models::llm::decode(&tok, &ids[2..5]).unwrap();
    assert!(
        text.contains("<mx_0>") && text.contains("<mz_1023>"),
        "{text}"
    );
    // Adding twice is refused.
    assert!(MotionVocab::add_to_tokenizer(&mut tok).is_err());
}

/// Extending a checkpoint keeps the old logits exactly and gives the new tokens finite logits;
/// tied and untied heads both grow.
#[test]
fn extended_checkpoint_keeps_old_logits() {
    let dev = Device::Cpu;
    for arch in ["llama", "qwen3"] {
        let base = model(arch);
        let mut cfg = config(arch);
        let mut tensors = weights(arch);
        let motion = MotionVocab::after_vocab(cfg.vocab_size);
        motion
            .extend_checkpoint(&mut tensors, &mut cfg, 42)
            .unwrap();
        assert_eq!(cfg.vocab_size, 128 + 3072);
        let extended = model_from_tensors(&cfg, tensors, DType::F32, &dev, "test").unwrap();
        let ids = Tensor::new(&[[3u32, 17, 29, 4]], &dev).unwrap();
        let old = base.forward(&ids, 0, None).unwrap();
        let new = extended.forward(&ids, 0, None).unwrap();
        assert_eq!(new.dims(), [1, 4, 128 + 3072]);
        // Same rows, same logits (up to the matmul's blocking of a wider output).
        let d = max_abs_diff(&new.narrow(2, 0, 128).unwrap(), &old);
        assert!(d < 1e-5, "{arch}: old-token logits moved by {d}");
        assert!(
            new.sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                .is_finite()
        );
        // Motion ids embed and can be generated when restricted to them.
        let x = motion.id(Axis::X, 7).unwrap();
        let out = extended
            .forward(&Tensor::new(&[[3u32, x]], &dev).unwrap(), 0, None)
            .unwrap();
        assert_eq!(out.dims(), [1, 2, 3200]);
        let cfg = GenerationConfig {
            allowed_tokens: Some(motion.ids()),
            ..GenerationConfig::greedy(3, vec![])
        };
        let generated = extended.generate(&[3, 17], &cfg).unwrap();
        assert!(
            generated.tokens.iter().all(|&t| motion.decode(t).is_some()),
            "{:?}",
            generated.tokens
        );
    }
}

fn sample(m: &CausalLm, temperature: f64, seed: u64) -> Vec<u32> {
    let cfg = GenerationConfig {
        sampling: Sampling::Temperature { temperature, seed },
        ..GenerationConfig::greedy(12, vec![])
    };
    m.generate(&[5, 6, 7], &cfg).unwrap().tokens
}

#[test]
fn temperature_sampling_is_seeded() {
    let m = model("qwen3");
    let a = sample(&m, 1.5, 7);
    assert_eq!(a, sample(&m, 1.5, 7), "same seed, same tokens");
    let others: Vec<Vec<u32>> = (8..12).map(|s| sample(&m, 1.5, s)).collect();
    assert!(
        others.iter().any(|o| *o != a),
        "different seeds should differ: {a:?} {others:?}"
    );
    // A near-zero temperature is greedy.
    let greedy = m
        .generate(&[5, 6, 7], &GenerationConfig::greedy(12, vec![]))
        .unwrap()
        .tokens;
    assert_eq!(sample(&m, 1e-4, 3), greedy);
    let bad = GenerationConfig {
        sampling: Sampling::Temperature {
            temperature: 0.0,
            seed: 0,
        },
        ..GenerationConfig::greedy(1, vec![])
    };
    assert!(m.generate(&[5], &bad).is_err());
}

/// Motion-waypoint decoding emits x, y, z tokens in turn and stops only between waypoints.
#[test]
fn motion_waypoint_generation_cycles_axes() {
    let dev = Device::Cpu;
    let mut cfg = config("llama");
    let mut tensors = weights("llama");
    let motion = MotionVocab::after_vocab(cfg.vocab_size);
    motion.extend_checkpoint(&mut tensors, &mut cfg, 3).unwrap();
    let m = model_from_tensors(&cfg, tensors, DType::F32, &dev, "test").unwrap();
    let gen_cfg = GenerationConfig {
        motion_waypoints: Some(motion),
        ..GenerationConfig::greedy(7, vec![2])
    };
    let out = m.generate(&[5, 6, 7], &gen_cfg).unwrap();
    // Stop token 2 is allowed only at steps 0, 3, 6.
    let stop_at = out.tokens.iter().position(|&t| t == 2);
    assert!(stop_at.is_none_or(|p| p % 3 == 0), "{:?}", out.tokens);
    for (k, &t) in out.tokens.iter().enumerate() {
        if t != 2 {
            assert_eq!(
                motion.decode(t).unwrap().0,
                Axis::ALL[k % 3],
                "{:?}",
                out.tokens
            );
        }
    }
    let waypoints = motion.waypoints(&out.tokens).unwrap();
    assert_eq!(waypoints.len(), stop_at.unwrap_or(6) / 3);

    // Without a stop token: exactly 7 tokens, x y z x y z x; the last waypoint is cut short.
    let gen_cfg = GenerationConfig {
        motion_waypoints: Some(motion),
        ..GenerationConfig::greedy(7, vec![])
    };
    let out = m.generate(&[5, 6, 7], &gen_cfg).unwrap();
    assert_eq!(out.tokens.len(), 7);
    assert!(motion.waypoints(&out.tokens).is_err());
    assert_eq!(motion.waypoints(&out.tokens[..6]).unwrap().len(), 2);

    // The base model (no motion rows) refuses.
    let err = model("llama")
        .generate(&[5], &gen_cfg)
        .unwrap_err()
        .to_string();
    assert!(err.contains("extend the checkpoint"), "{err}");
}

/// Left-padded batched generation gives every row the tokens it gets alone, with rows of
/// different prompt lengths and rows that stop at different steps; the padded prefill's last
/// logits match the unpadded ones.
#[test]
fn batched_generation_matches_one_at_a_time() {
    for arch in ["llama", "qwen3"] {
        let m = model(arch);
        let prompts: [&[u32]; 4] = [&[5, 6, 7], &[9], &[3, 17, 4, 8, 21, 2], &[11, 12]];
        let embeds: Vec<Tensor> = prompts
            .iter()
            .map(|p| {
                m.embed(&Tensor::new(*p, &Device::Cpu).unwrap().unsqueeze(0).unwrap())
                    .unwrap()
            })
            .collect();
        // A stop token that some rows emit early: the most common first greedy token.
        let free: Vec<Vec<u32>> = embeds
            .iter()
            .map(|e| {
                m.generate_from_embeds(e, &GenerationConfig::greedy(10, vec![]))
                    .unwrap()
                    .tokens
            })
            .collect();
        let stop = free[0][2];
        for cfg in [
            GenerationConfig::greedy(10, vec![]),
            GenerationConfig::greedy(10, vec![stop]),
        ] {
            let alone: Vec<_> = embeds
                .iter()
                .map(|e| m.generate_from_embeds(e, &cfg).unwrap())
                .collect();
            let batched = m.generate_batch_from_embeds(&embeds, &cfg).unwrap();
            assert_eq!(batched, alone, "{arch}, stop tokens {:?}", cfg.stop_tokens);
        }
        let cfg = GenerationConfig::greedy(10, vec![stop]);
        let alone = m.generate_from_embeds(&embeds[0], &cfg).unwrap();
        assert!(
            alone.tokens.len() < 10,
            "{arch}: the stop token must end row 0 early for this test to mean anything"
        );

        // The padded prefill's last logits, row by row, against each prompt alone.
        let longest = prompts.iter().map(|p| p.len()).max().unwrap();
        let pads: Vec<usize> = prompts.iter().map(|p| longest - p.len()).collect();
        let rows: Vec<Tensor> = embeds
            .iter()
            .zip(&pads)
            .map(|(e, &pad)| {
                let filler =
                    Tensor::zeros((1, pad, e.dim(2).unwrap()), DType::F32, &Device::Cpu).unwrap();
                Tensor::cat(&[&filler, e], 1).unwrap()
            })
            .collect();
        let mut cache = vipa_models::llm::KvCache::left_padded(m.config().num_hidden_layers, pads);
        let batch = m
            .last_logits(&Tensor::cat(&rows, 0).unwrap(), 0, Some(&mut cache))
            .unwrap();
        for (r, e) in embeds.iter().enumerate() {
            let one = m.last_logits(e, 0, None).unwrap().squeeze(0).unwrap();
            let d = max_abs_diff(&batch.get(r).unwrap(), &one);
            assert!(d < 1e-5, "{arch} row {r}: padded logits differ by {d}");
        }
    }
}

#[test]
fn batched_generation_refuses_bad_prompts() {
    let m = model("llama");
    let ok = m
        .embed(&Tensor::new(&[[5u32, 6]], &Device::Cpu).unwrap())
        .unwrap();
    let two = m
        .embed(&Tensor::new(&[[5u32, 6], [7, 8]], &Device::Cpu).unwrap())
        .unwrap();
    let cfg = GenerationConfig::greedy(3, vec![]);
    let err = m
        .generate_batch_from_embeds(&[ok.clone(), two], &cfg)
        .unwrap_err()
        .to_string();
    assert!(err.contains("prompt 1"), "{err}");
    assert!(m.generate_batch_from_embeds(&[], &cfg).unwrap().is_empty());
    let none = m
        .generate_batch_from_embeds(&[ok], &GenerationConfig::greedy(0, vec![]))
        .unwrap();
    assert!(none[0].tokens.is_empty());
}
