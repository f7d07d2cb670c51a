//! The dora side of the frame-check sink: receive until the stream closes, ack every message,
//! write the summary when the stream end arrives and again (with dora's drop counts) on exit.

use std::collections::BTreeMap;

use dora_node_api::{DoraNode, Event, EventStream};
use eyre::WrapErr;
use vipa_node_kit::{DoraOutputs, InputMsg};

use crate::check::{FrameCheck, write_summary};
use crate::config::FrameCheckConfig;

/// Runs the sink until its inputs close or dora stops it.
pub fn run(mut node: DoraNode, mut events: EventStream, cfg: FrameCheckConfig) -> eyre::Result<()> {
    let path = cfg.summary_path.clone();
    let delay = std::time::Duration::from_millis(cfg.process_delay_ms);
    let mut check = FrameCheck::new(cfg);
    let mut dropped: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(event) = events.recv() {
        match &event {
            Event::Input { .. } => {
                let Some(msg) = InputMsg::from_event(&event) else {
                    continue;
                };
                if !delay.is_zero() && msg.kind() != Some("stream_end") {
                    // Simulated slow consumer: the sender must not outrun it.
                    std::thread::sleep(delay);
                }
                let was_ended = check.stream_ended();
                check
                    .on_input(
                        &msg,
                        vipa_node_kit::unix_time_ns(),
                        &mut DoraOutputs::new(&mut node),
                    )
                    .wrap_err("cannot send ack")?;
                if !was_ended && check.stream_ended() {
                    // Write now: the file is there even if the graph is killed before exit.
                    collect_drops(&mut events, &mut dropped);
                    write_summary(&path, &check.summary(dropped.clone()))
                        .wrap_err_with(|| format!("cannot write summary {}", path.display()))?;
                }
            }
            Event::InputClosed { id } => tracing::info!(input = %id, "input closed"),
            Event::Stop(cause) => tracing::info!(?cause, "stop"),
            Event::Error(e) => tracing::warn!("event stream error: {e}"),
            _ => {}
        }
    }
    collect_drops(&mut events, &mut dropped);
    check.log_summary();
    let summary = check.summary(dropped);
    write_summary(&path, &summary)
        .wrap_err_with(|| format!("cannot write summary {}", path.display()))?;
    if summary.all_delivered {
        tracing::info!(frames = summary.frames, clips = summary.clips.len(), path = %path.display(), "all delivered");
        Ok(())
    } else {
        // A non-zero exit, so that `dora run` (and CI) fails on an incomplete stream instead
        // of exiting 0 with a summary nobody reads.
        Err(eyre::eyre!(
            "stream incomplete: {} (summary: {})",
            summary.problems.join("; "),
            path.display()
        ))
    }
}

fn collect_drops(events: &mut EventStream, dropped: &mut BTreeMap<String, u64>) {
    // Sorted first: the order of summing does not matter, but iterating a HashMap is linted.
    let counts: BTreeMap<String, u64> = events
        .drain_drop_counts()
        .into_iter()
        .map(|(id, n)| (id.to_string(), n))
        .collect();
    for (id, n) in counts {
        *dropped.entry(id).or_default() += n;
    }
}
