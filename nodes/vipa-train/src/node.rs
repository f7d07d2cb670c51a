//! The dora side of the training node: the trainer's half of the pull protocol.
//!
//! The node asks the reader for `credits` samples (`request`), and asks for one more each time
//! a sample has been consumed, never more than the run still needs. It joins the three input
//! streams ([`crate::join`]), trains (or evaluates) on each sample in order, and exits when
//! `max_steps` (or `eval.max_samples`) is reached or the feed ends. Exiting closes the reader's
//! `request` input, which ends the reader and then the encoders: the whole graph winds down.
//!
//! A resumed run first consumes (and drops) the samples its checkpoint already trained on:
//! the reader's order is a function of its seed alone, so the remaining samples are exactly
//! those the uninterrupted run would have seen.

use std::time::{Duration, Instant};

use dora_node_api::{DoraNode, Event, EventStream};
use eyre::WrapErr;
use vipa_msgs::ports;
use vipa_node_kit::{CreditRequester, DoraOutputs, InputMsg, Outputs, Recv, recv_until};

use crate::config::{Mode, TrainConfig};
use crate::eval::Evaluator;
use crate::join::Joiner;
use crate::trainer::Trainer;

/// What consumes joined samples.
enum Sink {
    Train(Box<Trainer>),
    Eval(Box<Evaluator>),
}

impl Sink {
    fn needs_3d(&self) -> bool {
        match self {
            Sink::Train(t) => t.needs_3d(),
            Sink::Eval(e) => e.needs_3d(),
        }
    }

    fn done(&self) -> bool {
        match self {
            Sink::Train(t) => t.done(),
            Sink::Eval(e) => e.done(),
        }
    }

    /// Samples of the feed to drop before consuming (a resumed run's already-trained part).
    fn skip(&self) -> u64 {
        match self {
            Sink::Train(t) => t.samples_seen(),
            Sink::Eval(_) => 0,
        }
    }

    /// Samples still wanted (after the skipped ones), if bounded.
    fn wanted(&self, cfg: &TrainConfig) -> Option<u64> {
        match self {
            Sink::Train(t) => Some(t.samples_needed()),
            Sink::Eval(e) => cfg.eval.max_samples.map(|m| m.saturating_sub(e.scored())),
        }
    }
}

/// Runs the node until its run is complete or the feed ends.
pub fn run(mut node: DoraNode, mut events: EventStream, cfg: TrainConfig) -> eyre::Result<()> {
    let dev = cfg.device.resolve()?;
    tracing::info!(device = %vipa_models::device::describe(&dev), "training device");
    let mut sink = match cfg.mode {
        Mode::Train => Sink::Train(Box::new(Trainer::new(&cfg, &dev).wrap_err("trainer")?)),
        Mode::Eval => Sink::Eval(Box::new(Evaluator::new(&cfg, &dev).wrap_err("evaluator")?)),
    };
    // A resumed run asks the reader to pass over the samples its checkpoint already trained
    // on (the first request's `skip`), so they are neither sent nor encoded again; the first
    // sample to arrive is then number `skip`.
    let skip = sink.skip();
    let mut joiner = Joiner::new(sink.needs_3d()).starting_at(skip);
    let mut requester = CreditRequester::new(cfg.credits)
        .with_budget(sink.wanted(&cfg))
        .skipping(skip);
    // Asks for what the window has room for; nothing once the feed has ended.
    let ask = |node: &mut DoraNode, joiner: &Joiner, requester: &mut CreditRequester| {
        if joiner.samples_ended() {
            return eyre::Ok(());
        }
        if let Some(r) = requester.next(joiner.delivered() - skip) {
            DoraOutputs::new(node)
                .send(ports::REQUEST, &r)
                .wrap_err("sending a request")?;
        }
        Ok(())
    };
    if skip > 0 {
        tracing::info!(
            skip,
            "resumed: the reader passes over the samples the checkpoint already trained on"
        );
    }
    let resend = Duration::from_millis(cfg.resend_ms);
    ask(&mut node, &joiner, &mut requester)?;
    let mut last_progress = Instant::now();
    let mut stopped = false;
    'outer: while !sink.done() {
        match recv_until(&mut events, last_progress + resend) {
            Recv::Event(event) => match &*event {
                Event::Input { .. } => {
                    let Some(msg) = InputMsg::from_event(&event) else {
                        continue;
                    };
                    joiner.on_input(&msg).wrap_err("pretraining feed")?;
                    last_progress = Instant::now();
                    while let Some(j) = joiner.pop_ready() {
                        // The joiner starts at `skip`: every sample it hands out is new.
                        match &mut sink {
                            Sink::Train(t) => t.train_sample(&j)?,
                            Sink::Eval(e) => e.eval_sample(&j)?,
                        }
                        if sink.done() {
                            break 'outer;
                        }
                        ask(&mut node, &joiner, &mut requester)?;
                    }
                    if joiner.samples_ended() && joiner.pending() == 0 {
                        tracing::info!(
                            delivered = joiner.delivered(),
                            "the feed ended before the run was complete"
                        );
                        break;
                    }
                }
                Event::InputClosed { id } => tracing::info!(input = %id, "input closed"),
                Event::Stop(cause) => {
                    tracing::info!(?cause, "stop requested");
                    stopped = true;
                    break;
                }
                Event::Error(e) => tracing::warn!("event stream error: {e}"),
                _ => {}
            },
            Recv::Timeout => {
                // Nothing for a while: a request may have been lost; the reader ignores a
                // repeated seq it already counted.
                if let Some(r) = requester.last()
                    && !joiner.samples_ended()
                {
                    tracing::warn!(
                        seq = r.seq,
                        "no data for {resend:?}: resending the last request"
                    );
                    DoraOutputs::new(&mut node)
                        .send(ports::REQUEST, &r)
                        .wrap_err("sending a request")?;
                }
                last_progress = Instant::now();
            }
            Recv::Closed => break,
        }
    }
    joiner.seq().log_summary();
    match sink {
        Sink::Train(t) => {
            let s = t.finish()?;
            tracing::info!(
                steps = s.steps,
                first_loss = ?s.first_loss,
                last_loss = ?s.last_loss,
                samples_per_s = s.samples_per_s,
                checkpoint = ?s.checkpoint,
                plot = ?s.plot,
                stopped,
                "training finished"
            );
        }
        Sink::Eval(e) => {
            let r = e.finish()?;
            tracing::info!(label = %r.label, n = r.overall.n, "evaluation finished");
        }
    }
    Ok(())
}
