//! Joins the three streams of the pretraining feed into whole samples.
//!
//! For sample `k` the reader sends one `sample` message (a [`QaBatch`] of one [`QaSample`]) and
//! the encoders send `n_frames` feature messages each on `tokens_2d` and `tokens_3d`, all
//! tagged `sample_seq = k` (frames also `frame_slot`). They arrive interleaved and in any
//! order across inputs; the joiner hands samples out strictly in `sample_seq` order, so the
//! trainer sees the reader's (seeded) order whatever the timing.
//!
//! Every input's `seq` must be gap-free: a gap means dora lost a message, and training on
//! would silently skip a sample, so it is an error that stops the node.

use std::collections::BTreeMap;

use vipa_msgs::meta::{MetaReader, keys};
use vipa_msgs::ports;
use vipa_msgs::{MetaValue, Metadata, MsgError, Payload, QaBatch, QaSample, StreamEnd, TensorMsg};
use vipa_node_kit::{InputMsg, SeqEvent, SeqTracker};

/// Metadata key of the 3D tokens' validity (`ListInt`, 1 = valid), set by encoder-3d.
pub const TOKEN_VALID: &str = keys::TOKEN_VALID;

/// Features of one frame: `f32[tokens, channels]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub shape: [usize; 2],
    pub values: Vec<f32>,
    /// Per-token validity (3D tokens only; `None` = all valid).
    pub valid: Option<Vec<f32>>,
}

/// One complete sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    pub sample_seq: u64,
    pub sample: QaSample,
    /// Semantic features per frame, oldest first.
    pub tokens_2d: Vec<Features>,
    /// 3D features per frame, oldest first (empty when 3D features are not required).
    pub tokens_3d: Vec<Features>,
}

/// Why the feed cannot be joined.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(
        "input `{input}`: {missing} message(s) lost before seq {seq}; training would silently skip samples, so it stops (give the input `queue_policy: backpressure` or a deeper queue_size)"
    )]
    Gap {
        input: String,
        seq: u64,
        missing: u64,
    },
    #[error("input `{input}`: {source}")]
    Decode {
        input: String,
        #[source]
        source: MsgError,
    },
    #[error("input `{input}` seq {seq}: {problem}")]
    Bad {
        input: String,
        seq: u64,
        problem: String,
    },
}

#[derive(Debug, Default)]
struct Pending {
    sample: Option<QaSample>,
    n_frames: Option<usize>,
    t2: BTreeMap<usize, Features>,
    t3: BTreeMap<usize, Features>,
}

/// The joiner.
#[derive(Debug)]
pub struct Joiner {
    need_3d: bool,
    pending: BTreeMap<u64, Pending>,
    next: u64,
    seq: SeqTracker,
    ends: BTreeMap<String, u64>,
}

/// An integer metadata key, `None` when absent or not an integer.
fn int(meta: &Metadata, key: &str) -> Option<i64> {
    MetaReader::new("feature stream", meta).int(key).ok()
}

impl Joiner {
    /// `need_3d`: wait for `tokens_3d` too (the model has a fusion layer).
    pub fn new(need_3d: bool) -> Self {
        Self {
            need_3d,
            pending: BTreeMap::new(),
            next: 0,
            seq: SeqTracker::new(),
            ends: BTreeMap::new(),
        }
    }

    /// Expects the first sample to be number `first` (a resumed run whose reader passed over
    /// the samples before it); an earlier one is then an error.
    pub fn starting_at(mut self, first: u64) -> Self {
        self.next = first;
        self
    }

    /// Sequence statistics per input.
    pub fn seq(&self) -> &SeqTracker {
        &self.seq
    }

    /// Whether the reader's `sample` stream has ended.
    pub fn samples_ended(&self) -> bool {
        self.ends.contains_key(ports::SAMPLE)
    }

    /// Samples received but not yet complete.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Handles one message.
    pub fn on_input(&mut self, msg: &InputMsg) -> Result<(), JoinError> {
        let input = msg.id.as_str();
        if ![ports::SAMPLE, ports::TOKENS_2D, ports::TOKENS_3D].contains(&input) {
            tracing::warn!(input, "ignoring unexpected input");
            return Ok(());
        }
        let decode = |source| JoinError::Decode {
            input: input.to_owned(),
            source,
        };
        let seq = int(&msg.meta, "seq").ok_or_else(|| JoinError::Bad {
            input: input.to_owned(),
            seq: 0,
            problem: "message without `seq`".into(),
        })? as u64;
        match self.seq.observe(input, seq) {
            SeqEvent::Gap { missing } => {
                return Err(JoinError::Gap {
                    input: input.to_owned(),
                    seq,
                    missing,
                });
            }
            SeqEvent::Late => {
                return Err(JoinError::Bad {
                    input: input.to_owned(),
                    seq,
                    problem: "repeated or out-of-order message".into(),
                });
            }
            SeqEvent::InOrder => {}
        }
        if msg.kind() == Some("stream_end") {
            let end = StreamEnd::from_arrow(msg.array.as_ref(), &msg.meta).map_err(decode)?;
            self.ends.insert(input.to_owned(), end.frames);
            return Ok(());
        }
        if vipa_msgs::Control::is_control(&msg.meta) {
            return Ok(());
        }
        let bad = |problem: String| JoinError::Bad {
            input: input.to_owned(),
            seq,
            problem,
        };
        let sample_seq = int(&msg.meta, keys::SAMPLE_SEQ)
            .filter(|s| *s >= 0)
            .ok_or_else(|| bad("no `sample_seq` (is this fed by vipa-dataset-reader?)".into()))?
            as u64;
        if sample_seq < self.next {
            return Err(bad(format!(
                "sample {sample_seq} arrived after it was trained on"
            )));
        }
        let n_frames = int(&msg.meta, keys::N_FRAMES)
            .filter(|n| *n > 0)
            .ok_or_else(|| bad("no `n_frames`".into()))? as usize;
        let entry = self.pending.entry(sample_seq).or_default();
        if entry.n_frames.is_some_and(|n| n != n_frames) {
            return Err(bad(format!("sample {sample_seq}: n_frames disagree")));
        }
        entry.n_frames = Some(n_frames);
        if input == ports::SAMPLE {
            let batch = QaBatch::from_arrow(msg.array.as_ref(), &msg.meta).map_err(decode)?;
            let mut samples = batch.samples;
            if samples.len() != 1 {
                return Err(bad(format!(
                    "expected one sample per message, got {}",
                    samples.len()
                )));
            }
            entry.sample = samples.pop();
            return Ok(());
        }
        if input == ports::TOKENS_3D && !self.need_3d {
            return Ok(());
        }
        let slot = int(&msg.meta, keys::FRAME_SLOT)
            .filter(|s| *s >= 0 && (*s as usize) < n_frames)
            .ok_or_else(|| bad("no valid `frame_slot`".into()))? as usize;
        let t = TensorMsg::from_arrow(msg.array.as_ref(), &msg.meta).map_err(decode)?;
        let dims = t.expect_axes(&["tokens", "channels"]).map_err(decode)?;
        let shape = [dims[0], dims[1]];
        let values = t.f32_values().map_err(decode)?.to_vec();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(bad("features are not finite".into()));
        }
        let valid = match msg.meta.get(TOKEN_VALID) {
            Some(MetaValue::ListInt(v)) if v.len() == shape[0] => {
                if v.iter().all(|&x| x != 0) {
                    None
                } else {
                    Some(v.iter().map(|&x| if x != 0 { 1.0 } else { 0.0 }).collect())
                }
            }
            Some(MetaValue::ListInt(v)) => {
                return Err(bad(format!(
                    "`{TOKEN_VALID}` has {} entries for {} tokens",
                    v.len(),
                    shape[0]
                )));
            }
            _ => None,
        };
        let f = Features {
            shape,
            values,
            valid,
        };
        let slots = if input == ports::TOKENS_2D {
            &mut entry.t2
        } else {
            &mut entry.t3
        };
        if slots.insert(slot, f).is_some() {
            return Err(bad(format!("sample {sample_seq}: frame slot {slot} twice")));
        }
        Ok(())
    }

    /// The next sample in order, once complete.
    pub fn pop_ready(&mut self) -> Option<Joined> {
        let entry = self.pending.get(&self.next)?;
        let n = entry.n_frames?;
        let complete =
            entry.sample.is_some() && entry.t2.len() == n && (!self.need_3d || entry.t3.len() == n);
        if !complete {
            return None;
        }
        let entry = self.pending.remove(&self.next)?;
        let joined = Joined {
            sample_seq: self.next,
            sample: entry.sample?,
            tokens_2d: entry.t2.into_values().collect(),
            tokens_3d: entry.t3.into_values().collect(),
        };
        self.next += 1;
        Some(joined)
    }

    /// The `sample_seq` of the next sample to hand out: the starting point plus the samples
    /// handed out so far.
    pub fn delivered(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vipa_msgs::{QaTarget, StreamHeader, TaskType};

    fn msg(id: &str, payload: &impl Payload, extra: &[(&str, i64)]) -> InputMsg {
        let (array, mut meta) = payload.to_arrow();
        for (k, v) in extra {
            meta.insert((*k).into(), MetaValue::Integer(*v));
        }
        InputMsg {
            id: id.into(),
            array,
            meta,
        }
    }

    fn sample(seq: u64) -> QaBatch {
        QaBatch {
            header: StreamHeader {
                seq,
                ..Default::default()
            },
            samples: vec![QaSample {
                question_id: format!("q{seq}"),
                task: TaskType::SpatialRelation,
                clip_id: "c".into(),
                frame_indices: vec![0],
                question: "where?".into(),
                answer: "left, 0.10m".into(),
                target: QaTarget::default(),
                motion_tokens: None,
            }],
        }
    }

    fn feats(seq: u64) -> TensorMsg {
        TensorMsg::from_f32(
            StreamHeader {
                seq,
                ..Default::default()
            },
            vec![2, 3],
            &["tokens", "channels"],
            vec![seq as f32; 6],
        )
        .unwrap()
    }

    #[test]
    fn joins_out_of_order_inputs_in_sample_order_and_stops_on_gaps() {
        let mut j = Joiner::new(true);
        let f = |s: i64| [("sample_seq", s), ("n_frames", 1), ("frame_slot", 0)];
        // Sample 1's parts arrive before sample 0 is complete.
        j.on_input(&msg(ports::TOKENS_2D, &feats(0), &f(0)))
            .unwrap();
        j.on_input(&msg(ports::TOKENS_2D, &feats(1), &f(1)))
            .unwrap();
        j.on_input(&msg(ports::SAMPLE, &sample(0), &f(0))).unwrap();
        j.on_input(&msg(ports::SAMPLE, &sample(1), &f(1))).unwrap();
        j.on_input(&msg(ports::TOKENS_3D, &feats(0), &f(1)))
            .unwrap();
        assert!(
            j.pop_ready().is_none(),
            "sample 0 still lacks its 3D tokens"
        );
        j.on_input(&msg(ports::TOKENS_3D, &feats(1), &f(0)))
            .unwrap();
        let a = j.pop_ready().unwrap();
        let b = j.pop_ready().unwrap();
        assert_eq!((a.sample_seq, b.sample_seq), (0, 1));
        assert_eq!(a.sample.question_id, "q0");
        assert_eq!(a.tokens_2d[0].values[0], 0.0);
        assert_eq!(b.tokens_2d[0].values[0], 1.0);
        assert_eq!(a.tokens_3d[0].shape, [2, 3]);
        // seq 3 after seq 1 on tokens_2d: one message lost.
        let err = j
            .on_input(&msg(ports::TOKENS_2D, &feats(3), &f(2)))
            .unwrap_err();
        assert!(matches!(err, JoinError::Gap { missing: 1, .. }), "{err}");
    }

    #[test]
    fn a_resumed_joiner_starts_at_its_first_sample_and_refuses_earlier_ones() {
        let mut j = Joiner::new(false).starting_at(5);
        // Transport `seq` restarts at 0; `sample_seq` continues at 5.
        let f = |s: i64| [("sample_seq", s), ("n_frames", 1), ("frame_slot", 0)];
        j.on_input(&msg(ports::SAMPLE, &sample(0), &f(5))).unwrap();
        j.on_input(&msg(ports::TOKENS_2D, &feats(0), &f(5)))
            .unwrap();
        let s = j.pop_ready().unwrap();
        assert_eq!(s.sample_seq, 5);
        assert_eq!(j.delivered(), 6);
        let err = j
            .on_input(&msg(ports::SAMPLE, &sample(1), &f(2)))
            .unwrap_err();
        assert!(err.to_string().contains("after it was trained on"), "{err}");
    }

    #[test]
    fn without_3d_only_two_streams_are_needed() {
        let mut j = Joiner::new(false);
        let f = [("sample_seq", 0), ("n_frames", 1), ("frame_slot", 0)];
        j.on_input(&msg(ports::SAMPLE, &sample(0), &f)).unwrap();
        j.on_input(&msg(ports::TOKENS_2D, &feats(0), &f)).unwrap();
        let s = j.pop_ready().unwrap();
        assert!(s.tokens_3d.is_empty());
    }
}
