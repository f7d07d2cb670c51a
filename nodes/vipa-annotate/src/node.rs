//! The dora side of the annotate node: receive until the manifest is written, then wait for
//! video-ingest to exit (it exits once it has the final ack) so the final ack is not lost.

use std::time::Duration;

use dora_node_api::{DoraNode, Event, EventStream};
use eyre::WrapErr;
use vipa_msgs::ports;
use vipa_node_kit::{DoraOutputs, InputMsg, LingerEnd, linger};

use crate::annotate::Annotator;
use crate::config::AnnotateConfig;

/// Runs the node until the dataset is finished (or the inputs close / dora stops it).
pub fn run(mut node: DoraNode, mut events: EventStream, cfg: AnnotateConfig) -> eyre::Result<()> {
    let grace = Duration::from_millis(cfg.exit_grace_ms);
    tracing::info!(out = %cfg.out.display(), clip_info_dir = %cfg.clip_info_dir.display(), "starting annotate");
    let mut ann = Annotator::new(cfg).wrap_err("cannot open the dataset for writing")?;
    let mut image_closed = false;
    while let Some(event) = events.recv() {
        match &event {
            Event::Input { .. } => {
                if let Some(msg) = InputMsg::from_event(&event) {
                    ann.on_input(&msg, &mut DoraOutputs::new(&mut node))
                        .wrap_err("annotation failed")?;
                }
            }
            Event::InputClosed { id } => {
                tracing::info!(input = %id, "input closed");
                image_closed |= id.as_str() == ports::IMAGE;
            }
            Event::Stop(cause) => tracing::info!(?cause, "stop"),
            Event::Error(e) => tracing::warn!("event stream error: {e}"),
            _ => {}
        }
        if ann.is_finished() {
            break;
        }
    }
    if ann.is_finished() && !image_closed {
        // Ingest exits once it has the final ack; its `image` input closing confirms that.
        let end = linger(
            &mut events,
            grace,
            |e| matches!(e, Event::InputClosed { id } if id.as_str() == ports::IMAGE),
        );
        if end == LingerEnd::TimedOut {
            tracing::warn!(
                "video-ingest did not exit within {} ms after the final ack",
                grace.as_millis()
            );
        }
    }
    ann.on_all_closed().wrap_err("annotation failed")?;
    ann.log_summary();
    Ok(())
}
