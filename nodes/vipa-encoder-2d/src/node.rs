//! The dora side of the semantic encoder: [`vipa_node_kit::run_stream`] encodes until the
//! stream ends, then stays until dora stops the node (exiting right after the last send can
//! lose it, see `vipa_node_kit::runtime`).

use std::time::Duration;

use dora_node_api::{DoraNode, EventStream};
use eyre::WrapErr;
use vipa_node_kit::run_stream;

use crate::config::Encoder2dConfig;
use crate::encoder::Encoder2d;

/// Runs the encoder until its input ends or dora stops it.
pub fn run(mut node: DoraNode, mut events: EventStream, cfg: Encoder2dConfig) -> eyre::Result<()> {
    let mut enc = Encoder2d::new(&cfg).wrap_err("encoder-2d")?;
    let grace = Duration::from_millis(cfg.exit_grace_ms);
    run_stream("encoder-2d", &mut node, &mut events, &mut enc, grace)
}
