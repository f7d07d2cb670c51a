//! The clip pipeline: [`FrameObservation`]s of one clip → calibration → metric objects →
//! Hand3D-visual Q&A + Hand3D-action samples ([`annotate_clip`]).
//!
//! Frames with no visible hand are dropped and counted; a clip with nothing left is a
//! [`Hand3dError::ClipSkipped`], which callers count and move past.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::calibrate::{Calibration, CalibrationMode, fit_scale, frame_ratios};
use crate::config::Config;
use crate::error::{Hand3dError, Result};
use crate::geometry::Intrinsics;
use crate::motion::{ActionCounts, WristSample, action_samples, wrist_chunks};
use crate::observe::{FrameObservation, Side};
use crate::qa::{CalibratedFrame, visual_samples};
use crate::sample::Sample;
use crate::stats::median;

/// Clip-level facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipMeta {
    pub clip_id: String,
    /// Frame rate; frame `i` is at `i / fps` seconds.
    pub fps: f32,
    pub intrinsics: Intrinsics,
    /// What the person does (`"pick up the red mug"`); used in questions.
    pub instruction: String,
    /// Name of the object the task is about, for task-completion questions.
    pub target_object: Option<String>,
}

/// Everything [`annotate_clip`] needs: the clip facts and its frames' observations.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipInputs {
    pub meta: ClipMeta,
    /// Any order; sorted by frame index inside.
    pub frames: Vec<FrameObservation>,
}

/// What happened to a clip, stored in its shard and summed in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ClipStats {
    pub frames: usize,
    /// Frames without any visible hand (dropped).
    pub frames_no_hand: usize,
    /// Per-frame mode: frames with too few joints for their own scale (dropped).
    pub frames_uncalibrated: usize,
    /// The clip's scale (per-clip mode) or the median of the frame scales (per-frame mode).
    pub scale: f32,
    /// Median absolute relative residual of the joint ratios around their scale.
    pub median_abs_rel_residual: f32,
    /// Joint ratios used.
    pub calibration_joints: usize,
    /// Object sightings without a position (empty box region, no valid depth).
    pub objects_unlocated: usize,
    pub action: ActionCounts,
    /// Samples per task name.
    pub samples_per_task: BTreeMap<String, usize>,
}

/// The annotation of one clip.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipAnnotations {
    pub clip_id: String,
    pub samples: Vec<Sample>,
    pub stats: ClipStats,
}

/// Annotates one clip. Errors: invalid config or intrinsics ([`Hand3dError::Config`] /
/// [`Hand3dError::BadInput`]); nothing to annotate ([`Hand3dError::ClipSkipped`]).
pub fn annotate_clip(inputs: &ClipInputs, cfg: &Config) -> Result<ClipAnnotations> {
    cfg.validate()?;
    let meta = &inputs.meta;
    meta.intrinsics.validate()?;
    if !(meta.fps.is_finite() && meta.fps > 0.0) {
        return Err(Hand3dError::bad_input(
            format!("clip `{}` fps", meta.clip_id),
            format!("is {}, must be > 0", meta.fps),
        ));
    }
    let skip = |reason: String| Hand3dError::ClipSkipped {
        clip_id: meta.clip_id.clone(),
        reason,
    };
    let mut frames: Vec<&FrameObservation> = inputs.frames.iter().collect();
    frames.sort_by_key(|f| f.frame_idx);
    frames.dedup_by_key(|f| f.frame_idx);
    let mut stats = ClipStats {
        frames: frames.len(),
        ..ClipStats::default()
    };
    let Some(first) = frames.first() else {
        return Err(skip("the clip has no frames".to_owned()));
    };
    let t0 = f64::from(first.frame_idx) / f64::from(meta.fps);
    let min_joints = cfg.visibility.min_visible_joints;
    let visible: Vec<&FrameObservation> = frames
        .iter()
        .copied()
        .filter(|f| f.any_hand_visible(min_joints))
        .collect();
    stats.frames_no_hand = frames.len() - visible.len();
    if visible.is_empty() {
        return Err(skip(format!(
            "no visible hand in any of its {} frames (need ≥ {min_joints} joints in view with valid depth)",
            frames.len()
        )));
    }

    // Scale calibration.
    let c = &cfg.calibration;
    let mut scales: Vec<(u32, f32)> = Vec::new();
    match c.mode {
        CalibrationMode::PerClip => {
            let ratios: Vec<f32> = visible.iter().flat_map(|f| frame_ratios(f, c)).collect();
            let cal = fit_scale(&ratios, c.min_valid_joints).ok_or_else(|| {
                skip(format!(
                    "only {} valid joints for calibration, need {}",
                    ratios.len(),
                    c.min_valid_joints
                ))
            })?;
            set_cal(&mut stats, cal);
            scales.extend(visible.iter().map(|f| (f.frame_idx, cal.scale)));
        }
        CalibrationMode::PerFrame => {
            let mut residuals = Vec::new();
            for f in &visible {
                match fit_scale(&frame_ratios(f, c), c.min_valid_joints) {
                    Some(cal) => {
                        scales.push((f.frame_idx, cal.scale));
                        residuals.push(cal.median_abs_rel_residual);
                        stats.calibration_joints += cal.n_joints;
                    }
                    None => stats.frames_uncalibrated += 1,
                }
            }
            if scales.is_empty() {
                return Err(skip(format!(
                    "no frame has {} valid joints for a per-frame scale",
                    c.min_valid_joints
                )));
            }
            stats.scale = median(scales.iter().map(|s| s.1)).unwrap_or(0.0);
            stats.median_abs_rel_residual = median(residuals).unwrap_or(0.0);
        }
    }

    // Metric frames.
    let by_idx: BTreeMap<u32, &FrameObservation> =
        visible.iter().map(|f| (f.frame_idx, *f)).collect();
    let mut calibrated = Vec::with_capacity(scales.len());
    for (idx, s) in &scales {
        let Some(f) = by_idx.get(idx) else { continue };
        let mut objects = Vec::new();
        for o in &f.objects {
            match o.raw_position {
                Some(p) => objects.push((o.name.clone(), p.map(|c| c * s))),
                None => stats.objects_unlocated += 1,
            }
        }
        calibrated.push(CalibratedFrame {
            frame_idx: *idx,
            time_s: f64::from(*idx) / f64::from(meta.fps),
            hands: f
                .hands
                .iter()
                .filter(|h| h.n_valid() >= min_joints)
                .cloned()
                .collect(),
            objects,
            pose: f.camera_pose,
        });
    }

    let mut samples = visual_samples(
        &meta.clip_id,
        &meta.instruction,
        meta.target_object.as_deref(),
        &calibrated,
        t0,
        &cfg.qa,
        cfg.seed,
    );

    // Hand3D-action: one wrist track per hand.
    let mut chunks = Vec::new();
    for side in [Side::Left, Side::Right] {
        let track: Vec<WristSample> = calibrated
            .iter()
            .filter_map(|f| {
                f.hands
                    .iter()
                    .find(|h| h.side == side)
                    .map(|h| WristSample {
                        time_s: f.time_s,
                        frame_idx: f.frame_idx,
                        position: h.joints[0],
                        pose: f.pose,
                    })
            })
            .collect();
        chunks.extend(wrist_chunks(side, &track, &cfg.action));
    }
    let (action, counts) = action_samples(
        &meta.clip_id,
        &meta.instruction,
        &chunks,
        &cfg.action,
        cfg.qa.gamma,
        cfg.seed,
    );
    stats.action = counts;
    samples.extend(action);
    if samples.is_empty() {
        return Err(skip(format!(
            "no sample survived ({} frames with a hand, {} motion chunks of which {} static)",
            visible.len(),
            counts.chunks,
            counts.filtered_static
        )));
    }
    for s in &samples {
        *stats
            .samples_per_task
            .entry(s.task.as_str().to_owned())
            .or_insert(0) += 1;
    }
    Ok(ClipAnnotations {
        clip_id: meta.clip_id.clone(),
        samples,
        stats,
    })
}

fn set_cal(stats: &mut ClipStats, cal: Calibration) {
    stats.scale = cal.scale;
    stats.median_abs_rel_residual = cal.median_abs_rel_residual;
    stats.calibration_joints = cal.n_joints;
}
