//! `vipa-synth`: writes a folder of synthetic hand-manipulation clips (`clip_XXXX.mp4`),
//! their ground-truth sidecars (`clip_XXXX.truth.parquet`) and a `manifest.json`.
//!
//! ```text
//! vipa-synth --out data/synth --clips 24 --seed 0 [--width 320 --height 240 --fps 15 --seconds 4] [--force]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use eyre::WrapErr;
use indicatif::{ProgressBar, ProgressStyle};
use vipa_synth::SynthConfig;
use vipa_synth::generate::{clip_paths, generate_clip, write_clip};
use vipa_synth::manifest::{MANIFEST_VERSION, Manifest, ManifestClip};
use vipa_synth::sidecar::read_clip_info;
use vipa_synth::video::write_contact_sheet;

/// Generate synthetic hand-manipulation clips with ground truth.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Output folder (created if missing).
    #[arg(long, default_value = "data/synth")]
    out: PathBuf,
    /// Number of clips.
    #[arg(long, default_value_t = 24)]
    clips: u32,
    /// Run seed; clip i depends only on (seed, i).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 320)]
    width: u32,
    #[arg(long, default_value_t = 240)]
    height: u32,
    #[arg(long, default_value_t = 15.0)]
    fps: f64,
    /// Clip length in seconds.
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Regenerate clips whose files already exist.
    #[arg(long)]
    force: bool,
    /// Also write `clip_XXXX.preview.png`, a 4×2 contact sheet of each generated clip.
    #[arg(long)]
    preview: bool,
}

fn main() -> eyre::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = SynthConfig {
        width: args.width,
        height: args.height,
        fps: args.fps,
        seconds: args.seconds,
    };
    config
        .validate()
        .wrap_err("check the command-line options")?;
    std::fs::create_dir_all(&args.out)
        .wrap_err_with(|| format!("create output folder {}", args.out.display()))?;

    let bar = ProgressBar::new(u64::from(args.clips));
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} clips, {elapsed} elapsed, eta {eta} {msg}",
        )
        .wrap_err("progress bar template")?,
    );
    let started = Instant::now();
    let (mut generated, mut skipped) = (0u32, 0u32);
    let mut entries = Vec::with_capacity(args.clips as usize);
    for index in 0..args.clips {
        let (mp4, parquet) = clip_paths(&args.out, index);
        let existing = if !args.force && mp4.exists() && parquet.exists() {
            // Reuse a complete clip only if it was made with the same seed and settings.
            match read_clip_info(&parquet) {
                Ok(info)
                    if info.seed == args.seed
                        && info.width == config.width
                        && info.height == config.height
                        && info.fps == config.fps
                        && info.num_frames == config.num_frames() =>
                {
                    Some(info)
                }
                Ok(_) => {
                    tracing::warn!(
                        clip = index,
                        "existing clip has other settings; regenerating"
                    );
                    None
                }
                Err(e) => {
                    tracing::warn!(clip = index, error = %e, "existing sidecar unreadable; regenerating");
                    None
                }
            }
        } else {
            None
        };
        let info = match existing {
            Some(info) => {
                skipped += 1;
                info
            }
            None => {
                let clip = generate_clip(config, args.seed, index)
                    .wrap_err_with(|| format!("generate clip {index}"))?;
                write_clip(&args.out, &clip).wrap_err_with(|| format!("write clip {index}"))?;
                if args.preview {
                    let n = clip.frames.len();
                    let picks: Vec<&[u8]> = (0..8)
                        .map(|k| clip.frames[k * (n - 1) / 7].bgr.as_slice())
                        .collect();
                    let png = args
                        .out
                        .join(format!("{}.preview.png", clip.truth.info.clip_id));
                    write_contact_sheet(&png, config.width, config.height, &picks, 4)
                        .wrap_err_with(|| format!("write preview {}", png.display()))?;
                }
                generated += 1;
                clip.truth.info
            }
        };
        entries.push(ManifestClip::from_info(&info));
        bar.inc(1);
    }
    bar.finish_and_clear();

    let manifest = Manifest {
        manifest_version: MANIFEST_VERSION,
        generator: format!("vipa-synth {}", env!("CARGO_PKG_VERSION")),
        seed: args.seed,
        width: config.width,
        height: config.height,
        fps: config.fps,
        clips: entries,
    };
    let manifest_path = args.out.join("manifest.json");
    manifest.write(&manifest_path).wrap_err("write manifest")?;

    let total_bytes: u64 = manifest
        .clips
        .iter()
        .flat_map(|c| [args.out.join(&c.video), args.out.join(&c.truth)])
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "{} clips in {} ({generated} generated, {skipped} already present) in {:.1} s, {:.1} MB",
        args.clips,
        args.out.display(),
        started.elapsed().as_secs_f64(),
        total_bytes as f64 / 1e6
    );
    Ok(())
}
