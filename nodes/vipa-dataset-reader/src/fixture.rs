//! A tiny Hand3D dataset with a frame store, written with the `vipa_hand3d` APIs, for tests
//! and demos of the pretraining graph (no video, no annotation run needed).
//!
//! Every clip `c` gets frames `0..frames` of `width × height` pixels and one sample per
//! consecutive frame pair `[i, i+1]`. The content is chosen so a test can check that the right
//! frame arrived:
//! - RGB: pixel 0 is `(frame_idx, clip index, 7)`, the rest a fixed gradient;
//! - depth: a fronto-parallel plane at `z = 0.5 + 0.1·frame_idx` m, pixel 0 without depth.

use std::path::Path;

use vipa_hand3d::frames::{StoredFrame, write_clip_frames};
use vipa_hand3d::pipeline::{ClipAnnotations, ClipStats};
use vipa_hand3d::{Config, DatasetWriter, Hand3dError, Intrinsics, Manifest, Sample, Task};

/// The tasks the fixture cycles through (two visual, one action).
pub const TASKS: [Task; 3] = [
    Task::SpatialRelation,
    Task::MotionGeneration,
    Task::HandMovement,
];

/// Depth of the plane in frame `frame_idx` (metres).
pub fn plane_depth(frame_idx: u32) -> f32 {
    0.5 + 0.1 * frame_idx as f32
}

/// Writes the dataset under `root` (every clip in the train split). `clips`: `(clip_id,
/// frames)`, frames ≥ 2.
pub fn write_dataset(
    root: &Path,
    clips: &[(&str, u32)],
    width: u32,
    height: u32,
) -> Result<Manifest, Hand3dError> {
    let mut config = Config::default();
    config.split.test_fraction = 0.0;
    let mut writer = DatasetWriter::open(root, &config)?;
    let k = Intrinsics::from_hfov(width, height, 60.0)?;
    for (ci, &(clip_id, n)) in clips.iter().enumerate() {
        let frames: Vec<StoredFrame> = (0..n)
            .map(|f| {
                let mut rgb: Vec<u8> = (0..width * height * 3).map(|i| (i % 251) as u8).collect();
                rgb[..3].copy_from_slice(&[f as u8, ci as u8, 7]);
                let mut depth_mm =
                    vec![(plane_depth(f) * 1000.0).round() as u16; (width * height) as usize];
                depth_mm[0] = 0;
                StoredFrame {
                    frame_idx: f,
                    width,
                    height,
                    rgb,
                    depth_mm,
                    intrinsics: k,
                    scale: 1.0,
                }
            })
            .collect();
        write_clip_frames(root, clip_id, &frames)?;
        let samples: Vec<Sample> = (0..n.saturating_sub(1))
            .map(|i| {
                let task = TASKS[i as usize % TASKS.len()];
                Sample {
                    clip_id: clip_id.to_owned(),
                    task,
                    frame_idxs: vec![i, i + 1],
                    template: 0,
                    question: format!("q {clip_id} {i}"),
                    answer: format!("a {clip_id} {i}"),
                    side: None,
                    object: None,
                    truth: None,
                    vector: None,
                    camera_translation: None,
                    motion_tokens: if task.is_visual() {
                        vec![]
                    } else {
                        vec![1, 2, 3]
                    },
                }
            })
            .collect();
        writer.write_clip(&ClipAnnotations {
            clip_id: clip_id.to_owned(),
            samples,
            stats: ClipStats::default(),
        })?;
    }
    writer.finish()
}
