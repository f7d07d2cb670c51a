//! `train-bench`: stage-1 training throughput through the dataflow vs the same work in one
//! process, so the dataflow's overhead is visible as a ratio (`make bench`).
//!
//! - **dataflow**: `pretrain.yml` (reader → encoder-2d / encoder-3d → trainer), rewritten into
//!   a temp folder with `--steps` steps; numbers from the trainer's `summary.json`.
//! - **in-process**: the same samples in the same order through the same encoders
//!   (`vipa_encoder_2d::Encoder2d`, `vipa_encoder_3d::Encoder3d`) and the same
//!   `vipa_train::trainer::Trainer`, called directly, one thread of control.
//!
//! Both sides run the same preset, seed, batch size and steps on `data/hand3d`, with the same
//! process settings (`make bench` exports the `CANDLE_NUM_THREADS` / `MALLOC_*` values that the
//! training graphs set per node).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use eyre::{WrapErr, eyre};
use serde_yaml::Value;
use vipa_encoder_2d::Encoder2dConfig;
use vipa_encoder_3d::Encoder3dConfig;
use vipa_hand3d::frames::{ClipFrames, read_clip_frames};
use vipa_hand3d::{DatasetReader, Split};
use vipa_models::Preset;
use vipa_msgs::StreamHeader;
use vipa_tools::{Dataflow, dora_run, repo_root};
use vipa_train::TrainConfig;
use vipa_train::join::{Features, Joined};
use vipa_train::trainer::{Trainer, peak_rss_mib};

#[derive(Parser)]
struct Args {
    /// tiny | small.
    #[arg(long, default_value = "small")]
    preset: Preset,
    #[arg(long, default_value_t = 4)]
    steps: u64,
    #[arg(long, default_value_t = 4)]
    batch_size: u32,
}

fn abs(p: PathBuf) -> Value {
    Value::String(p.display().to_string())
}

fn llm(root: &std::path::Path, preset: Preset) -> Option<PathBuf> {
    preset
        .has_pretrained_llm()
        .then(|| root.join("data/weights/SmolLM2-135M-Instruct.Q4_1.gguf"))
}

fn train_cfg(args: &Args, out: PathBuf, root: &std::path::Path) -> TrainConfig {
    TrainConfig {
        preset: args.preset,
        llm_weights: llm(root, args.preset),
        out_dir: out,
        max_steps: args.steps,
        batch_size: Some(args.batch_size),
        checkpoint_every: 1_000_000,
        resume: false,
        progress: false,
        lr: Some(1e-3),
        ..TrainConfig::default()
    }
}

fn dataflow(args: &Args, tmp: &std::path::Path) -> eyre::Result<serde_json::Value> {
    let root = repo_root();
    let out = tmp.join("dataflow-run");
    let mut df = Dataflow::load("pretrain.yml")?;
    df.patch_config("reader", &[("dataset", abs(root.join("data/hand3d")))])?;
    df.patch_config("encoder-2d", &[("preset", args.preset.name().into())])?;
    df.patch_config("encoder-3d", &[("preset", args.preset.name().into())])?;
    // Timings of the encoders, not of the feature cache.
    for enc in ["encoder-2d", "encoder-3d"] {
        df.patch_config(enc, &[("cache", serde_yaml::Value::Null)])?;
    }
    let mut trainer = vec![
        ("preset", Value::from(args.preset.name())),
        ("out_dir", abs(out.clone())),
        ("max_steps", Value::from(args.steps)),
        ("batch_size", Value::from(args.batch_size)),
        ("checkpoint_every", Value::from(1_000_000u64)),
        ("resume", Value::from(false)),
        ("progress", Value::from(false)),
        // The same trainable set as the in-process side (the preset's default).
        ("train_llm", Value::Null),
        ("lr_llm", Value::Null),
    ];
    trainer.push((
        "llm_weights",
        llm(&root, args.preset).map_or(Value::Null, abs),
    ));
    df.patch_config("trainer", &trainer)?;
    let yml = df.write_to(tmp)?;
    let run = dora_run(&yml, Duration::from_secs(3600))?;
    if !run.success {
        return Err(eyre!("dora run failed:\n{}", run.log));
    }
    let text = std::fs::read(out.join("summary.json")).wrap_err("trainer summary")?;
    Ok(serde_json::from_slice(&text)?)
}

fn in_process(args: &Args, tmp: &std::path::Path) -> eyre::Result<(f64, f64, Option<f64>)> {
    let root = repo_root();
    let data = root.join("data/hand3d");
    let cfg = train_cfg(args, tmp.join("in-process-run"), &root);
    let enc2 = vipa_encoder_2d::encoder::Encoder2d::new(&Encoder2dConfig {
        preset: args.preset,
        ..Default::default()
    })?;
    let enc3 = vipa_encoder_3d::encoder::Encoder3d::new(&Encoder3dConfig {
        preset: args.preset,
        ..Default::default()
    })?;
    let dev = cfg.device.resolve()?;
    let mut trainer = Trainer::new(&cfg, &dev)?;
    // The reader's order: its seeded shuffle is internal, so take the dataset order; the
    // work per sample is what is measured.
    let samples: Vec<_> = DatasetReader::open(&data)?
        .samples(Split::Train)?
        .into_iter()
        .filter(|s| s.task.is_visual())
        .collect();
    let mut clips: HashMap<String, Arc<ClipFrames>> = HashMap::new();
    let start = Instant::now();
    let mut k = 0u64;
    while !trainer.done() {
        let s = &samples[(k as usize) % samples.len()];
        let frames = match clips.get(&s.clip_id) {
            Some(f) => Arc::clone(f),
            None => {
                let f = Arc::new(read_clip_frames(&data, &s.clip_id)?);
                clips.insert(s.clip_id.clone(), Arc::clone(&f));
                f
            }
        };
        let idx = *s
            .frame_idxs
            .last()
            .ok_or_else(|| eyre!("sample without frames"))?;
        let stored = frames
            .get(idx)
            .ok_or_else(|| eyre!("frame {idx} missing"))?;
        let (image, pm) = vipa_tools::stored_frame_messages(stored, StreamHeader::default())?;
        let t2 = enc2.encode(&image)?;
        let (t3, valid) = enc3.encode(&pm)?;
        let feats = |t: &candle_core::Tensor, valid: Option<Vec<f32>>| -> eyre::Result<Features> {
            let (n, d) = t.dims2()?;
            Ok(Features {
                shape: [n, d],
                values: t.flatten_all()?.to_vec1::<f32>()?,
                valid,
            })
        };
        let valid =
            (!valid.iter().all(|&v| v != 0)).then(|| valid.iter().map(|&v| v as f32).collect());
        let joined = Joined {
            sample_seq: k,
            sample: s.to_qa_sample(format!("bench-{k}")),
            tokens_2d: vec![feats(&t2, None)?],
            tokens_3d: vec![feats(&t3, valid)?],
        };
        trainer.train_sample(&joined)?;
        k += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok((
        k as f64 / elapsed,
        elapsed / args.steps as f64,
        peak_rss_mib(),
    ))
}

fn main() -> std::process::ExitCode {
    // The error chain alone (no backtrace unless VIPA_BACKTRACE=1).
    vipa_node_kit::exit_code("train-bench", run())
}

fn run() -> eyre::Result<()> {
    let args = Args::parse();
    let tmp = tempfile::tempdir()?;
    let (ip_rate, ip_step, ip_rss) = in_process(&args, tmp.path())?;
    let df = dataflow(&args, tmp.path())?;
    let df_rate = df["samples_per_s"].as_f64().unwrap_or(f64::NAN);
    let df_step = df["step_time_s"].as_f64().unwrap_or(f64::NAN);
    let df_rss = df["peak_rss_mib"].as_f64();
    let mib = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.0} MiB"));
    println!(
        "\nstage-1 training, preset `{}`, batch {} × {} steps ({} samples), CPU",
        args.preset,
        args.batch_size,
        args.steps,
        u64::from(args.batch_size) * args.steps
    );
    println!("| path | samples/s | step time | peak RSS |");
    println!("|---|---:|---:|---:|");
    println!(
        "| in-process (encoders + trainer, one process) | {ip_rate:.2} | {ip_step:.2} s | {} |",
        mib(ip_rss)
    );
    println!(
        "| dataflow (reader → encoders → trainer via dora) | {df_rate:.2} | {df_step:.2} s | {} (trainer) |",
        mib(df_rss)
    );
    println!("dataflow / in-process throughput: {:.2}", df_rate / ip_rate);
    Ok(())
}
