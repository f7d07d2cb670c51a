//! `vipa-ablation`: the paper's "dual encoder" ablation on the synthetic sample, and the
//! evaluation table `make pretrain` ends with.
//!
//! ```text
//! vipa-ablation run       # untrained / stage 1 without 3D / stage 1 with 3D, one table
//! vipa-ablation report out/pretrain/eval.json [more eval.json …]
//! ```
//!
//! Both end the table with the **image-blind prior**
//! ([`vipa_hand3d::baseline::prior_metrics`]): per task, the one constant answer fitted to the
//! train split (majority direction per axis, median distance), scored on the same test split. A
//! trained model has to beat that row to show it uses the images, not only the answer format
//! and the dataset's averages.
//!
//! `run` uses the committed graphs `pretrain-no3d.yml` and `pretrain.yml` (each resumes from
//! its own `out/…/checkpoints`, so a finished run is not repeated) and `eval.yml` three times
//! with the matching encoder-3d backend, checkpoint and label, all rewritten into
//! `out/ablation/` with absolute paths and without `build:` (build the tree first:
//! `make ablation` does). All three rows see the same test clips and the same frozen encoders;
//! they differ only in the 3D encoder and in training. The table is also written to
//! `out/ablation/table.md`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use eyre::{WrapErr, bail};
use serde_yaml::Value;
use vipa_e2e::{Dataflow, dora_run_live, repo_root};
use vipa_hand3d::{DatasetReader, Split};

#[derive(Parser)]
#[command(about = "VIPA pretraining ablation and evaluation table")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Trains (if needed) and evaluates untrained, no-3D and 3D models; prints the table.
    Run {
        /// Upper bound for each dora run, in seconds.
        #[arg(long, default_value_t = 3600)]
        stop_after: u64,
        /// The Hand3D dataset, for the image-blind prior row.
        #[arg(long, default_value = "data/hand3d")]
        dataset: PathBuf,
    },
    /// Prints the table of existing eval.json files.
    Report {
        files: Vec<PathBuf>,
        /// The Hand3D dataset, for the image-blind prior row.
        #[arg(long, default_value = "data/hand3d")]
        dataset: PathBuf,
    },
}

fn abs(p: &Path) -> Value {
    Value::String(p.display().to_string())
}

/// A committed graph rewritten into `out/ablation/<name>/`: node paths and data paths made
/// absolute, `build:` removed (the caller built the tree once), the given 3D backend and
/// trainer settings.
fn rewrite(
    graph: &str,
    name: &str,
    backend: &str,
    out_dir: &Path,
    trainer: Vec<(&str, Value)>,
) -> eyre::Result<PathBuf> {
    let root = repo_root();
    let mut df = Dataflow::load(graph)?;
    df.patch_config("reader", &[("dataset", abs(&root.join("data/hand3d")))])?;
    df.patch_config("encoder-3d", &[("backend", backend.into())])?;
    let mut pairs = vec![
        ("out_dir", abs(out_dir)),
        (
            "llm_weights",
            abs(&root.join("data/weights/SmolLM2-135M-Instruct.Q4_1.gguf")),
        ),
    ];
    pairs.extend(trainer);
    df.patch_config("trainer", &pairs)?;
    let dir = root.join("out/ablation").join(name);
    std::fs::create_dir_all(&dir)?;
    df.write_to(&dir)
}

/// `eval.yml` for one row of the table.
fn eval_flow(
    name: &str,
    backend: &str,
    out_dir: &Path,
    checkpoint: &str,
    label: &str,
) -> eyre::Result<PathBuf> {
    let eval: serde_yaml::Mapping = serde_yaml::from_str(&format!(
        "{{checkpoint: {checkpoint:?}, max_new_tokens: 32, label: {label:?}}}"
    ))?;
    rewrite(
        "eval.yml",
        &format!("eval-{name}"),
        backend,
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

fn fmt(v: &serde_json::Value, digits: usize) -> String {
    match v.as_f64() {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "–".into(),
    }
}

/// One table row.
fn row(label: &str, steps: &str, o: &serde_json::Value) -> String {
    format!(
        "| {label} | {steps} | {} | {:.0} % | {} | {} | {} |\n",
        o["n"],
        o["parse_rate"].as_f64().unwrap_or(0.0) * 100.0,
        fmt(&o["distance_mae_m"], 3),
        fmt(&o["direction_score"], 2),
        fmt(&o["degrees_mae"], 2),
    )
}

/// The table of eval.json files, as Markdown, ending with the image-blind prior of `dataset`.
fn table(files: &[PathBuf], dataset: &Path) -> eyre::Result<String> {
    let mut out = String::from(
        "| model | trained steps | answers | parsed | distance MAE (m) | direction (/3) | degrees MAE |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for f in files {
        let r: serde_json::Value = serde_json::from_slice(
            &std::fs::read(f).wrap_err_with(|| {
                format!(
                    "no evaluation at {}: run `dora run dataflows/eval.yml` (or `make pretrain`) first",
                    f.display()
                )
            })?,
        )?;
        out.push_str(&row(
            r["label"].as_str().unwrap_or("?"),
            &r["trained_steps"]
                .as_u64()
                .map_or("0".into(), |s| s.to_string()),
            &r["overall"],
        ));
    }
    let prior = DatasetReader::open(dataset).and_then(|reader| {
        Ok(vipa_hand3d::baseline::prior_metrics(
            &reader.samples(Split::Train)?,
            &reader.samples(Split::Test)?,
        ))
    });
    match prior {
        Ok(prior) => out.push_str(&row(
            "image-blind prior (train-split constant answer per task)",
            "–",
            &serde_json::to_value(prior)?,
        )),
        Err(e) => out.push_str(&format!(
            "\n(no image-blind prior row: the dataset at {} cannot be read: {e}; pass \
             `--dataset`)\n",
            dataset.display()
        )),
    }
    Ok(out)
}

fn main() -> eyre::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Report { files, dataset } => {
            print!("{}", table(&files, &dataset)?);
            for f in &files {
                if let Some(dir) = f.parent() {
                    println!("checkpoints: {}", dir.join("checkpoints").display());
                    println!("loss plot:   {}", dir.join("loss.png").display());
                    println!("metrics:     {}", dir.join("metrics.csv").display());
                }
            }
        }
        Cmd::Run {
            stop_after,
            dataset,
        } => {
            let root = repo_root();
            let out = root.join("out");
            // The two trainings: the committed graphs, which differ only in encoder-3d (and
            // out_dir); each resumes from its own checkpoints.
            let no3d = rewrite(
                "pretrain-no3d.yml",
                "train-no3d",
                "none",
                &out.join("pretrain-no3d"),
                vec![],
            )?;
            run_graph(&no3d, stop_after)?;
            let with3d = rewrite(
                "pretrain.yml",
                "train-3d",
                "point_map_vit",
                &out.join("pretrain"),
                vec![],
            )?;
            run_graph(&with3d, stop_after)?;
            let rows = [
                (
                    "untrained",
                    "point_map_vit",
                    out.join("ablation/untrained"),
                    "none",
                    "untrained (seeded init)",
                ),
                (
                    "no3d",
                    "none",
                    out.join("pretrain-no3d"),
                    "latest",
                    "stage 1 without 3D encoder",
                ),
                (
                    "with3d",
                    "point_map_vit",
                    out.join("pretrain"),
                    "latest",
                    "stage 1 with 3D encoder",
                ),
            ];
            let mut files = Vec::new();
            for (name, backend, dir, ckpt, label) in rows {
                let yml = eval_flow(name, backend, &dir, ckpt, label)?;
                run_graph(&yml, stop_after)?;
                files.push(dir.join("eval.json"));
            }
            let t = table(&files, &root.join(dataset))?;
            std::fs::write(out.join("ablation/table.md"), &t)?;
            println!("\nHand3D-test (held-out synthetic clips), paper Table 8 metrics:\n\n{t}");
            println!("table: {}", out.join("ablation/table.md").display());
        }
    }
    Ok(())
}
