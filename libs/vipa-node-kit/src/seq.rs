//! Sequence-gap counting: proves (or disproves) that no message was lost on the way.
//!
//! Every vipa stream message carries `seq`, counting 0, 1, 2, … per sender output. A receiver
//! feeds each `(input id, seq)` into a [`SeqTracker`]: a jump forward counts the skipped
//! numbers as dropped, a number at or below the highest seen counts as a duplicate or a
//! reordering. dora's default input queues drop the oldest message when full, so this is the
//! cheap check that a graph really delivered everything.

use std::collections::BTreeMap;

use serde::Serialize;

/// What one input has seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SeqStats {
    /// Messages observed (including duplicates and late ones).
    pub received: u64,
    /// Sequence numbers skipped: messages that never arrived (or have not arrived yet).
    pub dropped: u64,
    /// Messages whose seq was at or below the highest seen: duplicates or reordered.
    pub out_of_order: u64,
    /// Number of separate gaps (one gap may span several messages).
    pub gaps: u64,
    /// Highest seq observed, `None` before the first message.
    pub last_seq: Option<u64>,
    /// The first [`MAX_GAPS_KEPT`] gaps as `[first missing, last missing]`, for diagnosis.
    pub first_gaps: Vec<[u64; 2]>,
}

/// How many gaps [`SeqStats::first_gaps`] keeps.
pub const MAX_GAPS_KEPT: usize = 8;

impl SeqStats {
    /// True when every seq from 0 to `last_seq` arrived exactly once, in order.
    pub fn is_clean(&self) -> bool {
        self.dropped == 0 && self.out_of_order == 0
    }
}

/// What [`SeqTracker::observe`] found about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqEvent {
    /// The expected next number.
    InOrder,
    /// `missing` numbers were skipped before this one.
    Gap { missing: u64 },
    /// At or below the highest seen: a duplicate or a reordered message.
    Late,
}

/// Messages lost on an input that needs them all ([`SeqTracker::observe_gapless`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input `{input}`: {missing} message(s) lost before seq {seq}")]
pub struct SeqGap {
    pub input: String,
    pub seq: u64,
    pub missing: u64,
}

/// Per-input sequence tracking. Expects seq 0, 1, 2, … on each input.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    inputs: BTreeMap<String, SeqStats>,
}

impl SeqTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one message; logs a warning on a gap or a late message.
    pub fn observe(&mut self, input: &str, seq: u64) -> SeqEvent {
        let stats = self.inputs.entry(input.to_owned()).or_default();
        stats.received += 1;
        let expected = stats.last_seq.map_or(0, |s| s.saturating_add(1));
        let event = if seq == expected {
            SeqEvent::InOrder
        } else if seq > expected {
            SeqEvent::Gap {
                missing: seq - expected,
            }
        } else {
            SeqEvent::Late
        };
        match event {
            SeqEvent::InOrder => stats.last_seq = Some(seq),
            SeqEvent::Gap { missing } => {
                stats.dropped += missing;
                stats.gaps += 1;
                if stats.first_gaps.len() < MAX_GAPS_KEPT {
                    stats.first_gaps.push([expected, seq - 1]);
                }
                stats.last_seq = Some(seq);
                tracing::warn!(
                    input,
                    seq,
                    expected,
                    missing,
                    "sequence gap: messages were dropped"
                );
            }
            SeqEvent::Late => {
                stats.out_of_order += 1;
                // A late message fills a gap counted earlier (reordering), unless it is a
                // duplicate; without a per-seq bitmap we cannot tell, so both counters stay.
                tracing::warn!(input, seq, expected, "duplicate or reordered message");
            }
        }
        event
    }

    /// [`Self::observe`] for an input that cannot go on without every message (a frame lost
    /// before an encoder would silently drop a training sample): a gap is an error. Late
    /// messages are counted and logged as `observe` does, and returned as
    /// [`SeqEvent::Late`].
    pub fn observe_gapless(&mut self, input: &str, seq: u64) -> Result<SeqEvent, SeqGap> {
        match self.observe(input, seq) {
            SeqEvent::Gap { missing } => Err(SeqGap {
                input: input.to_owned(),
                seq,
                missing,
            }),
            other => Ok(other),
        }
    }

    /// Stats of one input (`None` if it never received anything).
    pub fn stats(&self, input: &str) -> Option<&SeqStats> {
        self.inputs.get(input)
    }

    /// All inputs' stats, by input id.
    pub fn all(&self) -> &BTreeMap<String, SeqStats> {
        &self.inputs
    }

    /// Total dropped messages over all inputs.
    pub fn total_dropped(&self) -> u64 {
        self.inputs.values().map(|s| s.dropped).sum()
    }

    /// True when every input is clean.
    pub fn is_clean(&self) -> bool {
        self.inputs.values().all(SeqStats::is_clean)
    }

    /// Logs one line per input: info when clean, warn otherwise. Call it when the node stops.
    pub fn log_summary(&self) {
        for (input, s) in &self.inputs {
            if s.is_clean() {
                tracing::info!(input, received = s.received, "sequence check: no gaps");
            } else {
                tracing::warn!(
                    input,
                    received = s.received,
                    dropped = s.dropped,
                    gaps = s.gaps,
                    out_of_order = s.out_of_order,
                    "sequence check: messages lost or reordered"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_is_clean() {
        let mut t = SeqTracker::new();
        for s in 0..5 {
            assert_eq!(t.observe("image", s), SeqEvent::InOrder);
        }
        let st = t.stats("image").unwrap();
        assert_eq!((st.received, st.dropped, st.last_seq), (5, 0, Some(4)));
        assert!(t.is_clean());
    }

    #[test]
    fn gaps_count_missing_messages() {
        let mut t = SeqTracker::new();
        // Missing: 0 (first message is seq 1), 3 and 4, 8.
        for (s, want) in [
            (1, SeqEvent::Gap { missing: 1 }),
            (2, SeqEvent::InOrder),
            (5, SeqEvent::Gap { missing: 2 }),
            (6, SeqEvent::InOrder),
            (7, SeqEvent::InOrder),
            (9, SeqEvent::Gap { missing: 1 }),
        ] {
            assert_eq!(t.observe("image", s), want, "seq {s}");
        }
        let st = t.stats("image").unwrap();
        assert_eq!(st.dropped, 4);
        assert_eq!(st.gaps, 3);
        assert_eq!(st.first_gaps, vec![[0, 0], [3, 4], [8, 8]]);
        assert_eq!(st.received, 6);
        assert!(!t.is_clean());
        assert_eq!(t.total_dropped(), 4);
    }

    #[test]
    fn duplicates_and_reordering_are_late() {
        let mut t = SeqTracker::new();
        t.observe("a", 0);
        t.observe("a", 2);
        assert_eq!(t.observe("a", 1), SeqEvent::Late);
        assert_eq!(t.observe("a", 2), SeqEvent::Late);
        assert_eq!(t.observe("a", 3), SeqEvent::InOrder);
        let st = t.stats("a").unwrap();
        assert_eq!((st.out_of_order, st.dropped), (2, 1));
    }

    #[test]
    fn inputs_are_independent() {
        let mut t = SeqTracker::new();
        t.observe("image", 0);
        assert_eq!(t.observe("clip_end", 0), SeqEvent::InOrder);
        assert_eq!(t.observe("image", 1), SeqEvent::InOrder);
        assert_eq!(t.all().len(), 2);
        assert!(t.stats("depth").is_none());
    }
}
