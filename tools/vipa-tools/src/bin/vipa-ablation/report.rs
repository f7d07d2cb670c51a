//! The Hand3D-test table: every row from the answers its `eval.json` holds, with 95 %
//! clip-bootstrap intervals ([`vipa_hand3d::interval`]) overall and per task, and the
//! image-blind prior fitted on the train split of the dataset the answers came from and scored
//! on exactly those answers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use eyre::{WrapErr, bail};
use serde::Serialize;
use vipa_hand3d::interval::{
    ByClip, DEFAULT_RESAMPLES, DEFAULT_SEED, Interval, cluster_bootstrap, mean_sd,
};
use vipa_hand3d::{AnswerScore, DatasetReader, Metrics, Split, Task, score_answer};
use vipa_train::eval::EvalAnswer;

/// Smallest Hand3D-test a reproduction accepts: fewer clips cannot separate the rows (at 2
/// clips the prior alone moves by 0.15 in direction score between splits).
pub const MIN_TEST_CLIPS: usize = 40;
pub const MIN_TEST_ANSWERS: usize = 500;

/// One `eval.json`, as far as the table needs it.
#[derive(Debug, Clone)]
pub struct EvalFile {
    pub path: PathBuf,
    pub label: String,
    pub trained_steps: Option<u64>,
    pub answers: Vec<EvalAnswer>,
}

impl EvalFile {
    pub fn load(path: &Path) -> eyre::Result<Self> {
        let bytes = std::fs::read(path).wrap_err_with(|| {
            format!(
                "no evaluation at {}: run `dora run dataflows/eval.yml` (or `make pretrain`) first",
                path.display()
            )
        })?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .wrap_err_with(|| format!("{} is not JSON", path.display()))?;
        let Some(answers) = v.get("answers") else {
            bail!(
                "{} has no per-answer records (written by an older vipa-train); evaluate again",
                path.display()
            );
        };
        let answers: Vec<EvalAnswer> = serde_json::from_value(answers.clone())
            .wrap_err_with(|| format!("the answers of {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            label: v["label"].as_str().unwrap_or("?").to_owned(),
            trained_steps: v["trained_steps"].as_u64(),
            answers,
        })
    }

    /// `(clip, question, reference)` of every answer, sorted: what must match between rows.
    fn answer_keys(&self) -> Vec<(&str, &str, &str)> {
        let mut k: Vec<_> = self
            .answers
            .iter()
            .map(|a| {
                (
                    a.clip_id.as_str(),
                    a.question.as_str(),
                    a.reference.as_str(),
                )
            })
            .collect();
        k.sort_unstable();
        k
    }
}

/// Scores grouped by task and clip, plus the overall grouping.
#[derive(Debug, Clone, Default)]
pub struct Grouped {
    pub overall: ByClip,
    pub per_task: BTreeMap<String, ByClip>,
}

impl Grouped {
    fn push(&mut self, clip: &str, task: &str, s: AnswerScore) {
        self.overall.entry(clip.to_owned()).or_default().push(s);
        self.per_task
            .entry(task.to_owned())
            .or_default()
            .entry(clip.to_owned())
            .or_default()
            .push(s);
    }
}

fn group_model(answers: &[EvalAnswer]) -> Grouped {
    let mut g = Grouped::default();
    for a in answers {
        g.push(&a.clip_id, &a.task, score_answer(&a.truth, &a.generated));
    }
    g
}

/// The dataset's image-blind prior (fitted on its train split) on the same answers.
fn group_prior(answers: &[EvalAnswer], dataset: &Path) -> eyre::Result<Grouped> {
    let reader = DatasetReader::open(dataset).wrap_err_with(|| {
        format!(
            "the dataset {} (for the image-blind prior; pass the one the answers came from with --dataset)",
            dataset.display()
        )
    })?;
    let test_clips: std::collections::BTreeSet<String> = reader
        .clips(Split::Test)
        .map(|c| c.clip_id.clone())
        .collect();
    if let Some(a) = answers.iter().find(|a| !test_clips.contains(&a.clip_id)) {
        bail!(
            "the answers include clip `{}`, which is not in the test split of {}; the prior must \
             be fitted on the dataset that was evaluated: pass it with --dataset",
            a.clip_id,
            dataset.display()
        );
    }
    let prior = vipa_hand3d::baseline::prior_answers(&reader.samples(Split::Train)?);
    let mut g = Grouped::default();
    for a in answers {
        let text = Task::parse(&a.task)
            .and_then(|t| prior.get(&t))
            .map_or("", String::as_str);
        g.push(&a.clip_id, &a.task, score_answer(&a.truth, text));
    }
    Ok(g)
}

/// One table row: a model over one or more seeds (each seed one set of scores on the same
/// answers), or the prior.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub label: String,
    pub seeds: usize,
    pub trained_steps: Option<u64>,
    pub overall: Cell,
    pub per_task: BTreeMap<String, Cell>,
}

/// The numbers of one row on one answer set (overall or one task).
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// Metrics of the first seed's answers (counts, parse rate, median).
    pub metrics: Metrics,
    pub clips: usize,
    /// Mean over seeds, and the sample sd over seeds (one seed: none).
    pub distance_mae_m: Stat,
    pub distance_median_m: Stat,
    pub direction_score: Stat,
    pub parse_rate: Stat,
}

/// A metric: its value (mean over seeds), its spread over seeds and its 95 % clip-bootstrap
/// interval (of the seed mean: clips resampled once for all seeds).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub seed_sd: Option<f64>,
    pub ci: Option<Interval>,
}

fn stat(seeds: &[&ByClip], f: fn(&Metrics) -> f32) -> Stat {
    let per_seed: Vec<f64> = seeds
        .iter()
        .map(|b| f64::from(f(&Metrics::of_scores(b.values().flatten()))))
        .filter(|x| x.is_finite())
        .collect();
    let (mean, seed_sd) = match mean_sd(&per_seed) {
        Some((m, sd, _)) => (m, sd),
        None => (f64::NAN, None),
    };
    Stat {
        mean,
        seed_sd,
        ci: seed_mean_ci(seeds, f),
    }
}

/// Clip-bootstrap interval of the seed-averaged metric: each resample picks clips (the same
/// clips for every seed) and averages the seeds' metrics on them.
fn seed_mean_ci(seeds: &[&ByClip], f: fn(&Metrics) -> f32) -> Option<Interval> {
    let clips: Vec<&String> = seeds.first()?.keys().collect();
    cluster_bootstrap(
        &clips,
        |pick| {
            let mut sum = 0.0;
            for b in seeds {
                let m = Metrics::of_scores(pick.iter().filter_map(|c| b.get(c.as_str())).flatten());
                let v = f64::from(f(&m));
                if !v.is_finite() {
                    return None;
                }
                sum += v;
            }
            Some(sum / seeds.len() as f64)
        },
        DEFAULT_RESAMPLES,
        DEFAULT_SEED,
    )
}

fn cell(seeds: &[&ByClip]) -> Cell {
    let first = seeds[0];
    Cell {
        metrics: Metrics::of_scores(first.values().flatten()),
        clips: first.len(),
        distance_mae_m: stat(seeds, |m| m.distance_mae_m),
        distance_median_m: stat(seeds, |m| m.distance_median_m),
        direction_score: stat(seeds, |m| m.direction_score),
        parse_rate: stat(seeds, |m| m.parse_rate),
    }
}

fn row(label: &str, trained_steps: Option<u64>, seeds: &[Grouped]) -> Row {
    let overall: Vec<&ByClip> = seeds.iter().map(|g| &g.overall).collect();
    let tasks: Vec<String> = seeds[0].per_task.keys().cloned().collect();
    let per_task = tasks
        .into_iter()
        .filter_map(|t| {
            let per: Vec<&ByClip> = seeds.iter().filter_map(|g| g.per_task.get(&t)).collect();
            (per.len() == seeds.len()).then(|| (t, cell(&per)))
        })
        .collect();
    Row {
        label: label.to_owned(),
        seeds: seeds.len(),
        trained_steps,
        overall: cell(&overall),
        per_task,
    }
}

/// The whole table.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub dataset: PathBuf,
    pub answers: usize,
    pub clips: usize,
    pub rows: Vec<Row>,
}

/// Builds the table: `groups` are rows, each a list of eval files (one per seed) that must all
/// hold the same answers; the prior row ends it.
pub fn build(groups: &[(String, Vec<EvalFile>)], dataset: &Path) -> eyre::Result<Table> {
    let Some(reference) = groups.iter().flat_map(|(_, f)| f.first()).next() else {
        bail!("no evaluation to tabulate");
    };
    if reference.answers.is_empty() {
        bail!("{} holds no scored answers", reference.path.display());
    }
    let keys = reference.answer_keys();
    for f in groups.iter().flat_map(|(_, f)| f) {
        if f.answer_keys() != keys {
            bail!(
                "{} and {} were scored on different answers ({} vs {}); rows of one table must \
                 see the same test samples (same dataset, reader seed and max_samples)",
                reference.path.display(),
                f.path.display(),
                reference.answers.len(),
                f.answers.len()
            );
        }
    }
    let mut rows = Vec::new();
    for (label, files) in groups {
        let seeds: Vec<Grouped> = files.iter().map(|f| group_model(&f.answers)).collect();
        if seeds.is_empty() {
            continue;
        }
        rows.push(row(label, files[0].trained_steps, &seeds));
    }
    let prior = group_prior(&reference.answers, dataset)?;
    rows.push(row(
        "image-blind prior (train-split constant answer per task)",
        None,
        &[prior],
    ));
    Ok(Table {
        dataset: dataset.to_owned(),
        answers: reference.answers.len(),
        clips: rows[0].overall.clips,
        rows,
    })
}

fn num(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "–".into()
    }
}

fn with_ci(s: &Stat, digits: usize) -> String {
    let mut out = num(s.mean, digits);
    if let Some(sd) = s.seed_sd {
        out.push_str(&format!(" ± {}", num(sd, digits)));
    }
    if let Some(ci) = s.ci {
        out.push_str(&format!(
            " [{}, {}]",
            num(ci.lo, digits),
            num(ci.hi, digits)
        ));
    }
    out
}

impl Table {
    /// Markdown: the overall table, then distance and direction per task.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "Hand3D-test: {} answers from {} held-out clips ({}). Values: mean over seeds \
             ± sd over seeds [95 % clip-bootstrap interval].\n\n",
            self.answers,
            self.clips,
            self.dataset.display()
        );
        out.push_str(
            "| model | seeds | trained steps | parsed (unparsed) | distance MAE (m) | distance median (m) | direction (/3) |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.rows {
            let m = &r.overall.metrics;
            out.push_str(&format!(
                "| {} | {} | {} | {:.0} % ({}) | {} | {} | {} |\n",
                r.label,
                r.seeds,
                r.trained_steps.map_or("–".into(), |s| s.to_string()),
                r.overall.parse_rate.mean * 100.0,
                m.n_unparsed(),
                with_ci(&r.overall.distance_mae_m, 3),
                with_ci(&r.overall.distance_median_m, 3),
                with_ci(&r.overall.direction_score, 2),
            ));
        }
        let tasks: Vec<&String> = self.rows[0].per_task.keys().collect();
        out.push_str("\nPer task: distance MAE (m) / direction (/3), [95 % interval]\n\n| model |");
        for t in &tasks {
            out.push_str(&format!(" {t} (n) |"));
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(tasks.len()));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&format!("| {} |", r.label));
            for t in &tasks {
                match r.per_task.get(*t) {
                    Some(c) => out.push_str(&format!(
                        " {} / {} ({}) |",
                        with_ci(&c.distance_mae_m, 3),
                        with_ci(&c.direction_score, 2),
                        c.metrics.n
                    )),
                    None => out.push_str(" – |"),
                }
            }
            out.push('\n');
        }
        out
    }

    /// The prior's row.
    pub fn prior(&self) -> Option<&Row> {
        self.rows.last()
    }

    /// A row by label.
    pub fn row(&self, label: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.label == label)
    }
}
