//! The dora side of the ingest node: pacing, flow control and the wait before exit.
//!
//! # Pacing and flow control
//! dora input queues drop the *oldest* message when full (default 10), so a source that sends
//! as fast as it decodes loses frames at a slow consumer. The node therefore sends only when:
//! - **`ack` input wired** (recommended): at most `max_in_flight` messages are un-acked. The
//!   consumer acks with its running count of received messages; as long as `max_in_flight` is
//!   below the consumer's `queue_size`, no queue ever overflows. If no ack comes for
//!   `ack_timeout_ms`, the window is assumed lost (warned) and sending resumes, so a consumer
//!   that stops acking slows the stream down instead of hanging it.
//! - **`tick` input wired**: one message per tick (a `dora/timer/...` input sets the rate).
//! - Both: both conditions. Neither: as fast as decoding goes (lossy at a slow consumer).
//!
//! # End of stream
//! After the [`StreamEnd`](vipa_msgs::StreamEnd) the node does not exit at once
//! (dora may drop a message still in flight when its sender exits, see
//! `vipa_node_kit::runtime`): with an `ack` input it waits until everything is acked, else
//! `exit_grace_ms`; a `Stop` ends the wait early.

use std::time::{Duration, Instant};

use dora_node_api::dora_core::config::DataId;
use dora_node_api::{DoraNode, Event, EventStream, TryRecvError};
use eyre::WrapErr;
use vipa_msgs::Ack;
use vipa_msgs::ports;
use vipa_node_kit::{DoraOutputs, InputMsg, LingerEnd, Recv, SeqTracker, linger, recv_until};

use crate::config::IngestConfig;
use crate::ingest::{Ingest, Step, resolve_sources};

/// Flow-control state fed by the node's inputs.
#[derive(Debug)]
struct Flow {
    use_ack: bool,
    use_tick: bool,
    acked: u64,
    ticks: u64,
    stopped: bool,
    seq: SeqTracker,
}

impl Flow {
    fn handle(&mut self, event: &Event) {
        match event {
            Event::Input { id, .. } if id.as_str() == ports::TICK => self.ticks += 1,
            Event::Input { .. } => {
                let Some(msg) = InputMsg::from_event(event) else {
                    return;
                };
                if msg.id != ports::ACK {
                    tracing::warn!(input = %msg.id, "ignoring unexpected input");
                    return;
                }
                match msg.decode::<Ack>() {
                    Ok(ack) => {
                        self.seq.observe(ports::ACK, ack.seq);
                        // Acks carry a running count, so a lost ack is repaired by the next.
                        self.acked = self.acked.max(ack.received);
                    }
                    Err(e) => tracing::warn!("bad ack message: {e}"),
                }
            }
            Event::InputClosed { id } => {
                tracing::info!(input = %id, "input closed");
                if id.as_str() == ports::ACK {
                    // Nobody will ack any more: stop waiting for acks.
                    self.use_ack = false;
                }
            }
            Event::Stop(cause) => {
                tracing::info!(?cause, "stop requested");
                self.stopped = true;
            }
            Event::Error(e) => tracing::warn!("event stream error: {e}"),
            _ => {}
        }
    }
}

/// Runs the node until the stream is done (or dora stops it).
pub fn run(mut node: DoraNode, mut events: EventStream, cfg: IngestConfig) -> eyre::Result<()> {
    let sources = resolve_sources(&cfg).wrap_err("cannot resolve the video sources")?;
    tracing::info!(
        sources = sources.len(),
        left_out = sources.skipped.len(),
        "starting ingest"
    );
    let inputs = &node.node_config().inputs;
    let mut flow = Flow {
        use_ack: inputs.contains_key(&DataId::from(ports::ACK.to_owned())),
        use_tick: inputs.contains_key(&DataId::from(ports::TICK.to_owned())),
        acked: 0,
        ticks: 0,
        stopped: false,
        seq: SeqTracker::new(),
    };
    tracing::info!(
        ack = flow.use_ack,
        tick = flow.use_tick,
        max_in_flight = cfg.max_in_flight,
        "flow control"
    );
    let mut ingest = Ingest::new(&cfg, sources);
    let ack_timeout = Duration::from_millis(cfg.ack_timeout_ms);
    let mut waiting_since: Option<Instant> = None;

    while !ingest.is_finished() && !flow.stopped {
        let credit_ok = !flow.use_ack
            || ingest.sent_messages() - flow.acked.min(ingest.sent_messages()) < cfg.max_in_flight;
        let tick_ok = !flow.use_tick || flow.ticks > 0;
        if credit_ok && tick_ok {
            waiting_since = None;
            // Take what has arrived without blocking, then send one message.
            match events.try_recv() {
                Ok(event) => {
                    flow.handle(&event);
                    continue;
                }
                Err(TryRecvError::Closed) => break,
                Err(TryRecvError::Empty) => {}
            }
            let step = ingest
                .step(&mut DoraOutputs::new(&mut node))
                .wrap_err("ingest failed")?;
            if flow.use_tick && step != Step::Finished {
                flow.ticks -= 1;
            }
            continue;
        }
        // Blocked: wait for an ack or a tick.
        let deadline = if credit_ok {
            // Only waiting for a tick: no deadline beyond a periodic wake-up.
            Instant::now() + Duration::from_secs(3600)
        } else {
            *waiting_since.get_or_insert_with(Instant::now) + ack_timeout
        };
        match recv_until(&mut events, deadline) {
            Recv::Event(event) => flow.handle(&event),
            Recv::Closed => break,
            Recv::Timeout => {
                tracing::warn!(
                    sent = ingest.sent_messages(),
                    acked = flow.acked,
                    "no ack for {} ms: assuming the in-flight messages lost and going on",
                    cfg.ack_timeout_ms
                );
                flow.acked = ingest.sent_messages();
                waiting_since = None;
            }
        }
    }

    if ingest.is_finished() && !flow.stopped {
        let grace = Duration::from_millis(cfg.exit_grace_ms);
        let total = ingest.sent_messages();
        let end = if flow.use_ack && flow.acked < total {
            linger(&mut events, grace, |event| {
                flow.handle(event);
                flow.acked >= total || !flow.use_ack
            })
        } else if flow.use_ack {
            LingerEnd::Confirmed
        } else {
            linger(&mut events, grace, |event| {
                flow.handle(event);
                false
            })
        };
        match end {
            LingerEnd::Confirmed => tracing::info!("receiver confirmed every message"),
            LingerEnd::Stopped => tracing::info!("stopped while waiting before exit"),
            LingerEnd::TimedOut if flow.use_ack => tracing::warn!(
                sent = total,
                acked = flow.acked,
                "receiver did not confirm every message within {} ms",
                cfg.exit_grace_ms
            ),
            LingerEnd::TimedOut => tracing::info!("exit grace period over"),
        }
    }
    flow.seq.log_summary();
    let t = ingest.totals();
    tracing::info!(
        clips = t.clips,
        frames = t.frames,
        bad_sources = t.bad_sources,
        truncated_clips = t.truncated_clips,
        finished = ingest.is_finished(),
        "ingest summary"
    );
    Ok(())
}
