//! The dora side of the reader: answer requests until the data ends, then wait for the
//! requester to go (dora may drop a message still in flight when its sender exits).

use std::time::Duration;

use dora_node_api::{DoraNode, Event, EventStream};
use eyre::WrapErr;
use vipa_msgs::ports;
use vipa_node_kit::{DoraOutputs, InputMsg, LingerEnd, linger};

use crate::config::ReaderConfig;
use crate::reader::Reader;

/// Runs the reader until the data ends (and the requester is gone) or dora stops it.
pub fn run(mut node: DoraNode, mut events: EventStream, cfg: ReaderConfig) -> eyre::Result<()> {
    let mut reader = Reader::open(&cfg).wrap_err("dataset reader")?;
    while let Some(event) = events.recv() {
        match &event {
            Event::Input { .. } => {
                let Some(msg) = InputMsg::from_event(&event) else {
                    continue;
                };
                reader
                    .on_input(&msg, &mut DoraOutputs::new(&mut node))
                    .wrap_err("dataset reader")?;
                if reader.is_ended() {
                    break;
                }
            }
            Event::InputClosed { id } if id.as_str() == ports::REQUEST => {
                tracing::warn!("the requester went away before the end of the data");
                break;
            }
            Event::Stop(cause) => {
                tracing::info!(?cause, "stop requested");
                break;
            }
            Event::Error(e) => tracing::warn!("event stream error: {e}"),
            _ => {}
        }
    }
    if reader.is_ended() {
        // The requester leaves once it has every stream end; wait for that (its `request`
        // input closing), so our last messages are not lost by exiting early.
        let grace = Duration::from_millis(cfg.exit_grace_ms);
        let end = linger(
            &mut events,
            grace,
            |e| matches!(e, Event::InputClosed { id } if id.as_str() == ports::REQUEST),
        );
        if end == LingerEnd::TimedOut {
            tracing::info!("exit grace period over");
        }
    }
    reader.seq().log_summary();
    let t = reader.totals();
    tracing::info!(
        samples = t.samples,
        passed_over = t.passed_over,
        images = t.images,
        pointmaps = t.pointmaps,
        skipped = t.skipped,
        credits_unused = t.credits_unused,
        "reader summary"
    );
    Ok(())
}
