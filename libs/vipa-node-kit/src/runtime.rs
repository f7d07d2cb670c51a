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

/// Marker of the WARN lines dora-node-api 1.1 logs for its first large sends
/// (`output `image`: 921600 B -> daemon path (dora-rs/dora#2742 diagnostic)`): a debugging aid
/// of dora's, not a problem of the run.
const DORA_SEND_DIAGNOSTIC: &[u8] = b"dora-rs/dora#2742 diagnostic";

/// Environment variable that keeps dora's send diagnostics in the log (`1`).
pub const DORA_DIAGNOSTICS_ENV: &str = "VIPA_DORA_DIAGNOSTICS";

/// stderr without dora's send diagnostics. The fmt layer writes each event in one call, so a
/// line is dropped whole.
struct QuietStderr {
    keep_diagnostics: bool,
}

/// Whether a formatted log line is one of dora's send diagnostics.
pub fn is_dora_send_diagnostic(line: &[u8]) -> bool {
    line.windows(DORA_SEND_DIAGNOSTIC.len())
        .any(|w| w == DORA_SEND_DIAGNOSTIC)
}

impl std::io::Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if is_dora_send_diagnostic(buf) && !self.keep_diagnostics {
            return Ok(buf.len());
        }
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Sets up `tracing` to stderr (dora captures it into the node's log), filtered by `RUST_LOG`
/// (default `info`). dora-node-api's WARN diagnostics of large sends are left out unless
/// `VIPA_DORA_DIAGNOSTICS=1`. Safe to call twice: the second call keeps the first subscriber.
pub fn init_tracing(node_id: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let keep_diagnostics = std::env::var(DORA_DIAGNOSTICS_ENV).is_ok_and(|v| v == "1");
    let result = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || QuietStderr { keep_diagnostics })
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

/// The bookkeeping of a node that turns one input stream into one output stream: its input
/// sequence tracking, its output `seq` (messages sent) and whether the end was forwarded.
#[derive(Debug, Clone, Default)]
pub struct StreamState {
    /// Input sequence tracking.
    pub seq: crate::SeqTracker,
    /// Messages sent so far: the next output message's `seq`.
    pub sent: u64,
    /// Whether the end of the stream was forwarded.
    pub ended: bool,
}

/// What an input message of a stream is, once [`StreamState::triage`] has seen it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Triage {
    /// The end of the stream: checked and forwarded; nothing more will come.
    Ended,
    /// A control message (e.g. a clip end wired into this input): nothing to do.
    Control,
    /// Data, for the node to decode and handle.
    Data,
}

/// Why a stream message could not be triaged.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The end-of-stream message is malformed.
    #[error("input `{input}`: {source}")]
    Decode {
        input: String,
        #[source]
        source: vipa_msgs::MsgError,
    },
    /// Messages were lost before it.
    #[error(transparent)]
    Gap(#[from] crate::SeqGap),
    /// Forwarding the end failed.
    #[error(transparent)]
    Io(#[from] crate::IoError),
}

/// A boxed error of any source (a model's, a device's), so that this crate names neither.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a frozen-encoder node (encoder-2d, encoder-3d: a [`StreamLogic`] that turns each frame
/// into features) cannot go on. One type for both: they fail in the same ways.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    /// The model could not be built or run; `context` says which and on what.
    #[error("{context}: {source}")]
    Model {
        context: String,
        #[source]
        source: BoxError,
    },
    #[error(
        "{0}; a lost frame would silently drop a training sample, so the encoder stops (raise the input's queue_size)"
    )]
    Gap(#[from] crate::SeqGap),
    #[error(transparent)]
    Stream(Box<StreamError>),
    #[error("input `{input}`: {source}")]
    Decode {
        input: String,
        #[source]
        source: Box<vipa_msgs::MsgError>,
    },
    /// The configured device is not available.
    #[error(transparent)]
    Device(BoxError),
    #[error(transparent)]
    Io(Box<crate::IoError>),
    #[error("feature cache {path}: {source} (fix the folder's permissions or set `cache: null`)")]
    Cache {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<StreamError> for EncoderError {
    fn from(e: StreamError) -> Self {
        Self::Stream(Box::new(e))
    }
}

impl From<crate::IoError> for EncoderError {
    fn from(e: crate::IoError) -> Self {
        Self::Io(Box::new(e))
    }
}

impl EncoderError {
    /// `map_err` for a model error: `.map_err(EncoderError::model("3D encoder weights"))`.
    pub fn model<E>(context: impl Into<String>) -> impl FnOnce(E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let context = context.into();
        move |source| Self::Model {
            context,
            source: Box::new(source),
        }
    }

    /// `map_err` for a message on `input` that does not decode.
    pub fn decode(input: impl Into<String>) -> impl FnOnce(vipa_msgs::MsgError) -> Self {
        let input = input.into();
        move |source| Self::Decode {
            input,
            source: Box::new(source),
        }
    }

    /// A model error from a message (no source error to wrap).
    pub fn model_msg(context: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Model {
            context: context.into(),
            source: message.into().into(),
        }
    }

    /// `map_err` for the device choice's error.
    pub fn device<E>(e: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Self::Device(Box::new(e))
    }
}

impl StreamState {
    /// The common start of a stream node's input handling: a stream end is sequence-checked
    /// and forwarded on `output` ([`Triage::Ended`]), a control message is left alone
    /// ([`Triage::Control`]); anything else is [`Triage::Data`], whose `seq` the caller checks
    /// once decoded.
    pub fn triage(
        &mut self,
        msg: &InputMsg,
        output: &str,
        out: &mut impl crate::Outputs,
    ) -> Result<Triage, StreamError> {
        use vipa_msgs::Payload;
        if msg.kind() == Some("stream_end") {
            let end = vipa_msgs::StreamEnd::from_arrow(msg.array.as_ref(), &msg.meta).map_err(
                |source| StreamError::Decode {
                    input: msg.id.clone(),
                    source,
                },
            )?;
            self.seq.observe_gapless(&msg.id, end.header.seq)?;
            self.forward_end(&end, output, out)?;
            return Ok(Triage::Ended);
        }
        if vipa_msgs::Control::is_control(&msg.meta) {
            tracing::debug!(kind = ?msg.kind(), "ignoring control message");
            return Ok(Triage::Control);
        }
        Ok(Triage::Data)
    }

    /// Forwards the end of the input stream on `output`, renumbered in this node's output
    /// sequence (`frames` = what this node sent), and marks the stream ended.
    pub fn forward_end(
        &mut self,
        end: &vipa_msgs::StreamEnd,
        output: &str,
        out: &mut impl crate::Outputs,
    ) -> Result<(), crate::IoError> {
        let fwd = vipa_msgs::StreamEnd {
            header: vipa_msgs::StreamHeader {
                seq: self.sent,
                ..vipa_msgs::StreamHeader::default()
            },
            clips: end.clips,
            frames: self.sent,
            bad_sources: end.bad_sources,
        };
        out.send(output, &fwd)?;
        self.ended = true;
        tracing::info!(frames = self.sent, "end of stream forwarded");
        Ok(())
    }
}

/// A node that handles its input messages one by one until its stream has ended, as the
/// frozen encoders do: the logic, testable without dora (with [`crate::RecordingOutputs`]),
/// that [`run_stream`] drives.
pub trait StreamLogic {
    /// Why it cannot go on.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Handles one input message.
    fn on_input(
        &mut self,
        msg: &InputMsg,
        out: &mut impl crate::Outputs,
    ) -> Result<(), Self::Error>;
    /// Its bookkeeping.
    fn stream(&self) -> &StreamState;
    /// Feature-cache `(hits, misses)`, where it has a cache.
    fn cache_stats(&self) -> Option<(u64, u64)> {
        None
    }
    /// Whether the end of its stream was forwarded (nothing more will be sent).
    fn is_ended(&self) -> bool {
        self.stream().ended
    }
    /// Messages sent so far.
    fn sent(&self) -> u64 {
        self.stream().sent
    }
    /// Its input sequence tracking.
    fn seq(&self) -> &crate::SeqTracker {
        &self.stream().seq
    }
}

/// Runs `logic` over the node's inputs until its stream has ended (or dora stops it, or the
/// inputs close), then stays up to `grace` until dora stops the node: nothing confirms receipt
/// of its last messages, and exiting right after them can lose them (module docs). Ends with a
/// summary: sequence gaps, cache hits, messages sent.
pub fn run_stream<L: StreamLogic>(
    name: &str,
    node: &mut dora_node_api::DoraNode,
    events: &mut EventStream,
    logic: &mut L,
    grace: Duration,
) -> eyre::Result<()> {
    use eyre::WrapErr;
    run_inputs(events, |msg| {
        logic
            .on_input(msg, &mut crate::DoraOutputs::new(node))
            .wrap_err_with(|| name.to_owned())?;
        eyre::Ok(if logic.is_ended() {
            Flow::Done
        } else {
            Flow::Continue
        })
    })?;
    if logic.is_ended() {
        // The graph winds down once the consumer has every stream end.
        linger(events, grace, |_| false);
    }
    logic.seq().log_summary();
    if let Some((hits, misses)) = logic.cache_stats() {
        tracing::info!(hits, misses, "feature cache");
    }
    tracing::info!(
        node = name,
        sent = logic.sent(),
        ended = logic.is_ended(),
        "summary"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dora_send_diagnostics_are_recognised_and_nothing_else() {
        let diag = b"2026-12-07T16:00:00Z  WARN output `image`: 921600 B -> daemon path \
                     (dora-rs/dora#2742 diagnostic)\n";
        assert!(is_dora_send_diagnostic(diag));
        let real = b"2026-12-07T16:00:00Z  WARN zenoh publish failed (x); message dropped\n";
        assert!(!is_dora_send_diagnostic(real));
    }
}
