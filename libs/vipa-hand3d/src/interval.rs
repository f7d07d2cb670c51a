//! 95 % confidence intervals for Hand3D-test metrics: a percentile bootstrap over **clips**.
//!
//! Answers of one clip share its scene, hand and camera, so they are not independent: a model
//! that misreads one scene misreads most of its questions. Resampling answers would make the
//! interval too narrow; resampling whole clips (with replacement, `B` times) keeps that
//! correlation. The interval of a statistic is the 2.5th and 97.5th percentiles of its value
//! over the resamples. Resamples are drawn from a ChaCha RNG with a fixed seed, so the same
//! answers always give the same interval.
//!
//! Two models compared on the *same* clips have correlated errors; [`paired_difference`]
//! resamples the clips once for both and gives the interval of the difference, which is what
//! "is A better than B" needs (two overlapping marginal intervals can still hide a real gap).

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::answer::{AnswerScore, Metrics};

/// Resamples per interval.
pub const DEFAULT_RESAMPLES: usize = 2000;
/// Seed of the resampling RNG.
pub const DEFAULT_SEED: u64 = 0x5eed_b007;

/// A closed interval `[lo, hi]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    /// Whether the two intervals share no point.
    pub fn disjoint(&self, other: &Interval) -> bool {
        self.hi < other.lo || other.hi < self.lo
    }

    /// Whether `x` lies inside.
    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }
}

/// The `q`-quantile (0..=1) of sorted values, linearly interpolated.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos - pos.floor());
    if i + 1 < sorted.len() {
        sorted[i] * (1.0 - frac) + sorted[i + 1] * frac
    } else {
        sorted[i]
    }
}

/// Percentile-bootstrap 95 % interval of `stat` over `clusters` resampled with replacement.
/// `stat` sees the chosen clusters (indices into `clusters`, repeats allowed) and may return
/// `None` when undefined on a resample (e.g. no parsed distance); such resamples are left out.
/// `None` when there are no clusters or the statistic is undefined on every resample.
pub fn cluster_bootstrap<T>(
    clusters: &[T],
    stat: impl Fn(&[&T]) -> Option<f64>,
    resamples: usize,
    seed: u64,
) -> Option<Interval> {
    if clusters.is_empty() || resamples == 0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut values = Vec::with_capacity(resamples);
    let mut pick: Vec<&T> = Vec::with_capacity(clusters.len());
    for _ in 0..resamples {
        pick.clear();
        for _ in 0..clusters.len() {
            pick.push(&clusters[rng.random_range(0..clusters.len())]);
        }
        if let Some(v) = stat(&pick).filter(|v| v.is_finite()) {
            values.push(v);
        }
    }
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(Interval {
        lo: quantile(&values, 0.025),
        hi: quantile(&values, 0.975),
    })
}

/// Metrics with their 95 % clip-bootstrap intervals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricsCi {
    pub metrics: Metrics,
    /// Clips the answers came from.
    pub clips: usize,
    pub distance_mae_m: Option<Interval>,
    pub distance_median_m: Option<Interval>,
    pub direction_score: Option<Interval>,
    pub parse_rate: Option<Interval>,
}

/// Answer scores grouped by clip (the bootstrap unit).
pub type ByClip = BTreeMap<String, Vec<AnswerScore>>;

fn metrics_of(pick: &[&Vec<AnswerScore>]) -> Metrics {
    Metrics::of_scores(pick.iter().flat_map(|c| c.iter()))
}

fn finite(x: f32) -> Option<f64> {
    x.is_finite().then_some(f64::from(x))
}

/// [`Metrics`] of all answers in `by_clip`, with clip-bootstrap intervals.
pub fn metrics_ci(by_clip: &ByClip, resamples: usize, seed: u64) -> MetricsCi {
    let clusters: Vec<&Vec<AnswerScore>> = by_clip.values().collect();
    let all = metrics_of(&clusters);
    let ci = |f: fn(&Metrics) -> f32| {
        cluster_bootstrap(
            &clusters,
            |pick| {
                let picked: Vec<&Vec<AnswerScore>> = pick.iter().map(|c| **c).collect();
                finite(f(&metrics_of(&picked)))
            },
            resamples,
            seed,
        )
    };
    MetricsCi {
        metrics: all,
        clips: clusters.len(),
        distance_mae_m: ci(|m| m.distance_mae_m),
        distance_median_m: ci(|m| m.distance_median_m),
        direction_score: ci(|m| m.direction_score),
        parse_rate: ci(|m| m.parse_rate),
    }
}

/// Interval of `f(a) − f(b)` over the same clips resampled once for both (paired). Clips
/// missing from either side are left out. `None` when no clip is shared or `f` is undefined.
pub fn paired_difference(
    a: &ByClip,
    b: &ByClip,
    f: fn(&Metrics) -> f32,
    resamples: usize,
    seed: u64,
) -> Option<(f64, Interval)> {
    let pairs: Vec<(&Vec<AnswerScore>, &Vec<AnswerScore>)> = a
        .iter()
        .filter_map(|(clip, sa)| b.get(clip).map(|sb| (sa, sb)))
        .collect();
    let diff = |pick: &[&(&Vec<AnswerScore>, &Vec<AnswerScore>)]| -> Option<f64> {
        let ma = Metrics::of_scores(pick.iter().flat_map(|p| p.0.iter()));
        let mb = Metrics::of_scores(pick.iter().flat_map(|p| p.1.iter()));
        Some(finite(f(&ma))? - finite(f(&mb))?)
    };
    let all: Vec<&(&Vec<AnswerScore>, &Vec<AnswerScore>)> = pairs.iter().collect();
    let point = diff(&all)?;
    let ci = cluster_bootstrap(&pairs, diff, resamples, seed)?;
    Some((point, ci))
}

/// Mean, sample standard deviation and the 95 % t-interval of the mean of `xs` (for a few
/// seeds: the interval uses Student's t with `n − 1` degrees of freedom). `None` for no value;
/// the sd and interval are `None` for one value.
pub fn mean_sd(xs: &[f64]) -> Option<(f64, Option<f64>, Option<Interval>)> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return Some((mean, None, None));
    }
    let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    // Two-sided 97.5 % quantiles of Student's t, df 1..=30; beyond, the normal's 1.96.
    const T975: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    let t = T975.get(xs.len() - 2).copied().unwrap_or(1.96);
    let half = t * sd / n.sqrt();
    Some((
        mean,
        Some(sd),
        Some(Interval {
            lo: mean - half,
            hi: mean + half,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::Unit;

    /// Deterministic standard-normal draws (Box–Muller on a seeded RNG).
    fn normals(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
                (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
            })
            .collect()
    }

    #[test]
    fn interval_of_a_mean_matches_the_normal_theory() {
        // 400 iid N(0, 1): the mean's 95 % interval is about ±1.96/√400 = ±0.098 around the
        // sample mean.
        let xs = normals(400, 7);
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let ci = cluster_bootstrap(
            &xs,
            |p| Some(p.iter().map(|x| **x).sum::<f64>() / p.len() as f64),
            4000,
            1,
        )
        .unwrap();
        let half = 0.5 * (ci.hi - ci.lo);
        assert!((half - 0.098).abs() < 0.012, "half width {half}");
        assert!(ci.contains(mean), "{ci:?} vs {mean}");
        // The same inputs and seed give the same interval.
        let again = cluster_bootstrap(
            &xs,
            |p| Some(p.iter().map(|x| **x).sum::<f64>() / p.len() as f64),
            4000,
            1,
        )
        .unwrap();
        assert_eq!(ci, again);
    }

    #[test]
    fn identical_clips_give_a_point_and_correlated_clips_a_wider_interval() {
        let s = |direction: u8, error: f32| AnswerScore {
            parsed: true,
            direction,
            error: Some(error),
            unit: Unit::Metres,
        };
        let same: ByClip = (0..10)
            .map(|i| (format!("c{i}"), vec![s(2, 0.1), s(3, 0.2)]))
            .collect();
        let m = metrics_ci(&same, 500, 3);
        let d = m.direction_score.unwrap();
        assert!(
            (d.lo - 2.5).abs() < 1e-9 && (d.hi - 2.5).abs() < 1e-9,
            "{d:?}"
        );
        assert_eq!(m.clips, 10);
        // Ten clips whose 10 answers agree within a clip (all right or all wrong) vary more
        // than 100 clips of one answer each with the same overall mix.
        let grouped: ByClip = (0..10)
            .map(|i| {
                (
                    format!("c{i}"),
                    vec![s(if i % 2 == 0 { 3 } else { 0 }, 0.1); 10],
                )
            })
            .collect();
        let spread: ByClip = (0..100)
            .map(|i| {
                (
                    format!("c{i}"),
                    vec![s(if i % 2 == 0 { 3 } else { 0 }, 0.1)],
                )
            })
            .collect();
        let w = |b: &ByClip| {
            let i = metrics_ci(b, 2000, 3).direction_score.unwrap();
            i.hi - i.lo
        };
        assert!((metrics_ci(&grouped, 10, 0).metrics.direction_score - 1.5).abs() < 1e-6);
        assert!(
            w(&grouped) > 2.0 * w(&spread),
            "{} vs {}",
            w(&grouped),
            w(&spread)
        );
    }

    #[test]
    fn paired_difference_sees_a_consistent_gap() {
        let s = |direction: u8| AnswerScore {
            parsed: true,
            direction,
            error: Some(0.1),
            unit: Unit::Metres,
        };
        // A is one axis better than B on every clip, while clips vary a lot.
        let a: ByClip = (0..20)
            .map(|i| (format!("c{i}"), vec![s(1 + (i % 3) as u8)]))
            .collect();
        let b: ByClip = (0..20)
            .map(|i| (format!("c{i}"), vec![s((i % 3) as u8)]))
            .collect();
        let (point, ci) = paired_difference(&a, &b, |m| m.direction_score, 500, 0).unwrap();
        assert!((point - 1.0).abs() < 1e-6);
        assert!(
            (ci.lo - 1.0).abs() < 1e-6 && (ci.hi - 1.0).abs() < 1e-6,
            "{ci:?}"
        );
    }

    #[test]
    fn mean_sd_and_t_interval() {
        let (m, sd, ci) = mean_sd(&[1.0, 2.0, 3.0]).unwrap();
        assert!((m - 2.0).abs() < 1e-12);
        assert!((sd.unwrap() - 1.0).abs() < 1e-12);
        let ci = ci.unwrap();
        // t(0.975, 2) = 4.303; half width 4.303 / √3.
        assert!((ci.hi - 2.0 - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert_eq!(mean_sd(&[5.0]).unwrap(), (5.0, None, None));
        assert!(mean_sd(&[]).is_none());
    }
}
