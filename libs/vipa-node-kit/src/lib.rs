//! `vipa-node-kit`: what every vipa dora node shares.
//!
//! - [`cli`]: [`run_node`], a node's whole `main`: `--help` (its YAML settings) and failures
//!   printed as their error chain (no backtrace unless `VIPA_BACKTRACE=1`); [`exit_code`] for
//!   tools.
//! - [`cache`]: [`FeatureCache`], the on-disk cache of a frozen encoder's outputs.
//! - [`credit`]: [`CreditRequester`], the asking side of the pull protocol (trainer, checker).
//! - [`config`]: YAML node configuration from `VIPA_CONFIG` (a path or inline YAML), with
//!   unknown-key detection and a semantic `validate` step.
//! - [`meta`]: lossless `vipa_msgs::Metadata` ↔ dora `MetadataParameters` conversion.
//! - [`io`]: the [`Outputs`] trait (dora or in-memory recording) and decoding of inputs, so
//!   per-message node logic is a plain struct testable without dora.
//! - [`progress`]: [`ProgressFile`], a long-running node's progress as JSON for `vipa-run`
//!   to draw (a node's own stderr never reaches a terminal under dora).
//! - [`seq`]: [`SeqTracker`], per-input sequence-gap counting.
//! - [`runtime`]: tracing setup, timed receive, [`linger`] (the wait after the last send), and
//!   [`run_stream`], the whole loop of a node that runs until its stream ends ([`StreamLogic`]).
//!
//! # The shape of a vipa node
//! ```text
//! main():  run_node::<Config>(NodeInfo { .. }, run)   (--help; errors print without backtrace)
//!          = init_tracing(id); cfg = load_config()?; (node, events) = DoraNode::init_from_env()?;
//!            run(node, events, cfg)
//! run():   logic = Logic::new(cfg);
//!          while let Some(event) = events.recv() {
//!              Input      → logic.on_input(InputMsg, &mut DoraOutputs)   (SeqTracker inside)
//!              InputClosed → note it;  Stop → break
//!          }
//!          after the last send: linger(events, grace, |e| receiver confirmed everything)
//!          log the SeqTracker summary
//! ```

pub mod cache;
pub mod cli;
pub mod config;
pub mod credit;
pub mod io;
pub mod meta;
pub mod progress;
pub mod runtime;
pub mod seq;

pub use cache::{CachedFeatures, FeatureCache, content_key, file_identity};
pub use cli::{NodeInfo, exit_code, node_main, run_node};
pub use config::{
    CONFIG_ENV, ConfigError, NodeConfig, Paths, from_path, from_yaml_str, load_config,
};
pub use credit::CreditRequester;
pub use io::{DoraOutputs, InputMsg, IoError, Outputs, RecordingOutputs, Sent};
pub use progress::{Progress, ProgressFile};
pub use runtime::{
    BoxError, EncoderError, Flow, LingerEnd, Recv, StreamError, StreamLogic, StreamState, Triage,
    init_tracing, linger, recv_until, run_inputs, run_stream,
};
pub use seq::{SeqEvent, SeqGap, SeqStats, SeqTracker};

/// Current time as nanoseconds since the Unix epoch (0 if the clock is before 1970).
///
/// Used for cross-process latency stamps; both processes must share a clock (one machine).
pub fn unix_time_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
