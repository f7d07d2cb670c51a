//! `model-bench`: one training step (forward + backward + AdamW) of the `small` VIPA preset —
//! small InternViT (224 px, width 384, 6 layers) + point-map ViT (width 192, 4 blocks) +
//! cross-attention fusion + projector + SmolLM2-135M-shaped Llama (30 layers, width 576, vocab
//! 49152) — on a fixed, seeded batch, against its PyTorch twin `benches/models/small_step.py`
//! (transformers' `InternVLVisionModel` and `LlamaForCausalLM`, same sizes, same batch).
//!
//! Two trainable sets: **stage 1** (fusion + point-map ViT, everything else frozen; the loss
//! still back-propagates through the frozen LLM into the fusion layer) and **stage 2** (stage 1
//! plus the whole LLM, 135 M trainable parameters).
//!
//! Each case runs in its own child process (this binary with `--case NAME`) so its peak RSS
//! (`VmHWM`) is its own; cases alternate candle / PyTorch within each round so load changes on
//! the shared machine hit both alike. Prints one table: medians over rounds, the ratio to
//! PyTorch, peak RSS, and per-phase times.
//!
//! Usage: `cargo run -p vipa-models --bin model-bench [-- --steps 3 --rounds 2]`.
//! `VIPA_TORCH_PYTHON` overrides the PyTorch interpreter (default `.venv-torch/bin/python`);
//! without one the PyTorch rows are skipped.
//!
//! `--device cuda` runs both sides on GPU 0 (candle needs a build with `--features cuda`):
//! every phase ends with a device synchronisation, and the table's memory column is then the
//! peak GPU memory in use (device-wide, from the driver, for candle; `max_memory_allocated`
//! for PyTorch) instead of host RSS.
//!
//! `--case candle_stage1 --parity` prints, before the timed steps, `PARITY case loss grad_norm`:
//! the loss and global gradient norm of one step without dropout on the seeded weights and
//! batch, so a CUDA build can be checked against the CPU (the values must agree to float
//! rounding).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Error, Result, Tensor};
use candle_nn::optim::{Optimizer, ParamsAdamW};
use candle_nn::{Init, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use vipa_bench::{ProcessEnv, loadavg, median, run_cases, summarize};
use vipa_models::checkpoint::Checkpoint;
use vipa_models::device::DeviceChoice;
use vipa_models::llm::{CausalLm, LlmConfig};
use vipa_models::seeded::seeded_builder;
use vipa_models::stage::{Stage, StagePolicy};
use vipa_models::vipa::VipaVisionConfig;
use vipa_models::vision::spatial::SpatialInput;
use vipa_models::vlm::{Vipa, VipaConfig};

/// Images (and sequences) per batch.
const BATCH: usize = 2;
/// Sequence: `<bos>`, the image's 64 placeholder tokens, then text up to this length.
const SEQ: usize = 128;
/// Weight and data seed.
const SEED: u64 = 7;

fn err(msg: impl Into<String>) -> Error {
    Error::Msg(msg.into())
}

/// The `small` VIPA preset: `VipaVisionConfig::small()` + `LlmConfig::small()` (SmolLM2-135M).
/// The image placeholder id is one past the vocabulary (SmolLM2 has no `<IMG_CONTEXT>`;
/// placeholder rows are never looked up).
fn small_config() -> VipaConfig {
    let llm = LlmConfig::small();
    VipaConfig {
        vision: VipaVisionConfig::small(),
        image_token_id: llm.vocab_size as u32,
        llm,
    }
}

/// Deterministic weights for every parameter of `cfg`, drawn with [`seeded_builder`]: norms
/// and layer scales 1, biases 0, α 0.5, every other tensor N(0, 0.02).
fn seeded_weights(cfg: &VipaConfig, dev: &Device) -> Result<HashMap<String, Tensor>> {
    let shapes = Vipa::random_weights(cfg, dev)?;
    let vb = seeded_builder(SEED, dev);
    shapes
        .into_iter()
        .map(|(name, t)| {
            let last = name.rsplit('.').next().unwrap_or(&name);
            let init = if last == "bias" {
                Init::Const(0.0)
            } else if last == "alpha" {
                Init::Const(0.5)
            } else if (last == "weight" && t.rank() == 1) || last == "ls1" || last == "ls2" {
                Init::Const(1.0)
            } else {
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                }
            };
            let v = vb.get_with_hints(t.shape(), &name, init)?;
            Ok((name, v))
        })
        .collect()
}

/// The fixed batch: pixels `f32[b, 3, 224, 224]`, camera-frame point maps `f32[b, 224, 224, 3]`
/// (10 % invalid pixels), ids / next-token targets `u32[b, SEQ]` and the loss mask `f32[b, SEQ]`
/// (1 where the target is a text token).
struct Batch {
    pixels: Tensor,
    points: Tensor,
    ids: Tensor,
    targets: Tensor,
    mask: Tensor,
}

fn batch(cfg: &VipaConfig, dev: &Device) -> Result<Batch> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let px = cfg.vision.semantic.vision_config.image_size;
    let normal = Normal::new(0.0f32, 1.0).map_err(|e| err(e.to_string()))?;
    let pixels: Vec<f32> = (0..BATCH * 3 * px * px)
        .map(|_| normal.sample(&mut rng))
        .collect();
    let pm = cfg.vision.spatial.as_ref().map_or(px, |s| s.image_size);
    let mut points = Vec::with_capacity(BATCH * pm * pm * 3);
    for _ in 0..BATCH * pm * pm {
        if rng.random::<f32>() < 0.1 {
            points.extend([0.0; 3]);
        } else {
            let z: f32 = 0.3 + 1.2 * rng.random::<f32>();
            let x = (rng.random::<f32>() - 0.5) * z;
            let y = (rng.random::<f32>() - 0.5) * z;
            points.extend([x, y, z]);
        }
    }
    let n_img = cfg.vision.semantic.tokens_per_image()?;
    if 1 + n_img >= SEQ {
        return Err(err(format!(
            "SEQ {SEQ} leaves no room for text after {n_img} image tokens"
        )));
    }
    let vocab = cfg.llm.vocab_size as u32;
    let (mut ids, mut targets, mut mask) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..BATCH {
        let mut row = vec![1u32];
        row.extend(std::iter::repeat_n(cfg.image_token_id, n_img));
        while row.len() < SEQ {
            row.push(rng.random_range(3..vocab));
        }
        // targets[t] = ids[t + 1]; the last position predicts <|im_end|> (2). Masked
        // positions whose next token is a placeholder (outside the vocabulary) get id 0.
        targets.extend(
            row[1..]
                .iter()
                .map(|&id| if id >= vocab { 0 } else { id })
                .chain([2]),
        );
        mask.extend((0..SEQ).map(|t| if t >= n_img { 1.0f32 } else { 0.0 }));
        ids.extend(row);
    }
    Ok(Batch {
        pixels: Tensor::from_vec(pixels, (BATCH, 3, px, px), dev)?,
        points: Tensor::from_vec(points, (BATCH, pm, pm, 3), dev)?,
        ids: Tensor::from_vec(ids, (BATCH, SEQ), dev)?,
        targets: Tensor::from_vec(targets, (BATCH, SEQ), dev)?,
        mask: Tensor::from_vec(mask, (BATCH, SEQ), dev)?,
    })
}

/// Forward phases (ms): point-map ViT, InternViT + fusion + projector, LLM decoder, LM head +
/// loss; then backward and optimizer.
const PHASES: [&str; 6] = [
    "pointmap_vit",
    "internvit_fusion_projector",
    "llm_decoder",
    "lm_head_loss",
    "backward",
    "adamw",
];

fn peak_rss_mib() -> f64 {
    vipa_kernels::peak_rss_mib().unwrap_or(f64::NAN)
}

/// Runs one case in this process and prints `RESULT` / `PHASES` lines.
fn run_case(case: &str, steps: usize, device: &str, parity: bool) -> Result<()> {
    let stage = match case {
        "candle_stage1" => Stage::One,
        "candle_stage2" => Stage::Two,
        other => {
            return Err(err(format!(
                "unknown case {other:?}; expected candle_stage1 or candle_stage2"
            )));
        }
    };
    let choice = match device {
        "cpu" => DeviceChoice::Cpu,
        "cuda" => DeviceChoice::Cuda,
        other => return Err(err(format!("--device {other:?}: expected cpu or cuda"))),
    };
    let dev = choice.resolve().map_err(|e| err(e.to_string()))?;
    let gpu_mem = GpuMemory::new(&dev);
    let cfg = small_config();
    let weights = Arc::new(Checkpoint::from_tensors(
        "seeded small preset",
        seeded_weights(&cfg, &dev)?,
    ));
    let varmap = VarMap::new();
    let model = Vipa::new(&cfg, &StagePolicy::new(stage), Some(weights), &varmap, &dev)?;
    let vars = varmap.all_vars();
    let trainable: usize = vars.iter().map(|v| v.elem_count()).sum();
    let mut opt = vipa_kernels::AdamW::new(
        vars.clone(),
        ParamsAdamW {
            lr: 1e-4,
            ..Default::default()
        },
    )?;
    let data = batch(&cfg, &dev)?;
    let spatial_in = SpatialInput::PointMaps(data.points.clone());
    let mut totals = Vec::new();
    let mut phases: Vec<Vec<f64>> = vec![Vec::new(); PHASES.len()];
    let (mut loss_v, mut with_grad) = (0f32, 0usize);
    if parity {
        // One dropout-free step's loss and gradient norm; no optimizer update.
        let spatial = model.vision().encode_spatial(&spatial_in)?;
        let feats = model
            .vision()
            .forward_with_tokens(&data.pixels, Some(&spatial), false)?;
        let (n_img, n_tok, hidden) = feats.dims3()?;
        let embeds = model.llm().embed_with_images(
            &data.ids,
            cfg.image_token_id,
            &feats.reshape((n_img * n_tok, hidden))?,
        )?;
        let hidden = model.llm().forward_hidden(&embeds, 0, None)?;
        let logits = model.llm().logits(&hidden)?;
        let loss = CausalLm::masked_cross_entropy(&logits, &data.targets, &data.mask)?;
        let grads = loss.backward()?;
        let mut sq = 0f64;
        for v in &vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                sq += g
                    .sqr()?
                    .sum_all()?
                    .to_dtype(candle_core::DType::F64)?
                    .to_scalar::<f64>()?;
            }
        }
        println!(
            "PARITY {case} {:.6} {:.6}",
            loss.to_scalar::<f32>()?,
            sq.sqrt()
        );
    }
    for step in 0..steps + 1 {
        dev.synchronize()?;
        let mut t = Instant::now();
        let mut lap = |v: &mut Vec<f64>| -> Result<()> {
            dev.synchronize()?;
            gpu_mem.sample();
            v.push(t.elapsed().as_secs_f64() * 1e3);
            t = Instant::now();
            Ok(())
        };
        let mut p = vec![Vec::new(); PHASES.len()];
        // The same sequence of calls as `Vipa::forward`, split into timed phases.
        let spatial = model.vision().encode_spatial(&spatial_in)?;
        lap(&mut p[0])?;
        let feats = model
            .vision()
            .forward_with_tokens(&data.pixels, Some(&spatial), true)?;
        lap(&mut p[1])?;
        let (n_img, n_tok, hidden) = feats.dims3()?;
        let embeds = model.llm().embed_with_images(
            &data.ids,
            cfg.image_token_id,
            &feats.reshape((n_img * n_tok, hidden))?,
        )?;
        let hidden = model.llm().forward_hidden(&embeds, 0, None)?;
        lap(&mut p[2])?;
        let logits = model.llm().logits(&hidden)?;
        let loss = CausalLm::masked_cross_entropy(&logits, &data.targets, &data.mask)?;
        lap(&mut p[3])?;
        let grads = loss.backward()?;
        lap(&mut p[4])?;
        opt.step(&grads)?;
        lap(&mut p[5])?;
        loss_v = loss.to_scalar::<f32>()?;
        with_grad = vars
            .iter()
            .filter(|v| grads.get(v.as_tensor()).is_some())
            .count();
        // Step 0 warms up allocations and caches; it is not timed.
        if step > 0 {
            let total: f64 = p.iter().map(|v| v[0]).sum();
            totals.push(total);
            for (acc, v) in phases.iter_mut().zip(&p) {
                acc.push(v[0]);
            }
        }
    }
    let min = totals.iter().copied().fold(f64::INFINITY, f64::min);
    let memory = gpu_mem.peak_mib().unwrap_or_else(peak_rss_mib);
    println!(
        "RESULT {case} {:.1} {min:.1} {memory:.0} {with_grad}/{} {trainable} {loss_v:.4}",
        median(&mut totals),
        vars.len()
    );
    let parts: Vec<String> = PHASES
        .iter()
        .zip(phases.iter_mut())
        .map(|(name, v)| format!("{name} {:.0}", median(v)))
        .collect();
    println!("PHASES {case} {}", parts.join(", "));
    Ok(())
}

fn orchestrate(steps: usize, rounds: usize, device: &str) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| err(format!("own executable: {e}")))?;
    // The repository root: the working directory when the twin is there (a binary copied to
    // another machine), else the one this binary was built from.
    let root = std::env::current_dir()
        .ok()
        .filter(|d| d.join("benches/models/small_step.py").exists())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
    let python = std::env::var("VIPA_TORCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv-torch/bin/python"));
    let script = root.join("benches/models/small_step.py");
    let env = ProcessEnv::from_env();
    println!(
        "model-bench: small preset (InternViT 384×6 + point-map ViT 192×4 + fusion + \
         SmolLM2-135M-shaped Llama), batch {BATCH}, sequence {SEQ}; {rounds} interleaved rounds \
         of {steps} timed steps after 1 warm-up; device {device}; {} cores; matrices: {}",
        cores(),
        if device == "cpu" {
            vipa_kernels::matrix_backend()
        } else {
            "cuBLAS".to_string()
        }
    );
    println!("process settings: {}", env.describe());
    if !python.exists() {
        println!(
            "(no PyTorch at {}; run `make torch` or set VIPA_TORCH_PYTHON to compare)",
            python.display()
        );
    }
    let steps_s = steps.to_string();
    let (mut rows, mut phases) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        for stage in ["1", "2"] {
            let mut cmds: Vec<(String, Command)> = Vec::new();
            let mut c = Command::new(&exe);
            c.args([
                "--case",
                &format!("candle_stage{stage}"),
                "--steps",
                &steps_s,
                "--device",
                device,
            ]);
            env.candle(&mut c);
            cmds.push((format!("candle stage {stage}"), c));
            if python.exists() {
                let mut c = Command::new(&python);
                c.arg(&script)
                    .args(["--stage", stage, "--steps", &steps_s, "--device", device]);
                env.torch(&mut c);
                cmds.push((format!("PyTorch stage {stage}"), c));
            }
            let (r, p) = run_cases(cmds).map_err(err)?;
            rows.extend(r);
            phases.extend(p);
        }
    }
    let summary = summarize(&rows);
    let torch_of = |case: &str| {
        let stage = case.rsplit('_').next().unwrap_or("");
        summary
            .iter()
            .find(|r| r.case == format!("torch_{stage}"))
            .map(|r| r.median_ms)
    };
    println!();
    println!(
        "| small preset step | median ms | min ms | × PyTorch | {} | vars with grad | trainable params | loss | 1-min load per round |",
        if device == "cpu" {
            "peak RSS MiB"
        } else {
            "peak GPU MiB"
        }
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in &summary {
        let ratio = if r.case.starts_with("candle") {
            torch_of(&r.case).map_or("n/a".into(), |t| format!("{:.2}", r.median_ms / t))
        } else {
            "1".into()
        };
        // RESULT's extra fields: grads/vars, trainable parameters, loss.
        let field = |i: usize| r.extra.get(i).map_or("?", String::as_str);
        println!(
            "| {} | {:.0} | {:.0} | {} | {:.0} | {} | {} | {} | {} |",
            r.case,
            r.median_ms,
            r.min_ms,
            ratio,
            r.peak_mib,
            field(0),
            field(1),
            field(2),
            r.load
        );
    }
    println!();
    println!("phase medians (ms), last round:");
    let n = phases.len();
    for p in phases.iter().skip(n.saturating_sub(summary.len())) {
        println!("  {p}");
    }
    println!("load average after: {}", loadavg());
    Ok(())
}

/// Peak GPU memory in use during a CUDA run, sampled from the driver (`cuMemGetInfo`) at every
/// phase boundary: device-wide, so it includes the CUDA context and cuBLAS workspaces (PyTorch's
/// `max_memory_allocated` counts tensors only). Inert on the CPU.
struct GpuMemory {
    #[cfg(feature = "cuda")]
    cuda: Option<candle_core::CudaDevice>,
    #[cfg(feature = "cuda")]
    peak_used: std::cell::Cell<usize>,
}

impl GpuMemory {
    fn new(dev: &Device) -> Self {
        #[cfg(feature = "cuda")]
        {
            let cuda = match dev {
                Device::Cuda(d) => Some(d.clone()),
                _ => None,
            };
            Self {
                cuda,
                peak_used: std::cell::Cell::new(0),
            }
        }
        #[cfg(not(feature = "cuda"))]
        {
            let _ = dev;
            Self {}
        }
    }

    fn sample(&self) {
        #[cfg(feature = "cuda")]
        if let Some(d) = &self.cuda
            && let Ok((free, total)) = d.cuda_stream().context().mem_get_info()
        {
            self.peak_used
                .set(self.peak_used.get().max(total.saturating_sub(free)));
        }
    }

    fn peak_mib(&self) -> Option<f64> {
        #[cfg(feature = "cuda")]
        if self.cuda.is_some() {
            return Some(self.peak_used.get() as f64 / (1024.0 * 1024.0));
        }
        None
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

const USAGE: &str =
    "model-bench: one training step of the `small` VIPA preset, candle against its \
PyTorch twin (benches/models/small_step.py), each case in its own process; prints one table.

Usage: model-bench [--steps 3] [--rounds 2] [--device cpu|cuda]
       model-bench --case NAME [--steps 3] [--device cpu|cuda] [--parity]

  --steps N     timed steps per case (default 3)
  --rounds N    interleaved rounds of all cases (default 2)
  --device D    cpu (default) or cuda (a build with --features cuda)
  --case NAME   run one case in this process (candle_stage1, candle_stage2, ...)
  --parity      with --case: first print the loss and gradient norm of one dropout-free step

VIPA_TORCH_PYTHON overrides the PyTorch interpreter (default .venv-torch/bin/python).
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = match vipa_bench::parse_cli(
        &args,
        USAGE,
        &["--steps", "--rounds", "--device", "--case"],
        &["--parity"],
    )
    .map_err(err)?
    {
        vipa_bench::Cli::Help(usage) => {
            print!("{usage}");
            return Ok(());
        }
        vipa_bench::Cli::Run(f) => f,
    };
    let steps = flags.get("--steps", 3usize).map_err(err)?.max(1);
    let rounds = flags.get("--rounds", 2usize).map_err(err)?;
    let device = flags.value("--device").unwrap_or("cpu");
    if let Some(case) = flags.value("--case") {
        return run_case(case, steps, device, flags.has("--parity"));
    }
    orchestrate(steps, rounds, device)
}
