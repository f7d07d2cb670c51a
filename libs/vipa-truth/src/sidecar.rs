//! The ground-truth sidecar: one Parquet file per clip, one row per video frame.
//!
//! `clip_XXXX.truth.parquet` sits next to `clip_XXXX.mp4`. Clip-level facts (intrinsics, the
//! task instruction, object names and colours, the seed) live in the Parquet key-value metadata
//! under [`CLIP_INFO_KEY`] as JSON ([`ClipInfo`]); everything that changes per frame is a column.
//!
//! # Columns (one row per frame)
//! | column | Arrow type | meaning |
//! |---|---|---|
//! | `frame_idx` | `UInt32` | 0-based frame index in the mp4 |
//! | `timestamp_ns` | `UInt64` | `frame_idx * 1e9 / fps`, rounded |
//! | `phase` | `Utf8` | episode phase: `reach`, `grasp`, `move`, `place`, `retreat` |
//! | `camera_pose` | `FixedSizeList<Float32, 16>` | `world_from_camera`, 4×4 row-major |
//! | `depth_mm` | `List<UInt16>` | z-depth `u16[h, w]` row-major, millimetres, `0` = no surface |
//! | `hands` | `List<Struct>` | see [`HandTruth`]: `side`, `joints_cam`, `joints_2d`, `visible`, `grasped_object` |
//! | `objects` | `List<Struct>` | see [`ObjectTruth`]: `name`, `bbox_xyxy`, `centre_cam`, `visible_pixels` |
//!
//! Frames: the camera frame is OpenCV's (metres, x right, y down, z forward); the world frame
//! has z up with the table top at z = 0 (see the crate README). Pixel `(u, v)` has its centre
//! at integer coordinates, so the pixel that a point projects to is `(u.round(), v.round())`.
//!
//! The depth column is Parquet `DELTA_BINARY_PACKED` (then snappy): along an image row, depth of
//! the table and of the rounded shapes changes by a near-constant step, so most 32-value
//! miniblocks pack into 1–3 bits a pixel. A 320×240 frame takes ~15–25 kB instead of 150 kB.
//!
//! Reading never panics: a missing, truncated or malformed file gives a [`SidecarError`] that
//! names the file and, where it applies, the column.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeListArray, Float32Array, ListArray,
    RecordBatch, StringArray, StructArray, UInt16Array, UInt32Array, UInt64Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Fields, Schema, UInt16Type, UInt32Type, UInt64Type};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, Encoding};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

/// Version of the sidecar layout. Bump it on any change to columns, types or [`ClipInfo`].
pub const SIDECAR_SCHEMA_VERSION: u32 = 1;

/// Parquet key-value metadata key that holds the [`ClipInfo`] JSON.
pub const CLIP_INFO_KEY: &str = "vipa_synth.clip";

/// Number of hand joints (MediaPipe / MANO-21 order).
pub const NUM_JOINTS: usize = 21;

/// Errors from reading or writing a sidecar. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error("sidecar {path}: cannot open or write the file: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "sidecar {path}: not a readable Parquet file (missing, truncated or corrupt; regenerate it with `vipa-synth --force`): {source}"
    )]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("sidecar {path}: cannot decode the column data (corrupt file?): {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error(
        "sidecar {path}: key-value metadata `{key}` is missing; this is not a vipa-synth sidecar"
    )]
    MissingMetadata { path: PathBuf, key: &'static str },
    #[error("sidecar {path}: key-value metadata `{key}` is not valid clip-info JSON: {source}")]
    BadMetadata {
        path: PathBuf,
        key: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "sidecar {path}: schema version {found} is not supported (this reader knows {expected}); regenerate the data with this vipa-synth"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("sidecar {path}: column `{column}` is missing")]
    MissingColumn { path: PathBuf, column: &'static str },
    #[error("sidecar {path}: column `{column}` has type {found}, expected {expected}")]
    ColumnType {
        path: PathBuf,
        column: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("sidecar {path}: column `{column}`, row {row}: {reason}")]
    BadValue {
        path: PathBuf,
        column: &'static str,
        row: usize,
        reason: String,
    },
}

/// Which hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandSide {
    Left,
    Right,
}

impl HandSide {
    /// `"left"` or `"right"`, as stored in the sidecar.
    pub fn as_str(self) -> &'static str {
        match self {
            HandSide::Left => "left",
            HandSide::Right => "right",
        }
    }

    /// Parses `"left"` / `"right"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "left" => Some(HandSide::Left),
            "right" => Some(HandSide::Right),
            _ => None,
        }
    }
}

/// Pinhole intrinsics in pixels (no distortion). Pixel centres sit at integer coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Intrinsics {
    pub fx: f32,
    pub fy: f32,
    pub cx: f32,
    pub cy: f32,
}

impl Intrinsics {
    /// Projects a camera-frame point (metres, z forward) to pixel coordinates `(u, v)`.
    ///
    /// Only meaningful for `p[2] > 0`; points at or behind the camera give non-finite values.
    pub fn project(&self, p: [f32; 3]) -> (f32, f32) {
        (
            self.fx * p[0] / p[2] + self.cx,
            self.fy * p[1] / p[2] + self.cy,
        )
    }

    /// The camera-frame point at pixel `(u, v)` with z-depth `depth` metres.
    pub fn unproject(&self, u: f32, v: f32, depth: f32) -> [f32; 3] {
        [
            (u - self.cx) / self.fx * depth,
            (v - self.cy) / self.fy * depth,
            depth,
        ]
    }
}

/// One object placed in the clip (clip-level, in [`ClipInfo`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectInfo {
    /// Unique name in the clip, `"<colour> <shape>"`, e.g. `"red mug"`.
    pub name: String,
    /// Shape word: `cube`, `box`, `cylinder`, `mug`, `ball` or `bowl`.
    pub shape: String,
    /// Colour word from the fixed palette, e.g. `red`.
    pub colour: String,
    /// sRGB colour, 0–255.
    pub rgb: [u8; 3],
    /// Axis-aligned extent in the object's own frame (x, y, z), metres, at rest on the table.
    pub size_m: [f32; 3],
}

/// Clip-level facts, stored as JSON in the Parquet key-value metadata under [`CLIP_INFO_KEY`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipInfo {
    /// [`SIDECAR_SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// `clip_XXXX`, the file stem shared with the mp4.
    pub clip_id: String,
    /// Index of the clip in its generation run; with `seed` it determines the clip.
    pub clip_index: u32,
    /// Seed of the generation run.
    pub seed: u64,
    pub fps: f64,
    pub width: u32,
    pub height: u32,
    pub num_frames: u32,
    pub intrinsics: Intrinsics,
    /// Task instruction, e.g. `"pick up the red mug and put it to the left of the blue cube"`.
    pub instruction: String,
    /// Name of the object the hand picks up.
    pub target_object: String,
    /// Name of the object the placement is relative to.
    pub reference_object: String,
    /// Spatial relation of the final placement to the reference: `next_to`, `left_of`,
    /// `right_of`, `in_front_of` (towards the camera) or `behind`.
    pub relation: String,
    /// Sides of the hands in the scene (1 or 2); the first one performs the task.
    pub hands: Vec<HandSide>,
    /// Whether the camera moves during the clip.
    pub camera_moving: bool,
    pub objects: Vec<ObjectInfo>,
}

/// Ground truth for one hand in one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct HandTruth {
    pub side: HandSide,
    /// Joint centres in the camera frame, metres: `f32[21, 3]` (stored flat, 63 values).
    pub joints_cam: [[f32; 3]; NUM_JOINTS],
    /// Joint projections in pixels `(u, v)`: `f32[21, 2]` (stored flat, 42 values). May lie
    /// outside the image.
    pub joints_2d: [[f32; 2]; NUM_JOINTS],
    /// Joint visible: its projection is inside the image, the rendered surface at that pixel
    /// belongs to this hand, and that surface is no more than the joint radius + 2 mm in front
    /// of the joint centre (so joints hidden behind fingers, objects or the other hand are
    /// `false`).
    pub visible: [bool; NUM_JOINTS],
    /// Name of the object held in this frame, if any.
    pub grasped_object: Option<String>,
}

/// Ground truth for one object in one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectTruth {
    pub name: String,
    /// Bounding box `[x_min, y_min, x_max, y_max]` of the object's visible pixels (inclusive
    /// pixel indices); `None` when no pixel is visible.
    pub bbox_xyxy: Option<[f32; 4]>,
    /// Centre of the object's bounding volume in the camera frame, metres.
    pub centre_cam: [f32; 3],
    /// Number of pixels where this object is the front surface.
    pub visible_pixels: u32,
}

/// Ground truth for one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameTruth {
    pub frame_idx: u32,
    pub timestamp_ns: u64,
    /// Episode phase (`reach`, `grasp`, `move`, `place`, `retreat`).
    pub phase: String,
    /// `world_from_camera` 4×4, row-major.
    pub world_from_camera: [f32; 16],
    /// Image width and height (copied from [`ClipInfo`] so a frame can decode its depth alone).
    pub width: u32,
    pub height: u32,
    /// Z-depth `u16[h, w]` row-major, millimetres; `0` = no surface.
    pub depth_mm: Vec<u16>,
    pub hands: Vec<HandTruth>,
    pub objects: Vec<ObjectTruth>,
}

impl FrameTruth {
    /// Z-depth `f32[h, w]` in metres; `0.0` where there is no surface.
    pub fn depth_m(&self) -> Vec<f32> {
        self.depth_mm.iter().map(|&d| f32::from(d) * 1e-3).collect()
    }

    /// Z-depth in metres at pixel `(u, v)`; `None` outside the image or where there is no
    /// surface.
    pub fn depth_m_at(&self, u: usize, v: usize) -> Option<f32> {
        if u >= self.width as usize || v >= self.height as usize {
            return None;
        }
        let d = *self.depth_mm.get(v * self.width as usize + u)?;
        (d > 0).then(|| f32::from(d) * 1e-3)
    }

    /// Maps a camera-frame point to the world frame with this frame's pose.
    pub fn cam_to_world(&self, p: [f32; 3]) -> [f32; 3] {
        let m = &self.world_from_camera;
        std::array::from_fn(|r| {
            m[4 * r] * p[0] + m[4 * r + 1] * p[1] + m[4 * r + 2] * p[2] + m[4 * r + 3]
        })
    }

    /// Maps a world-frame point to the camera frame (the pose is rigid, so the inverse is
    /// `Rᵀ (p − t)`).
    pub fn world_to_cam(&self, p: [f32; 3]) -> [f32; 3] {
        let m = &self.world_from_camera;
        let d = [p[0] - m[3], p[1] - m[7], p[2] - m[11]];
        std::array::from_fn(|c| m[c] * d[0] + m[4 + c] * d[1] + m[8 + c] * d[2])
    }
}

/// Everything in one sidecar.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipTruth {
    pub info: ClipInfo,
    pub frames: Vec<FrameTruth>,
}

// ---------------------------------------------------------------------------------------------
// Schema

fn item(dt: DataType) -> Arc<Field> {
    Arc::new(Field::new("item", dt, false))
}

fn fsl_type(dt: DataType, n: i32) -> DataType {
    DataType::FixedSizeList(item(dt), n)
}

fn hand_fields() -> Fields {
    Fields::from(vec![
        Field::new("side", DataType::Utf8, false),
        Field::new("joints_cam", fsl_type(DataType::Float32, 63), false),
        Field::new("joints_2d", fsl_type(DataType::Float32, 42), false),
        Field::new("visible", fsl_type(DataType::Boolean, 21), false),
        Field::new("grasped_object", DataType::Utf8, true),
    ])
}

fn object_fields() -> Fields {
    Fields::from(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("bbox_xyxy", fsl_type(DataType::Float32, 4), true),
        Field::new("centre_cam", fsl_type(DataType::Float32, 3), false),
        Field::new("visible_pixels", DataType::UInt32, false),
    ])
}

/// The Arrow schema of a sidecar.
pub fn sidecar_schema() -> Schema {
    Schema::new(vec![
        Field::new("frame_idx", DataType::UInt32, false),
        Field::new("timestamp_ns", DataType::UInt64, false),
        Field::new("phase", DataType::Utf8, false),
        Field::new("camera_pose", fsl_type(DataType::Float32, 16), false),
        Field::new("depth_mm", DataType::List(item(DataType::UInt16)), false),
        Field::new(
            "hands",
            DataType::List(item(DataType::Struct(hand_fields()))),
            false,
        ),
        Field::new(
            "objects",
            DataType::List(item(DataType::Struct(object_fields()))),
            false,
        ),
    ])
}

// ---------------------------------------------------------------------------------------------
// Writer

/// Writes a sidecar to `path` atomically: the bytes go to `<path>.partial` first and are
/// renamed into place, so an interrupted write never leaves a half file under the final name.
pub fn write_clip_truth(path: &Path, truth: &ClipTruth) -> Result<(), SidecarError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".partial");
    let tmp = PathBuf::from(tmp_name);
    let io_err = |source| SidecarError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::create(&tmp).map_err(io_err)?;
    let result = write_clip_truth_to(file, truth, path);
    if let Err(e) = result {
        // Best effort: the partial file is garbage either way.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(io_err)
}

/// Encodes a sidecar into any writer. `path` is only used to name the file in errors.
pub fn write_clip_truth_to<W: Write + Send>(
    writer: W,
    truth: &ClipTruth,
    path: &Path,
) -> Result<(), SidecarError> {
    let parquet_err = |source| SidecarError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let json = serde_json::to_string(&truth.info).map_err(|source| SidecarError::BadMetadata {
        path: path.to_path_buf(),
        key: CLIP_INFO_KEY,
        source,
    })?;
    let batch = frames_to_batch(&truth.frames).map_err(|source| SidecarError::Arrow {
        path: path.to_path_buf(),
        source,
    })?;
    let depth_leaf = ColumnPath::new(vec!["depth_mm".into(), "list".into(), "item".into()]);
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(1 << 20))
        .set_column_dictionary_enabled(depth_leaf.clone(), false)
        .set_column_encoding(depth_leaf, Encoding::DELTA_BINARY_PACKED)
        .set_key_value_metadata(Some(vec![KeyValue::new(CLIP_INFO_KEY.to_owned(), json)]))
        .build();
    let mut w = ArrowWriter::try_new(writer, batch.schema(), Some(props)).map_err(parquet_err)?;
    w.write(&batch).map_err(parquet_err)?;
    w.close().map_err(parquet_err)?;
    Ok(())
}

fn fsl(
    values: ArrayRef,
    size: i32,
    nulls: Option<NullBuffer>,
) -> Result<ArrayRef, arrow::error::ArrowError> {
    let field = item(values.data_type().clone());
    Ok(Arc::new(FixedSizeListArray::try_new(
        field, size, values, nulls,
    )?))
}

fn fsl_f32(values: Vec<f32>, size: i32) -> Result<ArrayRef, arrow::error::ArrowError> {
    fsl(Arc::new(Float32Array::from(values)), size, None)
}

fn list(
    values: ArrayRef,
    lengths: impl IntoIterator<Item = usize>,
) -> Result<ArrayRef, arrow::error::ArrowError> {
    let field = item(values.data_type().clone());
    // `from_lengths` panics on i32 overflow; a clip that large must fail as an error.
    if values.len() > i32::MAX as usize {
        return Err(arrow::error::ArrowError::InvalidArgumentError(format!(
            "{} list values exceed the 2^31 limit of one Arrow list column; write shorter clips",
            values.len()
        )));
    }
    let offsets = OffsetBuffer::<i32>::from_lengths(lengths);
    Ok(Arc::new(ListArray::try_new(field, offsets, values, None)?))
}

fn frames_to_batch(frames: &[FrameTruth]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let frame_idx = UInt32Array::from_iter_values(frames.iter().map(|f| f.frame_idx));
    let timestamp = UInt64Array::from_iter_values(frames.iter().map(|f| f.timestamp_ns));
    let phase = StringArray::from_iter_values(frames.iter().map(|f| f.phase.as_str()));
    let pose = fsl_f32(
        frames.iter().flat_map(|f| f.world_from_camera).collect(),
        16,
    )?;
    let depth = list(
        Arc::new(UInt16Array::from_iter_values(
            frames.iter().flat_map(|f| f.depth_mm.iter().copied()),
        )),
        frames.iter().map(|f| f.depth_mm.len()),
    )?;

    let all_hands: Vec<&HandTruth> = frames.iter().flat_map(|f| &f.hands).collect();
    let hand_struct = StructArray::try_new(
        hand_fields(),
        vec![
            Arc::new(StringArray::from_iter_values(
                all_hands.iter().map(|h| h.side.as_str()),
            )) as ArrayRef,
            fsl_f32(
                all_hands
                    .iter()
                    .flat_map(|h| h.joints_cam.iter().flatten().copied())
                    .collect(),
                63,
            )?,
            fsl_f32(
                all_hands
                    .iter()
                    .flat_map(|h| h.joints_2d.iter().flatten().copied())
                    .collect(),
                42,
            )?,
            fsl(
                Arc::new(BooleanArray::from_iter(
                    all_hands
                        .iter()
                        .flat_map(|h| h.visible.iter().map(|&v| Some(v))),
                )),
                21,
                None,
            )?,
            Arc::new(StringArray::from_iter(
                all_hands.iter().map(|h| h.grasped_object.as_deref()),
            )),
        ],
        None,
    )?;
    let hands = list(Arc::new(hand_struct), frames.iter().map(|f| f.hands.len()))?;

    let all_objects: Vec<&ObjectTruth> = frames.iter().flat_map(|f| &f.objects).collect();
    let bbox_nulls = NullBuffer::from(
        all_objects
            .iter()
            .map(|o| o.bbox_xyxy.is_some())
            .collect::<Vec<bool>>(),
    );
    let object_struct = StructArray::try_new(
        object_fields(),
        vec![
            Arc::new(StringArray::from_iter_values(
                all_objects.iter().map(|o| o.name.as_str()),
            )) as ArrayRef,
            fsl(
                Arc::new(Float32Array::from_iter_values(
                    all_objects
                        .iter()
                        .flat_map(|o| o.bbox_xyxy.unwrap_or([0.0; 4])),
                )),
                4,
                Some(bbox_nulls),
            )?,
            fsl_f32(all_objects.iter().flat_map(|o| o.centre_cam).collect(), 3)?,
            Arc::new(UInt32Array::from_iter_values(
                all_objects.iter().map(|o| o.visible_pixels),
            )),
        ],
        None,
    )?;
    let objects = list(
        Arc::new(object_struct),
        frames.iter().map(|f| f.objects.len()),
    )?;

    RecordBatch::try_new(
        Arc::new(sidecar_schema()),
        vec![
            Arc::new(frame_idx) as ArrayRef,
            Arc::new(timestamp),
            Arc::new(phase),
            pose,
            depth,
            hands,
            objects,
        ],
    )
}

// ---------------------------------------------------------------------------------------------
// Reader

/// Reads and validates a sidecar.
pub fn read_clip_truth(path: &Path) -> Result<ClipTruth, SidecarError> {
    let file = File::open(path).map_err(|source| SidecarError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let parquet_err = |source| SidecarError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
    let info = clip_info_from_kv(
        builder.metadata().file_metadata().key_value_metadata(),
        path,
    )?;
    let reader = builder.build().map_err(parquet_err)?;
    let ctx = Ctx {
        path,
        width: info.width,
        height: info.height,
    };
    let mut frames = Vec::with_capacity(info.num_frames as usize);
    for batch in reader {
        let batch = batch.map_err(|source| SidecarError::Arrow {
            path: path.to_path_buf(),
            source,
        })?;
        ctx.decode_batch(&batch, frames.len(), &mut frames)?;
    }
    if frames.len() != info.num_frames as usize {
        return Err(SidecarError::BadValue {
            path: path.to_path_buf(),
            column: "frame_idx",
            row: frames.len(),
            reason: format!(
                "file has {} rows but its clip info says num_frames = {}",
                frames.len(),
                info.num_frames
            ),
        });
    }
    Ok(ClipTruth { info, frames })
}

/// Reads only the clip-level [`ClipInfo`] from a sidecar's footer (no column data is decoded).
pub fn read_clip_info(path: &Path) -> Result<ClipInfo, SidecarError> {
    let file = File::open(path).map_err(|source| SidecarError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| SidecarError::Parquet {
            path: path.to_path_buf(),
            source,
        })?;
    clip_info_from_kv(
        builder.metadata().file_metadata().key_value_metadata(),
        path,
    )
}

fn clip_info_from_kv(kv: Option<&Vec<KeyValue>>, path: &Path) -> Result<ClipInfo, SidecarError> {
    let json = kv
        .into_iter()
        .flatten()
        .find(|kv| kv.key == CLIP_INFO_KEY)
        .and_then(|kv| kv.value.as_deref())
        .ok_or_else(|| SidecarError::MissingMetadata {
            path: path.to_path_buf(),
            key: CLIP_INFO_KEY,
        })?;
    // Check the version before the full parse, so an old/new layout gets the version error
    // rather than a confusing missing-field error.
    #[derive(Deserialize)]
    struct Versioned {
        schema_version: u32,
    }
    let bad = |source| SidecarError::BadMetadata {
        path: path.to_path_buf(),
        key: CLIP_INFO_KEY,
        source,
    };
    let v: Versioned = serde_json::from_str(json).map_err(bad)?;
    if v.schema_version != SIDECAR_SCHEMA_VERSION {
        return Err(SidecarError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: v.schema_version,
            expected: SIDECAR_SCHEMA_VERSION,
        });
    }
    serde_json::from_str(json).map_err(bad)
}

/// Decoding context: the file (for errors) and the image size (for depth checks).
struct Ctx<'a> {
    path: &'a Path,
    width: u32,
    height: u32,
}

impl Ctx<'_> {
    fn column<'b>(
        &self,
        batch: &'b RecordBatch,
        name: &'static str,
    ) -> Result<&'b ArrayRef, SidecarError> {
        let col = batch
            .column_by_name(name)
            .ok_or_else(|| SidecarError::MissingColumn {
                path: self.path.to_path_buf(),
                column: name,
            })?;
        if col.null_count() > 0 {
            return Err(self.bad(name, 0, "contains nulls".into()));
        }
        Ok(col)
    }

    fn type_err(
        &self,
        column: &'static str,
        expected: &'static str,
        found: &dyn Array,
    ) -> SidecarError {
        SidecarError::ColumnType {
            path: self.path.to_path_buf(),
            column,
            expected,
            found: found.data_type().to_string(),
        }
    }

    fn bad(&self, column: &'static str, row: usize, reason: String) -> SidecarError {
        SidecarError::BadValue {
            path: self.path.to_path_buf(),
            column,
            row,
            reason,
        }
    }

    /// A `FixedSizeList<Float32, n>` as its flat `f32` values (nulls read as 0).
    fn f32_fsl<'b>(
        &self,
        arr: &'b dyn Array,
        column: &'static str,
        n: i32,
        expected: &'static str,
    ) -> Result<(&'b FixedSizeListArray, &'b [f32]), SidecarError> {
        let list = arr
            .as_fixed_size_list_opt()
            .filter(|l| l.value_length() == n)
            .ok_or_else(|| self.type_err(column, expected, arr))?;
        let values = list
            .values()
            .as_primitive_opt::<arrow::datatypes::Float32Type>()
            .ok_or_else(|| self.type_err(column, expected, arr))?;
        let needed = list.len() * n as usize + list.offset() * n as usize;
        if values.len() < needed {
            return Err(self.bad(column, 0, "child array shorter than the list".into()));
        }
        let start = list.offset() * n as usize;
        Ok((
            list,
            &values.values()[start..start + list.len() * n as usize],
        ))
    }

    fn utf8<'b>(
        &self,
        arr: &'b dyn Array,
        column: &'static str,
    ) -> Result<&'b StringArray, SidecarError> {
        arr.as_string_opt::<i32>()
            .ok_or_else(|| self.type_err(column, "Utf8", arr))
    }

    fn decode_batch(
        &self,
        batch: &RecordBatch,
        first_row: usize,
        frames: &mut Vec<FrameTruth>,
    ) -> Result<(), SidecarError> {
        let n = batch.num_rows();
        let col = |name| self.column(batch, name);

        let frame_idx_col = col("frame_idx")?;
        let frame_idx = frame_idx_col
            .as_primitive_opt::<UInt32Type>()
            .ok_or_else(|| self.type_err("frame_idx", "UInt32", frame_idx_col))?;
        let ts_col = col("timestamp_ns")?;
        let ts = ts_col
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| self.type_err("timestamp_ns", "UInt64", ts_col))?;
        let phase = self.utf8(col("phase")?, "phase")?;
        let (_, pose) = self.f32_fsl(
            col("camera_pose")?,
            "camera_pose",
            16,
            "FixedSizeList<Float32, 16>",
        )?;

        let depth_col = col("depth_mm")?;
        let depth_list = depth_col
            .as_list_opt::<i32>()
            .ok_or_else(|| self.type_err("depth_mm", "List<UInt16>", depth_col))?;
        let depth_values = depth_list
            .values()
            .as_primitive_opt::<UInt16Type>()
            .ok_or_else(|| self.type_err("depth_mm", "List<UInt16>", depth_col))?;

        let hands_col = col("hands")?;
        let hands_list = hands_col
            .as_list_opt::<i32>()
            .ok_or_else(|| self.type_err("hands", "List<Struct>", hands_col))?;
        let hands = self.decode_hands(hands_list.values().as_ref())?;

        let objects_col = col("objects")?;
        let objects_list = objects_col
            .as_list_opt::<i32>()
            .ok_or_else(|| self.type_err("objects", "List<Struct>", objects_col))?;
        let objects = self.decode_objects(objects_list.values().as_ref())?;

        let pixels = self.width as usize * self.height as usize;
        for i in 0..n {
            let row = first_row + i;
            let range = |l: &ListArray| {
                let o = l.value_offsets();
                (o[i] as usize, o[i + 1] as usize)
            };
            let (d0, d1) = range(depth_list);
            if d1 - d0 != pixels || d1 > depth_values.len() {
                return Err(self.bad(
                    "depth_mm",
                    row,
                    format!(
                        "has {} values, expected width*height = {}x{} = {pixels}",
                        d1.saturating_sub(d0),
                        self.width,
                        self.height
                    ),
                ));
            }
            let (h0, h1) = range(hands_list);
            let (o0, o1) = range(objects_list);
            let hands_row = hands
                .get(h0..h1)
                .ok_or_else(|| self.bad("hands", row, "list offsets out of range".into()))?;
            let objects_row = objects
                .get(o0..o1)
                .ok_or_else(|| self.bad("objects", row, "list offsets out of range".into()))?;
            frames.push(FrameTruth {
                frame_idx: frame_idx.value(i),
                timestamp_ns: ts.value(i),
                phase: phase.value(i).to_owned(),
                world_from_camera: std::array::from_fn(|k| pose[16 * i + k]),
                width: self.width,
                height: self.height,
                depth_mm: depth_values.values()[d0..d1].to_vec(),
                hands: hands_row.to_vec(),
                objects: objects_row.to_vec(),
            });
        }
        Ok(())
    }

    fn struct_field<'b>(
        &self,
        s: &'b StructArray,
        column: &'static str,
        field: &'static str,
    ) -> Result<&'b ArrayRef, SidecarError> {
        s.column_by_name(field)
            .ok_or_else(|| SidecarError::MissingColumn {
                path: self.path.to_path_buf(),
                column,
            })
    }

    fn decode_hands(&self, values: &dyn Array) -> Result<Vec<HandTruth>, SidecarError> {
        let s = values
            .as_struct_opt()
            .ok_or_else(|| self.type_err("hands", "List<Struct>", values))?;
        let side = self.utf8(self.struct_field(s, "hands.side", "side")?, "hands.side")?;
        let (_, joints_cam) = self.f32_fsl(
            self.struct_field(s, "hands.joints_cam", "joints_cam")?,
            "hands.joints_cam",
            63,
            "FixedSizeList<Float32, 63>",
        )?;
        let (_, joints_2d) = self.f32_fsl(
            self.struct_field(s, "hands.joints_2d", "joints_2d")?,
            "hands.joints_2d",
            42,
            "FixedSizeList<Float32, 42>",
        )?;
        let vis_col = self.struct_field(s, "hands.visible", "visible")?;
        let vis_list = vis_col
            .as_fixed_size_list_opt()
            .filter(|l| l.value_length() == 21)
            .ok_or_else(|| self.type_err("hands.visible", "FixedSizeList<Boolean, 21>", vis_col))?;
        let vis = vis_list
            .values()
            .as_boolean_opt()
            .ok_or_else(|| self.type_err("hands.visible", "FixedSizeList<Boolean, 21>", vis_col))?;
        let grasped = self.utf8(
            self.struct_field(s, "hands.grasped_object", "grasped_object")?,
            "hands.grasped_object",
        )?;
        let vis_start = vis_list.offset() * 21;
        if vis.len() < vis_start + s.len() * 21 {
            return Err(self.bad(
                "hands.visible",
                0,
                "child array shorter than the list".into(),
            ));
        }
        (0..s.len())
            .map(|i| {
                let side_str = side.value(i);
                let side = HandSide::parse(side_str).ok_or_else(|| {
                    self.bad(
                        "hands.side",
                        i,
                        format!("`{side_str}` is not `left` or `right`"),
                    )
                })?;
                Ok(HandTruth {
                    side,
                    joints_cam: std::array::from_fn(|j| {
                        std::array::from_fn(|c| joints_cam[63 * i + 3 * j + c])
                    }),
                    joints_2d: std::array::from_fn(|j| {
                        std::array::from_fn(|c| joints_2d[42 * i + 2 * j + c])
                    }),
                    visible: std::array::from_fn(|j| vis.value(vis_start + 21 * i + j)),
                    grasped_object: grasped.is_valid(i).then(|| grasped.value(i).to_owned()),
                })
            })
            .collect()
    }

    fn decode_objects(&self, values: &dyn Array) -> Result<Vec<ObjectTruth>, SidecarError> {
        let s = values
            .as_struct_opt()
            .ok_or_else(|| self.type_err("objects", "List<Struct>", values))?;
        let name = self.utf8(
            self.struct_field(s, "objects.name", "name")?,
            "objects.name",
        )?;
        let (bbox_list, bbox) = self.f32_fsl(
            self.struct_field(s, "objects.bbox_xyxy", "bbox_xyxy")?,
            "objects.bbox_xyxy",
            4,
            "FixedSizeList<Float32, 4>",
        )?;
        let (_, centre) = self.f32_fsl(
            self.struct_field(s, "objects.centre_cam", "centre_cam")?,
            "objects.centre_cam",
            3,
            "FixedSizeList<Float32, 3>",
        )?;
        let px_col = self.struct_field(s, "objects.visible_pixels", "visible_pixels")?;
        let px = px_col
            .as_primitive_opt::<UInt32Type>()
            .ok_or_else(|| self.type_err("objects.visible_pixels", "UInt32", px_col))?;
        Ok((0..s.len())
            .map(|i| ObjectTruth {
                name: name.value(i).to_owned(),
                bbox_xyxy: bbox_list
                    .is_valid(i)
                    .then(|| std::array::from_fn(|c| bbox[4 * i + c])),
                centre_cam: std::array::from_fn(|c| centre[3 * i + c]),
                visible_pixels: px.value(i),
            })
            .collect())
    }
}

#[cfg(test)]
pub(crate) mod tests;
