//! Run-loop helpers shared by every node: logging setup, the input loop of a node that only
//! reacts to its inputs ([`run_inputs`]), timed receive, and the wait before exit that keeps
//! dora from dropping a node's last messages.
//!
//! # Why a node must not exit right after its last send
//! With dora 1.1 a message still in flight when its sender's process exits can be lost: the
//! sender's shared-memory pool and zenoh publishers are torn down on exit, and the receiver may
//! not have mapped the sample yet (seen in the dora-1.1 probe: the last large frame was missing
//! in 2 of 3 runs). So a sender, after its last message:
//! 1. waits until the receiver confirms it (an `ack` input counting received messages), or
//! 2. without an ack input, waits a bounded grace period, ending early on `Stop`.
//!
//! [`linger`] implements both.

use std::time::{Duration, Instant};

use dora_node_api::{Event, EventStream};

use crate::io::InputMsg;

/// Sets up `tracing` to stderr (dora captures it into the node's log), filtered by `RUST_LOG`
/// (default `info`). Safe to call twice: the second call keeps the first subscriber.
pub fn init_tracing(node_id: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let result = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        // dora captures stderr into log files: colour codes only for a terminal.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    if result.is_ok() {
        tracing::debug!(node = node_id, "tracing ready");
    }
}

/// What a [`run_inputs`] handler wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The node's work is done (e.g. its stream has ended): leave the loop.
    Done,
}

/// The event loop of a node that only reacts to its inputs: hands every input message to
/// `handle` until it returns [`Flow::Done`] or an error, dora stops the node, or the inputs
/// close. Input closes, the stop and event-stream errors are logged.
pub fn run_inputs<E>(
    events: &mut EventStream,
    mut handle: impl FnMut(&InputMsg) -> Result<Flow, E>,
) -> Result<(), E> {
    while let Some(event) = events.recv() {
        match &event {
            Event::Input { .. } => {
                let Some(msg) = InputMsg::from_event(&event) else {
                    continue;
                };
                if handle(&msg)? == Flow::Done {
                    break;
                }
            }
            Event::InputClosed { id } => tracing::info!(input = %id, "input closed"),
            Event::Stop(cause) => {
                tracing::info!(?cause, "stop requested");
                break;
            }
            Event::Error(e) => tracing::warn!("event stream error: {e}"),
            _ => {}
        }
    }
    Ok(())
}

/// The result of a receive with a deadline.
#[derive(Debug)]
pub enum Recv {
    Event(Box<Event>),
    /// The deadline passed with no event.
    Timeout,
    /// The event stream ended (after `Stop`).
    Closed,
}

/// Receives the next event, or [`Recv::Timeout`] once `deadline` has passed.
///
/// dora's `recv_timeout` reports a timeout as an `Event::Error`; this tells the two apart by
/// the clock, so a real error event is still passed on.
pub fn recv_until(events: &mut EventStream, deadline: Instant) -> Recv {
    let now = Instant::now();
    if now >= deadline {
        return match events.try_recv() {
            Ok(event) => Recv::Event(Box::new(event)),
            Err(dora_node_api::TryRecvError::Empty) => Recv::Timeout,
            Err(dora_node_api::TryRecvError::Closed) => Recv::Closed,
        };
    }
    match events.recv_timeout(deadline - now) {
        None => Recv::Closed,
        Some(Event::Error(_)) if Instant::now() >= deadline => Recv::Timeout,
        Some(event) => Recv::Event(Box::new(event)),
    }
}

/// Why [`linger`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LingerEnd {
    /// `done` returned true: the receiver confirmed everything.
    Confirmed,
    /// dora asked the node to stop, or the event stream closed.
    Stopped,
    /// The grace period ran out without confirmation.
    TimedOut,
}

/// Keeps the node alive after its last send until `done` says the receiver has everything,
/// dora stops the node, or `grace` passes. Every event received meanwhile is passed to `done`.
pub fn linger(
    events: &mut EventStream,
    grace: Duration,
    mut done: impl FnMut(&Event) -> bool,
) -> LingerEnd {
    let deadline = Instant::now() + grace;
    loop {
        match recv_until(events, deadline) {
            Recv::Timeout => return LingerEnd::TimedOut,
            Recv::Closed => return LingerEnd::Stopped,
            Recv::Event(event) => {
                if done(&event) {
                    return LingerEnd::Confirmed;
                }
                if matches!(*event, Event::Stop(_)) {
                    return LingerEnd::Stopped;
                }
            }
        }
    }
}
