//! `feature-check`: a requester/checker node for the pretraining feature graph
//! (`dataflows/features.yml`). It plays the trainer's side of the pull protocol:
//!
//! - sends `request` credits (`credits` at a time, the next request once every requested
//!   sample has arrived; the last request is resent with the same `seq` after `resend_ms`
//!   without progress, which the reader ignores if it already had it);
//! - receives `sample` (`QaBatch`), `tokens_2d` and `tokens_3d` (`TensorMsg`), joins them by
//!   `sample_seq`, and checks: one sample per `sample_seq` 0, 1, 2, …; for each, `n_frames`
//!   token messages on both token inputs with `frame_slot` 0 … n_frames−1; one shape per token
//!   stream; gap-free `seq` on every input; a `StreamEnd` on every input whose count matches;
//! - writes a JSON summary to `summary_path` and exits once every input has ended (or after
//!   `timeout_ms`).
//!
//! Config (`VIPA_CONFIG`):
//!
//! ```yaml
//! summary_path: ../out/features/summary.json
//! credits: 2          # samples asked for at a time
//! resend_ms: 5000     # resend the last request after this long without progress
//! timeout_ms: 300000  # give up (and report it) after this long
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dora_node_api::{DoraNode, Event, EventStream};
use eyre::WrapErr;
use serde::{Deserialize, Serialize};
use vipa_msgs::meta::keys;
use vipa_msgs::ports;
use vipa_msgs::{MetaValue, Metadata, Payload, QaBatch, StreamEnd, TensorMsg, kind_of};
use vipa_node_kit::{
    CreditRequester, DoraOutputs, InputMsg, NodeInfo, Outputs, Recv, SeqTracker, recv_until,
};

const INPUTS: [&str; 3] = [ports::SAMPLE, ports::TOKENS_2D, ports::TOKENS_3D];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    summary_path: PathBuf,
    credits: u32,
    resend_ms: u64,
    timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            summary_path: PathBuf::from("../out/features/summary.json"),
            credits: 2,
            resend_ms: 5_000,
            timeout_ms: 300_000,
        }
    }
}

impl vipa_node_kit::NodeConfig for Config {
    fn validate(&self) -> Result<(), String> {
        if self.credits == 0 {
            return Err("`credits` must be >= 1".into());
        }
        Ok(())
    }
}

/// What arrived for one sample.
#[derive(Debug, Default)]
struct Joined {
    sample: bool,
    n_frames: Option<i64>,
    slots_2d: Vec<i64>,
    slots_3d: Vec<i64>,
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    requests: u64,
    resent_requests: u64,
    samples: u64,
    /// Samples with their sample message and every frame's tokens on both streams.
    samples_complete: u64,
    tokens_2d: u64,
    tokens_3d: u64,
    shape_2d: Option<Vec<usize>>,
    shape_3d: Option<Vec<usize>>,
    n_frames: Vec<i64>,
    clip_ids: Vec<String>,
    stream_ends: BTreeMap<String, u64>,
    dropped: BTreeMap<String, u64>,
    problems: Vec<String>,
    all_delivered: bool,
    elapsed_s: f64,
}

struct Check {
    joined: BTreeMap<i64, Joined>,
    seq: SeqTracker,
    s: Summary,
}

fn int(meta: &Metadata, key: &str) -> Option<i64> {
    match meta.get(key) {
        Some(MetaValue::Integer(i)) => Some(*i),
        _ => None,
    }
}

impl Check {
    /// Returns true when the message was data (progress).
    fn on_input(&mut self, msg: &InputMsg) -> bool {
        let seq = int(&msg.meta, "seq").unwrap_or(-1);
        if seq < 0 {
            self.s
                .problems
                .push(format!("{}: message without seq", msg.id));
        } else {
            self.seq.observe(&msg.id, seq as u64);
        }
        if kind_of(&msg.meta) == Some("stream_end") {
            match StreamEnd::from_arrow(msg.array.as_ref(), &msg.meta) {
                Ok(end) => {
                    self.s.stream_ends.insert(msg.id.clone(), end.frames);
                }
                Err(e) => self
                    .s
                    .problems
                    .push(format!("{}: bad stream end: {e}", msg.id)),
            }
            return true;
        }
        let Some(sample_seq) = int(&msg.meta, keys::SAMPLE_SEQ) else {
            self.s
                .problems
                .push(format!("{} seq {seq}: no sample_seq", msg.id));
            return true;
        };
        let n_frames = int(&msg.meta, keys::N_FRAMES);
        let entry = self.joined.entry(sample_seq).or_default();
        if entry.n_frames.is_some() && entry.n_frames != n_frames {
            self.s
                .problems
                .push(format!("sample {sample_seq}: n_frames disagree"));
        }
        entry.n_frames = n_frames;
        match msg.id.as_str() {
            ports::SAMPLE => match QaBatch::from_arrow(msg.array.as_ref(), &msg.meta) {
                Ok(b) if b.samples.len() == 1 && b.header.seq as i64 == sample_seq => {
                    if entry.sample {
                        self.s.problems.push(format!("sample {sample_seq}: twice"));
                    }
                    entry.sample = true;
                    self.s.samples += 1;
                    self.s.clip_ids.push(b.header.clip_id);
                }
                Ok(b) => self.s.problems.push(format!(
                    "sample {sample_seq}: {} samples, header seq {}",
                    b.samples.len(),
                    b.header.seq
                )),
                Err(e) => self.s.problems.push(format!("sample {sample_seq}: {e}")),
            },
            id @ (ports::TOKENS_2D | ports::TOKENS_3D) => {
                let slot = int(&msg.meta, keys::FRAME_SLOT).unwrap_or(-1);
                match TensorMsg::from_arrow(msg.array.as_ref(), &msg.meta) {
                    Ok(t) => {
                        let (count, shape, slots) = if id == ports::TOKENS_2D {
                            (
                                &mut self.s.tokens_2d,
                                &mut self.s.shape_2d,
                                &mut entry.slots_2d,
                            )
                        } else {
                            (
                                &mut self.s.tokens_3d,
                                &mut self.s.shape_3d,
                                &mut entry.slots_3d,
                            )
                        };
                        *count += 1;
                        slots.push(slot);
                        if t.expect_axes(&["tokens", "channels"]).is_err() {
                            self.s
                                .problems
                                .push(format!("{id} seq {seq}: axes {:?}", t.axes));
                        }
                        match shape {
                            None => *shape = Some(t.shape.clone()),
                            Some(s) if *s != t.shape => self.s.problems.push(format!(
                                "{id} seq {seq}: shape {:?}, earlier {s:?}",
                                t.shape
                            )),
                            Some(_) => {}
                        }
                        if t.f32_values()
                            .map(|v| v.iter().any(|x| !x.is_finite()))
                            .unwrap_or(true)
                        {
                            self.s
                                .problems
                                .push(format!("{id} seq {seq}: not finite f32"));
                        }
                    }
                    Err(e) => self.s.problems.push(format!("{id} seq {seq}: {e}")),
                }
            }
            other => self.s.problems.push(format!("unexpected input {other}")),
        }
        true
    }

    fn all_ended(&self) -> bool {
        INPUTS.iter().all(|i| self.s.stream_ends.contains_key(*i))
    }

    fn finish(mut self, elapsed: Duration) -> Summary {
        let mut s = std::mem::take(&mut self.s);
        for (i, (sample_seq, j)) in self.joined.iter().enumerate() {
            if *sample_seq != i as i64 {
                s.problems
                    .push(format!("sample_seq {sample_seq} at position {i}: a gap"));
            }
            let n = j.n_frames.unwrap_or(-1);
            let want: Vec<i64> = (0..n.max(0)).collect();
            let mut s2 = j.slots_2d.clone();
            let mut s3 = j.slots_3d.clone();
            s2.sort_unstable();
            s3.sort_unstable();
            if j.sample && n > 0 && s2 == want && s3 == want {
                s.samples_complete += 1;
            } else {
                s.problems.push(format!(
                    "sample {sample_seq}: sample {} n_frames {n} 2d slots {s2:?} 3d slots {s3:?}",
                    j.sample
                ));
            }
            s.n_frames.push(n);
        }
        s.n_frames.dedup();
        for input in INPUTS {
            match self.seq.stats(input) {
                Some(st) if !st.is_clean() => {
                    s.dropped.insert(input.into(), st.dropped + st.out_of_order);
                    s.problems.push(format!(
                        "{input}: {} dropped, {} out of order",
                        st.dropped, st.out_of_order
                    ));
                }
                None => s.problems.push(format!("{input}: nothing received")),
                Some(_) => {}
            }
        }
        for (input, count) in [
            (ports::SAMPLE, s.samples),
            (ports::TOKENS_2D, s.tokens_2d),
            (ports::TOKENS_3D, s.tokens_3d),
        ] {
            match s.stream_ends.get(input) {
                Some(&n) if n == count => {}
                Some(&n) => s
                    .problems
                    .push(format!("{input}: stream end says {n}, received {count}")),
                None => s.problems.push(format!("{input}: no stream end")),
            }
        }
        s.all_delivered = s.problems.is_empty() && s.samples > 0;
        s.elapsed_s = elapsed.as_secs_f64();
        s
    }
}

fn main() -> ExitCode {
    let info = NodeInfo {
        name: "feature-check",
        about: "test-only requester and checker of the pretraining feature graph: plays the \
                trainer's side of the pull protocol and checks every sample and token stream",
        config_source: include_str!("main.rs"),
    };
    vipa_node_kit::run_node::<Config>(info, run_check)
}

fn run_check(mut node: DoraNode, mut events: EventStream, cfg: Config) -> eyre::Result<()> {
    let start = Instant::now();
    let mut check = Check {
        joined: BTreeMap::new(),
        seq: SeqTracker::new(),
        s: Summary::default(),
    };
    // A whole window at a time, once everything asked for has arrived.
    let mut requester = CreditRequester::new(cfg.credits).refill_at(cfg.credits);
    if let Some(req) = requester.next(0) {
        DoraOutputs::new(&mut node)
            .send(ports::REQUEST, &req)
            .wrap_err("send request")?;
    }
    let mut last_progress = Instant::now();
    let deadline = start + Duration::from_millis(cfg.timeout_ms);
    while !check.all_ended() {
        if Instant::now() >= deadline {
            check
                .s
                .problems
                .push(format!("timed out after {} ms", cfg.timeout_ms));
            break;
        }
        let wake = (last_progress + Duration::from_millis(cfg.resend_ms)).min(deadline);
        match recv_until(&mut events, wake) {
            Recv::Event(event) => match &*event {
                Event::Input { .. } => {
                    let Some(msg) = InputMsg::from_event(&event) else {
                        continue;
                    };
                    if check.on_input(&msg) {
                        last_progress = Instant::now();
                    }
                    let sample_ended = check.s.stream_ends.contains_key(ports::SAMPLE);
                    if !sample_ended && let Some(req) = requester.next(check.s.samples) {
                        DoraOutputs::new(&mut node)
                            .send(ports::REQUEST, &req)
                            .wrap_err("send request")?;
                    }
                }
                Event::Stop(_) => break,
                _ => {}
            },
            Recv::Timeout => {
                if !check.s.stream_ends.contains_key(ports::SAMPLE)
                    && let Some(req) = requester.last()
                {
                    tracing::warn!(seq = req.seq, "no progress: resending the last request");
                    DoraOutputs::new(&mut node)
                        .send(ports::REQUEST, &req)
                        .wrap_err("send request")?;
                    check.s.resent_requests += 1;
                }
                last_progress = Instant::now();
            }
            Recv::Closed => break,
        }
    }
    check.s.requests = requester.requests();
    let summary = check.finish(start.elapsed());
    if let Some(dir) = cfg.summary_path.parent() {
        std::fs::create_dir_all(dir).wrap_err_with(|| format!("create {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&summary)?;
    std::fs::write(&cfg.summary_path, text)
        .wrap_err_with(|| format!("write {}", cfg.summary_path.display()))?;
    if summary.all_delivered {
        tracing::info!(
            samples = summary.samples,
            "all samples delivered with both token streams"
        );
    } else {
        tracing::warn!(problems = ?summary.problems, "feature stream incomplete");
    }
    Ok(())
}
