//! `kernel-bench`: one run, one table. Times a tiny-ViT training step (fwd + bwd + AdamW,
//! batch 8, 224 px) built four ways (composed differentiable ops; `vipa-kernels` on the BLAS
//! matrix path; `vipa-kernels` on candle's matmul; candle's fused no-grad ops), a 1024² f32
//! matmul and the GEMMs of one step (candle's gemm and OpenBLAS), and single-op cases (the LM
//! loss's log-softmax, SwiGLU); then runs the PyTorch twin `benches/kernels/tiny_vit_step.py`
//! (2 threads) and prints medians, the ratio to PyTorch and each case's peak RSS. Results and
//! analysis: `models/kernels/PERF.md`.
//!
//! Each case runs in its own child process (this binary with `--case NAME`) so peak RSS is per
//! case. Usage: `cargo run -p vipa-kernels --bin kernel-bench [-- --steps 10 --slow-steps 3 --rounds 3]`.
//! `VIPA_TORCH_PYTHON` overrides the PyTorch interpreter (default `.venv-torch/bin/python`);
//! without one the PyTorch rows are skipped.

mod vit;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use candle_core::{Device, Tensor};
use eyre::{Result, WrapErr, bail, eyre};

use vipa_bench::{Cli, ProcessEnv, loadavg, median, parse_cli, run_cases, summarize};
use vit::{Config, Ops, Opt, TinyVit, train_step};

const BATCH: usize = 8;

const USAGE: &str =
    "kernel-bench: a tiny-ViT training step built four ways, matmuls and single ops, \
against the PyTorch twin (benches/kernels/tiny_vit_step.py), each case in its own process; \
prints one table (analysis: models/kernels/PERF.md).

Usage: kernel-bench [--steps 10] [--slow-steps 3] [--rounds 3]
       kernel-bench --case NAME [--steps 10] [--slow-steps 3]

  --steps N       timed steps of the fast cases (default 10)
  --slow-steps N  timed steps of the slow cases (default 3)
  --rounds N      interleaved rounds of all cases (default 3)
  --case NAME     run one case in this process

VIPA_TORCH_PYTHON overrides the PyTorch interpreter (default .venv-torch/bin/python).
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = match parse_cli(
        &args,
        USAGE,
        &["--steps", "--slow-steps", "--rounds", "--case"],
        &[],
    )
    .map_err(|e| eyre!(e))?
    {
        Cli::Help(usage) => {
            print!("{usage}");
            return Ok(());
        }
        Cli::Run(f) => f,
    };
    let steps = flags.get("--steps", 10usize).map_err(|e| eyre!(e))?;
    let slow_steps = flags.get("--slow-steps", 3usize).map_err(|e| eyre!(e))?;
    let rounds = flags.get("--rounds", 3usize).map_err(|e| eyre!(e))?;
    if let Some(case) = flags.value("--case") {
        return run_case(case, steps, slow_steps);
    }
    orchestrate(steps, slow_steps, rounds)
}

fn peak_rss_mib() -> f64 {
    vipa_kernels::peak_rss_mib().unwrap_or(f64::NAN)
}

/// One result line: `RESULT case median_ms min_ms rss_mib grads vars loss`.
fn report(case: &str, times: &mut [f64], grads: usize, vars: usize, loss: f32) {
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let med = median(times);
    println!(
        "RESULT {case} {med:.2} {min:.2} {:.0} {grads} {vars} {loss:.4}",
        peak_rss_mib()
    );
}

fn run_case(case: &str, steps: usize, slow_steps: usize) -> Result<()> {
    let dev = Device::Cpu;
    if let Some(variant) = case.strip_prefix("matmul") {
        let a = Tensor::randn(0f32, 1.0, (1024, 1024), &dev)?;
        let b = Tensor::randn(0f32, 1.0, (1024, 1024), &dev)?;
        let mut times = Vec::new();
        for i in 0..(steps * 2 + 3) {
            let t = Instant::now();
            let c = match variant {
                "_bt" => a.matmul(&b.t()?)?,
                "_blas" => vipa_kernels::matmul(&a, &b)?,
                _ => a.matmul(&b)?,
            };
            std::hint::black_box(c);
            if i >= 3 {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        report(case, &mut times, 0, 0, 0.0);
        return Ok(());
    }
    if case == "gemm_only" || case == "gemm_only_blas" {
        let mm = |a: &Tensor, b: &Tensor| -> candle_core::Result<Tensor> {
            if case == "gemm_only_blas" {
                vipa_kernels::matmul(a, b)
            } else {
                a.matmul(b)
            }
        };
        // Only the GEMMs of one tiny-ViT training step, with the layouts candle's autograd uses:
        // per linear `x·Wᵀ` (forward), `g·W` (∂x) and `gᵀ·x` (∂W); per attention the batched
        // `q·kᵀ`, `p·v` forward and `∂p = g·vᵀ`, `∂v = pᵀ·g`, `∂q = ∂s·k`, `∂k = ∂sᵀ·q`.
        let n = BATCH * 196;
        let r = |d: (usize, usize)| Tensor::randn(0f32, 1.0, d, &dev);
        let mut linears = vec![(768, 192)];
        for _ in 0..4 {
            linears.extend([(192, 576), (192, 192), (192, 768), (768, 192)]);
        }
        let lin: Vec<(Tensor, Tensor, Tensor)> = linears
            .iter()
            .map(|&(i, o)| Ok((r((n, i))?, r((o, i))?, r((n, o))?)))
            .collect::<Result<_>>()?;
        let a = |d| Tensor::randn(0f32, 1.0, d, &dev);
        let (q, k, v, p) = (
            a((BATCH, 3, 196, 64))?,
            a((BATCH, 3, 196, 64))?,
            a((BATCH, 3, 196, 64))?,
            a((BATCH, 3, 196, 196))?,
        );
        let mut times = Vec::new();
        for i in 0..(steps + 2) {
            let t = Instant::now();
            for (x, w, g) in &lin {
                std::hint::black_box(mm(x, &w.t()?)?);
                std::hint::black_box(mm(g, w)?);
                std::hint::black_box(mm(&g.t()?, x)?);
            }
            for _ in 0..4 {
                std::hint::black_box(mm(&q, &k.t()?)?);
                std::hint::black_box(mm(&p, &v)?);
                std::hint::black_box(mm(&q, &v.t()?)?);
                std::hint::black_box(mm(&p.t()?, &q)?);
                std::hint::black_box(mm(&p, &k)?);
                std::hint::black_box(mm(&p.t()?, &q)?);
            }
            if i >= 2 {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        report(case, &mut times, 0, 0, 0.0);
        return Ok(());
    }
    if let Some(op) = case.strip_prefix("op_") {
        // Single-op fwd + bwd at the `small` preset's LLM shapes (batch 2 × 128 tokens):
        // the LM loss's log-softmax over the 49152-token vocabulary, and 30 layers' SwiGLU gates.
        let t = 256;
        let logits = candle_core::Var::randn(0f32, 1.0, (t, 49_152), &dev)?;
        let targets = Tensor::arange(0u32, t as u32, &dev)?.reshape((t, 1))?;
        let gate = candle_core::Var::randn(0f32, 1.0, (t, 1536), &dev)?;
        let up = candle_core::Var::randn(0f32, 1.0, (t, 1536), &dev)?;
        let mut times = Vec::new();
        for i in 0..(steps + 2) {
            let t0 = Instant::now();
            match op {
                "lm_loss_ce" => {
                    let mask = Tensor::ones(t, candle_core::DType::F32, &dev)?;
                    let loss = vipa_kernels::masked_cross_entropy(
                        logits.as_tensor(),
                        &targets.squeeze(1)?,
                        &mask,
                    )?;
                    std::hint::black_box(loss.backward()?);
                }
                "lm_loss_candle" | "lm_loss_fused" => {
                    let lsm = if op == "lm_loss_fused" {
                        vipa_kernels::log_softmax_last_dim(logits.as_tensor())?
                    } else {
                        candle_nn::ops::log_softmax(logits.as_tensor(), candle_core::D::Minus1)?
                    };
                    let loss = lsm.gather(&targets, 1)?.neg()?.mean_all()?;
                    std::hint::black_box(loss.backward()?);
                }
                "swiglu_candle" | "swiglu_fused" => {
                    for _ in 0..30 {
                        let y = if op == "swiglu_fused" {
                            vipa_kernels::swiglu(gate.as_tensor(), up.as_tensor())?
                        } else {
                            (gate.as_tensor().silu()? * up.as_tensor())?
                        };
                        std::hint::black_box(y.sum_all()?.backward()?);
                    }
                }
                other => bail!("unknown op case {other:?}"),
            }
            if i >= 2 {
                times.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
        report(case, &mut times, 0, 0, 0.0);
        return Ok(());
    }
    if let Some(variant) = case.strip_prefix("linear_") {
        // fwd + bwd of one MLP linear (1568 tokens, 192 -> 768) with the weight stored as
        // [out, in] (used as `x·Wᵀ`, "t") or pre-transposed [in, out] (`x·W`, "n").
        let x = candle_core::Var::randn(0f32, 1.0, (1568, 192), &dev)?;
        let w_dims = if variant == "t" {
            (768, 192)
        } else {
            (192, 768)
        };
        let w = candle_core::Var::randn(0f32, 0.02, w_dims, &dev)?;
        let mut times = Vec::new();
        for i in 0..(steps * 2 + 3) {
            let t = Instant::now();
            let y = if variant == "t" {
                x.matmul(&w.t()?)?
            } else {
                x.matmul(&w)?
            };
            let g = y.sqr()?.sum_all()?.backward()?;
            std::hint::black_box(g);
            if i >= 3 {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        report(case, &mut times, 0, 0, 0.0);
        return Ok(());
    }
    let (ops, n) = match case {
        "composed" => (Ops::Composed, slow_steps),
        "kernels" => (Ops::Kernels, steps),
        "kernels_candle_gemm" => (Ops::KernelsCandleGemm, steps),
        "fused_nograd" => (Ops::FusedNoGrad, steps),
        other => bail!(
            "unknown case {other:?}; expected matmul, matmul_bt, matmul_blas, gemm_only, \
             gemm_only_blas, composed, kernels, kernels_candle_gemm, fused_nograd or op_*"
        ),
    };
    let model = TinyVit::new(Config::tiny(), ops, &dev)?;
    let mut opt = Opt::new(&model)?;
    let images = Tensor::randn(0f32, 1.0, (BATCH, 3, 224, 224), &dev)?;
    // Labels 0..8 (< 10 classes), as in the PyTorch twin.
    let labels = Tensor::arange(0u32, BATCH as u32, &dev)?;
    let mut times = Vec::new();
    let mut phases: [Vec<f64>; 3] = Default::default();
    let (mut loss, mut grads) = (0.0, 0);
    for i in 0..(n + 2) {
        let t = Instant::now();
        let stats = train_step(&model, &mut opt, &images, &labels)?;
        (loss, grads) = (stats.loss, stats.with_grad);
        if i >= 2 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
            for (p, v) in phases.iter_mut().zip(stats.phases_ms) {
                p.push(v);
            }
        }
    }
    report(case, &mut times, grads, model.vars().len(), loss);
    let [f, b, o] = phases.map(|mut p| median(&mut p));
    println!("PHASES {case} forward {f:.1} ms, backward {b:.1} ms, optimizer {o:.1} ms (medians)");
    Ok(())
}

/// Runs every case (and the PyTorch twin) `rounds` times, interleaved, so a load change on the
/// shared machine hits all cases alike; the table shows the median over rounds.
fn orchestrate(steps: usize, slow_steps: usize, rounds: usize) -> Result<()> {
    let exe = std::env::current_exe().wrap_err("cannot find the kernel-bench executable")?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var("VIPA_TORCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv-torch/bin/python"));
    let script = root.join("benches/kernels/tiny_vit_step.py");
    let threads = rayon::current_num_threads();
    println!(
        "kernel-bench: {threads} rayon threads, {rounds} interleaved rounds of {steps} timed steps \
         ({slow_steps} for composed); per-round medians, then the median over rounds; \
         *_blas and kernels: {}",
        vipa_kernels::matrix_backend()
    );
    if !python.exists() {
        println!(
            "(no PyTorch at {}; set VIPA_TORCH_PYTHON to compare)",
            python.display()
        );
    }
    // Child-process settings (each overridable from the environment); why each one, measured,
    // is in `vipa_bench::ProcessEnv`.
    let env = ProcessEnv::from_env();
    println!("process settings: {}", env.describe());
    let steps_s = steps.to_string();
    let slow_s = slow_steps.to_string();
    let (mut rows, mut phases) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        let mut cmds: Vec<(String, Command)> = Vec::new();
        for case in [
            "matmul",
            "matmul_bt",
            "matmul_blas",
            "gemm_only",
            "gemm_only_blas",
            "kernels",
            "kernels_candle_gemm",
            "fused_nograd",
            "composed",
            "op_lm_loss_candle",
            "op_lm_loss_fused",
            "op_lm_loss_ce",
            "op_swiglu_candle",
            "op_swiglu_fused",
        ] {
            let mut c = Command::new(&exe);
            c.args(["--case", case, "--steps", &steps_s, "--slow-steps", &slow_s]);
            env.candle(&mut c);
            cmds.push((case.to_string(), c));
        }
        if python.exists() {
            let mut c = Command::new(&python);
            c.arg(&script).args(["--steps", &steps_s]);
            env.torch(&mut c);
            cmds.push(("PyTorch twin".to_string(), c));
        }
        let (r, p) = run_cases(cmds).map_err(|e| eyre!(e))?;
        rows.extend(r);
        phases.extend(p);
    }
    // Median over rounds per case, in first-seen order.
    let summary = summarize(&rows);
    let torch = |name: &str| summary.iter().find(|r| r.case == name).map(|r| r.median_ms);
    let (torch_step, torch_mm, torch_gemm) = (
        torch("torch_vit"),
        torch("torch_matmul"),
        torch("torch_gemm_only"),
    );
    println!();
    println!(
        "| case | median ms | min ms | × PyTorch | peak RSS MiB | vars with grad | 1-min load avg per round |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    for r in &summary {
        let reference = if r.case.contains("matmul") {
            torch_mm
        } else if r.case.contains("gemm_only") {
            torch_gemm
        } else {
            torch_step
        };
        let ratio = if r.case.starts_with("op_") {
            "-".to_string()
        } else {
            reference.map_or("n/a".into(), |t| format!("{:.2}", r.median_ms / t))
        };
        // RESULT's extra fields: vars with a gradient, vars (0 for cases without a model).
        let grads = match (r.extra.first(), r.extra.get(1)) {
            (Some(g), Some(v)) if v != "0" => format!("{g}/{v}"),
            _ => "-".into(),
        };
        println!(
            "| {} | {:.1} | {:.1} | {} | {:.0} | {} | {} |",
            r.case, r.median_ms, r.min_ms, ratio, r.peak_mib, grads, r.load
        );
    }
    println!();
    for p in &phases {
        println!("{p}");
    }
    println!("load average after: {}", loadavg());
    Ok(())
}
