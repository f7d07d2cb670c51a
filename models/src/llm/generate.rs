//! Autoregressive generation with a KV cache: greedy or seeded temperature sampling, stop
//! tokens, a token budget, and optional constraints on what may be generated (a fixed set of
//! ids, or motion waypoints: `<mx_·> <my_·> <mz_·>` triples).

use candle_core::{DType, Result, Tensor, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::model::{CausalLm, KvCache};
use super::motion::{Axis, MOTION_BINS, MotionVocab};

/// How the next token is chosen from the logits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Highest logit; ties go to the lowest id (as `argmax` in PyTorch).
    Greedy,
    /// Sample from `softmax(logits / temperature)` with a ChaCha8 stream seeded by `seed`,
    /// so the same seed gives the same tokens on every machine.
    Temperature { temperature: f64, seed: u64 },
}

/// Generation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Most tokens to generate (stop token included).
    pub max_new_tokens: usize,
    /// Generation ends after emitting any of these (it is kept in the output, as in
    /// transformers' `generate`).
    pub stop_tokens: Vec<u32>,
    pub sampling: Sampling,
    /// When set, only these ids may be generated (the others get probability zero).
    pub allowed_tokens: Option<Vec<u32>>,
    /// When set, generate motion waypoints only: token `t` is an x, y, z motion token for
    /// `t % 3` = 0, 1, 2, and a stop token may come only between waypoints. Exclusive with
    /// `allowed_tokens`.
    pub motion_waypoints: Option<MotionVocab>,
}

impl GenerationConfig {
    /// Greedy decoding of at most `max_new_tokens`, stopping at `stop_tokens`.
    pub fn greedy(max_new_tokens: usize, stop_tokens: Vec<u32>) -> Self {
        Self {
            max_new_tokens,
            stop_tokens,
            sampling: Sampling::Greedy,
            allowed_tokens: None,
            motion_waypoints: None,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The last token is one of the stop tokens.
    StopToken(u32),
    /// `max_new_tokens` reached.
    MaxTokens,
}

/// Generated ids (prompt excluded) and why generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub stop: StopReason,
}

/// Which ids may be generated at a step.
enum Constraint {
    None,
    Set(Vec<bool>),
    Motion { vocab: MotionVocab, stop: Vec<u32> },
}

/// Picks next tokens from logit rows.
struct Sampler {
    sampling: Sampling,
    rng: ChaCha8Rng,
    constraint: Constraint,
}

impl Sampler {
    fn new(cfg: &GenerationConfig, vocab: usize) -> Result<Self> {
        let seed = match cfg.sampling {
            Sampling::Greedy => 0,
            Sampling::Temperature { temperature, seed } => {
                if !(temperature > 0.0 && temperature.is_finite()) {
                    bail!("sampling temperature must be positive and finite, got {temperature}");
                }
                seed
            }
        };
        for &id in &cfg.stop_tokens {
            if id as usize >= vocab {
                bail!("stop token {id} is outside the vocabulary ({vocab})");
            }
        }
        let constraint = match (&cfg.allowed_tokens, cfg.motion_waypoints) {
            (Some(_), Some(_)) => bail!("set either allowed_tokens or motion_waypoints, not both"),
            (None, None) => Constraint::None,
            (Some(ids), None) => {
                if ids.is_empty() {
                    bail!("allowed_tokens is empty: nothing could be generated");
                }
                let mut mask = vec![false; vocab];
                for &id in ids {
                    let Some(slot) = mask.get_mut(id as usize) else {
                        bail!("allowed token {id} is outside the vocabulary ({vocab})");
                    };
                    *slot = true;
                }
                Constraint::Set(mask)
            }
            (None, Some(motion)) => {
                if motion.end() > vocab {
                    bail!(
                        "motion tokens end at id {} but the LLM vocabulary has {vocab} rows; \
                         extend the checkpoint first (MotionVocab::extend_checkpoint)",
                        motion.end()
                    );
                }
                Constraint::Motion {
                    vocab: motion,
                    stop: cfg.stop_tokens.clone(),
                }
            }
        };
        Ok(Self {
            sampling: cfg.sampling,
            rng: ChaCha8Rng::seed_from_u64(seed),
            constraint,
        })
    }

    /// Ids that may be generated as token number `step` (0-based), in increasing order.
    fn candidates(&self, step: usize, vocab: usize) -> Result<Vec<usize>> {
        Ok(match &self.constraint {
            Constraint::None => (0..vocab).collect(),
            Constraint::Set(mask) => (0..vocab).filter(|&i| mask[i]).collect(),
            Constraint::Motion {
                vocab: motion,
                stop,
            } => {
                let axis = Axis::ALL[step % 3];
                let first = motion.id(axis, 0)? as usize;
                let mut ids: Vec<usize> = (first..first + MOTION_BINS).collect();
                if step.is_multiple_of(3) {
                    ids.extend(stop.iter().map(|&s| s as usize));
                    ids.sort_unstable();
                    ids.dedup();
                }
                ids
            }
        })
    }

    /// `logits: [vocab]`; `step`: how many tokens were generated before this one.
    fn next(&mut self, logits: &Tensor, step: usize) -> Result<u32> {
        let logits = logits.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        if logits.iter().any(|l| l.is_nan()) {
            bail!("the LLM produced NaN logits");
        }
        let ids = self.candidates(step, logits.len())?;
        let Some(&last) = ids.last() else {
            bail!("no token may be generated at step {step}");
        };
        match self.sampling {
            Sampling::Greedy => {
                // First maximum wins: ties go to the lowest id.
                let mut best = ids[0];
                for &i in &ids {
                    if logits[i] > logits[best] {
                        best = i;
                    }
                }
                Ok(best as u32)
            }
            Sampling::Temperature { temperature, .. } => {
                let max = ids
                    .iter()
                    .map(|&i| logits[i])
                    .fold(f32::NEG_INFINITY, f32::max);
                let weights: Vec<f64> = ids
                    .iter()
                    .map(|&i| ((f64::from(logits[i]) - f64::from(max)) / temperature).exp())
                    .collect();
                let total: f64 = weights.iter().sum();
                let mut draw = self.rng.random::<f64>() * total;
                for (&id, w) in ids.iter().zip(&weights) {
                    if draw < *w {
                        return Ok(id as u32);
                    }
                    draw -= w;
                }
                // Rounding left `draw` just above the last weight: take the last candidate.
                Ok(last as u32)
            }
        }
    }
}

impl CausalLm {
    /// Generates after a token prompt, `prompt: [seq]` ids.
    pub fn generate(&self, prompt: &[u32], cfg: &GenerationConfig) -> Result<Generation> {
        let ids = Tensor::new(prompt, self.device())?.unsqueeze(0)?;
        self.generate_from_embeds(&self.embed(&ids)?, cfg)
    }

    /// Generates after a prompt given as embeddings `[1, seq, hidden]` (text with spliced
    /// image features). Runs the prompt once, then one position per new token with a KV cache.
    pub fn generate_from_embeds(
        &self,
        prompt_embeds: &Tensor,
        cfg: &GenerationConfig,
    ) -> Result<Generation> {
        let (b, seq, _) = prompt_embeds.dims3()?;
        if b != 1 {
            bail!("generation takes one sequence at a time, got a batch of {b}");
        }
        if seq == 0 {
            bail!("generation needs a non-empty prompt");
        }
        let mut sampler = Sampler::new(cfg, self.config().vocab_size)?;
        let mut cache = self.new_cache();
        let mut tokens = Vec::with_capacity(cfg.max_new_tokens);
        if cfg.max_new_tokens == 0 {
            return Ok(Generation {
                tokens,
                stop: StopReason::MaxTokens,
            });
        }
        let mut logits = self.last_logits(&prompt_embeds.detach(), 0, Some(&mut cache))?;
        loop {
            let next = sampler.next(&logits.squeeze(0)?, tokens.len())?;
            tokens.push(next);
            if cfg.stop_tokens.contains(&next) {
                return Ok(Generation {
                    tokens,
                    stop: StopReason::StopToken(next),
                });
            }
            if tokens.len() >= cfg.max_new_tokens {
                return Ok(Generation {
                    tokens,
                    stop: StopReason::MaxTokens,
                });
            }
            let ids = Tensor::new(&[next], self.device())?.unsqueeze(0)?;
            let embeds = self.embed(&ids)?.detach();
            logits = self.last_logits(&embeds, cache.len(), Some(&mut cache))?;
        }
    }

    /// Generates after each of several prompts at once (`prompts[r]: [1, seq_r, hidden]`),
    /// as [`Self::generate_from_embeds`] would for each alone: the prompts are left-padded to
    /// one length and run as one batch, so every step reads the weights once for all rows.
    /// Rows that stop early keep their result; the batch runs until every row has stopped.
    ///
    /// The tokens equal the one-at-a-time ones up to floating-point reassociation in the
    /// batched matrix products (a greedy tie between two logits could then break the other
    /// way).
    pub fn generate_batch_from_embeds(
        &self,
        prompts: &[Tensor],
        cfg: &GenerationConfig,
    ) -> Result<Vec<Generation>> {
        let n = prompts.len();
        let mut lens = Vec::with_capacity(n);
        for (r, p) in prompts.iter().enumerate() {
            let (b, seq, _) = p.dims3()?;
            if b != 1 {
                bail!("prompt {r} of the batch is a batch of {b}; pass one sequence per prompt");
            }
            if seq == 0 {
                bail!("prompt {r} of the batch is empty; generation needs a non-empty prompt");
            }
            lens.push(seq);
        }
        let mut samplers = (0..n)
            .map(|_| Sampler::new(cfg, self.config().vocab_size))
            .collect::<Result<Vec<_>>>()?;
        let mut out: Vec<Option<Generation>> = vec![None; n];
        if n == 0 {
            return Ok(Vec::new());
        }
        if cfg.max_new_tokens == 0 {
            return Ok((0..n)
                .map(|_| Generation {
                    tokens: Vec::new(),
                    stop: StopReason::MaxTokens,
                })
                .collect());
        }
        let longest = lens.iter().copied().max().unwrap_or(0);
        let pads: Vec<usize> = lens.iter().map(|&l| longest - l).collect();
        let rows = prompts
            .iter()
            .zip(&pads)
            .map(|(p, &pad)| {
                let p = p.detach();
                if pad == 0 {
                    return Ok(p);
                }
                let (_, _, h) = p.dims3()?;
                let filler = Tensor::zeros((1, pad, h), p.dtype(), p.device())?;
                Tensor::cat(&[&filler, &p], 1)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut cache = KvCache::left_padded(self.config().num_hidden_layers, pads);
        let mut logits = self.last_logits(&Tensor::cat(&rows, 0)?, 0, Some(&mut cache))?;
        let mut tokens: Vec<Vec<u32>> = vec![Vec::with_capacity(cfg.max_new_tokens); n];
        loop {
            let mut next = Vec::with_capacity(n);
            for r in 0..n {
                if let Some(g) = &out[r] {
                    // Finished: feed its last token again; its logits are never read.
                    next.push(*g.tokens.last().unwrap_or(&0));
                    continue;
                }
                let t = samplers[r].next(&logits.get(r)?, tokens[r].len())?;
                tokens[r].push(t);
                next.push(t);
                if cfg.stop_tokens.contains(&t) {
                    out[r] = Some(Generation {
                        tokens: std::mem::take(&mut tokens[r]),
                        stop: StopReason::StopToken(t),
                    });
                } else if tokens[r].len() >= cfg.max_new_tokens {
                    out[r] = Some(Generation {
                        tokens: std::mem::take(&mut tokens[r]),
                        stop: StopReason::MaxTokens,
                    });
                }
            }
            if out.iter().all(Option::is_some) {
                return Ok(out.into_iter().flatten().collect());
            }
            let ids = Tensor::new(next.as_slice(), self.device())?.unsqueeze(1)?;
            let embeds = self.embed(&ids)?.detach();
            logits = self.last_logits(&embeds, cache.len(), Some(&mut cache))?;
        }
    }
}
