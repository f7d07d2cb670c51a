//! Camera geometry: pinhole intrinsics, depth → point-map back-projection, projection, and
//! camera poses.
//!
//! Conventions (the whole crate): camera frame, OpenCV axes, metres — **+x right, +y down,
//! +z forward** (away from the camera). Pixel `(u, v)`: `u` grows to the right, `v` downwards,
//! and pixel `(i, j)` (column `i`, row `j`) covers `[i, i+1) × [j, j+1)`, so its centre is at
//! `(i + 0.5, j + 0.5)`. Intrinsics use the same continuous coordinates (`cx = w/2` is the
//! image centre).

use serde::{Deserialize, Serialize};

use crate::error::{Hand3dError, Result};

/// A 3D point or vector in metres, `[x, y, z]`.
pub type Vec3 = [f32; 3];

/// Pinhole intrinsics of an undistorted camera, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intrinsics {
    pub fx: f32,
    pub fy: f32,
    pub cx: f32,
    pub cy: f32,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
}

impl Intrinsics {
    /// A guess from a horizontal field of view (degrees) when a clip has no calibration:
    /// square pixels, principal point at the image centre.
    pub fn from_hfov(width: u32, height: u32, hfov_deg: f32) -> Result<Self> {
        if !(1.0..179.0).contains(&hfov_deg) || width == 0 || height == 0 {
            return Err(Hand3dError::bad_input(
                "intrinsics",
                format!(
                    "field of view {hfov_deg}° on {width}x{height} pixels: need 1..179° and a non-empty image"
                ),
            ));
        }
        let f = 0.5 * width as f32 / (0.5 * hfov_deg.to_radians()).tan();
        Ok(Self {
            fx: f,
            fy: f,
            cx: 0.5 * width as f32,
            cy: 0.5 * height as f32,
            width,
            height,
        })
    }

    /// Checks that focal lengths are positive and the image is non-empty.
    pub fn validate(&self) -> Result<()> {
        let ok = self.fx.is_finite()
            && self.fy.is_finite()
            && self.fx > 0.0
            && self.fy > 0.0
            && self.cx.is_finite()
            && self.cy.is_finite()
            && self.width > 0
            && self.height > 0;
        if ok {
            Ok(())
        } else {
            Err(Hand3dError::bad_input(
                "intrinsics",
                format!("{self:?}: need finite positive fx, fy and a non-empty image"),
            ))
        }
    }

    /// Projects a camera-frame point to continuous pixel coordinates `(u, v)`:
    /// `u = fx·x/z + cx`, `v = fy·y/z + cy`. `None` behind or on the camera plane (`z ≤ 0`).
    pub fn project(&self, p: Vec3) -> Option<(f32, f32)> {
        if !p.iter().all(|c| c.is_finite()) || p[2] <= 0.0 {
            return None;
        }
        Some((
            self.fx * p[0] / p[2] + self.cx,
            self.fy * p[1] / p[2] + self.cy,
        ))
    }

    /// Whether continuous pixel coordinates fall inside the image.
    pub fn contains(&self, u: f32, v: f32) -> bool {
        u >= 0.0 && v >= 0.0 && u < self.width as f32 && v < self.height as f32
    }

    /// The ray through pixel coordinates `(u, v)` scaled to depth `z`.
    pub fn unproject(&self, u: f32, v: f32, z: f32) -> Vec3 {
        [(u - self.cx) / self.fx * z, (v - self.cy) / self.fy * z, z]
    }
}

/// A camera-frame point map: one 3D point per pixel, `f32[h, w, 3]` row-major.
/// Invalid pixels (no depth) hold NaN in all three coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct PointMap {
    width: u32,
    height: u32,
    data: Vec<f32>,
}

impl PointMap {
    /// Wraps `f32[h, w, 3]` data. Fails if the length is not `h·w·3`.
    pub fn new(width: u32, height: u32, data: Vec<f32>) -> Result<Self> {
        let want = width as usize * height as usize * 3;
        if data.len() != want || width == 0 || height == 0 {
            return Err(Hand3dError::bad_input(
                "point map",
                format!(
                    "expected f32[h={height}, w={width}, 3] = {want} values, got {}",
                    data.len()
                ),
            ));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The raw `f32[h, w, 3]` values.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// The point at integer pixel `(col, row)`; `None` outside the image or where invalid.
    pub fn get(&self, col: u32, row: u32) -> Option<Vec3> {
        if col >= self.width || row >= self.height {
            return None;
        }
        let i = (row as usize * self.width as usize + col as usize) * 3;
        let p = [self.data[i], self.data[i + 1], self.data[i + 2]];
        is_valid_point(p).then_some(p)
    }

    /// Samples the map at continuous pixel coordinates with **nearest** lookup: the pixel whose
    /// square contains `(u, v)`, i.e. `(floor(u), floor(v))`. Nearest, not bilinear, because
    /// interpolating across a depth edge (hand in front of the table) invents points that lie on
    /// neither surface; the calibration's median absorbs the sub-pixel quantisation instead.
    pub fn sample_nearest(&self, u: f32, v: f32) -> Option<Vec3> {
        if u.is_nan() || v.is_nan() || u < 0.0 || v < 0.0 {
            return None;
        }
        self.get(u.floor() as u32, v.floor() as u32)
    }

    /// Multiplies every point by `s` (scale calibration: the calibrated map is `s·P`).
    pub fn scaled(&self, s: f32) -> Self {
        Self {
            width: self.width,
            height: self.height,
            data: self.data.iter().map(|x| x * s).collect(),
        }
    }
}

/// A point is valid when finite and in front of the camera.
pub fn is_valid_point(p: Vec3) -> bool {
    p.iter().all(|c| c.is_finite()) && p[2] > 0.0
}

/// Back-projects a depth map (`f32[h, w]`, metres along +z, row-major) to a camera-frame point
/// map, sampling each pixel at its centre. Depth ≤ 0 or non-finite becomes an invalid (NaN)
/// point.
pub fn backproject(depth: &[f32], k: &Intrinsics) -> Result<PointMap> {
    k.validate()?;
    let (w, h) = (k.width as usize, k.height as usize);
    if depth.len() != w * h {
        return Err(Hand3dError::bad_input(
            "depth map",
            format!(
                "expected f32[h={h}, w={w}] = {} values (from the intrinsics), got {}",
                w * h,
                depth.len()
            ),
        ));
    }
    let mut data = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        for col in 0..w {
            let z = depth[row * w + col];
            if z.is_finite() && z > 0.0 {
                data.extend(k.unproject(col as f32 + 0.5, row as f32 + 0.5, z));
            } else {
                data.extend([f32::NAN; 3]);
            }
        }
    }
    PointMap::new(k.width, k.height, data)
}

/// A rigid camera pose, **camera → world**: `p_world = R·p_cam + t`. `rotation` is row-major.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pose {
    pub rotation: [[f32; 3]; 3],
    pub translation: Vec3,
}

impl Pose {
    pub const IDENTITY: Self = Self {
        rotation: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        translation: [0.0; 3],
    };

    /// Maps a point from this camera's frame to the world.
    pub fn apply(&self, p: Vec3) -> Vec3 {
        add(mat_vec(&self.rotation, p), self.translation)
    }

    /// Maps a world point into this camera's frame: `Rᵀ(p − t)`.
    pub fn apply_inverse(&self, p: Vec3) -> Vec3 {
        mat_t_vec(&self.rotation, sub(p, self.translation))
    }

    /// Pose of camera `other` expressed in this camera's frame (camera-2 → camera-1):
    /// rotation `R1ᵀR2`, translation `R1ᵀ(t2 − t1)` (where camera 2 sits, seen from camera 1).
    pub fn relative_to_self(&self, other: &Pose) -> Pose {
        let r1 = &self.rotation;
        let mut rot = [[0.0f32; 3]; 3];
        for (i, row) in rot.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (0..3).map(|k| r1[k][i] * other.rotation[k][j]).sum();
            }
        }
        Pose {
            rotation: rot,
            translation: self.apply_inverse(other.translation),
        }
    }
}

/// Axis-angle of a rotation matrix: `(unit axis, angle in radians ∈ [0, π])`. The axis is
/// `[0, 0, 0]` for the identity.
pub fn axis_angle(r: &[[f32; 3]; 3]) -> (Vec3, f32) {
    let r = r.map(|row| row.map(f64::from));
    let cos = ((r[0][0] + r[1][1] + r[2][2] - 1.0) / 2.0).clamp(-1.0, 1.0);
    let angle = cos.acos();
    let w = [r[2][1] - r[1][2], r[0][2] - r[2][0], r[1][0] - r[0][1]];
    let n = (w[0] * w[0] + w[1] * w[1] + w[2] * w[2]).sqrt();
    if angle < 1e-9 {
        return ([0.0; 3], 0.0);
    }
    if n > 1e-6 {
        return (w.map(|c| (c / n) as f32), angle as f32);
    }
    // Angle ≈ π: R + I = 2uuᵀ is symmetric, so its row (= column) with the largest norm is
    // a multiple of the axis.
    let mut best = [0.0f64; 3];
    let mut best_n = 0.0;
    for (j, row) in r.iter().enumerate() {
        let col: [f64; 3] = std::array::from_fn(|i| row[i] + f64::from(u8::from(i == j)));
        let cn = (col[0] * col[0] + col[1] * col[1] + col[2] * col[2]).sqrt();
        if cn > best_n {
            best_n = cn;
            best = col;
        }
    }
    (best.map(|c| (c / best_n) as f32), angle as f32)
}

/// Rotation matrix from a unit axis and an angle in radians (Rodrigues).
pub fn rotation_from_axis_angle(axis: Vec3, angle: f32) -> [[f32; 3]; 3] {
    let [x, y, z] = axis;
    let (s, c) = angle.sin_cos();
    let t = 1.0 - c;
    [
        [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
        [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
        [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
    ]
}

pub(crate) fn mat_vec(m: &[[f32; 3]; 3], p: Vec3) -> Vec3 {
    [0, 1, 2].map(|i| m[i][0] * p[0] + m[i][1] * p[1] + m[i][2] * p[2])
}

pub(crate) fn mat_t_vec(m: &[[f32; 3]; 3], p: Vec3) -> Vec3 {
    [0, 1, 2].map(|i| m[0][i] * p[0] + m[1][i] * p[1] + m[2][i] * p[2])
}

pub fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

pub fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub fn norm(a: Vec3) -> f32 {
    (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k() -> Intrinsics {
        Intrinsics {
            fx: 100.0,
            fy: 120.0,
            cx: 32.0,
            cy: 24.0,
            width: 64,
            height: 48,
        }
    }

    #[test]
    fn backproject_then_project_returns_pixel_centres() {
        let k = k();
        let depth: Vec<f32> = (0..64 * 48).map(|i| 0.5 + (i % 7) as f32 * 0.1).collect();
        let pm = backproject(&depth, &k).unwrap();
        for (col, row) in [(0u32, 0u32), (63, 47), (10, 30)] {
            let p = pm.get(col, row).unwrap();
            assert!((p[2] - depth[(row * 64 + col) as usize]).abs() < 1e-6);
            let (u, v) = k.project(p).unwrap();
            assert!((u - (col as f32 + 0.5)).abs() < 1e-4, "u {u}");
            assert!((v - (row as f32 + 0.5)).abs() < 1e-4, "v {v}");
            assert_eq!(pm.sample_nearest(u, v), Some(p));
        }
        // +x right, +y down: the top-left pixel has negative x and y.
        let tl = pm.get(0, 0).unwrap();
        assert!(tl[0] < 0.0 && tl[1] < 0.0);
    }

    #[test]
    fn invalid_depth_and_out_of_image_give_none() {
        let k = k();
        let mut depth = vec![1.0f32; 64 * 48];
        depth[5] = 0.0;
        depth[6] = f32::NAN;
        let pm = backproject(&depth, &k).unwrap();
        assert_eq!(pm.get(5, 0), None);
        assert_eq!(pm.get(6, 0), None);
        assert!(pm.get(7, 0).is_some());
        assert_eq!(pm.sample_nearest(-0.1, 3.0), None);
        assert_eq!(pm.sample_nearest(64.0, 3.0), None);
        assert!(k.project([0.0, 0.0, -1.0]).is_none());
        assert!(backproject(&depth[1..], &k).is_err());
    }

    #[test]
    fn fov_guess_matches_pinhole_formula() {
        let k = Intrinsics::from_hfov(640, 480, 90.0).unwrap();
        assert!((k.fx - 320.0).abs() < 1e-3);
        // A point at 45° to the right projects on the right image border.
        let (u, _) = k.project([1.0, 0.0, 1.0]).unwrap();
        assert!((u - 640.0).abs() < 1e-3);
        assert!(Intrinsics::from_hfov(640, 480, 0.0).is_err());
    }

    #[test]
    fn axis_angle_round_trips_and_relative_pose() {
        let axis = {
            let a = [0.2f32, -0.9, 0.3];
            let n = norm(a);
            a.map(|c| c / n)
        };
        for angle in [0.05f32, 1.0, 3.0] {
            let r = rotation_from_axis_angle(axis, angle);
            let (ax, an) = axis_angle(&r);
            assert!((an - angle).abs() < 1e-4, "{an} vs {angle}");
            for i in 0..3 {
                assert!((ax[i] - axis[i]).abs() < 1e-3);
            }
        }
        let p1 = Pose {
            rotation: rotation_from_axis_angle([0.0, 1.0, 0.0], 0.3),
            translation: [1.0, 2.0, 3.0],
        };
        let p2 = Pose {
            rotation: rotation_from_axis_angle([1.0, 0.0, 0.0], -0.2),
            translation: [1.5, 2.0, 2.0],
        };
        let rel = p1.relative_to_self(&p2);
        // A point in camera 2 → world → camera 1 equals the relative pose applied directly.
        let q = [0.1f32, -0.2, 0.7];
        let via_world = p1.apply_inverse(p2.apply(q));
        let direct = rel.apply(q);
        for i in 0..3 {
            assert!((via_world[i] - direct[i]).abs() < 1e-5);
        }
    }
}
