//! Clip generation: plan → per-frame world state → rendered frame + ground truth → files.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::episode::{Episode, WorldState};
use crate::math::{Pose, V3, v3};
use crate::render::{
    BlobShadow, Prim, RenderScene, Rendered, Shape, Table, label_arm, label_hand, label_object,
    render,
};
use crate::scene::{ClipPlan, TABLE_EXTENT, sample_plan};
use crate::sidecar::{
    ClipInfo, ClipTruth, FrameTruth, HandTruth, Intrinsics, ObjectTruth, SIDECAR_SCHEMA_VERSION,
    SidecarError, write_clip_truth,
};
use crate::video::{VideoError, write_mp4};
use vipa_msgs::hands::{BONES, PALM_WEB};

/// How far (metres) a surface may sit in front of a joint's sphere and the joint still count
/// as visible: absorbs depth round-off where bones meet their joint spheres.
pub const VISIBILITY_TOLERANCE_M: f32 = 0.002;

/// Errors from generating or writing clips.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("invalid synth config: {0}")]
    InvalidConfig(String),
    #[error(transparent)]
    Sidecar(#[from] SidecarError),
    #[error(transparent)]
    Video(#[from] VideoError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Image size and timing of generated clips.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthConfig {
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub seconds: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            width: 320,
            height: 240,
            fps: 15.0,
            seconds: 4.0,
        }
    }
}

impl SynthConfig {
    /// Checks the ranges; call before generating.
    pub fn validate(&self) -> Result<(), SynthError> {
        let bad = |m: String| Err(SynthError::InvalidConfig(m));
        if !(16..=4096).contains(&self.width) || !(16..=4096).contains(&self.height) {
            return bad(format!(
                "width and height must be in 16..=4096, got {}x{}",
                self.width, self.height
            ));
        }
        if !self.width.is_multiple_of(2) || !self.height.is_multiple_of(2) {
            return bad(format!(
                "width and height must be even for H.264 (yuv420p), got {}x{}",
                self.width, self.height
            ));
        }
        if !(self.fps > 0.0 && self.fps <= 240.0) {
            return bad(format!("fps must be in (0, 240], got {}", self.fps));
        }
        if self.num_frames() < 2 || self.num_frames() > 100_000 {
            return bad(format!(
                "seconds × fps must give 2..=100000 frames, got {} s × {} fps",
                self.seconds, self.fps
            ));
        }
        let depth_values =
            u64::from(self.width) * u64::from(self.height) * u64::from(self.num_frames());
        if depth_values > i32::MAX as u64 {
            return bad(format!(
                "width × height × frames = {depth_values} exceeds the sidecar's 2^31 depth values per clip; use shorter clips"
            ));
        }
        Ok(())
    }

    pub fn num_frames(&self) -> u32 {
        let n = (self.seconds * self.fps).round();
        if n.is_finite() && n >= 0.0 {
            n.min(f64::from(u32::MAX)) as u32
        } else {
            0
        }
    }

    /// Pinhole intrinsics: ~61° horizontal field of view, principal point at the image centre
    /// (pixel centres at integers, so the centre is `(w − 1)/2, (h − 1)/2`).
    pub fn intrinsics(&self) -> Intrinsics {
        let f = 0.85 * self.width as f32;
        Intrinsics {
            fx: f,
            fy: f,
            cx: (self.width as f32 - 1.0) / 2.0,
            cy: (self.height as f32 - 1.0) / 2.0,
        }
    }
}

/// File stem of clip `index`: `clip_0007`.
pub fn clip_id(index: u32) -> String {
    format!("clip_{index:04}")
}

/// The clip's RNG: ChaCha8 keyed by the run seed, one independent stream per clip index, so a
/// clip does not depend on how many clips come before it.
pub fn clip_rng(seed: u64, clip_index: u32) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(u64::from(clip_index));
    rng
}

/// One generated clip in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedClip {
    pub truth: ClipTruth,
    /// Per frame: colour (BGR), depth and label buffers.
    pub frames: Vec<Rendered>,
}

/// A clip's scene: the plan, its motion and the camera model, for rendering any instant.
#[derive(Debug, Clone)]
pub struct ClipScene {
    pub episode: Episode,
    pub config: SynthConfig,
    pub intrinsics: Intrinsics,
}

impl ClipScene {
    pub fn new(config: SynthConfig, seed: u64, clip_index: u32) -> ClipScene {
        let mut rng = clip_rng(seed, clip_index);
        let plan = sample_plan(&mut rng);
        ClipScene {
            episode: Episode::new(plan),
            config,
            intrinsics: config.intrinsics(),
        }
    }

    pub fn plan(&self) -> &ClipPlan {
        self.episode.plan()
    }

    /// The world at frame `f`.
    pub fn state(&self, f: u32) -> WorldState {
        let n = self.config.num_frames().max(2);
        self.episode.state(f as f32 / (n - 1) as f32)
    }

    /// Renders a world state and derives its ground truth.
    pub fn render_frame(&self, f: u32, state: &WorldState) -> (Rendered, FrameTruth) {
        let plan = self.plan();
        let cam_from_world = state.world_from_camera.inverse();
        let scene = build_render_scene(plan, state, &cam_from_world);
        let (w, h) = (self.config.width as usize, self.config.height as usize);
        let img = render(&scene, &self.intrinsics, w, h);

        let hands = state
            .hands
            .iter()
            .enumerate()
            .map(|(k, hs)| {
                let joints_cam = hs.pose.joints_world().map(|p| cam_from_world.apply(p));
                let radii = hs.pose.joint_radii();
                let joints_2d = joints_cam.map(|p| {
                    let (u, v) = self.intrinsics.project(p.to_array());
                    [u, v]
                });
                let visible = std::array::from_fn(|j| {
                    joint_visible(&img, label_hand(k), joints_cam[j], joints_2d[j], radii[j])
                });
                HandTruth {
                    side: hs.pose.side,
                    joints_cam: joints_cam.map(V3::to_array),
                    joints_2d,
                    visible,
                    grasped_object: hs.grasped.map(|o| plan.objects[o].name()),
                }
            })
            .collect();

        let boxes = label_boxes(&img);
        let objects = plan
            .objects
            .iter()
            .enumerate()
            .map(|(k, spec)| {
                let centre = cam_from_world.apply(state.objects[k].apply(spec.centre_local()));
                let b = boxes[label_object(k) as usize];
                ObjectTruth {
                    name: spec.name(),
                    bbox_xyxy: (b.count > 0).then(|| {
                        [
                            b.min[0] as f32,
                            b.min[1] as f32,
                            b.max[0] as f32,
                            b.max[1] as f32,
                        ]
                    }),
                    centre_cam: centre.to_array(),
                    visible_pixels: b.count,
                }
            })
            .collect();

        let truth = FrameTruth {
            frame_idx: f,
            timestamp_ns: (f64::from(f) * 1e9 / self.config.fps).round() as u64,
            phase: state.phase.to_owned(),
            world_from_camera: state.world_from_camera.to_row_major(),
            width: self.config.width,
            height: self.config.height,
            depth_mm: img.depth_mm(),
            hands,
            objects,
        };
        (img, truth)
    }

    /// Clip-level info for the sidecar.
    pub fn info(&self, seed: u64, clip_index: u32) -> ClipInfo {
        let plan = self.plan();
        ClipInfo {
            schema_version: SIDECAR_SCHEMA_VERSION,
            clip_id: clip_id(clip_index),
            clip_index,
            seed,
            fps: self.config.fps,
            width: self.config.width,
            height: self.config.height,
            num_frames: self.config.num_frames(),
            intrinsics: self.intrinsics,
            instruction: plan.instruction.clone(),
            target_object: plan.objects[plan.target].name(),
            reference_object: plan.objects[plan.reference].name(),
            relation: plan.relation.key().to_owned(),
            hands: plan.hands.clone(),
            camera_moving: plan.camera_moving,
            objects: plan.objects.iter().map(|o| o.info()).collect(),
        }
    }
}

/// Whether a joint is visible in a rendered frame: its projection is inside the image, the
/// front surface there belongs to `hand_label`, and it lies no more than the joint radius (plus
/// [`VISIBILITY_TOLERANCE_M`]) in front of the joint centre.
pub fn joint_visible(img: &Rendered, hand_label: u8, p_cam: V3, uv: [f32; 2], radius: f32) -> bool {
    if p_cam.z <= 0.0 || !uv[0].is_finite() || !uv[1].is_finite() {
        return false;
    }
    let (u, v) = (uv[0].round() as i64, uv[1].round() as i64);
    match img.at(u, v) {
        Some((depth, label)) => {
            label == hand_label && depth >= p_cam.z - radius - VISIBILITY_TOLERANCE_M
        }
        None => false,
    }
}

#[derive(Debug, Clone, Copy)]
struct LabelBox {
    min: [usize; 2],
    max: [usize; 2],
    count: u32,
}

/// Bounding box and pixel count of every label value.
fn label_boxes(img: &Rendered) -> [LabelBox; 256] {
    let mut boxes = [LabelBox {
        min: [usize::MAX; 2],
        max: [0; 2],
        count: 0,
    }; 256];
    for v in 0..img.height {
        for u in 0..img.width {
            let b = &mut boxes[img.label[v * img.width + u] as usize];
            b.min = [b.min[0].min(u), b.min[1].min(v)];
            b.max = [b.max[0].max(u), b.max[1].max(v)];
            b.count += 1;
        }
    }
    boxes
}

fn build_render_scene(plan: &ClipPlan, state: &WorldState, cam_from_world: &Pose) -> RenderScene {
    let mut prims: Vec<Prim> = Vec::with_capacity(128);
    let mut shadows = Vec::new();
    for (k, spec) in plan.objects.iter().enumerate() {
        let world_from_obj = state.objects[k];
        prims.extend(spec.prims(&cam_from_world.compose(&world_from_obj), label_object(k)));
        shadows.push(BlobShadow {
            centre: world_from_obj.t,
            radius: spec.kind.footprint_radius() * 1.15,
        });
    }
    for (k, hs) in state.hands.iter().enumerate() {
        let joints = hs.pose.joints_world().map(|p| cam_from_world.apply(p));
        let radii = hs.pose.joint_radii();
        let label = label_hand(k);
        let skin = plan.skin;
        // Knuckles slightly darker than the bones so the joints read in the image.
        let knuckle = skin.map(|c| c * 0.93);
        let prim = |shape, colour| Prim {
            shape,
            colour,
            alt_colour: colour,
            label,
        };
        for (j, &c) in joints.iter().enumerate() {
            prims.push(prim(Shape::Sphere { c, r: radii[j] }, knuckle));
        }
        for &(a, b) in BONES.iter().chain(PALM_WEB.iter()) {
            let r = radii[a].min(radii[b]) * 0.92;
            prims.push(prim(
                Shape::Capsule {
                    a: joints[a],
                    b: joints[b],
                    r,
                },
                skin,
            ));
        }
        // Palm body: across the middle of the metacarpals.
        let mid = |a: usize, b: usize| (joints[a] + joints[b]) * 0.5;
        prims.push(prim(
            Shape::Capsule {
                a: mid(0, 5) + (joints[5] - joints[0]) * 0.1,
                b: mid(0, 17),
                r: 0.019 * plan.hand_scale,
            },
            skin,
        ));
        // Forearm in a sleeve, starting a little behind the wrist so the wrist joint shows.
        // The arm comes in from the camera's side nearly level, as in egocentric video, however
        // far the hand is pitched down.
        let h = &hs.pose.world_from_hand;
        let arm_a = h.apply(v3(-0.05, 0.0, 0.004) * plan.hand_scale);
        let fwd = h.apply_dir(v3(1.0, 0.0, 0.0));
        let back = v3(-fwd.x, -fwd.y, 0.0).normalized();
        // Long enough to leave the frame, so it never ends in mid-air.
        let arm_b = arm_a + (back * 0.55 + v3(0.0, 0.0, 0.12)) * plan.hand_scale;
        prims.push(Prim {
            shape: Shape::Capsule {
                a: cam_from_world.apply(arm_a),
                b: cam_from_world.apply(arm_b),
                r: 0.023 * plan.hand_scale,
            },
            colour: plan.sleeve,
            alt_colour: plan.sleeve,
            label: label_arm(k),
        });
        let palm = hs
            .pose
            .world_from_hand
            .apply(v3(0.05, 0.0, 0.0) * plan.hand_scale);
        shadows.push(BlobShadow {
            centre: palm,
            radius: 0.07,
        });
    }
    let light_world = v3(0.35, 0.45, -1.0).normalized();
    RenderScene {
        prims,
        table: Some(Table {
            world_from_camera: cam_from_world.inverse(),
            extent: TABLE_EXTENT,
            colour: plan.table_colour,
            tile: 0.05,
        }),
        shadows,
        light_dir: cam_from_world.apply_dir(light_world),
        background: [0.20, 0.22, 0.26],
    }
}

/// Renders every frame of clip `clip_index` of run `seed`.
pub fn generate_clip(
    config: SynthConfig,
    seed: u64,
    clip_index: u32,
) -> Result<GeneratedClip, SynthError> {
    config.validate()?;
    let scene = ClipScene::new(config, seed, clip_index);
    let n = config.num_frames();
    let mut frames = Vec::with_capacity(n as usize);
    let mut truths = Vec::with_capacity(n as usize);
    for f in 0..n {
        let state = scene.state(f);
        let (img, truth) = scene.render_frame(f, &state);
        frames.push(img);
        truths.push(truth);
    }
    Ok(GeneratedClip {
        truth: ClipTruth {
            info: scene.info(seed, clip_index),
            frames: truths,
        },
        frames,
    })
}

/// Paths of a clip's files inside `out_dir`.
pub fn clip_paths(out_dir: &Path, clip_index: u32) -> (PathBuf, PathBuf) {
    let id = clip_id(clip_index);
    (
        out_dir.join(format!("{id}.mp4")),
        out_dir.join(format!("{id}.truth.parquet")),
    )
}

/// Writes a clip's mp4 and sidecar into `out_dir`, each atomically (temporary name, then
/// rename). The sidecar is renamed last, so a clip counts as complete only once both exist.
pub fn write_clip(out_dir: &Path, clip: &GeneratedClip) -> Result<(PathBuf, PathBuf), SynthError> {
    let (mp4, parquet) = clip_paths(out_dir, clip.truth.info.clip_index);
    let info = &clip.truth.info;
    let bgr: Vec<&[u8]> = clip.frames.iter().map(|f| f.bgr.as_slice()).collect();
    write_mp4(&mp4, info.width, info.height, info.fps, &bgr)?;
    write_clip_truth(&parquet, &clip.truth)?;
    Ok((mp4, parquet))
}
