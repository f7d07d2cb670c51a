//! The dora side of lift-depth: receive, lift, send, until the inputs close.
//!
//! No linger is needed after the last send: in `annotate.yml` video-ingest exits only once the
//! annotate node has acked every frame, and annotate acks a frame only after its point map
//! arrived, so this node's inputs close (and it exits) after its last message was delivered.

use dora_node_api::{DoraNode, EventStream};
use eyre::WrapErr;
use vipa_node_kit::{DoraOutputs, Flow, run_inputs};

use crate::config::LiftDepthConfig;
use crate::lift::LiftDepth;

/// Runs the node until its inputs close or dora stops it.
pub fn run(mut node: DoraNode, mut events: EventStream, cfg: LiftDepthConfig) -> eyre::Result<()> {
    tracing::info!(backend = cfg.backend.as_str(), sidecar_dir = %cfg.sidecar_dir.display(), "starting lift-depth");
    let mut lift = LiftDepth::new(cfg).wrap_err("cannot set up the depth backend")?;
    run_inputs(&mut events, |msg| {
        lift.on_input(msg, &mut DoraOutputs::new(&mut node))
            .wrap_err("cannot send a point map")?;
        eyre::Ok(Flow::Continue)
    })?;
    lift.log_summary();
    Ok(())
}
