//! Pinhole camera intrinsics and camera poses, with the projection math every node shares.
//!
//! Conventions: camera frame with OpenCV axes (x right, y down, z forward), metres; pixel
//! coordinates `(u, v)` with u along the image width, v down, and pixel *centres* at integer
//! coordinates (OpenCV), so pixel (row, col) has its centre at `(u, v) = (col, row)`.
//! Lens distortion is not modelled: inputs are assumed undistorted.
//!
//! # Wire format
//! - [`CameraIntrinsicsMsg`]: `Float64Array` `f64[4] = [fx, fy, cx, cy]` (pixels); metadata
//!   `width`, `height` (the image size the intrinsics belong to), `kind = "camera_intrinsics"`,
//!   and the [`StreamHeader`] keys.
//! - [`CameraPoseMsg`]: `Float64Array` `f64[16]`, the 4×4 `world_from_camera` matrix row-major
//!   (`p_world = R p_cam + t`, last row `[0, 0, 0, 1]`); metadata `units = "m"`,
//!   `kind = "camera_pose"`, and the [`StreamHeader`] keys.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array};

use crate::meta::{METRES, MetaReader, MetaValue, Metadata, keys, put};
use crate::{MsgError, Payload, StreamHeader, wire};

/// Pinhole intrinsics of an image of `width × height` pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CameraIntrinsics {
    /// Focal lengths in pixels.
    pub fx: f64,
    pub fy: f64,
    /// Principal point in pixels.
    pub cx: f64,
    pub cy: f64,
    pub width: u32,
    pub height: u32,
}

impl CameraIntrinsics {
    const KIND: &'static str = "camera_intrinsics";

    /// Builds intrinsics, checking that the focal lengths are finite and positive, the
    /// principal point is finite and the image is not empty.
    pub fn new(
        fx: f64,
        fy: f64,
        cx: f64,
        cy: f64,
        width: u32,
        height: u32,
    ) -> Result<Self, MsgError> {
        let k = Self {
            fx,
            fy,
            cx,
            cy,
            width,
            height,
        };
        k.validate()?;
        Ok(k)
    }

    /// Intrinsics from a horizontal field of view, principal point at the image centre and
    /// square pixels (handy for synthetic scenes).
    pub fn from_hfov(hfov_deg: f64, width: u32, height: u32) -> Result<Self, MsgError> {
        let f = 0.5 * f64::from(width) / (0.5 * hfov_deg.to_radians()).tan();
        // Centre of a W-pixel image with pixel centres at 0..W-1.
        let cx = 0.5 * (f64::from(width) - 1.0);
        let cy = 0.5 * (f64::from(height) - 1.0);
        Self::new(f, f, cx, cy, width, height)
    }

    /// Checks the invariants [`Self::new`] checks (for values built field by field).
    pub fn validate(&self) -> Result<(), MsgError> {
        let bad = |field: &str, problem: String| MsgError::Invalid {
            kind: Self::KIND,
            field: field.to_owned(),
            problem,
        };
        for (name, f) in [("fx", self.fx), ("fy", self.fy)] {
            if !(f.is_finite() && f > 0.0) {
                return Err(bad(
                    name,
                    format!("focal length must be finite and > 0, got {f}"),
                ));
            }
        }
        for (name, c) in [("cx", self.cx), ("cy", self.cy)] {
            if !c.is_finite() {
                return Err(bad(
                    name,
                    format!("principal point must be finite, got {c}"),
                ));
            }
        }
        if self.width == 0 || self.height == 0 {
            return Err(bad(
                "width/height",
                format!("image size must be > 0, got {}x{}", self.width, self.height),
            ));
        }
        Ok(())
    }

    /// The 3×3 matrix `K` (row-major).
    pub fn matrix(&self) -> [[f64; 3]; 3] {
        [
            [self.fx, 0.0, self.cx],
            [0.0, self.fy, self.cy],
            [0.0, 0.0, 1.0],
        ]
    }

    /// Projects a camera-frame point to pixel coordinates `(u, v)`; `None` if the point is not
    /// in front of the camera (`z <= 0`) or not finite. The pixel may lie outside the image:
    /// test with [`Self::contains`].
    pub fn project(&self, p: [f64; 3]) -> Option<[f64; 2]> {
        let [x, y, z] = p;
        if !(x.is_finite() && y.is_finite() && z.is_finite() && z > 0.0) {
            return None;
        }
        Some([self.fx * x / z + self.cx, self.fy * y / z + self.cy])
    }

    /// The camera-frame point at pixel `(u, v)` with camera-frame depth `z` (not ray length).
    pub fn unproject(&self, uv: [f64; 2], z: f64) -> [f64; 3] {
        let [u, v] = uv;
        [(u - self.cx) / self.fx * z, (v - self.cy) / self.fy * z, z]
    }

    /// Whether pixel `(u, v)` lies on the image (within the outer pixel edges).
    pub fn contains(&self, uv: [f64; 2]) -> bool {
        let [u, v] = uv;
        (-0.5..f64::from(self.width) - 0.5).contains(&u)
            && (-0.5..f64::from(self.height) - 0.5).contains(&v)
    }

    /// The intrinsics of the same camera after resizing the image to `width × height`
    /// (e.g. to the encoder's 448×448). Pixel centres stay at integer coordinates, so the
    /// principal point maps as `c' = (c + 0.5) · s − 0.5`.
    pub fn resized(&self, width: u32, height: u32) -> Result<Self, MsgError> {
        let sx = f64::from(width) / f64::from(self.width);
        let sy = f64::from(height) / f64::from(self.height);
        Self::new(
            self.fx * sx,
            self.fy * sy,
            (self.cx + 0.5) * sx - 0.5,
            (self.cy + 0.5) * sy - 0.5,
            width,
            height,
        )
    }
}

/// A rigid transform `p_to = R p_from + t` (rotation and translation in metres).
///
/// Named by what it maps, e.g. `world_from_camera` maps camera-frame points to world points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RigidTransform {
    /// Rotation `R`, row-major, orthonormal with determinant +1.
    pub rotation: [[f64; 3]; 3],
    /// Translation `t`, metres.
    pub translation: [f64; 3],
}

impl RigidTransform {
    const KIND: &'static str = "camera_pose";
    /// How far `RᵀR` may be from the identity (poses estimated in f32 by a network are
    /// slightly non-orthonormal).
    const ORTHO_TOL: f64 = 1e-3;

    pub const IDENTITY: Self = Self {
        rotation: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        translation: [0.0; 3],
    };

    /// Builds a transform, checking that `rotation` is a proper rotation and all values are
    /// finite.
    pub fn new(rotation: [[f64; 3]; 3], translation: [f64; 3]) -> Result<Self, MsgError> {
        let t = Self {
            rotation,
            translation,
        };
        t.validate()?;
        Ok(t)
    }

    /// Reads a row-major 4×4 homogeneous matrix (16 values, last row `[0, 0, 0, 1]`).
    pub fn from_matrix4(m: &[f64]) -> Result<Self, MsgError> {
        let field = "world_from_camera";
        if m.len() != 16 {
            return Err(MsgError::WrongShape {
                kind: Self::KIND,
                field: field.into(),
                expected: "[4, 4] = 16 values".into(),
                found: format!("{} values", m.len()),
            });
        }
        let last = [m[12], m[13], m[14], m[15]];
        if last != [0.0, 0.0, 0.0, 1.0] {
            return Err(MsgError::Invalid {
                kind: Self::KIND,
                field: field.into(),
                problem: format!("last row must be [0, 0, 0, 1], got {last:?}"),
            });
        }
        Self::new(
            [[m[0], m[1], m[2]], [m[4], m[5], m[6]], [m[8], m[9], m[10]]],
            [m[3], m[7], m[11]],
        )
    }

    /// The row-major 4×4 homogeneous matrix.
    pub fn to_matrix4(&self) -> [f64; 16] {
        let [r0, r1, r2] = self.rotation;
        let [tx, ty, tz] = self.translation;
        [
            r0[0], r0[1], r0[2], tx, //
            r1[0], r1[1], r1[2], ty, //
            r2[0], r2[1], r2[2], tz, //
            0.0, 0.0, 0.0, 1.0,
        ]
    }

    /// Checks finiteness, orthonormality (`RᵀR ≈ I`) and `det R ≈ +1`.
    pub fn validate(&self) -> Result<(), MsgError> {
        let bad = |problem: String| MsgError::Invalid {
            kind: Self::KIND,
            field: "world_from_camera".into(),
            problem,
        };
        let r = &self.rotation;
        if r.iter()
            .flatten()
            .chain(&self.translation)
            .any(|v| !v.is_finite())
        {
            return Err(bad("has non-finite values".into()));
        }
        for i in 0..3 {
            for j in 0..3 {
                let dot: f64 = (0..3).map(|k| r[k][i] * r[k][j]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                if (dot - want).abs() > Self::ORTHO_TOL {
                    return Err(bad(format!(
                        "rotation is not orthonormal: (RᵀR)[{i}][{j}] = {dot}"
                    )));
                }
            }
        }
        let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
            - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
            + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
        if (det - 1.0).abs() > Self::ORTHO_TOL {
            return Err(bad(format!("rotation must have determinant +1, got {det}")));
        }
        Ok(())
    }

    /// Maps a point: `R p + t`.
    pub fn apply(&self, p: [f64; 3]) -> [f64; 3] {
        let r = &self.rotation;
        std::array::from_fn(|i| {
            r[i][0] * p[0] + r[i][1] * p[1] + r[i][2] * p[2] + self.translation[i]
        })
    }

    /// Rotates a direction (no translation): `R d`.
    pub fn rotate(&self, d: [f64; 3]) -> [f64; 3] {
        let r = &self.rotation;
        std::array::from_fn(|i| r[i][0] * d[0] + r[i][1] * d[1] + r[i][2] * d[2])
    }

    /// The inverse transform: `(Rᵀ, −Rᵀ t)`.
    pub fn inverse(&self) -> Self {
        let r = &self.rotation;
        let rotation: [[f64; 3]; 3] = std::array::from_fn(|i| std::array::from_fn(|j| r[j][i]));
        let t = self.translation;
        let translation =
            std::array::from_fn(|i| -(0..3).map(|k| rotation[i][k] * t[k]).sum::<f64>());
        Self {
            rotation,
            translation,
        }
    }

    /// `self ∘ other`: first `other`, then `self` (`a_from_c = a_from_b.compose(&b_from_c)`).
    pub fn compose(&self, other: &Self) -> Self {
        let (a, b) = (&self.rotation, &other.rotation);
        let rotation = std::array::from_fn(|i| {
            std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum())
        });
        Self {
            rotation,
            translation: self.apply(other.translation),
        }
    }

    /// Rotation angle in degrees, in `[0, 180]` (for camera-movement answers).
    pub fn rotation_angle_deg(&self) -> f64 {
        let r = &self.rotation;
        let cos = ((r[0][0] + r[1][1] + r[2][2] - 1.0) / 2.0).clamp(-1.0, 1.0);
        cos.acos().to_degrees()
    }
}

/// Intrinsics of one stream position (per frame, or once per clip).
#[derive(Debug, Clone, PartialEq)]
pub struct CameraIntrinsicsMsg {
    pub header: StreamHeader,
    pub intrinsics: CameraIntrinsics,
}

impl Payload for CameraIntrinsicsMsg {
    const KIND: &'static str = CameraIntrinsics::KIND;

    fn to_arrow(&self) -> (ArrayRef, Metadata) {
        let k = &self.intrinsics;
        let mut meta = Metadata::new();
        self.header.write(&mut meta);
        put(&mut meta, keys::KIND, MetaValue::String(Self::KIND.into()));
        put(&mut meta, keys::WIDTH, MetaValue::Integer(k.width.into()));
        put(&mut meta, keys::HEIGHT, MetaValue::Integer(k.height.into()));
        let values = Float64Array::from(vec![k.fx, k.fy, k.cx, k.cy]);
        (Arc::new(values), meta)
    }

    fn from_arrow(array: &dyn Array, meta: &Metadata) -> Result<Self, MsgError> {
        let r = MetaReader::new(Self::KIND, meta);
        let header = StreamHeader::read(Self::KIND, meta)?;
        let width = r.dim(keys::WIDTH)?;
        let height = r.dim(keys::HEIGHT)?;
        let field = "fx_fy_cx_cy";
        let v = wire::downcast::<Float64Array>(Self::KIND, field, array, "Float64")?;
        wire::no_nulls(Self::KIND, field, v)?;
        wire::expect_len(Self::KIND, field, v.len(), 4, || "[fx, fy, cx, cy]".into())?;
        let v = v.values();
        let intrinsics = CameraIntrinsics::new(v[0], v[1], v[2], v[3], width, height)?;
        Ok(Self { header, intrinsics })
    }
}

/// The camera pose at one stream position.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraPoseMsg {
    pub header: StreamHeader,
    pub world_from_camera: RigidTransform,
}

impl Payload for CameraPoseMsg {
    const KIND: &'static str = RigidTransform::KIND;

    fn to_arrow(&self) -> (ArrayRef, Metadata) {
        let mut meta = Metadata::new();
        self.header.write(&mut meta);
        put(&mut meta, keys::KIND, MetaValue::String(Self::KIND.into()));
        put(&mut meta, keys::UNITS, MetaValue::String(METRES.into()));
        let values = Float64Array::from(self.world_from_camera.to_matrix4().to_vec());
        (Arc::new(values), meta)
    }

    fn from_arrow(array: &dyn Array, meta: &Metadata) -> Result<Self, MsgError> {
        let r = MetaReader::new(Self::KIND, meta);
        let header = StreamHeader::read(Self::KIND, meta)?;
        wire::expect_str(&r, keys::UNITS, METRES)?;
        let field = "world_from_camera";
        let v = wire::downcast::<Float64Array>(Self::KIND, field, array, "Float64")?;
        wire::no_nulls(Self::KIND, field, v)?;
        let world_from_camera = RigidTransform::from_matrix4(v.values())?;
        Ok(Self {
            header,
            world_from_camera,
        })
    }
}
