//! The training loop's state, without dora: feed it joined samples in order, it steps the
//! optimizer every `batch_size` samples, writes metrics, checkpoints and the loss plot.
//!
//! # Reproducibility and resume
//! Everything random is a function of the config's `seed` and the sample's position in the
//! run: the initial weights ([`vipa_models::seeded`]), and the fusion dropout mask of sample
//! `k` (seed `mix(seed, k)`). The data order is the reader's (a function of its seed and the
//! epoch). A checkpoint stores the trainable weights, the AdamW moments, the step and the
//! number of samples consumed; a resumed run skips that many samples of the feed and then
//! computes exactly what the uninterrupted run computed (a test compares the loss curves).

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use eyre::{WrapErr, bail, eyre};
use serde::Serialize;
pub use vipa_kernels::peak_rss_mib;
use vipa_node_kit::{Progress, ProgressFile};

use crate::config::TrainConfig;
use crate::join::Joined;
use crate::model::{Built, build, inputs};
use crate::optim::{AdamW, AdamWParams};
use crate::{
    CheckpointMeta, Checkpoints, CosineSchedule, GradAccumulator, MetricsRow, MetricsWriter,
    check_finite_loss, clip_grad_norm,
};

/// splitmix64 of `(seed, k)`: the dropout seed of sample `k`.
pub fn mix(seed: u64, k: u64) -> u64 {
    let mut z = seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What a finished (or stopped) run reports, also written to `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub preset: vipa_models::Preset,
    pub stage: u8,
    /// Where it trained: `cpu`, `cuda:0`.
    pub device: String,
    pub steps: u64,
    pub samples_seen: u64,
    pub resumed_from_step: Option<u64>,
    /// Mean loss of the first and last `min(5, steps)` steps of the whole run (resumed runs
    /// include the earlier part, read back from `metrics.csv`).
    pub first_loss: Option<f32>,
    pub last_loss: Option<f32>,
    pub elapsed_s: f64,
    pub samples_per_s: f64,
    pub step_time_s: f64,
    pub peak_rss_mib: Option<f64>,
    pub checkpoint: Option<PathBuf>,
    pub metrics: PathBuf,
    pub plot: Option<PathBuf>,
    pub trainable_params: usize,
}

/// The training loop's state.
pub struct Trainer {
    cfg: TrainConfig,
    built: Built,
    dev: Device,
    vars: Vec<(String, Var)>,
    opt: AdamW,
    schedule: CosineSchedule,
    accum: GradAccumulator,
    ckpts: Checkpoints,
    metrics: MetricsWriter,
    step: u64,
    samples_seen: u64,
    resumed_from: Option<u64>,
    step_loss: f64,
    step_started: Instant,
    started: Instant,
    /// Samples trained in this process (for throughput).
    trained_here: u64,
    losses: Vec<(u64, f32)>,
    last_checkpoint: Option<PathBuf>,
    /// `<out_dir>/progress.json` (for `vipa-run`), when `progress` is on.
    progress: Option<ProgressFile>,
}

impl Trainer {
    /// Builds the model, resuming from the newest checkpoint in `out_dir` when `resume` is set.
    pub fn new(cfg: &TrainConfig, dev: &Device) -> eyre::Result<Self> {
        let cfg = &cfg.resolved();
        std::fs::create_dir_all(&cfg.out_dir)
            .wrap_err_with(|| format!("creating {}", cfg.out_dir.display()))?;
        let ckpts = Checkpoints::new(cfg.checkpoint_dir(), cfg.keep_checkpoints);
        let loaded = if cfg.resume {
            ckpts.latest(dev).wrap_err(
                "reading the latest checkpoint (delete the folder it names to start over)",
            )?
        } else {
            None
        };
        if let Some(l) = &loaded {
            let then = &l.meta.config;
            for key in [
                "preset",
                "stage",
                "batch_size",
                "seed",
                "train_llm",
                "train_projector",
            ] {
                // A key an older checkpoint did not record reads as null (the default).
                let null = serde_json::Value::Null;
                let now = serde_json::to_value(cfg)?
                    .get(key)
                    .cloned()
                    .unwrap_or(null.clone());
                let was = then.get(key).cloned().unwrap_or(null);
                if was != now {
                    bail!(
                        "the checkpoint {} was made with {key} = {was}, this run has {now}; use \
                         another out_dir or `resume: false`",
                        l.path.display(),
                    );
                }
            }
        }
        let built = build(cfg, loaded.as_ref().map(|l| l.weights.clone()), dev)?;
        let mut vars: Vec<(String, Var)> = built
            .varmap
            .data()
            .lock()
            .map_err(|_| eyre!("VarMap lock poisoned"))?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        if vars.is_empty() {
            bail!(
                "stage {} of preset `{}` has nothing to train",
                cfg.stage,
                cfg.preset
            );
        }
        let mut opt = AdamW::new(
            vars.clone(),
            AdamWParams {
                beta1: cfg.betas[0],
                beta2: cfg.betas[1],
                eps: cfg.eps,
                weight_decay: cfg.weight_decay,
            },
        );
        if let Some(l) = cfg.lr_llm {
            opt.set_lr_scale("language_model.", l / cfg.lr());
        }
        let (step, samples_seen, resumed_from) = match &loaded {
            Some(l) => {
                opt.load_state(&l.optimizer)
                    .map_err(|e| eyre!("{e}"))
                    .wrap_err_with(|| format!("optimizer state of {}", l.path.display()))?;
                tracing::info!(
                    step = l.meta.step,
                    samples_seen = l.meta.samples_seen,
                    path = %l.path.display(),
                    "resuming"
                );
                (l.meta.step, l.meta.samples_seen, Some(l.meta.step))
            }
            None => (0, 0, None),
        };
        let metrics_path = cfg.out_dir.join("metrics.csv");
        let metrics = MetricsWriter::open(&metrics_path, Some(step))
            .wrap_err_with(|| format!("opening {}", metrics_path.display()))?;
        let losses = crate::metrics::read_losses(&metrics_path).unwrap_or_default();
        let schedule = CosineSchedule {
            base_lr: cfg.lr(),
            warmup_ratio: cfg.warmup_ratio,
            total_steps: cfg.max_steps,
            min_lr_ratio: cfg.min_lr_ratio,
        };
        let progress = cfg
            .progress
            .then(|| ProgressFile::new(cfg.out_dir.join("progress.json")));
        let n_params: usize = vars.iter().map(|(_, v)| v.elem_count()).sum();
        tracing::info!(
            preset = %cfg.preset,
            stage = cfg.stage,
            trainable_tensors = vars.len(),
            trainable_params = n_params,
            groups = ?built.policy.trainable_groups(),
            "trainer ready"
        );
        Ok(Self {
            cfg: cfg.clone(),
            built,
            dev: dev.clone(),
            vars,
            opt,
            schedule,
            accum: GradAccumulator::new(),
            ckpts,
            metrics,
            step,
            samples_seen,
            resumed_from,
            step_loss: 0.0,
            step_started: Instant::now(),
            started: Instant::now(),
            trained_here: 0,
            losses,
            last_checkpoint: None,
            progress,
        })
    }

    /// Samples consumed before this process started (a resumed run skips them in the feed).
    pub fn samples_seen(&self) -> u64 {
        self.samples_seen
    }

    /// Optimizer steps taken.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Samples still needed to reach `max_steps`.
    pub fn samples_needed(&self) -> u64 {
        let total = self.cfg.max_steps * u64::from(self.cfg.batch_size());
        total.saturating_sub(self.samples_seen)
    }

    /// Whether `max_steps` is reached.
    pub fn done(&self) -> bool {
        self.step >= self.cfg.max_steps
    }

    /// Whether the 3D features are needed (the model has a fusion layer).
    pub fn needs_3d(&self) -> bool {
        self.built.model.spatial_width().is_some()
    }

    /// Trains on one sample; steps the optimizer when a batch is complete.
    pub fn train_sample(&mut self, j: &Joined) -> eyre::Result<()> {
        if self.done() {
            return Ok(());
        }
        let model = &self.built.model;
        let codec = &self.built.codec;
        let (vit, spatial) = inputs(j, model, &self.dev)?;
        let k = self.samples_seen;
        let sample = &j.sample;
        let loss = (|| -> candle_core::Result<Tensor> {
            let images =
                model.visual_embeds(&vit, spatial.as_ref(), Some(mix(self.cfg.seed, k)))?;
            let segments = codec.prompt(&sample.question, j.tokens_2d.len())?;
            let prompt = model.prompt_embeds(&segments, &images)?;
            model.answer_loss(&prompt, &codec.answer_ids(&sample.answer)?)
        })()
        .map_err(|e| eyre!("{e}"))
        .wrap_err_with(|| {
            format!(
                "forward pass on sample {} ({} of clip {})",
                j.sample_seq, sample.question_id, sample.clip_id
            )
        })?;
        let value = loss.to_scalar::<f32>().map_err(|e| eyre!("{e}"))?;
        check_finite_loss(self.step, value).wrap_err_with(|| {
            format!(
                "sample {} ({} of clip {})",
                j.sample_seq, sample.question_id, sample.clip_id
            )
        })?;
        let scaled = (loss / f64::from(self.cfg.batch_size())).map_err(|e| eyre!("{e}"))?;
        let grads = scaled.backward().map_err(|e| eyre!("backward: {e}"))?;
        let plain: Vec<Var> = self.vars.iter().map(|(_, v)| v.clone()).collect();
        self.accum
            .add(grads, &plain)
            .map_err(|e| eyre!("accumulating gradients: {e}"))?;
        self.step_loss += f64::from(value);
        self.samples_seen += 1;
        self.trained_here += 1;
        if self.accum.micro_batches() as u32 >= self.cfg.batch_size() {
            self.apply_step()?;
        }
        Ok(())
    }

    fn apply_step(&mut self) -> eyre::Result<()> {
        let Some(mut grads) = self.accum.take() else {
            return Ok(());
        };
        let plain: Vec<Var> = self.vars.iter().map(|(_, v)| v.clone()).collect();
        let norm =
            clip_grad_norm(&mut grads, &plain, self.cfg.max_grad_norm).map_err(|e| eyre!("{e}"))?;
        let loss = (self.step_loss / f64::from(self.cfg.batch_size())) as f32;
        self.step_loss = 0.0;
        if !norm.is_finite() {
            bail!(
                "gradient norm is {norm} at step {}: stopping without applying this update; the \
                 last good checkpoint is kept. Lower the learning rate or check this batch",
                self.step
            );
        }
        let lr = self.schedule.lr(self.step);
        self.opt.step(&grads, lr).map_err(|e| eyre!("AdamW: {e}"))?;
        self.step += 1;
        let elapsed = self.started.elapsed().as_secs_f64();
        let step_time = self.step_started.elapsed().as_secs_f64();
        self.step_started = Instant::now();
        let row = MetricsRow {
            step: self.step,
            samples_seen: self.samples_seen,
            loss,
            lr,
            grad_norm: norm,
            samples_per_s: f64::from(self.cfg.batch_size()) / step_time.max(1e-9),
            elapsed_s: elapsed,
        };
        self.metrics
            .append(&row)
            .wrap_err_with(|| format!("writing {}", self.metrics.path().display()))?;
        self.losses.push((self.step, loss));
        // `finish` writes the finished state once, after the last checkpoint.
        self.report(
            format!("loss {loss:.4} | {:.2} samples/s", row.samples_per_s),
            false,
        );
        if self.step == 1 || self.step.is_multiple_of(10) || self.done() {
            tracing::info!(
                step = self.step,
                loss,
                lr,
                grad_norm = norm,
                samples_per_s = row.samples_per_s,
                "train"
            );
        }
        if self.step.is_multiple_of(self.cfg.checkpoint_every) || self.done() {
            self.save(loss)?;
        }
        Ok(())
    }

    /// Writes a checkpoint and refreshes the loss plot.
    fn save(&mut self, loss: f32) -> eyre::Result<()> {
        let weights = self
            .vars
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
            .collect();
        let optimizer = self.opt.state().map_err(|e| eyre!("{e}"))?;
        let meta = CheckpointMeta {
            step: self.step,
            samples_seen: self.samples_seen,
            loss,
            rng: serde_json::json!({
                "seed": self.cfg.seed,
                "dropout": "mix(seed, sample index)",
                "samples_seen": self.samples_seen,
            }),
            config: serde_json::to_value(&self.cfg)?,
        };
        let path = self
            .ckpts
            .save(&meta, &weights, &optimizer)
            .wrap_err("writing a checkpoint")?;
        tracing::info!(step = self.step, path = %path.display(), "checkpoint saved");
        self.last_checkpoint = Some(path);
        self.plot();
        Ok(())
    }

    /// Writes the progress file (a failure to write it is logged, never fatal).
    fn report(&mut self, message: String, finished: bool) {
        let Some(file) = self.progress.as_mut() else {
            return;
        };
        let p = Progress {
            phase: format!("stage {}", self.cfg.stage),
            done: self.step,
            total: Some(self.cfg.max_steps),
            unit: "steps".into(),
            message,
            elapsed_s: self.started.elapsed().as_secs_f64(),
            finished,
        };
        if let Err(e) = file.update(&p) {
            tracing::warn!("progress file {}: {e}", file.path().display());
        }
    }

    fn plot(&self) -> Option<PathBuf> {
        let path = self.cfg.out_dir.join("loss.png");
        let title = format!("VIPA stage {} ({} preset)", self.cfg.stage, self.cfg.preset);
        match crate::plot::loss_curve(&path, &title, &[("train loss", &self.losses)]) {
            Ok(()) => Some(path),
            Err(e) => {
                tracing::warn!("loss plot {}: {e}", path.display());
                None
            }
        }
    }

    /// Ends the run: a final checkpoint if steps were taken since the last one, the plot and
    /// `summary.json`.
    pub fn finish(mut self) -> eyre::Result<TrainSummary> {
        if self.accum.micro_batches() > 0 {
            tracing::warn!(
                samples = self.accum.micro_batches(),
                "the feed ended inside a batch: those samples are not applied (raise the reader's `epochs`)"
            );
        }
        let saved = self
            .last_checkpoint
            .as_ref()
            .is_some_and(|p| p.ends_with(format!("step-{:08}", self.step)));
        if !saved && self.step > self.resumed_from.unwrap_or(0) {
            let loss = self.losses.last().map(|l| l.1).unwrap_or(f32::NAN);
            self.save(loss)?;
        }
        let last = self.losses.last().map(|l| l.1).unwrap_or(f32::NAN);
        self.report(format!("loss {last:.4}"), true);
        let elapsed = self.started.elapsed().as_secs_f64();
        let k = self.losses.len().min(5);
        let mean = |s: &[(u64, f32)]| -> Option<f32> {
            (!s.is_empty()).then(|| s.iter().map(|l| l.1).sum::<f32>() / s.len() as f32)
        };
        let steps_here = self.step - self.resumed_from.unwrap_or(0);
        let summary = TrainSummary {
            preset: self.cfg.preset,
            stage: self.cfg.stage,
            device: vipa_models::device::describe(&self.dev),
            steps: self.step,
            samples_seen: self.samples_seen,
            resumed_from_step: self.resumed_from,
            first_loss: mean(&self.losses[..k]),
            last_loss: mean(&self.losses[self.losses.len() - k..]),
            elapsed_s: elapsed,
            samples_per_s: self.trained_here as f64 / elapsed.max(1e-9),
            step_time_s: if steps_here > 0 {
                elapsed / steps_here as f64
            } else {
                0.0
            },
            peak_rss_mib: peak_rss_mib(),
            checkpoint: self.last_checkpoint.clone().or_else(|| {
                self.ckpts
                    .list()
                    .ok()
                    .and_then(|l| l.last().map(|(_, p)| p.clone()))
            }),
            metrics: self.metrics.path().to_owned(),
            plot: self.plot(),
            trainable_params: self.vars.iter().map(|(_, v)| v.elem_count()).sum(),
        };
        let path = self.cfg.out_dir.join("summary.json");
        std::fs::write(&path, serde_json::to_string_pretty(&summary)?)
            .wrap_err_with(|| format!("writing {}", path.display()))?;
        Ok(summary)
    }
}
