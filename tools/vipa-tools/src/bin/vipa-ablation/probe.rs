//! Linear probes of the frozen features: is the 3D position of the hand and of the target
//! object *in* the tokens the trainer gets, before the trainer is blamed for not reading it?
//!
//! For every stored frame of the Hand3D dataset (the frames the samples show), the ground
//! truth comes from the synthetic clip's sidecar: the palm of the hand that performs the task
//! (mean of wrist and the four MCP joints, as `hand_point: palm`) and the target object's
//! centre, both in the camera frame. The features are those the committed graph's encoder
//! nodes send (their `VIPA_CONFIG` is read from `dataflows/pretrain.yml`, and their feature
//! cache is used), pooled two ways:
//! - `mean`: the mean over tokens, `f32[d]`;
//! - `grid 4×4`: the token grid averaged into 4×4 cells and concatenated, `f32[16·d]` (keeps
//!   where things are).
//!
//! A ridge regression from standardised features to `(x, y, z)` is fitted on the train
//! clips, its λ chosen on a fifth of the train clips held out, refitted on all train clips and
//! scored on the test clips: mean Euclidean error in cm. The first row is the train mean
//! (no features), the floor any probe has to beat.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use eyre::{WrapErr, bail, eyre};
use vipa_encoder_2d::{Encoder2d, Encoder2dConfig};
use vipa_encoder_3d::{Encoder3d, Encoder3dConfig};
use vipa_hand3d::frames::read_clip_frames;
use vipa_hand3d::{DatasetReader, Split};
use vipa_models::vision::fusion::Fusion;
use vipa_models::vision::spatial::SpatialTokens;
use vipa_msgs::StreamHeader;
use vipa_node_kit::StreamLogic;

/// A feature extractor's pooled outputs for every probed frame.
pub struct FrameSet {
    pub clip: Vec<String>,
    pub split: Vec<Split>,
    pub palm: Vec<[f32; 3]>,
    pub object: Vec<[f32; 3]>,
}

/// `[tokens, d]` → `mean` `[d]` and `grid g×g` `[g·g·d]` (tokens on a square grid).
pub fn pool(values: &[f32], tokens: usize, d: usize, g: usize) -> (Vec<f32>, Vec<f32>) {
    let mut mean = vec![0f32; d];
    let side = (tokens as f64).sqrt().round() as usize;
    let mut grid = vec![0f32; g * g * d];
    let mut counts = vec![0usize; g * g];
    for t in 0..tokens {
        let row = &values[t * d..(t + 1) * d];
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v / tokens as f32;
        }
        if side * side == tokens && side >= g {
            let (r, c) = (t / side, t % side);
            let cell = (r * g / side) * g + c * g / side;
            counts[cell] += 1;
            for (x, v) in grid[cell * d..(cell + 1) * d].iter_mut().zip(row) {
                *x += v;
            }
        }
    }
    for (cell, &n) in counts.iter().enumerate() {
        if n > 0 {
            for x in &mut grid[cell * d..(cell + 1) * d] {
                *x /= n as f32;
            }
        }
    }
    (mean, grid)
}

/// An `h×w×3` image averaged into `n×n` cells: `f32[n·n, 3]` (non-finite values skipped).
fn cells(px: &[f32], w: usize, h: usize, n: usize) -> Vec<f32> {
    let mut sum = vec![0f32; n * n * 3];
    let mut count = vec![0f32; n * n * 3];
    for y in 0..h {
        for x in 0..w {
            let cell = (y * n / h) * n + x * n / w;
            for c in 0..3 {
                let v = px[(y * w + x) * 3 + c];
                if v.is_finite() {
                    sum[cell * 3 + c] += v;
                    count[cell * 3 + c] += 1.0;
                }
            }
        }
    }
    sum.iter()
        .zip(&count)
        .map(|(s, n)| if *n > 0.0 { s / n } else { 0.0 })
        .collect()
}

/// Solves `(A + λI) x = b` for symmetric positive-definite `A` (`n×n`, row-major) with several
/// right-hand sides `b` (`n×k`), by Cholesky. `None` when not positive definite.
fn solve_spd(a: &[f64], n: usize, lambda: f64, b: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j] + if i == j { lambda } else { 0.0 };
            for p in 0..j {
                s -= l[i * n + p] * l[j * n + p];
            }
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    let mut x = b.to_vec();
    for c in 0..k {
        for i in 0..n {
            let mut s = x[i * k + c];
            for p in 0..i {
                s -= l[i * n + p] * x[p * k + c];
            }
            x[i * k + c] = s / l[i * n + i];
        }
        for i in (0..n).rev() {
            let mut s = x[i * k + c];
            for p in i + 1..n {
                s -= l[p * n + i] * x[p * k + c];
            }
            x[i * k + c] = s / l[i * n + i];
        }
    }
    Some(x)
}

/// A fitted ridge regression in dual form (`n_train` coefficients per output).
struct Ridge {
    mean: Vec<f32>,
    scale: Vec<f32>,
    y_mean: [f64; 3],
    train: Tensor,
    alpha: Tensor,
}

fn standardise(x: &[Vec<f32>], mean: &[f32], scale: &[f32], dev: &Device) -> eyre::Result<Tensor> {
    let d = mean.len();
    let flat: Vec<f32> = x
        .iter()
        .flat_map(|r| r.iter().zip(mean).zip(scale).map(|((v, m), s)| (v - m) / s))
        .collect();
    Ok(Tensor::from_vec(flat, (x.len(), d), dev)?)
}

impl Ridge {
    fn fit(x: &[Vec<f32>], y: &[[f32; 3]], lambda: f64, dev: &Device) -> eyre::Result<Self> {
        let n = x.len();
        let d = x[0].len();
        let mut mean = vec![0f32; d];
        for r in x {
            for (m, v) in mean.iter_mut().zip(r) {
                *m += v / n as f32;
            }
        }
        let mut scale = vec![0f32; d];
        for r in x {
            for ((s, v), m) in scale.iter_mut().zip(r).zip(&mean) {
                *s += (v - m).powi(2) / n as f32;
            }
        }
        for s in &mut scale {
            *s = s.sqrt().max(1e-6);
        }
        let xs = standardise(x, &mean, &scale, dev)?;
        let gram: Vec<f64> = xs
            .matmul(&xs.t()?)?
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(f64::from)
            .collect();
        let mut y_mean = [0f64; 3];
        for t in y {
            for (m, v) in y_mean.iter_mut().zip(t) {
                *m += f64::from(*v) / n as f64;
            }
        }
        let b: Vec<f64> = y
            .iter()
            .flat_map(|t| (0..3).map(move |c| f64::from(t[c]) - y_mean[c]))
            .collect();
        // λ relative to the Gram's mean diagonal (= d for standardised features).
        let lam = lambda * d as f64;
        let alpha = solve_spd(&gram, n, lam, &b, 3)
            .ok_or_else(|| eyre!("ridge system not positive definite (λ {lambda})"))?;
        let alpha = Tensor::from_vec(
            alpha.into_iter().map(|v| v as f32).collect::<Vec<_>>(),
            (n, 3),
            dev,
        )?;
        Ok(Self {
            mean,
            scale,
            y_mean,
            train: xs,
            alpha,
        })
    }

    fn predict(&self, x: &[Vec<f32>], dev: &Device) -> eyre::Result<Vec<[f32; 3]>> {
        let xs = standardise(x, &self.mean, &self.scale, dev)?;
        let p = xs.matmul(&self.train.t()?)?.matmul(&self.alpha)?;
        Ok(p.to_vec2::<f32>()?
            .into_iter()
            .map(|r| {
                [
                    r[0] + self.y_mean[0] as f32,
                    r[1] + self.y_mean[1] as f32,
                    r[2] + self.y_mean[2] as f32,
                ]
            })
            .collect())
    }
}

fn mean_error_cm(pred: &[[f32; 3]], truth: &[[f32; 3]]) -> f64 {
    let sum: f64 = pred
        .iter()
        .zip(truth)
        .map(|(p, t)| {
            f64::from(
                ((p[0] - t[0]).powi(2) + (p[1] - t[1]).powi(2) + (p[2] - t[2]).powi(2)).sqrt(),
            )
        })
        .sum();
    100.0 * sum / pred.len().max(1) as f64
}

/// Ridge probe: λ picked on held-out train clips (every fifth clip), refit on all of train,
/// scored on test. Returns (test error cm, chosen λ).
pub fn probe(
    x: &[Vec<f32>],
    y: &[[f32; 3]],
    clips: &[String],
    is_test: &[bool],
    dev: &Device,
) -> eyre::Result<(f64, f64)> {
    let pick = |f: &dyn Fn(usize) -> bool| -> (Vec<Vec<f32>>, Vec<[f32; 3]>) {
        (0..x.len())
            .filter(|&i| f(i))
            .map(|i| (x[i].clone(), y[i]))
            .unzip()
    };
    let mut train_clips: Vec<&String> = (0..x.len())
        .filter(|&i| !is_test[i])
        .map(|i| &clips[i])
        .collect();
    train_clips.dedup();
    let val_set: std::collections::BTreeSet<&String> =
        train_clips.iter().copied().skip(2).step_by(5).collect();
    let (fit_x, fit_y) = pick(&|i| !is_test[i] && !val_set.contains(&clips[i]));
    let (val_x, val_y) = pick(&|i| !is_test[i] && val_set.contains(&clips[i]));
    let (tr_x, tr_y) = pick(&|i| !is_test[i]);
    let (te_x, te_y) = pick(&|i| is_test[i]);
    if fit_x.is_empty() || val_x.is_empty() || te_x.is_empty() {
        bail!("the probe needs frames from at least 6 train clips and 1 test clip");
    }
    let mut best = (f64::INFINITY, 1.0);
    for lambda in [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0] {
        let r = Ridge::fit(&fit_x, &fit_y, lambda, dev)?;
        let e = mean_error_cm(&r.predict(&val_x, dev)?, &val_y);
        if e < best.0 {
            best = (e, lambda);
        }
    }
    let r = Ridge::fit(&tr_x, &tr_y, best.1, dev)?;
    Ok((mean_error_cm(&r.predict(&te_x, dev)?, &te_y), best.1))
}

/// Error of predicting the train mean for every test frame.
pub fn mean_baseline(y: &[[f32; 3]], is_test: &[bool]) -> f64 {
    let train: Vec<&[f32; 3]> = y
        .iter()
        .zip(is_test)
        .filter(|(_, t)| !**t)
        .map(|(v, _)| v)
        .collect();
    let mut m = [0f32; 3];
    for t in &train {
        for c in 0..3 {
            m[c] += t[c] / train.len() as f32;
        }
    }
    let test: Vec<[f32; 3]> = y
        .iter()
        .zip(is_test)
        .filter(|(_, t)| **t)
        .map(|(v, _)| *v)
        .collect();
    mean_error_cm(&vec![m; test.len()], &test)
}

/// Per frame, the `mean` and the `grid 4×4` pooled features of one extractor.
type Pooled = (Vec<Vec<f32>>, Vec<Vec<f32>>);

/// Where the probe reads from.
pub struct ProbeArgs {
    pub dataset: PathBuf,
    pub synth: PathBuf,
    pub checkpoint: Option<PathBuf>,
    pub max_frames_per_clip: usize,
    pub encoder_2d: Encoder2dConfig,
    pub encoder_3d: Encoder3dConfig,
}

/// Runs every probe and returns the Markdown table.
pub fn run(args: &ProbeArgs) -> eyre::Result<String> {
    let dev = Device::Cpu;
    let reader = DatasetReader::open(&args.dataset)
        .wrap_err_with(|| format!("the Hand3D dataset {}", args.dataset.display()))?;
    let mut enc2d = Encoder2d::new(&args.encoder_2d).wrap_err("encoder-2d")?;
    let mut enc3d = Encoder3d::new(&args.encoder_3d).wrap_err("encoder-3d")?;
    let fusion = match &args.checkpoint {
        Some(dir) => Some(load_fusion(dir, &dev)?),
        None => None,
    };
    let mut feats: BTreeMap<&str, Pooled> = BTreeMap::new();
    let mut set = FrameSet {
        clip: Vec::new(),
        split: Vec::new(),
        palm: Vec::new(),
        object: Vec::new(),
    };
    let clips: Vec<(String, Split)> = [Split::Train, Split::Test]
        .into_iter()
        .flat_map(|s| reader.clips(s).map(move |c| (c.clip_id.clone(), s)))
        .collect();
    let bar = indicatif::ProgressBar::new(clips.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "probe: encoding frames [{bar:30}] {pos}/{len} clips ({eta})",
        )
        .map_err(|e| eyre!("{e}"))?,
    );
    for (clip_id, split) in &clips {
        bar.inc(1);
        let truth_path = args.synth.join(format!("{clip_id}.truth.parquet"));
        let truth = vipa_truth::read_clip_truth(&truth_path).wrap_err_with(|| {
            format!(
                "ground truth {} (the probe needs the synthetic clips' sidecars: `make data`)",
                truth_path.display()
            )
        })?;
        let frames = read_clip_frames(&args.dataset, clip_id)?;
        let active = truth.info.hands.first().copied();
        let stride = frames
            .frames
            .len()
            .div_ceil(args.max_frames_per_clip.max(1))
            .max(1);
        for stored in frames.frames.iter().step_by(stride) {
            let Some(ft) = truth
                .frames
                .iter()
                .find(|f| f.frame_idx == stored.frame_idx)
            else {
                continue;
            };
            let Some(hand) = ft.hands.iter().find(|h| Some(h.side) == active) else {
                continue;
            };
            let Some(obj) = ft
                .objects
                .iter()
                .find(|o| o.name == truth.info.target_object)
            else {
                continue;
            };
            let mut palm = [0f32; 3];
            for j in [0usize, 5, 9, 13, 17] {
                for (p, v) in palm.iter_mut().zip(hand.joints_cam[j]) {
                    *p += v / 5.0;
                }
            }
            let header = StreamHeader {
                seq: 0,
                clip_id: clip_id.clone(),
                frame_idx: u64::from(stored.frame_idx),
                timestamp_ns: 0,
            };
            let (image, pm) = vipa_tools::stored_frame_messages(stored, header)?;
            let (s_shape, s_vals) = enc2d.features(&image).wrap_err("encoder-2d")?;
            let (p_shape, p_vals, p_valid) = enc3d.features(&pm).wrap_err("encoder-3d")?;
            let mut push = |name: &'static str, vals: &[f32], shape: &[usize]| {
                let (m, g) = pool(vals, shape[0], shape[1], 4);
                let e = feats.entry(name).or_default();
                e.0.push(m);
                e.1.push(g);
            };
            push("semantic (encoder-2d)", &s_vals, &s_shape);
            let (w, h) = (stored.width as usize, stored.height as usize);
            let rgb: Vec<f32> = stored.rgb.iter().map(|&b| f32::from(b) / 255.0).collect();
            push(
                "raw pixels (RGB, reference)",
                &cells(&rgb, w, h, 16),
                &[256, 3],
            );
            push(
                "raw point map (xyz, reference)",
                &cells(pm.values(), w, h, 16),
                &[256, 3],
            );
            if p_shape[0] > 0 {
                push("3D (encoder-3d)", &p_vals, &p_shape);
            }
            if let Some(f) = &fusion
                && p_shape[0] > 0
            {
                let sem = Tensor::from_slice(&s_vals, (1, s_shape[0], s_shape[1]), &dev)?;
                let spa = SpatialTokens {
                    tokens: Tensor::from_slice(&p_vals, (1, p_shape[0], p_shape[1]), &dev)?,
                    valid: Some(Tensor::from_vec(
                        p_valid.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                        (1, p_shape[0]),
                        &dev,
                    )?),
                };
                let fused = f.forward(&sem, Some(&spa), false)?.squeeze(0)?;
                let vals = fused.flatten_all()?.to_vec1::<f32>()?;
                push("fused (trained fusion layer)", &vals, &s_shape);
            }
            set.clip.push(clip_id.clone());
            set.split.push(*split);
            set.palm.push(palm);
            set.object.push(obj.centre_cam);
        }
    }
    bar.finish_and_clear();
    let is_test: Vec<bool> = set.split.iter().map(|s| *s == Split::Test).collect();
    let n_test = is_test.iter().filter(|t| **t).count();
    let mut out = format!(
        "Linear (ridge) probes of frozen features → 3D position in the camera frame, mean error on \
         {} test frames of {} held-out clips (fitted on {} train frames; λ chosen on held-out train clips).\n\n\
         | features | pooling | dims | palm error (cm) | target object error (cm) |\n|---|---|---:|---:|---:|\n",
        n_test,
        clips.iter().filter(|c| c.1 == Split::Test).count(),
        set.clip.len() - n_test
    );
    out.push_str(&format!(
        "| none (train mean) | – | 0 | {:.1} | {:.1} |\n",
        mean_baseline(&set.palm, &is_test),
        mean_baseline(&set.object, &is_test)
    ));
    for (name, (mean, grid)) in &feats {
        for (pooling, x) in [("mean", mean), ("grid 4×4", grid)] {
            let (palm, _) = probe(x, &set.palm, &set.clip, &is_test, &dev)?;
            let (object, _) = probe(x, &set.object, &set.clip, &is_test, &dev)?;
            out.push_str(&format!(
                "| {name} | {pooling} | {} | {palm:.1} | {object:.1} |\n",
                x[0].len()
            ));
        }
    }
    if let Some((h, m)) = enc2d.cache_stats() {
        out.push_str(&format!(
            "\n(encoder-2d feature cache: {h} hits, {m} misses)\n"
        ));
    }
    Ok(out)
}

/// The trained fusion layer of a checkpoint folder (or a checkpoints folder's newest).
fn load_fusion(dir: &Path, dev: &Device) -> eyre::Result<Fusion> {
    let loaded = if dir.join("state.json").is_file() {
        vipa_train::checkpoint::load(dir, dev)?
    } else {
        vipa_train::Checkpoints::new(dir, usize::MAX)
            .latest(dev)?
            .ok_or_else(|| eyre!("{} holds no checkpoint", dir.display()))?
    };
    let preset: vipa_models::Preset = loaded.meta.config["preset"]
        .as_str()
        .unwrap_or("small")
        .parse()
        .map_err(|e| eyre!("the checkpoint in {}: {e}", dir.display()))?;
    let vision = preset.vision();
    let cfg = vision
        .fusion
        .ok_or_else(|| eyre!("preset `{preset}` has no fusion layer"))?;
    let tensors: std::collections::HashMap<String, Tensor> = loaded
        .weights
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix("fusion.").map(|s| (s.to_owned(), v)))
        .collect();
    if tensors.is_empty() {
        bail!(
            "the checkpoint {} has no `fusion.*` tensors",
            loaded.path.display()
        );
    }
    let vb = candle_nn::VarBuilder::from_tensors(tensors, candle_core::DType::F32, dev);
    Fusion::new(&cfg, vb).wrap_err_with(|| format!("the fusion layer of {}", loaded.path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_planted_linear_signal() {
        // 40 clips × 6 frames of 30-d noise features; the target is a fixed linear map of
        // them (plus 1 mm noise). The probe must recover it far below the mean baseline.
        let dev = Device::Cpu;
        let mut state = 12345u64;
        let mut rnd = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) as f32
        };
        let w: Vec<[f32; 3]> = (0..30).map(|_| [rnd(), rnd(), rnd()]).collect();
        let (mut x, mut y, mut clips, mut test) = (vec![], vec![], vec![], vec![]);
        for c in 0..40 {
            for _ in 0..6 {
                let f: Vec<f32> = (0..30).map(|_| rnd()).collect();
                let mut t = [0.3f32, -0.1, 0.6];
                for (fi, wi) in f.iter().zip(&w) {
                    for k in 0..3 {
                        t[k] += 0.1 * fi * wi[k];
                    }
                }
                for v in &mut t {
                    *v += 0.002 * rnd();
                }
                x.push(f);
                y.push(t);
                clips.push(format!("c{c:02}"));
                test.push(c >= 32);
            }
        }
        let (err, _) = probe(&x, &y, &clips, &test, &dev).unwrap();
        let base = mean_baseline(&y, &test);
        assert!(err < 0.2 * base, "probe {err:.2} cm vs mean {base:.2} cm");
        assert!(err < 0.3, "probe {err:.3} cm");
        // Features with no signal do no better than the mean.
        let noise: Vec<Vec<f32>> = (0..x.len())
            .map(|_| (0..30).map(|_| rnd()).collect())
            .collect();
        let (err, _) = probe(&noise, &y, &clips, &test, &dev).unwrap();
        assert!(
            err > 0.8 * base,
            "noise probe {err:.2} cm vs mean {base:.2} cm"
        );
    }

    #[test]
    fn pooling_keeps_where_things_are() {
        // 16 tokens on a 4×4 grid, d = 1, token value = its index.
        let vals: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let (mean, grid) = pool(&vals, 16, 1, 2);
        assert_eq!(mean, vec![7.5]);
        // Quadrants: top-left (0,1,4,5) → 2.5, top-right (2,3,6,7) → 4.5, ...
        assert_eq!(grid, vec![2.5, 4.5, 10.5, 12.5]);
    }
}
