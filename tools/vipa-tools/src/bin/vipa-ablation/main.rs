//! `vipa-ablation`: the Hand3D-test table (paper Table 8 in shape), the reproduction over
//! seeds, and linear probes of the frozen features.
//!
//! ```text
//! vipa-ablation report out/pretrain/eval.json [more eval.json …] [--png table.png]
//! vipa-ablation run          # untrained / stage 1 without 3D / with 3D, one seed (make ablation)
//! vipa-ablation reproduce    # the same rows over --seeds seeds, table + JSON + PNG (make reproduce)
//! vipa-ablation probe        # ridge probes: palm / object position from frozen features (make probe)
//! ```
//!
//! Every table is computed from the per-answer records of the `eval.json` files
//! ([`report`]): 95 % intervals by a bootstrap over clips, overall and per task, the median
//! distance error next to the mean, unparsed answers counted, and the **image-blind prior**
//! last ([`vipa_hand3d::baseline`]): per task the constant answer fitted to the train split of
//! the dataset that was evaluated, scored on exactly the same answers. A trained model has to
//! beat that row to show it uses the images, not only the answer format and the averages.
//!
//! `run` and `reproduce` use the committed graphs `pretrain.yml`, `pretrain-no3d.yml` and
//! `eval.yml`, rewritten into `out/ablation/` or `out/reproduce/` with absolute paths, the
//! row's seed (trainer init and dropout, and the reader's order) and without `build:` (build
//! the tree first: the make targets do). All rows see the same test clips and the same frozen
//! encoders; they differ only in the 3D encoder, the seed and training. Trainings resume from
//! their own checkpoints, so a finished row is not repeated.

mod probe;
mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use eyre::{WrapErr, bail};
use serde_yaml::Value;
use vipa_hand3d::{DatasetReader, Split};
use vipa_tools::{Dataflow, dora_run_live, repo_root};
use vipa_train::plot::{Bar, Panel, bar_panels};

use report::{EvalFile, MIN_TEST_ANSWERS, MIN_TEST_CLIPS, Table};

#[derive(Parser)]
#[command(about = "VIPA pretraining: evaluation tables with intervals, the reproduction, probes")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Trains (if needed) and evaluates untrained, no-3D and 3D models with one seed.
    Run {
        /// Upper bound for each dora run, in seconds.
        #[arg(long, default_value_t = 3600)]
        stop_after: u64,
        /// The Hand3D dataset that is evaluated (for the image-blind prior).
        #[arg(long, default_value = "data/hand3d")]
        dataset: PathBuf,
    },
    /// The paper's Table 8 in shape over several seeds: untrained, stage 1 without and with
    /// the 3D encoder, the image-blind prior; writes table.md, table.json and table.png.
    Reproduce {
        /// Seeds per trained row.
        #[arg(long, default_value_t = 3)]
        seeds: u64,
        #[arg(long, default_value_t = 3600)]
        stop_after: u64,
        #[arg(long, default_value = "data/hand3d")]
        dataset: PathBuf,
        #[arg(long, default_value = "out/reproduce")]
        out: PathBuf,
        /// Test answers each row is scored on (the reader's seeded order, the same for every
        /// row); at least 500.
        #[arg(long, default_value_t = 500)]
        eval_samples: u64,
    },
    /// Prints the table of existing eval.json files (one row each).
    Report {
        files: Vec<PathBuf>,
        #[arg(long, default_value = "data/hand3d")]
        dataset: PathBuf,
        /// Also draw the table as a PNG here.
        #[arg(long)]
        png: Option<PathBuf>,
    },
    /// Ridge probes from the frozen semantic, 3D and (with --checkpoint) fused tokens to the
    /// ground-truth 3D palm and target-object positions; prints the table.
    Probe {
        #[arg(long, default_value = "data/hand3d")]
        dataset: PathBuf,
        /// The synthetic clips (their ground-truth sidecars).
        #[arg(long, default_value = "data/synth")]
        synth: PathBuf,
        /// A trained run's checkpoints (for the fused tokens), e.g. out/pretrain/checkpoints.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// The graph whose encoder configs are probed.
        #[arg(long, default_value = "pretrain.yml")]
        graph: String,
        /// Frames probed per clip (evenly spaced among the stored ones).
        #[arg(long, default_value_t = 4)]
        frames_per_clip: usize,
    },
}

fn abs(p: &Path) -> Value {
    Value::String(p.display().to_string())
}

/// A committed graph rewritten into `dir`: node paths and data paths made absolute, `build:`
/// removed (the caller built the tree once), the given 3D backend, seed and trainer settings.
fn rewrite(
    graph: &str,
    dir: &Path,
    backend: &str,
    seed: u64,
    out_dir: &Path,
    trainer: Vec<(&str, Value)>,
) -> eyre::Result<PathBuf> {
    let root = repo_root();
    let mut df = Dataflow::load(graph)?;
    let reader_seed = if graph == "eval.yml" { 0 } else { seed };
    df.patch_config(
        "reader",
        &[
            ("dataset", abs(&root.join("data/hand3d"))),
            ("seed", Value::from(reader_seed)),
        ],
    )?;
    df.patch_config("encoder-3d", &[("backend", backend.into())])?;
    for enc in ["encoder-2d", "encoder-3d"] {
        if let Some(Value::String(c)) = df.config(enc)?.get("cache") {
            let c = root.join("dataflows").join(c);
            df.patch_config(enc, &[("cache", abs(&c))])?;
        }
    }
    let mut pairs = vec![
        ("out_dir", abs(out_dir)),
        ("seed", Value::from(seed)),
        (
            "llm_weights",
            abs(&root.join("data/weights/SmolLM2-135M-Instruct.Q4_1.gguf")),
        ),
    ];
    pairs.extend(trainer);
    df.patch_config("trainer", &pairs)?;
    std::fs::create_dir_all(dir)?;
    df.write_to(dir)
}

/// `eval.yml` for one row: `checkpoint` is `latest` (of `out_dir`) or `none`.
fn eval_flow(
    dir: &Path,
    backend: &str,
    seed: u64,
    out_dir: &Path,
    (checkpoint, label): (&str, &str),
    max_samples: Option<u64>,
) -> eyre::Result<PathBuf> {
    let mut eval: serde_yaml::Mapping = serde_yaml::from_str(&format!(
        "{{checkpoint: {checkpoint:?}, max_new_tokens: 24, label: {label:?}}}"
    ))?;
    if let Some(m) = max_samples {
        eval.insert("max_samples".into(), Value::from(m));
    }
    rewrite(
        "eval.yml",
        dir,
        backend,
        seed,
        out_dir,
        vec![("eval", Value::Mapping(eval))],
    )
}

fn run_graph(yml: &Path, stop_after: u64) -> eyre::Result<()> {
    println!("\n=== dora run {} ===", yml.display());
    if !dora_run_live(yml, Duration::from_secs(stop_after))? {
        bail!("dora run {} failed (see the log above)", yml.display());
    }
    Ok(())
}

/// Trains `graph` for one seed unless its run already reached its last step, then evaluates it
/// (unless its eval.json is newer than its last checkpoint). Returns the eval.json path.
/// One trained row of a table: its folder name, graph, 3D backend, seed and label.
struct Trained<'a> {
    name: String,
    graph: &'a str,
    backend: &'a str,
    seed: u64,
    label: &'a str,
}

fn train_and_eval(
    work: &Path,
    row: &Trained<'_>,
    stop_after: u64,
    eval_samples: Option<u64>,
) -> eyre::Result<PathBuf> {
    let (name, graph, backend, seed, label) = (
        row.name.as_str(),
        row.graph,
        row.backend,
        row.seed,
        row.label,
    );
    let out_dir = work.join(name);
    let train = rewrite(
        graph,
        &work.join("graphs").join(format!("train-{name}")),
        backend,
        seed,
        &out_dir,
        vec![],
    )?;
    run_graph(&train, stop_after)?;
    let eval = eval_flow(
        &work.join("graphs").join(format!("eval-{name}")),
        backend,
        seed,
        &out_dir,
        ("latest", label),
        eval_samples,
    )?;
    let json = out_dir.join("eval.json");
    let newest_ckpt = std::fs::read_dir(out_dir.join("checkpoints"))
        .ok()
        .and_then(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok()?.modified().ok())
                .max()
        });
    let fresh = match (
        std::fs::metadata(&json).and_then(|m| m.modified()),
        newest_ckpt,
    ) {
        // Newer than the checkpoint and as many answers as asked (no limit: redone).
        (Ok(e), Some(c)) => {
            e > c
                && eval_samples.is_some_and(|n| {
                    EvalFile::load(&json).is_ok_and(|f| f.answers.len() as u64 == n)
                })
        }
        _ => false,
    };
    if !fresh {
        run_graph(&eval, stop_after)?;
    }
    Ok(json)
}

/// The untrained row: the seeded init, scored once.
fn untrained(work: &Path, stop_after: u64, eval_samples: Option<u64>) -> eyre::Result<PathBuf> {
    let dir = work.join("untrained");
    let json = dir.join("eval.json");
    let done = EvalFile::load(&json)
        .is_ok_and(|f| eval_samples.is_some_and(|n| f.answers.len() as u64 == n));
    if !done {
        let yml = eval_flow(
            &work.join("graphs/eval-untrained"),
            "point_map_vit",
            0,
            &dir,
            ("none", "untrained (seeded init)"),
            eval_samples,
        )?;
        run_graph(&yml, stop_after)?;
    }
    Ok(json)
}

/// Refuses a Hand3D-test too small to tell rows apart.
fn check_power(dataset: &Path) -> eyre::Result<()> {
    let reader = DatasetReader::open(dataset).wrap_err_with(|| {
        format!(
            "the Hand3D dataset {} (run `make annotate`)",
            dataset.display()
        )
    })?;
    let clips = reader.clips(Split::Test).count();
    let answers = reader
        .samples(Split::Test)?
        .iter()
        .filter(|s| s.task.is_visual() && s.truth.is_some())
        .count();
    if clips < MIN_TEST_CLIPS || answers < MIN_TEST_ANSWERS {
        bail!(
            "Hand3D-test of {} has {clips} clips and {answers} answers; a reproduction needs at \
             least {MIN_TEST_CLIPS} held-out clips and {MIN_TEST_ANSWERS} answers, or the \
             intervals cannot separate the rows (at 2 clips the prior alone moves by 0.15 in \
             direction score between splits). Annotate more clips: `make clean-data && make \
             data annotate` with the Makefile's defaults, or raise `split.test_fraction`",
            dataset.display()
        );
    }
    Ok(())
}

/// Sums the resident memory of this process and all its descendants every 200 ms; the peak is
/// what a reproduction needs of the machine (the nodes run as separate processes).
struct MemorySampler {
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

fn tree_rss_kib(root: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut parent = std::collections::HashMap::new();
    let mut rss = std::collections::HashMap::new();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            let mut it = line.split_whitespace();
            match it.next() {
                Some("PPid:") => {
                    if let Some(p) = it.next().and_then(|v| v.parse::<u32>().ok()) {
                        parent.insert(pid, p);
                    }
                }
                Some("VmRSS:") => {
                    if let Some(k) = it.next().and_then(|v| v.parse::<u64>().ok()) {
                        rss.insert(pid, k);
                    }
                }
                _ => {}
            }
        }
    }
    let in_tree = |mut pid: u32| {
        for _ in 0..64 {
            if pid == root {
                return true;
            }
            match parent.get(&pid) {
                Some(&p) if p != 0 => pid = p,
                _ => return false,
            }
        }
        false
    };
    rss.iter()
        .filter(|(p, _)| in_tree(**p))
        .map(|(_, k)| k)
        .sum()
}

impl MemorySampler {
    fn start() -> Self {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak_kib.clone(), stop.clone());
        let root = std::process::id();
        let handle = std::thread::Builder::new()
            .name("memory-sampler".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    p.fetch_max(tree_rss_kib(root), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
            .ok();
        Self {
            peak_kib,
            stop,
            handle,
        }
    }

    fn finish(mut self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.peak_kib.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

const NO3D: &str = "stage 1 without 3D encoder";
const WITH3D: &str = "stage 1 with 3D encoder";

/// The issue's targets, checked on the table (each line says met or missed).
fn verdict(t: &Table) -> String {
    let (Some(prior), Some(with), Some(without)) = (t.prior(), t.row(WITH3D), t.row(NO3D)) else {
        return String::new();
    };
    let (p, w, n) = (&prior.overall, &with.overall, &without.overall);
    let mark = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut out = String::from("\nTargets (Hand3D-test, overall):\n");
    let ratio = w.distance_mae_m.mean / p.distance_mae_m.mean;
    out.push_str(&format!(
        "- with 3D: distance error ≤ 0.6 × the prior's: {ratio:.2} × → {}\n",
        mark(ratio <= 0.6)
    ));
    out.push_str(&format!(
        "- with 3D: direction ≥ 2.2 / 3: {:.2} → {}\n",
        w.direction_score.mean,
        mark(w.direction_score.mean >= 2.2)
    ));
    let clear = |a: &report::Stat, b: &report::Stat| match (a.ci, b.ci) {
        (Some(x), Some(y)) => x.disjoint(&y),
        _ => false,
    };
    out.push_str(&format!(
        "- with 3D: interval clear of the prior's (distance, direction): {}, {}\n",
        mark(
            clear(&w.distance_mae_m, &p.distance_mae_m)
                && w.distance_mae_m.mean < p.distance_mae_m.mean
        ),
        mark(
            clear(&w.direction_score, &p.direction_score)
                && w.direction_score.mean > p.direction_score.mean
        )
    ));
    let spread =
        |a: &report::Stat, b: &report::Stat| a.seed_sd.unwrap_or(0.0).max(b.seed_sd.unwrap_or(0.0));
    let dd = n.distance_mae_m.mean - w.distance_mae_m.mean;
    let dr = w.direction_score.mean - n.direction_score.mean;
    out.push_str(&format!(
        "- with 3D beats without by more than the seed spread: distance {dd:+.3} m (spread {:.3}) → {}, direction {dr:+.2} (spread {:.2}) → {}\n",
        spread(&w.distance_mae_m, &n.distance_mae_m),
        mark(dd > spread(&w.distance_mae_m, &n.distance_mae_m)),
        spread(&w.direction_score, &n.direction_score),
        mark(dr > spread(&w.direction_score, &n.direction_score)),
    ));
    out
}

/// The table as bars: distance MAE and direction score, overall and per task, each bar with
/// its 95 % interval.
fn draw(t: &Table, path: &Path) -> eyre::Result<()> {
    let mut panels = Vec::new();
    let mut names: Vec<String> = vec!["overall".into()];
    names.extend(t.rows[0].per_task.keys().cloned());
    for (metric, unit) in [("distance MAE", "m"), ("direction", "/3")] {
        for name in &names {
            let bars: Vec<Bar> = t
                .rows
                .iter()
                .map(|r| {
                    let cell = if name == "overall" {
                        Some(&r.overall)
                    } else {
                        r.per_task.get(name)
                    };
                    let s = cell.map(|c| {
                        if unit == "m" {
                            c.distance_mae_m
                        } else {
                            c.direction_score
                        }
                    });
                    Bar {
                        label: r.label.clone(),
                        value: s.map_or(f64::NAN, |s| s.mean),
                        interval: s.and_then(|s| s.ci).map(|i| (i.lo, i.hi)),
                    }
                })
                .collect();
            // Direction on its whole scale (0-3); distance up to 3x the prior's, so that the
            // untrained row's metres-off answers are cut and labelled, not the only bar seen.
            let prior = t
                .prior()
                .and_then(|p| bars.iter().find(|b| b.label == p.label))
                .map_or(f64::NAN, |b| b.value);
            let y_max = if unit == "m" {
                (prior.is_finite() && prior > 0.0).then_some(3.0 * prior)
            } else {
                Some(3.0)
            };
            let empty = bars.iter().all(|b| !b.value.is_finite());
            panels.push(Panel {
                title: if empty {
                    format!("{metric}: {name} (no distances)")
                } else {
                    format!("{metric}: {name}")
                },
                y_desc: unit.into(),
                bars,
                y_max,
            });
        }
    }
    bar_panels(
        path,
        &format!(
            "Hand3D-test, {} answers / {} clips, 95 % clip-bootstrap intervals",
            t.answers, t.clips
        ),
        &panels,
        names.len(),
    )
    .map_err(|e| eyre::eyre!("drawing {}: {e}", path.display()))
}

fn print_paths(files: &[PathBuf]) {
    for f in files {
        if let Some(dir) = f.parent() {
            println!("checkpoints: {}", dir.join("checkpoints").display());
            println!("loss plot:   {}", dir.join("loss.png").display());
            println!("metrics:     {}", dir.join("metrics.csv").display());
        }
    }
}

fn main() -> std::process::ExitCode {
    // The error chain alone (no backtrace unless VIPA_BACKTRACE=1).
    vipa_node_kit::exit_code("vipa-ablation", run())
}

fn run() -> eyre::Result<()> {
    let cli = Cli::parse();
    let root = repo_root();
    match cli.cmd {
        Cmd::Report {
            files,
            dataset,
            png,
        } => {
            let groups: Vec<(String, Vec<EvalFile>)> = files
                .iter()
                .map(|f| EvalFile::load(f).map(|e| (e.label.clone(), vec![e])))
                .collect::<eyre::Result<_>>()?;
            let t = report::build(&groups, &dataset)?;
            print!("{}", t.markdown());
            if t.clips < MIN_TEST_CLIPS {
                println!(
                    "\n(only {} test clips: the intervals are wide; `make reproduce` needs {MIN_TEST_CLIPS})",
                    t.clips
                );
            }
            if let Some(png) = png {
                draw(&t, &png)?;
                println!("table plot:  {}", png.display());
            }
            print_paths(&files);
        }
        Cmd::Run {
            stop_after,
            dataset,
        } => {
            let work = root.join("out/ablation");
            let no3d = train_and_eval(
                &work,
                &Trained {
                    name: "no3d".to_owned(),
                    graph: "pretrain-no3d.yml",
                    backend: "none",
                    seed: 0,
                    label: NO3D,
                },
                stop_after,
                None,
            )?;
            let with3d = train_and_eval(
                &work,
                &Trained {
                    name: "with3d".to_owned(),
                    graph: "pretrain.yml",
                    backend: "point_map_vit",
                    seed: 0,
                    label: WITH3D,
                },
                stop_after,
                None,
            )?;
            let base = untrained(&work, stop_after, None)?;
            let groups = [base, no3d, with3d]
                .iter()
                .map(|f| EvalFile::load(f).map(|e| (e.label.clone(), vec![e])))
                .collect::<eyre::Result<Vec<_>>>()?;
            let t = report::build(&groups, &root.join(dataset))?;
            let md = t.markdown() + &verdict(&t);
            std::fs::write(work.join("table.md"), &md)?;
            println!("\n{md}");
            println!("table: {}", work.join("table.md").display());
        }
        Cmd::Reproduce {
            seeds,
            stop_after,
            dataset,
            out,
            eval_samples,
        } => {
            let started = Instant::now();
            if eval_samples < MIN_TEST_ANSWERS as u64 {
                bail!("--eval-samples must be at least {MIN_TEST_ANSWERS}");
            }
            let limit = Some(eval_samples);
            let mem = MemorySampler::start();
            let dataset = root.join(dataset);
            check_power(&dataset)?;
            if seeds == 0 {
                bail!("--seeds must be at least 1");
            }
            let work = root.join(out);
            let mut no3d = Vec::new();
            let mut with3d = Vec::new();
            for seed in 0..seeds {
                no3d.push(train_and_eval(
                    &work,
                    &Trained {
                        name: format!("no3d-s{seed}"),
                        graph: "pretrain-no3d.yml",
                        backend: "none",
                        seed,
                        label: NO3D,
                    },
                    stop_after,
                    limit,
                )?);
                with3d.push(train_and_eval(
                    &work,
                    &Trained {
                        name: format!("with3d-s{seed}"),
                        graph: "pretrain.yml",
                        backend: "point_map_vit",
                        seed,
                        label: WITH3D,
                    },
                    stop_after,
                    limit,
                )?);
            }
            let base = untrained(&work, stop_after, limit)?;
            let load = |v: &[PathBuf]| -> eyre::Result<Vec<EvalFile>> {
                v.iter().map(|f| EvalFile::load(f)).collect()
            };
            let groups = vec![
                ("untrained (seeded init)".to_owned(), load(&[base])?),
                (NO3D.to_owned(), load(&no3d)?),
                (WITH3D.to_owned(), load(&with3d)?),
            ];
            let t = report::build(&groups, &dataset)?;
            let wall = started.elapsed().as_secs_f64();
            let peak = mem.finish();
            let md = format!(
                "{}{}\nWall time {:.1} min, peak memory {:.0} MiB (this process and every node, summed).\n",
                t.markdown(),
                verdict(&t),
                wall / 60.0,
                peak
            );
            std::fs::write(work.join("table.md"), &md)?;
            std::fs::write(
                work.join("table.json"),
                serde_json::to_string_pretty(&serde_json::json!({
                    "table": t,
                    "wall_s": wall,
                    "peak_memory_mib": peak,
                    "seeds": seeds,
                }))?,
            )?;
            draw(&t, &work.join("table.png"))?;
            println!("\n{md}");
            println!(
                "table: {}, {}, {}",
                work.join("table.md").display(),
                work.join("table.json").display(),
                work.join("table.png").display()
            );
        }
        Cmd::Probe {
            dataset,
            synth,
            checkpoint,
            graph,
            frames_per_clip,
        } => {
            let mut df = Dataflow::load(&graph)?;
            let flows = root.join("dataflows");
            let mut cfg2d: vipa_encoder_2d::Encoder2dConfig =
                serde_yaml::from_value(Value::Mapping(df.config("encoder-2d")?))
                    .wrap_err_with(|| format!("{graph}: encoder-2d config"))?;
            let mut cfg3d: vipa_encoder_3d::Encoder3dConfig =
                serde_yaml::from_value(Value::Mapping(df.config("encoder-3d")?))
                    .wrap_err_with(|| format!("{graph}: encoder-3d config"))?;
            // Paths in a graph are relative to dataflows/.
            cfg2d.cache = cfg2d.cache.map(|c| flows.join(c));
            cfg3d.cache = cfg3d.cache.map(|c| flows.join(c));
            if cfg3d.backend == vipa_encoder_3d::config::Backend::None {
                cfg3d.backend = vipa_encoder_3d::config::Backend::PointMapVit;
            }
            let table = probe::run(&probe::ProbeArgs {
                dataset: root.join(dataset),
                synth: root.join(synth),
                checkpoint: checkpoint.map(|c| root.join(c)),
                max_frames_per_clip: frames_per_clip,
                encoder_2d: cfg2d,
                encoder_3d: cfg3d,
            })?;
            println!("{table}");
        }
    }
    Ok(())
}
