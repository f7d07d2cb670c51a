//! Hand3D-test evaluation (paper Table 8): generate an answer for every incoming sample
//! (greedy, up to `eval.max_new_tokens`), parse it back and score it against the sample's
//! ground truth with [`vipa_hand3d::evaluate`]: distance error in metres (mean absolute), the
//! direction score out of 3, and the share of answers that parse at all.
//!
//! Answers are generated `eval.batch_size` at a time in one left-padded batch
//! ([`vipa_models::VipaLm::generate_batch`]): decoding reads the LLM's weights once per step
//! for the whole batch instead of once per answer, which is most of an answer's cost on a CPU.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use eyre::{WrapErr, eyre};
use serde::Serialize;
use vipa_hand3d::{AnswerTruth, Metrics, Unit, evaluate, parse_answer};
use vipa_models::llm::GenerationConfig;
use vipa_msgs::QaSample;
use vipa_node_kit::{Progress, ProgressFile};

use crate::Checkpoints;
use crate::config::TrainConfig;
use crate::join::Joined;
use crate::model::{Built, build, inputs};

/// The ground truth of a sample: direction words and unit from its reference answer (the
/// annotator formatted that answer from the geometry), the value from the exact target.
pub fn truth_of(s: &QaSample) -> Option<AnswerTruth> {
    let parsed = parse_answer(&s.answer)?;
    let exact = match parsed.unit {
        Unit::Metres => s.target.distance_m,
        Unit::Degrees => s.target.degrees,
    };
    Some(AnswerTruth {
        directions: parsed.directions,
        value: exact.unwrap_or(parsed.value),
        unit: parsed.unit,
    })
}

/// One scored answer.
#[derive(Debug, Clone, Serialize)]
pub struct EvalExample {
    pub question_id: String,
    pub task: String,
    pub question: String,
    pub reference: String,
    pub generated: String,
}

/// One scored answer with its truth, so that a report can regroup and resample them
/// (`vipa-ablation report`: clip-bootstrap intervals, the prior on the same answers).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct EvalAnswer {
    pub clip_id: String,
    pub task: String,
    pub question: String,
    pub reference: String,
    pub generated: String,
    pub truth: AnswerTruth,
}

/// The evaluation report (`eval.json`).
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub label: String,
    pub checkpoint: Option<PathBuf>,
    pub trained_steps: Option<u64>,
    pub overall: Metrics,
    pub per_task: BTreeMap<String, Metrics>,
    pub samples_without_truth: usize,
    pub examples: Vec<EvalExample>,
    /// Every scored answer, in the order scored.
    pub answers: Vec<EvalAnswer>,
    pub elapsed_s: f64,
}

/// A sample whose prompt is built, waiting for its batch.
struct Pending {
    sample: QaSample,
    prompt: candle_core::Tensor,
}

/// Evaluation state.
pub struct Evaluator {
    cfg: TrainConfig,
    built: Built,
    dev: Device,
    checkpoint: Option<PathBuf>,
    trained_steps: Option<u64>,
    scored: Vec<EvalAnswer>,
    /// How many of `scored` parse (kept as they come, for the progress line).
    parsed: usize,
    examples: Vec<EvalExample>,
    without_truth: usize,
    /// Prompts waiting for a full batch (`eval.batch_size`).
    pending: Vec<Pending>,
    started: Instant,
    /// `<out_dir>/progress.json` (for `vipa-run`), when `progress` is on.
    progress: Option<ProgressFile>,
}

impl Evaluator {
    /// Loads the checkpoint named by `eval.checkpoint`.
    pub fn new(cfg: &TrainConfig, dev: &Device) -> eyre::Result<Self> {
        let loaded = match cfg.eval.checkpoint.as_str() {
            "none" => None,
            "latest" => {
                let dir = cfg.checkpoint_dir();
                let l = Checkpoints::new(&dir, usize::MAX)
                    .latest(dev)
                    .wrap_err("reading the latest checkpoint")?;
                Some(l.ok_or_else(|| {
                    eyre!(
                        "no checkpoint in {} to evaluate; train first, or set `eval.checkpoint: none` for the untrained model",
                        dir.display()
                    )
                })?)
            }
            path => Some(
                crate::checkpoint::load(std::path::Path::new(path), dev)
                    .wrap_err_with(|| format!("loading the checkpoint {path}"))?,
            ),
        };
        let (checkpoint, trained_steps) = match &loaded {
            Some(l) => (Some(l.path.clone()), Some(l.meta.step)),
            None => (None, None),
        };
        // What trained is the checkpoint's choice, not the eval graph's: a checkpoint whose
        // LLM trained must be evaluated with its own LLM, not the pretrained one.
        let mut cfg = cfg.clone();
        if let Some(l) = &loaded {
            let then = &l.meta.config;
            if let Some(v) = then.get("train_llm") {
                cfg.train_llm = v.as_bool();
            }
            if let Some(v) = then.get("train_projector") {
                cfg.train_projector = v.as_bool();
            }
        }
        let cfg = &cfg;
        let built = build(cfg, loaded.map(|l| l.weights), dev)?;
        tracing::info!(label = %cfg.eval_label(), checkpoint = ?checkpoint, "evaluator ready");
        Ok(Self {
            cfg: cfg.clone(),
            built,
            dev: dev.clone(),
            checkpoint,
            trained_steps,
            scored: Vec::new(),
            parsed: 0,
            examples: Vec::new(),
            without_truth: 0,
            pending: Vec::new(),
            started: Instant::now(),
            progress: cfg
                .progress
                .then(|| ProgressFile::new(cfg.out_dir.join("progress.json"))),
        })
    }

    /// Whether the 3D features are needed.
    pub fn needs_3d(&self) -> bool {
        self.built.model.spatial_width().is_some()
    }

    /// Samples taken so far (scored, or waiting in the batch being filled).
    pub fn scored(&self) -> u64 {
        (self.scored.len() + self.without_truth + self.pending.len()) as u64
    }

    /// Whether `eval.max_samples` is reached.
    pub fn done(&self) -> bool {
        self.cfg
            .eval
            .max_samples
            .is_some_and(|m| self.scored() >= m)
    }

    /// Takes one sample: builds its prompt, and generates and scores the batch once
    /// `eval.batch_size` prompts wait.
    pub fn eval_sample(&mut self, j: &Joined) -> eyre::Result<()> {
        let model = &self.built.model;
        let codec = &self.built.codec;
        let (vit, spatial) = inputs(j, model, &self.dev)?;
        let s = &j.sample;
        let prompt = (|| -> candle_core::Result<candle_core::Tensor> {
            let images = model.visual_embeds(&vit, spatial.as_ref(), None)?;
            model.prompt_embeds(&codec.prompt(&s.question, j.tokens_2d.len())?, &images)
        })()
        .map_err(|e| eyre!("{e}"))
        .wrap_err_with(|| format!("building the prompt of {}", s.question_id))?;
        self.pending.push(Pending {
            sample: s.clone(),
            prompt,
        });
        if self.pending.len() >= self.cfg.eval.batch_size.max(1) {
            self.flush()?;
        }
        Ok(())
    }

    /// Generates the waiting prompts' answers as one batch and scores them, in arrival order.
    fn flush(&mut self) -> eyre::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let codec = &self.built.codec;
        let gen_cfg = GenerationConfig::greedy(self.cfg.eval.max_new_tokens, vec![codec.eos()]);
        let prompts: Vec<_> = batch.iter().map(|p| p.prompt.clone()).collect();
        let texts = (|| -> candle_core::Result<Vec<String>> {
            let generations = self.built.model.generate_batch(&prompts, &gen_cfg)?;
            generations
                .iter()
                .map(|g| codec.decode(&g.tokens))
                .collect()
        })()
        .map_err(|e| eyre!("{e}"))
        .wrap_err_with(|| {
            format!(
                "generating the answers of {} … {}",
                batch[0].sample.question_id,
                batch[batch.len() - 1].sample.question_id
            )
        })?;
        for (p, text) in batch.into_iter().zip(texts) {
            self.score(p.sample, text);
        }
        self.report(false);
        Ok(())
    }

    /// Scores one generated answer.
    fn score(&mut self, s: QaSample, text: String) {
        if self.examples.len() < 12 {
            self.examples.push(EvalExample {
                question_id: s.question_id.clone(),
                task: s.task.as_str().into(),
                question: s.question.clone(),
                reference: s.answer.clone(),
                generated: text.clone(),
            });
        }
        // Table 8 scores the Hand3D-visual answers; motion answers have no such metric.
        let truth = if s.task.stage() == 1 {
            truth_of(&s)
        } else {
            None
        };
        match truth {
            Some(truth) => {
                self.parsed += usize::from(parse_answer(&text).is_some());
                self.scored.push(EvalAnswer {
                    clip_id: s.clip_id,
                    task: s.task.as_str().to_owned(),
                    question: s.question,
                    reference: s.answer,
                    generated: text,
                    truth,
                });
            }
            None => {
                self.without_truth += 1;
                tracing::debug!(question = %s.question_id, "no numeric truth: not scored");
            }
        }
        let done = self.scored.len() + self.without_truth;
        if done.is_multiple_of(10) {
            let so_far = evaluate(self.scored.iter().map(|a| (&a.truth, a.generated.as_str())));
            tracing::info!(
                samples = done,
                parse_rate = so_far.parse_rate,
                direction_score = so_far.direction_score,
                "evaluating"
            );
        }
    }

    /// Writes the progress file (a failure to write it is logged, never fatal).
    fn report(&mut self, finished: bool) {
        let Some(file) = self.progress.as_mut() else {
            return;
        };
        let done = (self.scored.len() + self.without_truth) as u64;
        let elapsed = self.started.elapsed().as_secs_f64();
        let p = Progress {
            phase: "eval".into(),
            done,
            total: self.cfg.eval.max_samples,
            unit: "answers".into(),
            message: format!(
                "{:.0} % parsed | {:.2} answers/s",
                100.0 * self.parsed as f64 / self.scored.len().max(1) as f64,
                done as f64 / elapsed.max(1e-9)
            ),
            elapsed_s: elapsed,
            finished,
        };
        if let Err(e) = file.update(&p) {
            tracing::warn!("progress file {}: {e}", file.path().display());
        }
    }

    /// Writes `eval.json` (and returns the report).
    pub fn finish(mut self) -> eyre::Result<EvalReport> {
        self.flush()?;
        self.report(true);
        let overall = evaluate(self.scored.iter().map(|a| (&a.truth, a.generated.as_str())));
        let mut tasks: BTreeMap<String, Vec<(&AnswerTruth, &str)>> = BTreeMap::new();
        for a in &self.scored {
            tasks
                .entry(a.task.clone())
                .or_default()
                .push((&a.truth, a.generated.as_str()));
        }
        let per_task = tasks.into_iter().map(|(k, v)| (k, evaluate(v))).collect();
        let report = EvalReport {
            label: self.cfg.eval_label(),
            checkpoint: self.checkpoint,
            trained_steps: self.trained_steps,
            overall,
            per_task,
            samples_without_truth: self.without_truth,
            examples: self.examples,
            answers: self.scored,
            elapsed_s: self.started.elapsed().as_secs_f64(),
        };
        std::fs::create_dir_all(&self.cfg.out_dir)?;
        let path = self.cfg.out_dir.join("eval.json");
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .wrap_err_with(|| format!("writing {}", path.display()))?;
        tracing::info!(
            path = %path.display(),
            n = report.overall.n,
            parse_rate = report.overall.parse_rate,
            distance_mae_m = report.overall.distance_mae_m,
            direction_score = report.overall.direction_score,
            "evaluation written"
        );
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vipa_msgs::{QaTarget, TaskType};

    #[test]
    fn truth_takes_words_from_the_reference_and_the_exact_value() {
        let s = QaSample {
            question_id: "q".into(),
            task: TaskType::SpatialRelation,
            clip_id: "c".into(),
            frame_indices: vec![0],
            question: "?".into(),
            answer: "left and down, 0.44m".into(),
            target: QaTarget {
                direction: Some([-0.3, 0.2, 0.0]),
                distance_m: Some(0.4412),
                degrees: None,
            },
            motion_tokens: None,
        };
        let t = truth_of(&s).unwrap();
        assert_eq!(t.directions.0, [-1, 1, 0]);
        assert_eq!(t.unit, Unit::Metres);
        assert!((t.value - 0.4412).abs() < 1e-6);
        let m = evaluate([(&t, "left and down, 0.40m"), (&t, "no idea")]);
        assert_eq!(m.n_parsed, 1);
        assert!((m.distance_mae_m - 0.0412).abs() < 1e-4);
        assert!((m.direction_score - 1.5).abs() < 1e-6);
    }
}
