//! `transport-bench`: ingest and transport benchmarks through the real `dora run`.
//!
//! 1. Ingest decode rate: a generated 640×480 H.264 clip decoded by raw OpenCV in this process
//!    (read + BGR→RGB + copy, the same work the node does per frame) versus through the graph
//!    `dataflows/ingest.yml` (ingest → frame-check with ack flow control over the daemon path),
//!    measured at the sink from its first to its last frame.
//! 2. Transport latency: `dataflows/bench-transport.yml`, 640×480 RGB frames paced by a timer;
//!    the sink computes receive time − send time per frame (one machine, one clock).
//!
//! Prints a table to stdout. `--frames` sets the clip length.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use eyre::{WrapErr, bail};
use opencv::prelude::*;
use opencv::{core::Mat, imgproc, videoio};
use vipa_tools::{
    ClipSpec, Dataflow, build_nodes, dora_run, inline_yaml, read_summary, write_test_clip,
    yaml_path,
};

#[derive(Parser, Debug)]
#[command(about = "vipa ingest/transport benchmarks through dora")]
struct Args {
    /// Frames in the generated 640×480 clip (30 fps).
    #[arg(long, default_value_t = 300)]
    frames: usize,
    /// Un-acked messages the ingest node may have in flight in the throughput run.
    #[arg(long, default_value_t = 4)]
    max_in_flight: u64,
    /// Frames sent in the latency run (one per 20 ms tick).
    #[arg(long, default_value_t = 200)]
    latency_frames: u64,
}

/// Raw OpenCV decode of `path`: frames and frames per second.
fn raw_decode(path: &Path) -> eyre::Result<(u64, f64)> {
    let path_str = path.to_str().unwrap_or_default();
    let mut cap = videoio::VideoCapture::from_file(path_str, videoio::CAP_ANY)?;
    if !cap.is_opened()? {
        bail!("OpenCV cannot open {}", path.display());
    }
    let (mut bgr, mut rgb) = (Mat::default(), Mat::default());
    let mut n = 0u64;
    let mut checksum = 0u64;
    let start = Instant::now();
    while cap.read(&mut bgr)? && !bgr.empty() {
        imgproc::cvt_color_def(&bgr, &mut rgb, imgproc::COLOR_BGR2RGB)?;
        let bytes = rgb.data_bytes()?.to_vec();
        // Use the copy so it is not optimised away.
        checksum = checksum.wrapping_add(u64::from(bytes[bytes.len() / 2]));
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(checksum);
    Ok((n, n as f64 / secs))
}

fn main() -> std::process::ExitCode {
    // The error chain alone (no backtrace unless VIPA_BACKTRACE=1).
    vipa_node_kit::exit_code("transport-bench", run())
}

fn run() -> eyre::Result<()> {
    let args = Args::parse();
    build_nodes(&["vipa-video-ingest", "vipa-frame-check"])?;
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let clip = d.join("bench_640x480.mp4");
    eprintln!("writing a {}-frame 640x480 H.264 clip…", args.frames);
    write_test_clip(
        &clip,
        &ClipSpec {
            width: 640,
            height: 480,
            fps: 30.0,
            frames: args.frames,
            background: [40, 90, 160],
        },
    )?;

    // (1a) raw OpenCV decode, twice (the first run warms the file cache and codec).
    raw_decode(&clip)?;
    let (raw_frames, raw_fps) = raw_decode(&clip)?;

    // (1b) through the node graph.
    let summary_path = d.join("ingest.json");
    let mut flow = Dataflow::load("ingest.yml")?;
    flow.set_config(
        "ingest",
        &inline_yaml(&[
            ("files", format!("[{}]", yaml_path(&clip))),
            ("max_in_flight", args.max_in_flight.to_string()),
        ]),
    )?
    .set_config(
        "check",
        &inline_yaml(&[("summary_path", yaml_path(&summary_path))]),
    )?;
    let yml = flow.write_to(d)?;
    eprintln!("running ingest.yml…");
    let run = dora_run(&yml, Duration::from_secs(120))?;
    // frame-check fails on an incomplete stream; its summary still says what arrived.
    if !run.success && !summary_path.exists() {
        bail!("dora run ingest.yml failed:\n{}", run.log);
    }
    let s = read_summary(&summary_path).wrap_err("ingest run")?;
    let node_fps = s["receive_fps"].as_f64().unwrap_or(f64::NAN);
    let node_frames = s["frames"].as_u64().unwrap_or(0);
    let delivered = s["all_delivered"].as_bool().unwrap_or(false);

    // (2) transport latency at a steady rate.
    let lat_path = d.join("transport.json");
    let mut flow = Dataflow::load("bench-transport.yml")?;
    flow.set_config(
        "ingest",
        &inline_yaml(&[
            ("files", format!("[{}]", yaml_path(&clip))),
            ("max_frames_per_clip", args.latency_frames.to_string()),
            ("loops", "1".into()),
        ]),
    )?
    .set_config(
        "check",
        &inline_yaml(&[
            ("summary_path", yaml_path(&lat_path)),
            ("expect_width", "640".into()),
            ("expect_height", "480".into()),
        ]),
    )?;
    let yml = flow.write_to(d)?;
    eprintln!("running bench-transport.yml…");
    let run = dora_run(&yml, Duration::from_secs(120))?;
    if !run.success && !lat_path.exists() {
        bail!("dora run bench-transport.yml failed:\n{}", run.log);
    }
    let l = read_summary(&lat_path).wrap_err("transport run")?;
    let lat_delivered = l["all_delivered"].as_bool().unwrap_or(false);
    let ms = |key: &str| l["latency"][key].as_f64().unwrap_or(f64::NAN) / 1e6;

    println!("vipa ingest/transport benchmark (640x480, dev profile, one machine)");
    println!("| measurement | value |");
    println!("|---|---|");
    println!(
        "| raw OpenCV decode (read + BGR→RGB + copy), {raw_frames} frames | {raw_fps:.0} fps |"
    );
    println!(
        "| ingest node → frame-check via dora, {node_frames} frames, max_in_flight {} (all delivered: {delivered}) | {node_fps:.0} fps |",
        args.max_in_flight
    );
    println!("| node / raw | {:.2} |", node_fps / raw_fps);
    println!(
        "| transport latency, {} frames at 50 Hz (all delivered: {lat_delivered}): p50 | {:.3} ms |",
        l["latency"]["count"],
        ms("p50_ns")
    );
    println!("| transport latency p99 | {:.3} ms |", ms("p99_ns"));
    println!("| transport latency max | {:.3} ms |", ms("max_ns"));
    Ok(())
}
