//! Thin adapter from ground-truth sidecars (`vipa-truth`, written by the synthetic world):
//! sidecar frames → this crate's inputs. The only place that knows the sidecar's types.
//!
//! Conventions bridged here: vipa-synth puts pixel centres at integer coordinates (a point
//! projects to pixel `round(u)`), this crate at `+0.5` (pixel `floor(u)`), so principal points
//! and boxes shift by half a pixel; synth boxes are inclusive pixel indices, ours continuous
//! coordinates (`x_max + 1`).

use std::path::Path;

use vipa_truth::{ClipInfo, ClipTruth, FrameTruth, HandSide, read_clip_truth};

use crate::backend::{ScaledBackend, sidecar_point_map};
use crate::config::Config;
use crate::error::{Hand3dError, Result};
use crate::geometry::{Intrinsics, Pose};
use crate::observe::{FrameInput, HandInput, ObjectInput, Side, observe_frame};
use crate::pipeline::{ClipAnnotations, ClipInputs, ClipMeta, annotate_clip};
use crate::stats::mix_seed;

/// Which point map to build from a sidecar's depth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SynthBackend {
    /// The ground-truth depth itself.
    Sidecar,
    /// Ground truth × an unknown per-clip factor + noise (see [`ScaledBackend`]).
    Scaled(ScaledBackend),
}

/// Our intrinsics from a clip's info.
pub fn intrinsics(info: &ClipInfo) -> Intrinsics {
    let k = info.intrinsics;
    Intrinsics {
        fx: k.fx,
        fy: k.fy,
        cx: k.cx + 0.5,
        cy: k.cy + 0.5,
        width: info.width,
        height: info.height,
    }
}

/// Clip facts.
pub fn clip_meta(info: &ClipInfo) -> ClipMeta {
    ClipMeta {
        clip_id: info.clip_id.clone(),
        fps: info.fps as f32,
        intrinsics: intrinsics(info),
        instruction: info.instruction.clone(),
        target_object: Some(info.target_object.clone()),
    }
}

/// The seed of the scaled backend's hidden factor for a clip.
pub fn clip_seed(info: &ClipInfo) -> u64 {
    mix_seed(info.seed, &info.clip_id, u64::from(info.clip_index))
}

/// Camera → world pose of a frame.
pub fn pose(frame: &FrameTruth) -> Pose {
    let m = &frame.world_from_camera;
    Pose {
        rotation: [[m[0], m[1], m[2]], [m[4], m[5], m[6]], [m[8], m[9], m[10]]],
        translation: [m[3], m[7], m[11]],
    }
}

fn side(s: HandSide) -> Side {
    match s {
        HandSide::Left => Side::Left,
        HandSide::Right => Side::Right,
    }
}

/// Hands (ground-truth joints and visibility) and objects (ground-truth boxes) of a frame.
pub fn frame_parts(frame: &FrameTruth) -> (Vec<HandInput>, Vec<ObjectInput>) {
    let hands = frame
        .hands
        .iter()
        .map(|h| HandInput {
            side: side(h.side),
            joints: h.joints_cam,
            gt_visible: Some(h.visible),
        })
        .collect();
    let objects = frame
        .objects
        .iter()
        .filter_map(|o| {
            let [x0, y0, x1, y1] = o.bbox_xyxy?;
            Some(ObjectInput {
                name: o.name.clone(),
                bbox: [x0, y0, x1 + 1.0, y1 + 1.0],
            })
        })
        .collect();
    (hands, objects)
}

/// Pipeline inputs of a whole clip with the chosen backend.
pub fn clip_inputs(truth: &ClipTruth, backend: SynthBackend, cfg: &Config) -> Result<ClipInputs> {
    let meta = clip_meta(&truth.info);
    let k = meta.intrinsics;
    let seed = clip_seed(&truth.info);
    let mut frames = Vec::with_capacity(truth.frames.len());
    for f in &truth.frames {
        let depth = f.depth_m();
        let pm = match backend {
            SynthBackend::Sidecar => sidecar_point_map(&depth, &k)?,
            SynthBackend::Scaled(b) => b.point_map(&depth, &k, seed, f.frame_idx)?,
        };
        let (hands, objects) = frame_parts(f);
        let input = FrameInput {
            frame_idx: f.frame_idx,
            point_map: &pm,
            hands,
            objects,
            camera_pose: Some(pose(f)),
        };
        frames.push(observe_frame(&input, &k, cfg)?);
    }
    Ok(ClipInputs { meta, frames })
}

/// Reads a sidecar and annotates its clip. A missing or corrupt sidecar is a
/// [`Hand3dError::BadInput`] naming the file.
pub fn annotate_sidecar(
    path: &Path,
    backend: SynthBackend,
    cfg: &Config,
) -> Result<ClipAnnotations> {
    let truth = read_clip_truth(path).map_err(|e| {
        Hand3dError::bad_input(
            format!("sidecar {}", path.display()),
            format!("{e}; regenerate the clip with vipa-synth"),
        )
    })?;
    annotate_clip(&clip_inputs(&truth, backend, cfg)?, cfg)
}
