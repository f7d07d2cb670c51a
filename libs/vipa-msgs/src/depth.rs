//! Depth maps and point maps in the camera frame, in metres.
//!
//! # Wire format
//! Both are tensor-shaped, so a generic [`crate::TensorMsg`] decoder reads them too:
//! - [`DepthMap`]: `Float32Array` `f32[h, w]`, the camera-frame **z** of each pixel (not the
//!   distance along the ray); metadata `shape = [h, w]`, `dtype = "f32"`, `axes = ["h", "w"]`.
//! - [`PointMap`]: `Float32Array` `f32[h, w, xyz=3]`, the camera-frame point seen at each pixel;
//!   metadata `shape = [h, w, 3]`, `dtype = "f32"`, `axes = ["h", "w", "xyz"]`.
//!
//! Both also carry `kind` (`depth` | `point_map`), `frame = "camera"` (OpenCV axes: x right,
//! y down, z forward), `units = "m"`, and the [`StreamHeader`] keys. Decoding refuses any other
//! frame or unit rather than misread the geometry.
//!
//! # Invalid pixels
//! Writers mark a pixel without a measurement with **NaN** (every coordinate of a point map
//! pixel). NaN cannot be mistaken for a measurement and poisons any arithmetic that forgets to
//! check. Readers should test with [`is_valid_depth`] / [`is_valid_point`], which also reject
//! `z <= 0` and infinities, because sensor depth (RealSense, sidecar files) often uses 0 for
//! "no return".

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float32Array};

use crate::camera::CameraIntrinsics;
use crate::meta::{MetaReader, MetaValue, Metadata, keys, put};
use crate::{MsgError, Payload, StreamHeader, wire};

/// Whether `z` is a usable depth: finite and in front of the camera.
pub fn is_valid_depth(z: f32) -> bool {
    z.is_finite() && z > 0.0
}

/// Whether `p` is a usable camera-frame point: finite and in front of the camera.
pub fn is_valid_point(p: [f32; 3]) -> bool {
    p[0].is_finite() && p[1].is_finite() && is_valid_depth(p[2])
}

/// A per-pixel depth map.
///
/// # Shapes
/// `depth: f32[h, w]`, metres, camera-frame z; NaN where unknown (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct DepthMap {
    pub header: StreamHeader,
    pub height: u32,
    pub width: u32,
    /// Shares the Arrow buffer it was received in (no copy).
    pub depth: Float32Array,
}

/// A per-pixel point map.
///
/// # Shapes
/// `points: f32[h, w, xyz=3]`, metres, camera frame; NaN where unknown.
#[derive(Debug, Clone, PartialEq)]
pub struct PointMap {
    pub header: StreamHeader,
    pub height: u32,
    pub width: u32,
    /// Shares the Arrow buffer it was received in (no copy).
    pub points: Float32Array,
}

const DEPTH_AXES: [&str; 2] = ["h", "w"];
const POINT_AXES: [&str; 3] = ["h", "w", "xyz"];

impl DepthMap {
    const KIND: &'static str = "depth";

    /// Builds a depth map, checking that `depth` has `height * width` values and no nulls.
    pub fn new(
        header: StreamHeader,
        height: u32,
        width: u32,
        depth: impl Into<Float32Array>,
    ) -> Result<Self, MsgError> {
        let depth = depth.into();
        check_values(Self::KIND, "depth", &depth, height, width, 1)?;
        Ok(Self {
            header,
            height,
            width,
            depth,
        })
    }

    /// The depths, `f32[h, w]` row-major.
    pub fn values(&self) -> &[f32] {
        self.depth.values()
    }

    /// The depth at pixel (`row`, `col`), or `None` outside the image or where invalid.
    pub fn at(&self, row: u32, col: u32) -> Option<f32> {
        if row >= self.height || col >= self.width {
            return None;
        }
        let z = self.values()[row as usize * self.width as usize + col as usize];
        is_valid_depth(z).then_some(z)
    }
}

impl PointMap {
    const KIND: &'static str = "point_map";

    /// Builds a point map, checking that `points` has `height * width * 3` values and no nulls.
    pub fn new(
        header: StreamHeader,
        height: u32,
        width: u32,
        points: impl Into<Float32Array>,
    ) -> Result<Self, MsgError> {
        let points = points.into();
        check_values(Self::KIND, "points", &points, height, width, 3)?;
        Ok(Self {
            header,
            height,
            width,
            points,
        })
    }

    /// Back-projects every pixel of `depth` through `intrinsics` (pixel centres at integer
    /// coordinates, as in OpenCV); invalid depths give NaN points. The map and the
    /// intrinsics must have the same size.
    pub fn from_depth(depth: &DepthMap, intrinsics: &CameraIntrinsics) -> Result<Self, MsgError> {
        if (intrinsics.width, intrinsics.height) != (depth.width, depth.height) {
            return Err(MsgError::WrongShape {
                kind: Self::KIND,
                field: "intrinsics".into(),
                expected: format!("{}x{} (the depth map's size)", depth.width, depth.height),
                found: format!("{}x{}", intrinsics.width, intrinsics.height),
            });
        }
        let w = depth.width as usize;
        let mut points = Vec::with_capacity(depth.values().len() * 3);
        for (i, &z) in depth.values().iter().enumerate() {
            if is_valid_depth(z) {
                let (row, col) = (i / w, i % w);
                let p = intrinsics.unproject([col as f64, row as f64], f64::from(z));
                points.extend(p.map(|c| c as f32));
            } else {
                points.extend([f32::NAN; 3]);
            }
        }
        Self::new(depth.header.clone(), depth.height, depth.width, points)
    }

    /// The points, `f32[h, w, 3]` row-major.
    pub fn values(&self) -> &[f32] {
        self.points.values()
    }

    /// The point at pixel (`row`, `col`), or `None` outside the image or where invalid.
    pub fn at(&self, row: u32, col: u32) -> Option<[f32; 3]> {
        if row >= self.height || col >= self.width {
            return None;
        }
        let i = 3 * (row as usize * self.width as usize + col as usize);
        let v = self.values();
        let p = [v[i], v[i + 1], v[i + 2]];
        is_valid_point(p).then_some(p)
    }
}

fn check_values(
    kind: &'static str,
    field: &str,
    values: &Float32Array,
    height: u32,
    width: u32,
    channels: usize,
) -> Result<(), MsgError> {
    if height == 0 || width == 0 {
        return Err(MsgError::WrongShape {
            kind,
            field: field.to_owned(),
            expected: "height and width > 0".into(),
            found: format!("[{height}, {width}]"),
        });
    }
    wire::no_nulls(kind, field, values)?;
    let expected = height as usize * width as usize * channels;
    wire::expect_len(kind, field, values.len(), expected, || {
        if channels == 1 {
            format!("[h={height}, w={width}]")
        } else {
            format!("[h={height}, w={width}, xyz={channels}]")
        }
    })
}

fn encode(
    kind: &'static str,
    header: &StreamHeader,
    shape: &[usize],
    axes: &[&str],
    values: &Float32Array,
) -> (ArrayRef, Metadata) {
    let mut meta = Metadata::new();
    header.write(&mut meta);
    put(&mut meta, keys::KIND, MetaValue::String(kind.into()));
    wire::write_tensor_keys(&mut meta, shape, "f32", axes);
    wire::write_camera_metric(&mut meta);
    (Arc::new(values.clone()), meta)
}

/// Decodes the common part: header, frame/unit check, `[h, w(, 3)]` shape, the f32 values.
fn decode(
    kind: &'static str,
    field: &str,
    axes: &[&str],
    fixed: &[Option<usize>],
    array: &dyn Array,
    meta: &Metadata,
) -> Result<(StreamHeader, u32, u32, Float32Array), MsgError> {
    let r = MetaReader::new(kind, meta);
    let header = StreamHeader::read(kind, meta)?;
    wire::read_camera_metric(&r)?;
    let shape = wire::read_tensor_keys(&r, "f32", axes, fixed)?;
    let dim = |i: usize| {
        u32::try_from(shape[i])
            .ok()
            .filter(|&d| d > 0)
            .ok_or_else(|| {
                r.bad(
                    keys::SHAPE,
                    format!("axis `{}` must be in 1..2^32, got {}", axes[i], shape[i]),
                )
            })
    };
    let (height, width) = (dim(0)?, dim(1)?);
    let values = wire::downcast::<Float32Array>(kind, field, array, "Float32")?;
    Ok((header, height, width, values.clone()))
}

impl Payload for DepthMap {
    const KIND: &'static str = Self::KIND;

    fn to_arrow(&self) -> (ArrayRef, Metadata) {
        let shape = [self.height as usize, self.width as usize];
        encode(Self::KIND, &self.header, &shape, &DEPTH_AXES, &self.depth)
    }

    fn from_arrow(array: &dyn Array, meta: &Metadata) -> Result<Self, MsgError> {
        let (header, h, w, values) =
            decode(Self::KIND, "depth", &DEPTH_AXES, &[None, None], array, meta)?;
        Self::new(header, h, w, values)
    }
}

impl Payload for PointMap {
    const KIND: &'static str = Self::KIND;

    fn to_arrow(&self) -> (ArrayRef, Metadata) {
        let shape = [self.height as usize, self.width as usize, 3];
        encode(Self::KIND, &self.header, &shape, &POINT_AXES, &self.points)
    }

    fn from_arrow(array: &dyn Array, meta: &Metadata) -> Result<Self, MsgError> {
        let (header, h, w, values) = decode(
            Self::KIND,
            "points",
            &POINT_AXES,
            &[None, None, Some(3)],
            array,
            meta,
        )?;
        Self::new(header, h, w, values)
    }
}
