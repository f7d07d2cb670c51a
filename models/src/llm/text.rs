//! Text in and out of the LLM: a tokenizer plus the prompt layout a sample is rendered in.
//!
//! Two kinds:
//! - [`TextCodec::Hf`]: a Hugging Face tokenizer (from `tokenizer.json` or GGUF metadata). When
//!   it has ChatML tokens (`<|im_start|>`, `<|im_end|>`, as SmolLM2-Instruct and Qwen3 do), a
//!   sample is rendered as a ChatML user turn and the answer ends with `<|im_end|>`.
//! - [`TextCodec::Bytes`]: one token per UTF-8 byte plus an end token, for the `tiny` preset
//!   (tests and CI have no pretrained tokenizer; a byte vocabulary of 258 keeps the test LLM
//!   tiny and the rendering exact).
//!
//! Stage 2 adds the 3 × 1024 motion tokens ([`TextCodec::with_motion`]): to a Hugging Face
//! tokenizer as special tokens (one id each, never split), and to the byte codec as ids
//! `258 … 258 + 3071`, recognised in text as `<mx_i>`, `<my_j>`, `<mz_k>`.
//!
//! The image features are not tokens: a prompt is a list of [`Segment`]s, and the caller
//! embeds text segments and concatenates image features in between (equivalent to InternVL's
//! `<IMG_CONTEXT>` splicing, without needing that token in a tokenizer that lacks it).

use candle_core::{Result, bail};
use tokenizers::Tokenizer;

use super::motion::{Axis, MOTION_BINS, MotionVocab};
use super::tokenizer::{decode, encode};

/// Byte vocabulary: ids 0–255 are bytes, [`BYTE_EOS`] ends an answer, [`BYTE_PAD`] is spare.
pub const BYTE_VOCAB: usize = 258;
/// End-of-answer id of [`TextCodec::Bytes`].
pub const BYTE_EOS: u32 = 256;
/// Unused padding id of [`TextCodec::Bytes`].
pub const BYTE_PAD: u32 = 257;

/// One piece of a rendered prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Token ids.
    Text(Vec<u32>),
    /// The features of image `i` of the sample go here.
    Image(usize),
}

/// A tokenizer and its prompt layout.
#[derive(Debug, Clone)]
pub enum TextCodec {
    /// One token per byte; plain layout `Frame 1: <image>\n…question\nAnswer: `.
    Bytes {
        /// Motion tokens after the byte vocabulary (stage 2).
        motion: Option<MotionVocab>,
    },
    /// A Hugging Face tokenizer; ChatML layout when `chat` is set.
    Hf {
        tokenizer: Box<Tokenizer>,
        /// `(<|im_start|>, <|im_end|>)` ids when the vocabulary has them.
        chat: Option<(u32, u32)>,
        /// The id that ends an answer (`<|im_end|>` with ChatML, else the model's EOS).
        eos: u32,
        /// Motion tokens added to the tokenizer (stage 2).
        motion: Option<MotionVocab>,
    },
}

/// Parses `<mx_12>` at the start of `s`: `(axis, bin, length in bytes)`.
fn motion_token_at(s: &str) -> Option<(Axis, usize, usize)> {
    let rest = s.strip_prefix("<m")?;
    let axis = match rest.as_bytes().first()? {
        b'x' => Axis::X,
        b'y' => Axis::Y,
        b'z' => Axis::Z,
        _ => return None,
    };
    let rest = rest.get(1..)?.strip_prefix('_')?;
    let end = rest.find('>')?;
    let bin: usize = rest[..end].parse().ok()?;
    (bin < MOTION_BINS && end <= 4).then_some((axis, bin, 2 + 1 + 1 + end + 1))
}

impl TextCodec {
    /// Wraps a Hugging Face tokenizer; `model_eos` is used when there are no ChatML tokens.
    pub fn hf(tokenizer: Tokenizer, model_eos: Option<u32>) -> Result<Self> {
        let chat = match (
            tokenizer.token_to_id("<|im_start|>"),
            tokenizer.token_to_id("<|im_end|>"),
        ) {
            (Some(s), Some(e)) => Some((s, e)),
            _ => None,
        };
        let eos = match (chat, model_eos) {
            (Some((_, e)), _) => e,
            (None, Some(e)) => e,
            (None, None) => bail!(
                "the tokenizer has no <|im_end|> and the model config no eos_token_id: \
                 answers would have no end token"
            ),
        };
        Ok(Self::Hf {
            tokenizer: Box::new(tokenizer),
            chat,
            eos,
            motion: None,
        })
    }

    /// The byte codec (no motion tokens).
    pub fn bytes() -> Self {
        Self::Bytes { motion: None }
    }

    /// Adds the motion tokens (stage 2) and returns where they landed.
    pub fn with_motion(self) -> Result<(Self, MotionVocab)> {
        match self {
            Self::Bytes { motion: Some(m) }
            | Self::Hf {
                motion: Some(m), ..
            } => {
                bail!(
                    "the motion tokens were already added (ids from {})",
                    m.first_id()
                )
            }
            Self::Bytes { motion: None } => {
                let m = MotionVocab::new(BYTE_VOCAB as u32);
                Ok((Self::Bytes { motion: Some(m) }, m))
            }
            Self::Hf {
                mut tokenizer,
                chat,
                eos,
                motion: None,
            } => {
                let m = MotionVocab::add_to_tokenizer(&mut tokenizer)?;
                Ok((
                    Self::Hf {
                        tokenizer,
                        chat,
                        eos,
                        motion: Some(m),
                    },
                    m,
                ))
            }
        }
    }

    /// The motion tokens, when added.
    pub fn motion(&self) -> Option<MotionVocab> {
        match self {
            Self::Bytes { motion } | Self::Hf { motion, .. } => *motion,
        }
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Self::Bytes { motion: None } => Ok(text.bytes().map(u32::from).collect()),
            Self::Bytes { motion: Some(m) } => {
                let mut ids = Vec::with_capacity(text.len());
                let mut i = 0;
                while i < text.len() {
                    if let Some((axis, bin, len)) = motion_token_at(&text[i..]) {
                        ids.push(m.id(axis, bin)?);
                        i += len;
                    } else {
                        ids.push(u32::from(text.as_bytes()[i]));
                        i += 1;
                    }
                }
                Ok(ids)
            }
            Self::Hf { tokenizer, .. } => encode(tokenizer, text),
        }
    }

    /// Text of `ids`; the end token and ids outside the vocabulary are dropped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let eos = self.eos();
        let ids: Vec<u32> = ids.iter().copied().filter(|&i| i != eos).collect();
        match self {
            Self::Bytes { motion } => {
                let mut bytes: Vec<u8> = Vec::with_capacity(ids.len());
                for &i in &ids {
                    if let Ok(b) = u8::try_from(i) {
                        bytes.push(b);
                    } else if let Some((axis, bin)) = motion.and_then(|m| m.decode(i)) {
                        bytes.extend(MotionVocab::token_name(axis, bin).bytes());
                    }
                }
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            }
            Self::Hf { tokenizer, .. } => decode(tokenizer, &ids),
        }
    }

    /// The id that ends an answer.
    pub fn eos(&self) -> u32 {
        match self {
            Self::Bytes { .. } => BYTE_EOS,
            Self::Hf { eos, .. } => *eos,
        }
    }

    /// Smallest LLM vocabulary that holds every id this codec produces.
    pub fn min_vocab(&self) -> usize {
        match self {
            Self::Bytes { motion: None } => BYTE_VOCAB,
            Self::Bytes { motion: Some(m) } => m.end(),
            Self::Hf { tokenizer, .. } => tokenizer.get_vocab_size(true),
        }
    }

    /// The prompt of a question about `n_images` frames (oldest first), up to where the answer
    /// starts. The answer's ids are [`Self::answer_ids`].
    pub fn prompt(&self, question: &str, n_images: usize) -> Result<Vec<Segment>> {
        let mut segs = Vec::with_capacity(2 * n_images + 2);
        let (head, tail) = match self {
            Self::Hf {
                chat: Some((start, end)),
                ..
            } => {
                let mut head = vec![*start];
                head.extend(self.encode("user\n")?);
                let mut tail = vec![*end];
                tail.extend(self.encode("\n")?);
                tail.push(*start);
                tail.extend(self.encode("assistant\n")?);
                (head, tail)
            }
            _ => (Vec::new(), self.encode("\nAnswer: ")?),
        };
        let mut text = head;
        for i in 0..n_images {
            text.extend(self.encode(&format!("Frame {}: ", i + 1))?);
            segs.push(Segment::Text(std::mem::take(&mut text)));
            segs.push(Segment::Image(i));
            text = self.encode("\n")?;
        }
        text.extend(self.encode(question)?);
        text.extend(tail);
        segs.push(Segment::Text(text));
        Ok(segs)
    }

    /// The answer's ids followed by the end token (the training targets).
    pub fn answer_ids(&self, answer: &str) -> Result<Vec<u32>> {
        let mut ids = self.encode(answer)?;
        ids.push(self.eos());
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_layout() {
        let c = TextCodec::bytes();
        let ids = c.answer_ids("left, 0.44m").unwrap();
        assert_eq!(*ids.last().unwrap(), BYTE_EOS);
        assert_eq!(c.decode(&ids).unwrap(), "left, 0.44m");
        let segs = c.prompt("Where?", 2).unwrap();
        let images: Vec<usize> = segs
            .iter()
            .filter_map(|s| match s {
                Segment::Image(i) => Some(*i),
                Segment::Text(_) => None,
            })
            .collect();
        assert_eq!(images, vec![0, 1]);
        let text: Vec<u32> = segs
            .iter()
            .flat_map(|s| match s {
                Segment::Text(t) => t.clone(),
                Segment::Image(_) => vec![],
            })
            .collect();
        assert_eq!(
            c.decode(&text).unwrap(),
            "Frame 1: \nFrame 2: \nWhere?\nAnswer: "
        );
        assert!(text.iter().all(|&i| (i as usize) < c.min_vocab()));
    }

    #[test]
    fn byte_codec_motion_tokens_are_single_ids() {
        let (c, m) = TextCodec::bytes().with_motion().unwrap();
        assert_eq!(m.first_id(), BYTE_VOCAB as u32);
        assert_eq!(c.min_vocab(), BYTE_VOCAB + MotionVocab::LEN);
        let text = "go <mx_0><my_1023><mz_17> then <mx_5>";
        let ids = c.encode(text).unwrap();
        assert_eq!(ids.len(), 3 + 3 + 6 + 1);
        assert_eq!(ids[3], m.id(Axis::X, 0).unwrap());
        assert_eq!(ids[4], m.id(Axis::Y, 1023).unwrap());
        assert_eq!(c.decode(&ids).unwrap(), text);
        // Not motion tokens: out-of-range bin, unknown axis, unterminated.
        for s in ["<mx_1024>", "<mw_3>", "<mx_3"] {
            assert_eq!(c.encode(s).unwrap().len(), s.len(), "{s}");
        }
        assert!(c.with_motion().is_err());
    }
}
