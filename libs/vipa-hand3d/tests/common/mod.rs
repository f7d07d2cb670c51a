//! A procedural test world, independent of the library's own geometry code: a table plane and
//! a back wall, balls as objects, hands as 21 joint spheres, an optional panning and sliding
//! camera. It renders ground-truth z-depth by ray casting and knows every true position.
#![allow(dead_code, clippy::unwrap_used)]

use vipa_hand3d::backend::{ScaledBackend, sidecar_point_map};
use vipa_hand3d::geometry::rotation_from_axis_angle;
use vipa_hand3d::{
    ClipInputs, ClipMeta, Config, FrameInput, HandInput, Intrinsics, ObjectInput, Pose, Side, Vec3,
    observe_frame,
};

pub const JOINT_RADIUS: f32 = 0.009;

#[derive(Debug, Clone)]
pub struct Ball {
    pub name: String,
    /// World frame (= camera frame of frame 0).
    pub centre: Vec3,
    pub radius: f32,
}

#[derive(Debug, Clone)]
pub struct HandTrack {
    pub side: Side,
    /// Wrist position at the first and last frame (world frame); linear in between.
    pub start: Vec3,
    pub end: Vec3,
}

#[derive(Debug, Clone)]
pub struct Scene {
    pub clip_id: String,
    pub seed: u64,
    pub k: Intrinsics,
    pub fps: f32,
    pub n_frames: u32,
    /// World plane y = table_y (below the camera), and z = wall_z.
    pub table_y: f32,
    pub wall_z: f32,
    pub balls: Vec<Ball>,
    pub hands: Vec<HandTrack>,
    /// Total pan (degrees about the camera's y axis, + = right) and slide over the clip.
    pub pan_deg: f32,
    pub slide: Vec3,
    pub target: Option<String>,
}

fn dot(a: Vec3, b: Vec3) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn lerp(a: Vec3, b: Vec3, t: f32) -> Vec3 {
    [0, 1, 2].map(|i| a[i] + t * (b[i] - a[i]))
}

impl Scene {
    /// A default clip: one right hand reaching from the lower right toward a red ball, a blue
    /// ball off to the left, 12 s at 10 fps on a 128×96 camera.
    pub fn basic(clip_id: &str, seed: u64) -> Self {
        let j = (seed % 7) as f32 * 0.01;
        Scene {
            clip_id: clip_id.to_owned(),
            seed,
            k: Intrinsics::from_hfov(128, 96, 70.0).unwrap(),
            fps: 10.0,
            n_frames: 120,
            table_y: 0.3,
            wall_z: 1.3,
            balls: vec![
                Ball {
                    name: "red ball".into(),
                    centre: [0.05 + j, 0.2, 0.75],
                    radius: 0.035,
                },
                Ball {
                    name: "blue ball".into(),
                    centre: [-0.2, 0.22, 0.7 - j],
                    radius: 0.03,
                },
            ],
            hands: vec![HandTrack {
                side: Side::Right,
                start: [0.22, 0.2, 0.5 + j],
                end: [0.08 + j, 0.12, 0.68],
            }],
            pan_deg: 0.0,
            slide: [0.0; 3],
            target: Some("red ball".into()),
        }
    }

    pub fn time(&self, f: u32) -> f32 {
        f as f32 / (self.n_frames - 1).max(1) as f32
    }

    /// Camera → world pose of frame `f`.
    pub fn pose(&self, f: u32) -> Pose {
        let t = self.time(f);
        Pose {
            rotation: rotation_from_axis_angle([0.0, 1.0, 0.0], (self.pan_deg * t).to_radians()),
            translation: self.slide.map(|c| c * t),
        }
    }

    /// 21 world-frame joints of a hand at frame `f`: a flat hand facing the camera, fingers up.
    pub fn joints_world(&self, h: &HandTrack, f: u32) -> [Vec3; 21] {
        let w = lerp(h.start, h.end, self.time(f));
        let mirror = if h.side == Side::Left { -1.0 } else { 1.0 };
        let mut j = [w; 21];
        for finger in 0..5 {
            let x = mirror * (finger as f32 - 1.5) * 0.02;
            let (x, y0) = if finger == 0 {
                (-mirror * 0.035, -0.015)
            } else {
                (x, -0.07)
            };
            for s in 0..4 {
                j[1 + finger * 4 + s] = [
                    w[0] + x,
                    w[1] + y0 - 0.022 * s as f32,
                    w[2] + 0.002 * s as f32,
                ];
            }
        }
        j
    }

    /// World → camera of frame `f`.
    pub fn to_cam(&self, f: u32, p: Vec3) -> Vec3 {
        self.pose(f).apply_inverse(p)
    }

    /// Ground-truth z-depth `f32[h, w]` of frame `f` (pixel centres at +0.5).
    pub fn render_depth(&self, f: u32) -> Vec<f32> {
        let k = self.k;
        let pose = self.pose(f);
        let (w, h) = (k.width as usize, k.height as usize);
        let mut depth = vec![f32::INFINITY; w * h];
        // Background planes, intersected in the world frame.
        for row in 0..h {
            for col in 0..w {
                let d = [
                    (col as f32 + 0.5 - k.cx) / k.fx,
                    (row as f32 + 0.5 - k.cy) / k.fy,
                    1.0,
                ];
                let dw = pose.apply(d);
                let dw = [0, 1, 2].map(|i| dw[i] - pose.translation[i]);
                let o = pose.translation;
                let mut best = f32::INFINITY;
                if dw[1] > 1e-6 {
                    best = best.min((self.table_y - o[1]) / dw[1]);
                }
                if dw[2] > 1e-6 {
                    best = best.min((self.wall_z - o[2]) / dw[2]);
                }
                depth[row * w + col] = best;
            }
        }
        let mut spheres: Vec<(Vec3, f32)> = self
            .balls
            .iter()
            .map(|b| (self.to_cam(f, b.centre), b.radius))
            .collect();
        for hnd in &self.hands {
            for jw in self.joints_world(hnd, f) {
                spheres.push((self.to_cam(f, jw), JOINT_RADIUS));
            }
        }
        for (c, r) in spheres {
            if c[2] <= r {
                continue;
            }
            let (u0, v0) = (
                k.fx * (c[0] - r * 1.5) / (c[2] - r) + k.cx,
                k.fy * (c[1] - r * 1.5) / (c[2] - r) + k.cy,
            );
            let (u1, v1) = (
                k.fx * (c[0] + r * 1.5) / (c[2] - r) + k.cx,
                k.fy * (c[1] + r * 1.5) / (c[2] - r) + k.cy,
            );
            let cols = (u0.min(u1).floor().max(0.0) as usize)
                ..=(u0.max(u1).ceil().min(w as f32 - 1.0).max(0.0) as usize);
            let rows = (v0.min(v1).floor().max(0.0) as usize)
                ..=(v0.max(v1).ceil().min(h as f32 - 1.0).max(0.0) as usize);
            for row in rows {
                for col in cols.clone() {
                    let d = [
                        (col as f32 + 0.5 - k.cx) / k.fx,
                        (row as f32 + 0.5 - k.cy) / k.fy,
                        1.0,
                    ];
                    let a = dot(d, d);
                    let b = -2.0 * dot(d, c);
                    let cc = dot(c, c) - r * r;
                    let disc = b * b - 4.0 * a * cc;
                    if disc >= 0.0 {
                        let t = (-b - disc.sqrt()) / (2.0 * a);
                        let i = row * w + col;
                        if t > 0.0 && t < depth[i] {
                            depth[i] = t;
                        }
                    }
                }
            }
        }
        depth
            .iter()
            .map(|d| if d.is_finite() { *d } else { 0.0 })
            .collect()
    }

    pub fn meta(&self) -> ClipMeta {
        ClipMeta {
            clip_id: self.clip_id.clone(),
            fps: self.fps,
            intrinsics: self.k,
            instruction: "pick up the red ball".into(),
            target_object: self.target.clone(),
        }
    }

    /// Hands of frame `f` with ground-truth visibility (inside the image and not hidden).
    pub fn hand_inputs(&self, f: u32, depth: &[f32]) -> Vec<HandInput> {
        let k = self.k;
        self.hands
            .iter()
            .map(|h| {
                let joints = self.joints_world(h, f).map(|p| self.to_cam(f, p));
                let visible = joints.map(|p| {
                    let Some((u, v)) = k.project(p) else {
                        return false;
                    };
                    if !k.contains(u, v) {
                        return false;
                    }
                    let d = depth[v as usize * k.width as usize + u as usize];
                    d >= p[2] - JOINT_RADIUS - 0.002
                });
                HandInput {
                    side: h.side,
                    joints,
                    gt_visible: Some(visible),
                }
            })
            .collect()
    }

    /// Ball boxes (tight projected extent, clipped to the image) of frame `f`.
    pub fn object_inputs(&self, f: u32) -> Vec<ObjectInput> {
        let k = self.k;
        self.balls
            .iter()
            .filter_map(|b| {
                let c = self.to_cam(f, b.centre);
                let (u0, v0) = k.project([c[0] - b.radius, c[1] - b.radius, c[2]])?;
                let (u1, v1) = k.project([c[0] + b.radius, c[1] + b.radius, c[2]])?;
                let bbox = [
                    u0.max(0.0),
                    v0.max(0.0),
                    u1.min(k.width as f32),
                    v1.min(k.height as f32),
                ];
                (bbox[2] > bbox[0] + 1.0 && bbox[3] > bbox[1] + 1.0).then(|| ObjectInput {
                    name: b.name.clone(),
                    bbox,
                })
            })
            .collect()
    }

    /// Ground-truth centre of a ball in frame `f`'s camera.
    pub fn ball_cam(&self, name: &str, f: u32) -> Vec3 {
        let b = self.balls.iter().find(|b| b.name == name).unwrap();
        self.to_cam(f, b.centre)
    }

    /// Ground-truth palm centre (mean of joints 0, 5, 9, 13, 17) in frame `f`'s camera.
    pub fn palm_cam(&self, side: Side, f: u32) -> Vec3 {
        let h = self.hands.iter().find(|h| h.side == side).unwrap();
        let j = self.joints_world(h, f).map(|p| self.to_cam(f, p));
        let idx = [0usize, 5, 9, 13, 17];
        [0, 1, 2].map(|a| idx.iter().map(|&i| j[i][a]).sum::<f32>() / 5.0)
    }

    /// Runs `observe_frame` on every frame with the given backend → pipeline inputs.
    pub fn inputs(&self, backend: Backend, cfg: &Config) -> ClipInputs {
        let frames = (0..self.n_frames)
            .map(|f| {
                let depth = self.render_depth(f);
                let pm = match backend {
                    Backend::Sidecar => sidecar_point_map(&depth, &self.k).unwrap(),
                    Backend::Scaled(b) => b.point_map(&depth, &self.k, self.seed, f).unwrap(),
                };
                let input = FrameInput {
                    frame_idx: f,
                    point_map: &pm,
                    hands: self.hand_inputs(f, &depth),
                    objects: self.object_inputs(f),
                    camera_pose: Some(self.pose(f)),
                };
                observe_frame(&input, &self.k, cfg).unwrap()
            })
            .collect();
        ClipInputs {
            meta: self.meta(),
            frames,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sidecar,
    Scaled(ScaledBackend),
}
