//! The dora side of the semantic encoder: encode until the stream ends, then stay until dora
//! stops the node (exiting right after the last send can lose it, see `vipa_node_kit::runtime`).

use std::time::Duration;

use dora_node_api::{DoraNode, EventStream};
use eyre::WrapErr;
use vipa_node_kit::{DoraOutputs, Flow, linger, run_inputs};

use crate::config::Encoder2dConfig;
use crate::encoder::Encoder2d;

/// Runs the encoder until its input ends or dora stops it.
pub fn run(mut node: DoraNode, mut events: EventStream, cfg: Encoder2dConfig) -> eyre::Result<()> {
    let mut enc = Encoder2d::new(&cfg).wrap_err("encoder-2d")?;
    run_inputs(&mut events, |msg| {
        enc.on_input(msg, &mut DoraOutputs::new(&mut node))
            .wrap_err("encoder-2d")?;
        eyre::Ok(if enc.is_ended() {
            Flow::Done
        } else {
            Flow::Continue
        })
    })?;
    if enc.is_ended() {
        // Nothing confirms receipt here; stay until dora stops us (the graph winds down once
        // the consumer has every stream end) or the grace period passes.
        linger(
            &mut events,
            Duration::from_millis(cfg.exit_grace_ms),
            |_| false,
        );
    }
    enc.seq().log_summary();
    if let Some((hits, misses)) = enc.cache_stats() {
        tracing::info!(hits, misses, "feature cache");
    }
    tracing::info!(
        sent = enc.sent(),
        ended = enc.is_ended(),
        "encoder-2d summary"
    );
    Ok(())
}
