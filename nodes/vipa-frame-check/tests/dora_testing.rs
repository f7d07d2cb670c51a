//! The frame-check node's dora loop, driven by dora's integration-testing mode (no daemon):
//! inputs from a JSON event list, outputs captured on a channel.

// Test helpers outside `#[test]` functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use dora_node_api::DoraNode;
use dora_node_api::integration_testing::{
    TestingInput, TestingOptions, TestingOutput, drain_outputs, output_channel,
};
use serde_json::json;
use vipa_frame_check::FrameCheckConfig;

/// One 2×1 rgb8 frame event.
fn frame(t: f64, seq: i64, idx: i64) -> serde_json::Value {
    json!({
        "time_offset_secs": t,
        "type": "Input",
        "id": "image",
        "metadata": {
            "seq": {"Integer": seq},
            "clip_id": {"String": "c"},
            "frame_idx": {"Integer": idx},
            "timestamp_ns": {"Integer": idx * 100},
            "width": {"Integer": 2},
            "height": {"Integer": 1},
            "encoding": {"String": "rgb8"},
            "kind": {"String": "image"},
        },
        "data": [255, 0, 0, 0, 0, 255],
        "data_type": "UInt8",
    })
}

fn control(t: f64, seq: i64, kind: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut metadata = json!({
        "seq": {"Integer": seq},
        "clip_id": {"String": if kind == "clip_end" { "c" } else { "" }},
        "frame_idx": {"Integer": 0},
        "timestamp_ns": {"Integer": 0},
        "kind": {"String": kind},
    });
    for (k, v) in extra.as_object().unwrap() {
        metadata[k] = v.clone();
    }
    json!({
        "time_offset_secs": t, "type": "Input", "id": "clip_end",
        "metadata": metadata, "data": [], "data_type": "UInt8",
    })
}

fn run_node(events: Vec<serde_json::Value>) -> (serde_json::Value, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let input_path = dir.path().join("inputs.json");
    std::fs::write(
        &input_path,
        json!({"id": "check", "events": events}).to_string(),
    )
    .unwrap();
    let summary_path = dir.path().join("summary.json");
    let (tx, mut rx) = output_channel();
    let (node, stream) = DoraNode::init_testing(
        TestingInput::FromJsonFile(input_path),
        TestingOutput::ToChannel(tx),
        TestingOptions {
            skip_output_time_offsets: true,
        },
    )
    .unwrap();
    let cfg = FrameCheckConfig {
        summary_path: summary_path.clone(),
        ..Default::default()
    };
    let result = vipa_frame_check::node::run(node, stream, cfg);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    // An incomplete stream is an error (a non-zero exit), after the summary is written.
    match result {
        Ok(()) => assert_eq!(summary["all_delivered"], true, "{summary:#}"),
        Err(e) => {
            assert_eq!(summary["all_delivered"], false, "{e:#}");
            assert!(e.to_string().contains("stream incomplete"), "{e:#}");
        }
    }
    let outputs = drain_outputs(&mut rx)
        .into_iter()
        .map(serde_json::Value::Object)
        .collect();
    (summary, outputs)
}

#[test]
fn complete_stream_through_the_dora_loop() {
    let (summary, outputs) = run_node(vec![
        frame(0.0, 0, 0),
        frame(0.01, 1, 1),
        control(
            0.02,
            0,
            "clip_end",
            json!({"frames": {"Integer": 2}, "complete": {"Bool": true}}),
        ),
        control(
            0.03,
            1,
            "stream_end",
            json!({"clips": {"Integer": 1}, "frames": {"Integer": 2}, "bad_sources": {"Integer": 0}}),
        ),
        json!({"time_offset_secs": 0.05, "type": "Stop"}),
    ]);
    assert_eq!(summary["all_delivered"], true, "{summary:#}");
    assert_eq!(summary["clips"]["c"]["frames"], 2);
    // Red then blue pixel: mean (127.5, 0, 127.5).
    assert_eq!(
        summary["clips"]["c"]["first_frame_mean_rgb"],
        json!([127.5, 0.0, 127.5])
    );
    // One ack per input message.
    let acks = outputs.iter().filter(|o| o["id"] == "ack").count();
    assert_eq!(acks, 4, "{outputs:?}");
}

#[test]
fn a_lost_frame_and_missing_stream_end_are_reported() {
    let (summary, _) = run_node(vec![
        frame(0.0, 0, 0),
        frame(0.01, 2, 2),
        control(
            0.02,
            0,
            "clip_end",
            json!({"frames": {"Integer": 3}, "complete": {"Bool": true}}),
        ),
        json!({"time_offset_secs": 0.05, "type": "Stop"}),
    ]);
    assert_eq!(summary["all_delivered"], false);
    assert_eq!(summary["seq"]["image"]["dropped"], 1);
    let problems = summary["problems"].to_string();
    assert!(problems.contains("no stream_end"), "{problems}");
}
