//! Motion-token vocabulary: 3 × 1024 axis-specific tokens appended to the LLM vocabulary.
//!
//! A wrist waypoint `(x, y, z)` becomes three tokens `<mx_i> <my_j> <mz_k>`, one 1024-bin
//! vocabulary per axis (binning itself lives with the Hand3D annotation code).
//!
//! # Id layout
//! The 3072 ids are contiguous, right after the base vocabulary:
//! `first_id + axis · 1024 + bin`, axis 0 = x, 1 = y, 2 = z. With a tokenizer, `first_id` is
//! the id the tokenizer gives its next added token (its size including added tokens; 49152 for
//! SmolLM2); without one it is the model's `vocab_size`. The model's embedding (and untied LM
//! head) grows to cover `first_id + 3072` rows; for Qwen, whose 151936-row table is padded past
//! its tokenizer's 151669 tokens, that is `max(vocab_size, first_id + 3072)`.
//!
//! # Initialisation of the new rows
//! Each new row is the mean of the existing rows plus a little Gaussian noise, per dimension
//! `mean_d + sqrt(1e-5) · std_d · z`, `z ~ N(0, 1)` from a seeded ChaCha8 stream: the diagonal
//! version of transformers' `resize_token_embeddings(mean_resizing=True)` (which samples from
//! `N(mean, 1e-5 · Cov)`). New tokens start with the average logit, so adding them barely
//! changes the model's predictions, and the noise breaks the symmetry between them. The untied
//! LM head is extended the same way from its own rows (with another seed stream).

use std::collections::HashMap;

use candle_core::{DType, Result, Tensor, bail};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use tokenizers::{AddedToken, Tokenizer};

use super::config::LlmConfig;

/// Bins per axis.
pub const MOTION_BINS: usize = 1024;

/// Spatial axis of a motion token (camera frame, OpenCV convention).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Axis {
    X,
    Y,
    Z,
}

impl Axis {
    pub const ALL: [Axis; 3] = [Axis::X, Axis::Y, Axis::Z];

    fn index(self) -> usize {
        match self {
            Axis::X => 0,
            Axis::Y => 1,
            Axis::Z => 2,
        }
    }

    fn letter(self) -> char {
        match self {
            Axis::X => 'x',
            Axis::Y => 'y',
            Axis::Z => 'z',
        }
    }
}

/// Where the motion tokens sit in the vocabulary (see the module docs for the layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MotionVocab {
    first_id: u32,
}

impl MotionVocab {
    /// Number of motion tokens (3 axes × 1024 bins).
    pub const LEN: usize = 3 * MOTION_BINS;

    /// Motion tokens occupying `first_id..first_id + 3072`.
    pub fn new(first_id: u32) -> Self {
        Self { first_id }
    }

    /// Motion tokens appended right after a model vocabulary of `vocab_size` rows.
    pub fn after_vocab(vocab_size: usize) -> Self {
        Self::new(vocab_size as u32)
    }

    pub fn first_id(&self) -> u32 {
        self.first_id
    }

    /// One past the last motion id: the smallest vocabulary that holds every motion token.
    pub fn end(&self) -> usize {
        self.first_id as usize + Self::LEN
    }

    /// Id of `bin` on `axis`.
    pub fn id(&self, axis: Axis, bin: usize) -> Result<u32> {
        if bin >= MOTION_BINS {
            bail!("motion bin {bin} is out of range 0..{MOTION_BINS}");
        }
        Ok(self.first_id + (axis.index() * MOTION_BINS + bin) as u32)
    }

    /// `(axis, bin)` of a motion id, `None` for any other id.
    pub fn decode(&self, id: u32) -> Option<(Axis, usize)> {
        let offset = id.checked_sub(self.first_id)? as usize;
        let axis = *Axis::ALL.get(offset / MOTION_BINS)?;
        Some((axis, offset % MOTION_BINS))
    }

    /// Token text, `<mx_0>` … `<mz_1023>`.
    pub fn token_name(axis: Axis, bin: usize) -> String {
        format!("<m{}_{bin}>", axis.letter())
    }

    /// All 3072 token texts in id order.
    pub fn token_names() -> Vec<String> {
        Axis::ALL
            .iter()
            .flat_map(|&axis| (0..MOTION_BINS).map(move |bin| Self::token_name(axis, bin)))
            .collect()
    }

    /// All motion ids, in order (e.g. for `GenerationConfig::allowed_tokens`).
    pub fn ids(&self) -> Vec<u32> {
        (self.first_id..self.end() as u32).collect()
    }

    /// Bins `[x, y, z]` of each waypoint in `tokens`, which must start with `<mx_·> <my_·>
    /// <mz_·>` triples; reading ends at the first other token that falls between waypoints
    /// (a stop token, text). A triple out of axis order or cut short is an error.
    pub fn waypoints(&self, tokens: &[u32]) -> Result<Vec<[usize; 3]>> {
        let mut out = Vec::new();
        for (w, chunk) in tokens.chunks(3).enumerate() {
            if self.decode(chunk[0]).is_none() {
                break;
            }
            let mut bins = [0usize; 3];
            for (k, axis) in Axis::ALL.iter().enumerate() {
                match chunk.get(k).and_then(|&id| self.decode(id)) {
                    Some((a, bin)) if a == *axis => bins[k] = bin,
                    _ => bail!(
                        "waypoint {w}: expected a {axis:?} motion token at position {}, got {:?}",
                        3 * w + k,
                        chunk.get(k)
                    ),
                }
            }
            out.push(bins);
        }
        Ok(out)
    }

    /// Adds the motion tokens to `tokenizer` as special tokens (each encodes to one id, never
    /// split or normalised) and returns where they landed. Errors if any of them already
    /// exists or if the ids do not come out contiguous.
    pub fn add_to_tokenizer(tokenizer: &mut Tokenizer) -> Result<Self> {
        let names = Self::token_names();
        if let Some(name) = names.iter().find(|n| tokenizer.token_to_id(n).is_some()) {
            bail!("the tokenizer already has a token {name}; motion tokens were added before?");
        }
        let tokens: Vec<AddedToken> = names
            .iter()
            .map(|n| AddedToken::from(n.as_str(), true))
            .collect();
        let added = tokenizer
            .add_special_tokens(tokens)
            .map_err(candle_core::Error::msg)?;
        if added != Self::LEN {
            bail!(
                "the tokenizer accepted {added} of {} motion tokens",
                Self::LEN
            );
        }
        let Some(first_id) = tokenizer.token_to_id(&names[0]) else {
            bail!("motion token {} was not registered", names[0]);
        };
        let vocab = Self::new(first_id);
        for (k, name) in names.iter().enumerate() {
            if tokenizer.token_to_id(name) != Some(first_id + k as u32) {
                bail!(
                    "motion token {name} did not get id {}; ids are not contiguous",
                    first_id + k as u32
                );
            }
        }
        Ok(vocab)
    }

    /// Grows the checkpoint's vocabulary so every motion id has an embedding (and LM-head) row:
    /// to `max(cfg.vocab_size, self.end())` rows. See [`resize_vocab`].
    pub fn extend_checkpoint(
        &self,
        tensors: &mut HashMap<String, Tensor>,
        cfg: &mut LlmConfig,
        seed: u64,
    ) -> Result<()> {
        let new_vocab = cfg.vocab_size.max(self.end());
        resize_vocab(tensors, cfg, new_vocab, seed)
    }
}

const EMBED_KEY: &str = "model.embed_tokens.weight";
const LM_HEAD_KEY: &str = "lm_head.weight";

/// Grows `model.embed_tokens.weight` (and `lm_head.weight` when not tied) from
/// `cfg.vocab_size` to `new_vocab` rows, initialising new rows from the existing ones (module
/// docs), and updates `cfg.vocab_size`. Existing rows are unchanged. Shrinking is an error.
pub fn resize_vocab(
    tensors: &mut HashMap<String, Tensor>,
    cfg: &mut LlmConfig,
    new_vocab: usize,
    seed: u64,
) -> Result<()> {
    let old_vocab = cfg.vocab_size;
    if new_vocab < old_vocab {
        bail!("resize_vocab only grows the vocabulary ({old_vocab} → {new_vocab} requested)");
    }
    if new_vocab == old_vocab {
        return Ok(());
    }
    let mut keys = vec![(EMBED_KEY, seed)];
    if !cfg.tie_word_embeddings {
        // A different stream, so head rows are not the same noise as embedding rows.
        keys.push((LM_HEAD_KEY, seed ^ 0x9E37_79B9_7F4A_7C15));
    }
    for (key, seed) in keys {
        let Some(old) = tensors.get(key) else {
            bail!("resize_vocab: the checkpoint has no tensor {key}");
        };
        if old.dims() != [old_vocab, cfg.hidden_size] {
            bail!(
                "resize_vocab: {key} has shape {:?}, expected [{old_vocab}, {}]",
                old.dims(),
                cfg.hidden_size
            );
        }
        let rows = mean_plus_noise_rows(old, new_vocab - old_vocab, seed)?;
        let grown = Tensor::cat(&[old, &rows], 0)?;
        tensors.insert(key.to_string(), grown);
    }
    cfg.vocab_size = new_vocab;
    Ok(())
}

/// `n` rows `mean + sqrt(1e-5) · std · z` from the rows of `w: [vocab, hidden]`.
fn mean_plus_noise_rows(w: &Tensor, n: usize, seed: u64) -> Result<Tensor> {
    let hidden = w.dim(1)?;
    let w32 = w.to_dtype(DType::F32)?;
    let mean = w32.mean_keepdim(0)?;
    let std = w32.var_keepdim(0)?.sqrt()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let z: Vec<f32> = (0..n * hidden)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let z = Tensor::from_vec(z, (n, hidden), w.device())?;
    let rows = mean.broadcast_add(&z.broadcast_mul(&(std * 1e-5f64.sqrt())?)?)?;
    rows.to_dtype(w.dtype())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn id_layout_round_trips() {
        let v = MotionVocab::new(1000);
        assert_eq!(v.id(Axis::X, 0).unwrap(), 1000);
        assert_eq!(v.id(Axis::Y, 0).unwrap(), 1000 + 1024);
        assert_eq!(v.id(Axis::Z, 1023).unwrap(), 1000 + 3071);
        assert_eq!(v.end(), 4072);
        assert!(v.id(Axis::X, 1024).is_err());
        for id in [1000, 1500, 2024, 4071] {
            let (axis, bin) = v.decode(id).unwrap();
            assert_eq!(v.id(axis, bin).unwrap(), id);
        }
        assert_eq!(v.decode(999), None);
        assert_eq!(v.decode(4072), None);
        let names = MotionVocab::token_names();
        assert_eq!(names.len(), 3072);
        assert_eq!(names[0], "<mx_0>");
        assert_eq!(names[1024 + 5], "<my_5>");
        assert_eq!(names[3071], "<mz_1023>");
    }

    #[test]
    fn new_rows_follow_the_mean_and_old_rows_stay() {
        let dev = Device::Cpu;
        let mut cfg = crate::llm::LlmConfig::tiny(crate::llm::Arch::Qwen3);
        cfg.vocab_size = 50;
        cfg.hidden_size = 8;
        // Deterministic, varied rows: sin of a ramp (mean ≈ 0), and the same shifted by 3.
        let embed = (Tensor::arange(0f32, 400.0, &dev).unwrap() * 0.37)
            .unwrap()
            .sin()
            .unwrap()
            .reshape((50, 8))
            .unwrap();
        let head = (&embed + 3.0).unwrap();
        let mut tensors = HashMap::from([
            (EMBED_KEY.to_string(), embed.clone()),
            (LM_HEAD_KEY.to_string(), head.clone()),
        ]);
        resize_vocab(&mut tensors, &mut cfg, 60, 7).unwrap();
        assert_eq!(cfg.vocab_size, 60);
        let grown = &tensors[EMBED_KEY];
        assert_eq!(grown.dims(), [60, 8]);
        let diff = (grown.narrow(0, 0, 50).unwrap() - &embed)
            .unwrap()
            .abs()
            .unwrap();
        assert_eq!(diff.max_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
        // New rows are within a few noise sigmas of the column mean.
        let mean = embed.mean_keepdim(0).unwrap();
        let dev_from_mean = grown
            .narrow(0, 50, 10)
            .unwrap()
            .broadcast_sub(&mean)
            .unwrap()
            .abs()
            .unwrap();
        assert!(dev_from_mean.max_all().unwrap().to_scalar::<f32>().unwrap() < 0.05);
        // Rows differ from each other (the noise breaks the symmetry).
        let r0 = grown.get(50).unwrap();
        let r1 = grown.get(51).unwrap();
        assert!(
            (r0 - r1)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 0.0
        );
        // The untied head grew from its own mean (≈ 3), not the embedding's (≈ 0).
        let head_new = tensors[LM_HEAD_KEY]
            .narrow(0, 50, 10)
            .unwrap()
            .mean_all()
            .unwrap();
        assert!((head_new.to_scalar::<f32>().unwrap() - 3.0).abs() < 0.2);
        // Deterministic for a seed.
        let mut again = HashMap::from([
            (EMBED_KEY.to_string(), embed),
            (LM_HEAD_KEY.to_string(), head),
        ]);
        let mut cfg2 = cfg.clone();
        cfg2.vocab_size = 50;
        resize_vocab(&mut again, &mut cfg2, 60, 7).unwrap();
        let d = (&again[EMBED_KEY] - grown)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
        assert!(resize_vocab(&mut again, &mut cfg2, 10, 7).is_err());
    }
}
