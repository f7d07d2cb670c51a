//! `annotate-bench`: Hand3D annotation throughput through the real `dora run` of
//! `dataflows/annotate.yml` (video-ingest → lift-depth → lift-hands → annotate), on synthetic
//! clips with their ground-truth sidecars (the `sidecar` backends, so the graph's own cost is
//! what is measured, not a depth network's).
//!
//! Prints frames per second inside the graph (first frame → manifest, from the annotator's
//! report) and end to end including dora's start-up.

use std::time::Duration;

use clap::Parser;
use eyre::{WrapErr, bail};
use vipa_synth::{SynthConfig, generate_clip, write_clip};
use vipa_tools::{annotate_flow, build_nodes, dora_run};

#[derive(Parser, Debug)]
#[command(about = "Hand3D annotation throughput through dora (sidecar backends)")]
struct Args {
    /// Synthetic clips to annotate (320×240, 15 fps, 4 s: 60 frames each).
    #[arg(long, default_value_t = 6)]
    clips: u32,
    /// Upper bound for the dora run, in seconds.
    #[arg(long, default_value_t = 600)]
    stop_after: u64,
}

fn main() -> std::process::ExitCode {
    vipa_node_kit::exit_code("annotate-bench", run())
}

fn run() -> eyre::Result<()> {
    let args = Args::parse();
    build_nodes(&[
        "vipa-video-ingest",
        "vipa-lift-depth",
        "vipa-lift-hands",
        "vipa-annotate",
    ])?;
    let dir = tempfile::tempdir()?;
    let videos = dir.path().join("videos");
    std::fs::create_dir_all(&videos)?;
    let cfg = SynthConfig {
        width: 320,
        height: 240,
        fps: 15.0,
        seconds: 4.0,
    };
    for i in 0..args.clips {
        let clip = generate_clip(cfg, 0, i).wrap_err("generating a synthetic clip")?;
        write_clip(&videos, &clip).wrap_err("writing a synthetic clip")?;
    }
    let out = dir.path().join("hand3d");
    let yml = annotate_flow(dir.path(), &videos, &out, "sidecar", "{}")?;
    let run = dora_run(&yml, Duration::from_secs(args.stop_after))?;
    if !run.success {
        bail!("dora run failed ({:?}):\n{}", run.code, run.log);
    }
    let report_path = out.join("annotate_report.json");
    let text = std::fs::read_to_string(&report_path)
        .wrap_err_with(|| format!("no annotate report at {}", report_path.display()))?;
    let r: serde_json::Value = serde_json::from_str(&text)?;
    let frames = r["frames_joined"].as_u64().unwrap_or(0);
    let expected = u64::from(args.clips) * 60;
    if frames != expected {
        bail!("the graph joined {frames} frames, {expected} were sent: {r}");
    }
    println!(
        "annotate throughput (dora run, {} clips 320x240 x 60 frames, sidecar backends): {:.1} frames/s in the graph \
         (first frame → manifest, {:.2} s); {:.1} frames/s end to end incl. dora start-up ({:.2} s)",
        args.clips,
        r["frames_per_s"].as_f64().unwrap_or(0.0),
        r["elapsed_s"].as_f64().unwrap_or(0.0),
        frames as f64 / run.elapsed.as_secs_f64(),
        run.elapsed.as_secs_f64()
    );
    Ok(())
}
