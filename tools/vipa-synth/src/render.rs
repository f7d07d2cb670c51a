//! A small CPU ray caster: analytic ray–primitive intersection inside each primitive's
//! screen-space bounding box, a z-buffer, Lambert + ambient shading.
//!
//! Everything is in the camera frame (OpenCV: x right, y down, z forward, metres). The ray of
//! pixel `(u, v)` is `d = ((u − cx)/fx, (v − cy)/fy, 1)`; because `d.z = 1`, the ray parameter
//! `t` of a hit *is* its z-depth, so no conversion is needed for the depth buffer.
//!
//! Besides colour the renderer keeps, per pixel, the z-depth and a label saying which thing is
//! the front surface ([`LABEL_NONE`], [`LABEL_TABLE`], [`label_object`], [`label_hand`],
//! [`label_arm`]); ground truth (joint visibility, object boxes) is computed from these.

use crate::math::{Pose, V3, v3};
use crate::sidecar::Intrinsics;

/// No surface (background beyond the table).
pub const LABEL_NONE: u8 = 0;
/// The table top.
pub const LABEL_TABLE: u8 = 1;
const LABEL_OBJECT0: u8 = 2;
const LABEL_HAND0: u8 = 16;
const LABEL_ARM0: u8 = 24;
/// Rays closer than this are ignored (the camera never sits inside geometry).
const NEAR: f32 = 0.02;

/// Label of object `k` (k < 14).
pub const fn label_object(k: usize) -> u8 {
    LABEL_OBJECT0 + k as u8
}

/// Label of hand `k` (its joints, bones and palm).
pub const fn label_hand(k: usize) -> u8 {
    LABEL_HAND0 + k as u8
}

/// Label of the forearm attached to hand `k`.
pub const fn label_arm(k: usize) -> u8 {
    LABEL_ARM0 + k as u8
}

/// A primitive's geometry, in the camera frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    Sphere {
        c: V3,
        r: f32,
    },
    /// Segment `a`–`b` swept by a sphere of radius `r`.
    Capsule {
        a: V3,
        b: V3,
        r: f32,
    },
    /// Closed cylinder with axis `a`→`b`; its `b` cap is the primitive's alternate surface.
    Cylinder {
        a: V3,
        b: V3,
        r: f32,
    },
    /// Oriented box: `cam_from_box` places a box `[-half, half]`.
    Box {
        cam_from_box: Pose,
        half: V3,
    },
    /// Hemispherical shell: the part of the sphere (`c`, `r`) on the `−up` side of the plane
    /// through `c`; the inner surface is the alternate surface.
    Bowl {
        c: V3,
        r: f32,
        up: V3,
    },
}

/// A shaded primitive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prim {
    pub shape: Shape,
    /// Linear 0–1 RGB.
    pub colour: [f32; 3],
    /// Colour of the alternate surface (mug top, bowl inside).
    pub alt_colour: [f32; 3],
    pub label: u8,
}

/// The table top: the plane z = 0 of the world, a rectangle with a faint checker pattern.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Table {
    pub world_from_camera: Pose,
    /// `[x_min, x_max, y_min, y_max]` in the world frame, metres.
    pub extent: [f32; 4],
    pub colour: [f32; 3],
    /// Checker square side, metres.
    pub tile: f32,
}

/// A soft contact shadow on the table under a point (world frame): darkens the table within
/// `radius` of `centre`'s footprint, more so the lower `centre` is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlobShadow {
    pub centre: V3,
    pub radius: f32,
}

/// Everything drawn in one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderScene {
    pub prims: Vec<Prim>,
    pub table: Option<Table>,
    pub shadows: Vec<BlobShadow>,
    /// Direction the light travels, camera frame, unit.
    pub light_dir: V3,
    pub background: [f32; 3],
}

/// Output buffers, all `[h, w]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub width: usize,
    pub height: usize,
    /// `u8[h, w, 3]`, BGR (OpenCV order).
    pub bgr: Vec<u8>,
    /// `f32[h, w]` z-depth in metres; `f32::INFINITY` where there is no surface.
    pub depth: Vec<f32>,
    /// `u8[h, w]` front-surface label.
    pub label: Vec<u8>,
}

impl Rendered {
    /// Depth and label at a pixel; `None` outside the image.
    pub fn at(&self, u: i64, v: i64) -> Option<(f32, u8)> {
        if u < 0 || v < 0 || u >= self.width as i64 || v >= self.height as i64 {
            return None;
        }
        let i = v as usize * self.width + u as usize;
        Some((self.depth[i], self.label[i]))
    }

    /// `u16[h, w]` z-depth in millimetres, 0 where there is no surface (saturates at 65.535 m).
    pub fn depth_mm(&self) -> Vec<u16> {
        self.depth
            .iter()
            .map(|&d| {
                if d.is_finite() {
                    (d * 1000.0).round().clamp(1.0, 65535.0) as u16
                } else {
                    0
                }
            })
            .collect()
    }
}

/// A hit: ray parameter (= z-depth), unit normal, and whether it is the alternate surface.
type Hit = (f32, V3, bool);

fn hit_sphere(d: V3, dd: f32, c: V3, r: f32) -> Option<(f32, f32)> {
    // |t d − c|² = r²  →  dd t² − 2 (d·c) t + (c·c − r²) = 0
    let b = d.dot(c);
    let h = b * b - dd * (c.dot(c) - r * r);
    if h < 0.0 {
        return None;
    }
    let s = h.sqrt();
    Some(((b - s) / dd, (b + s) / dd))
}

fn intersect(shape: &Shape, d: V3, dd: f32) -> Option<Hit> {
    match *shape {
        Shape::Sphere { c, r } => {
            let (t, _) = hit_sphere(d, dd, c, r)?;
            (t > NEAR).then(|| (t, (d * t - c) * (1.0 / r), false))
        }
        Shape::Capsule { a, b, r } => {
            // The capsule is the union of a finite cylinder and two end spheres; the first hit
            // of a union of convex parts is the nearest first hit among them.
            let ba = b - a;
            let oa = -a;
            let baba = ba.dot(ba);
            let bard = ba.dot(d);
            let baoa = ba.dot(oa);
            let k2 = baba * dd - bard * bard;
            let mut best: Option<f32> = None;
            if k2 > 1e-12 {
                let k1 = baba * d.dot(oa) - baoa * bard;
                let k0 = baba * oa.dot(oa) - baoa * baoa - r * r * baba;
                let h = k1 * k1 - k2 * k0;
                if h >= 0.0 {
                    let t = (-k1 - h.sqrt()) / k2;
                    let y = baoa + t * bard;
                    if y > 0.0 && y < baba && t > NEAR {
                        best = Some(t);
                    }
                }
            }
            for c in [a, b] {
                if let Some((t, _)) = hit_sphere(d, dd, c, r)
                    && t > NEAR
                    && best.is_none_or(|bt| t < bt)
                {
                    best = Some(t);
                }
            }
            let t = best?;
            let p = d * t;
            let s = if baba > 0.0 {
                ((p - a).dot(ba) / baba).clamp(0.0, 1.0)
            } else {
                0.0
            };
            Some((t, (p - (a + ba * s)) * (1.0 / r), false))
        }
        Shape::Cylinder { a, b, r } => {
            let ba = b - a;
            let oc = -a;
            let baba = ba.dot(ba);
            let bard = ba.dot(d);
            let baoc = ba.dot(oc);
            let k2 = baba * dd - bard * bard;
            let k1 = baba * oc.dot(d) - baoc * bard;
            let k0 = baba * oc.dot(oc) - baoc * baoc - r * r * baba;
            if k2 > 1e-12 {
                let h = k1 * k1 - k2 * k0;
                if h < 0.0 {
                    return None;
                }
                let h = h.sqrt();
                let t = (-k1 - h) / k2;
                let y = baoc + t * bard;
                if y > 0.0 && y < baba {
                    let n = (oc + d * t - ba * (y / baba)) * (1.0 / r);
                    return (t > NEAR).then_some((t, n, false));
                }
                // Caps: the ray crosses the cap plane inside the infinite cylinder.
                if bard.abs() < 1e-12 {
                    return None;
                }
                let top = y >= 0.0;
                let t = (if top { baba } else { 0.0 } - baoc) / bard;
                if (k1 + k2 * t).abs() < h && t > NEAR {
                    let n = ba * (if top { 1.0 } else { -1.0 } / baba.sqrt());
                    return Some((t, n, top));
                }
                None
            } else {
                // Looking straight down the axis: only a cap can be hit.
                if bard.abs() < 1e-12 {
                    return None;
                }
                let top = bard < 0.0; // the ray meets the `b` cap first
                let t = (if top { baba } else { 0.0 } - baoc) / bard;
                let p = d * t;
                let axis_pt = if top { b } else { a };
                let n = ba * (if top { 1.0 } else { -1.0 } / baba.sqrt());
                ((p - axis_pt).dot(p - axis_pt) <= r * r && t > NEAR).then_some((t, n, top))
            }
        }
        Shape::Box { cam_from_box, half } => {
            let inv = cam_from_box.inverse();
            let o = inv.t;
            let dl = inv.r.apply(d);
            let (o, dl, h) = (
                [o.x, o.y, o.z],
                [dl.x, dl.y, dl.z],
                [half.x, half.y, half.z],
            );
            let mut t_near = f32::NEG_INFINITY;
            let mut t_far = f32::INFINITY;
            let mut axis = 0;
            for k in 0..3 {
                if dl[k].abs() < 1e-12 {
                    if o[k].abs() > h[k] {
                        return None;
                    }
                    continue;
                }
                let inv_d = 1.0 / dl[k];
                let (t1, t2) = ((-h[k] - o[k]) * inv_d, (h[k] - o[k]) * inv_d);
                let (t1, t2) = if t1 < t2 { (t1, t2) } else { (t2, t1) };
                if t1 > t_near {
                    t_near = t1;
                    axis = k;
                }
                t_far = t_far.min(t2);
            }
            if t_near > t_far || t_near < NEAR {
                return None;
            }
            let mut nl = [0.0f32; 3];
            nl[axis] = -dl[axis].signum();
            Some((
                t_near,
                cam_from_box.apply_dir(v3(nl[0], nl[1], nl[2])),
                false,
            ))
        }
        Shape::Bowl { c, r, up } => {
            let (t0, t1) = hit_sphere(d, dd, c, r)?;
            let below = |t: f32| (d * t - c).dot(up) <= 0.0;
            if t0 > NEAR && below(t0) {
                Some((t0, (d * t0 - c) * (1.0 / r), false))
            } else if t1 > NEAR && below(t1) {
                // Seen through the open top: the inside of the shell, facing inwards.
                Some((t1, (c - d * t1) * (1.0 / r), true))
            } else {
                None
            }
        }
    }
}

/// Conservative bounding sphere of a shape.
fn bounding_sphere(shape: &Shape) -> (V3, f32) {
    match *shape {
        Shape::Sphere { c, r } => (c, r),
        Shape::Capsule { a, b, r } | Shape::Cylinder { a, b, r } => {
            ((a + b) * 0.5, (b - a).norm() * 0.5 + r)
        }
        Shape::Box { cam_from_box, half } => (cam_from_box.t, half.norm()),
        Shape::Bowl { c, r, .. } => (c, r),
    }
}

/// Pixel rectangle `[u0, u1) × [v0, v1)` covering a bounding sphere, clipped to the image.
fn screen_rect(k: &Intrinsics, w: usize, h: usize, c: V3, r: f32) -> Option<[usize; 4]> {
    let full = [0, w, 0, h];
    if c.z - r <= NEAR {
        // Touches the near plane: the bound would blow up; scan the whole image instead.
        return (c.z + r > NEAR).then_some(full);
    }
    // x/z over the sphere's bounding cube is extreme at a corner.
    let (z0, z1) = (c.z - r, c.z + r);
    let xs = [
        (c.x - r) / z0,
        (c.x - r) / z1,
        (c.x + r) / z0,
        (c.x + r) / z1,
    ];
    let ys = [
        (c.y - r) / z0,
        (c.y - r) / z1,
        (c.y + r) / z0,
        (c.y + r) / z1,
    ];
    let min = |a: [f32; 4]| a.iter().copied().fold(f32::INFINITY, f32::min);
    let max = |a: [f32; 4]| a.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let u0 = (k.fx * min(xs) + k.cx).floor().max(0.0);
    let u1 = (k.fx * max(xs) + k.cx).ceil() + 1.0;
    let v0 = (k.fy * min(ys) + k.cy).floor().max(0.0);
    let v1 = (k.fy * max(ys) + k.cy).ceil() + 1.0;
    let (u1, v1) = (u1.min(w as f32), v1.min(h as f32));
    if u0 >= u1 || v0 >= v1 {
        return None;
    }
    Some([u0 as usize, u1 as usize, v0 as usize, v1 as usize])
}

/// Lambert + ambient shading of a base colour.
fn shade(colour: [f32; 3], n: V3, d: V3, light_dir: V3) -> [f32; 3] {
    // Normals face the viewer (the bowl's inside and box faces already do; this guards the
    // rest against numerical sign flips at grazing angles).
    let n = if n.dot(d) > 0.0 { -n } else { n };
    let lambert = (-n.dot(light_dir)).max(0.0);
    let k = 0.38 + 0.62 * lambert;
    colour.map(|c| c * k)
}

/// Renders a scene into fresh buffers of size `width × height`.
pub fn render(scene: &RenderScene, k: &Intrinsics, width: usize, height: usize) -> Rendered {
    let n = width * height;
    let mut depth = vec![f32::INFINITY; n];
    let mut label = vec![LABEL_NONE; n];
    let mut rgb = vec![scene.background; n];
    let ray = |u: usize, v: usize| v3((u as f32 - k.cx) / k.fx, (v as f32 - k.cy) / k.fy, 1.0);

    if let Some(table) = &scene.table {
        draw_table(
            table,
            scene,
            &ray,
            width,
            height,
            (&mut depth[..], &mut label[..], &mut rgb[..]),
        );
    }

    for prim in &scene.prims {
        let (c, r) = bounding_sphere(&prim.shape);
        let Some([u0, u1, v0, v1]) = screen_rect(k, width, height, c, r) else {
            continue;
        };
        for v in v0..v1 {
            for u in u0..u1 {
                let i = v * width + u;
                let d = ray(u, v);
                let dd = d.dot(d);
                if let Some((t, nrm, alt)) = intersect(&prim.shape, d, dd)
                    && t < depth[i]
                {
                    depth[i] = t;
                    label[i] = prim.label;
                    let base = if alt { prim.alt_colour } else { prim.colour };
                    rgb[i] = shade(base, nrm, d, scene.light_dir);
                }
            }
        }
    }

    let mut bgr = Vec::with_capacity(n * 3);
    for c in &rgb {
        for ch in [2, 1, 0] {
            bgr.push((c[ch] * 255.0).round().clamp(0.0, 255.0) as u8);
        }
    }
    Rendered {
        width,
        height,
        bgr,
        depth,
        label,
    }
}

type Buffers<'a> = (&'a mut [f32], &'a mut [u8], &'a mut [[f32; 3]]);

fn draw_table(
    table: &Table,
    scene: &RenderScene,
    ray: &dyn Fn(usize, usize) -> V3,
    width: usize,
    height: usize,
    (depth, label, rgb): Buffers<'_>,
) {
    let pose = &table.world_from_camera;
    let origin = pose.t;
    // The table normal (world +z) in the camera frame, for shading.
    let normal_cam = pose.inverse().apply_dir(v3(0.0, 0.0, 1.0));
    let [x0, x1, y0, y1] = table.extent;
    for v in 0..height {
        for u in 0..width {
            let d = ray(u, v);
            let dw = pose.apply_dir(d);
            if dw.z >= -1e-9 {
                continue; // looking up or parallel: misses the table
            }
            let t = -origin.z / dw.z;
            if t <= NEAR {
                continue;
            }
            let p = origin + dw * t;
            if p.x < x0 || p.x > x1 || p.y < y0 || p.y > y1 {
                continue;
            }
            let i = v * width + u;
            depth[i] = t;
            label[i] = LABEL_TABLE;
            let checker = ((p.x / table.tile).floor() as i64 + (p.y / table.tile).floor() as i64)
                .rem_euclid(2) as f32;
            let mut k = 0.94 + 0.06 * checker;
            for s in &scene.shadows {
                let dx = p.x - s.centre.x;
                let dy = p.y - s.centre.y;
                let rr = s.radius * (1.0 + 1.5 * s.centre.z.max(0.0));
                let q = (dx * dx + dy * dy) / (rr * rr);
                if q < 1.0 {
                    let strength = 0.45 / (1.0 + 8.0 * s.centre.z.max(0.0));
                    k *= 1.0 - strength * (1.0 - q) * (1.0 - q);
                }
            }
            let c = table.colour.map(|c| c * k);
            rgb[i] = shade(c, normal_cam, d, scene.light_dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: Intrinsics = Intrinsics {
        fx: 100.0,
        fy: 100.0,
        cx: 31.5,
        cy: 23.5,
    };

    fn one(shape: Shape) -> Rendered {
        let scene = RenderScene {
            prims: vec![Prim {
                shape,
                colour: [1.0, 0.0, 0.0],
                alt_colour: [0.0, 1.0, 0.0],
                label: 5,
            }],
            table: None,
            shadows: vec![],
            light_dir: v3(0.0, 0.0, 1.0),
            background: [0.0; 3],
        };
        render(&scene, &K, 64, 48)
    }

    /// Depth at the centre pixel of each shape matches the analytic front surface.
    #[test]
    fn analytic_depths_on_axis() {
        let axis = v3(0.0, 0.0, 1.0);
        let cases: Vec<(Shape, f32)> = vec![
            (
                Shape::Sphere {
                    c: axis * 0.5,
                    r: 0.1,
                },
                0.4,
            ),
            (
                Shape::Capsule {
                    a: v3(-0.1, 0.0, 0.5),
                    b: v3(0.1, 0.0, 0.5),
                    r: 0.05,
                },
                0.45,
            ),
            // Cylinder seen down its axis from the `b` end: the top cap.
            (
                Shape::Cylinder {
                    a: v3(0.0, 0.0, 0.8),
                    b: v3(0.0, 0.0, 0.6),
                    r: 0.05,
                },
                0.6,
            ),
            // Cylinder seen from the side.
            (
                Shape::Cylinder {
                    a: v3(0.0, -0.1, 0.7),
                    b: v3(0.0, 0.1, 0.7),
                    r: 0.05,
                },
                0.65,
            ),
            (
                Shape::Box {
                    cam_from_box: Pose::new(crate::math::Rot::IDENTITY, axis * 0.6),
                    half: v3(0.05, 0.05, 0.02),
                },
                0.58,
            ),
        ];
        for (shape, want) in cases {
            // Pixel (31.5, 23.5) is between pixels; check the four around the axis.
            let r = one(shape);
            let (d, l) = r.at(31, 23).unwrap();
            assert_eq!(l, 5, "{shape:?}");
            assert!((d - want).abs() < 0.003, "{shape:?}: depth {d} want {want}");
            // The corner pixel sees nothing.
            assert_eq!(r.at(0, 0).unwrap().1, LABEL_NONE);
            assert!(r.at(0, 0).unwrap().0.is_infinite());
        }
    }

    /// A bowl opening towards the camera shows its inside (alternate colour) at the far side;
    /// turned away, its outside.
    #[test]
    fn bowl_inside_and_outside() {
        let open = one(Shape::Bowl {
            c: v3(0.0, 0.0, 0.5),
            r: 0.1,
            up: v3(0.0, 0.0, -1.0),
        });
        let (d, _) = open.at(31, 23).unwrap();
        assert!((d - 0.6).abs() < 0.003, "inside depth {d}");
        let idx = (23 * 64 + 31) * 3;
        assert!(
            open.bgr[idx + 1] > 0 && open.bgr[idx + 2] == 0,
            "inside uses alt (green)"
        );
        let closed = one(Shape::Bowl {
            c: v3(0.0, 0.0, 0.5),
            r: 0.1,
            up: v3(0.0, 0.0, 1.0),
        });
        let (d, _) = closed.at(31, 23).unwrap();
        assert!((d - 0.4).abs() < 0.003, "outside depth {d}");
        assert!(closed.bgr[idx + 2] > 0 && closed.bgr[idx + 1] == 0);
    }

    /// The z-buffer keeps the nearer of two overlapping primitives regardless of draw order.
    #[test]
    fn z_buffer_occlusion() {
        let near = Prim {
            shape: Shape::Sphere {
                c: v3(0.0, 0.0, 0.4),
                r: 0.05,
            },
            colour: [1.0; 3],
            alt_colour: [1.0; 3],
            label: 7,
        };
        let far = Prim {
            shape: Shape::Sphere {
                c: v3(0.0, 0.0, 0.6),
                r: 0.2,
            },
            label: 9,
            ..near
        };
        for prims in [vec![near, far], vec![far, near]] {
            let scene = RenderScene {
                prims,
                table: None,
                shadows: vec![],
                light_dir: v3(0.0, 0.0, 1.0),
                background: [0.0; 3],
            };
            let r = render(&scene, &K, 64, 48);
            assert_eq!(r.at(31, 23).unwrap().1, 7);
            // Outside the small sphere's disc (radius ~12 px) but inside the big one.
            assert_eq!(r.at(31, 2).unwrap().1, 9);
        }
    }

    /// The screen rectangle of a bounding sphere contains every pixel the sphere covers.
    #[test]
    fn screen_rect_is_conservative() {
        let c = v3(0.12, -0.05, 0.5);
        let r = 0.06;
        let rect = screen_rect(&K, 64, 48, c, r).unwrap();
        let shape = Shape::Sphere { c, r };
        let mut covered = 0;
        // Test every pixel's ray directly (not through `render`, which only scans the rect).
        for v in 0..48 {
            for u in 0..64 {
                let d = v3((u as f32 - K.cx) / K.fx, (v as f32 - K.cy) / K.fy, 1.0);
                if intersect(&shape, d, d.dot(d)).is_some() {
                    covered += 1;
                    assert!(u >= rect[0] && u < rect[1] && v >= rect[2] && v < rect[3]);
                }
            }
        }
        assert!(covered > 50, "sphere covers {covered} px");
        // A sphere fully to the side of the view is skipped.
        assert!(screen_rect(&K, 64, 48, v3(5.0, 0.0, 0.5), 0.1).is_none());
    }
}
