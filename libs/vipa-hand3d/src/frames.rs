//! The per-clip **frame store** next to a dataset's shards: the pixels and the *calibrated*
//! depth of every frame a sample refers to, so that pretraining can rebuild what the
//! annotation saw from `(clip_id, frame_idx)` alone, without the source video or the depth
//! backend.
//!
//! # Layout
//! ```text
//! <root>/frames/<clip_id>.parquet        one per annotated clip, written before its shard
//! <root>/frames/.<clip_id>.parquet.tmp   being written (removed by [`clean_tmp`])
//! ```
//! The annotation writes the frame file first and the shard second (both via a temp name and a
//! rename), so a clip whose shard exists always has its frames.
//!
//! # Schema (frames schema 1), one row per stored frame, sorted by `frame_idx`
//! | column | Arrow type | meaning |
//! |---|---|---|
//! | `frame_idx` | UInt32 | source frame index (as in the samples' `frame_idxs`) |
//! | `width`, `height` | UInt32 | image size in pixels |
//! | `rgb` | Binary | `u8[h, w, 3]`, RGB, row-major, uncompressed (lossless; Parquet snappy on top) |
//! | `depth_mm` | List<UInt16> | `u16[h, w]` calibrated z-depth in millimetres, 0 = no valid depth |
//! | `intrinsics` | List<Float32> | `[fx, fy, cx, cy]`, this crate's convention (pixel `(c, r)` spans `[c, c+1)`, its centre is `c + 0.5`) |
//! | `scale` | Float32 | the calibration scale `s` that was applied (metres per point-map unit) |
//!
//! Key-value metadata: `vipa.frames_schema` = `"1"`, `vipa.clip_id`.
//!
//! # Precision
//! Depth is stored as whole millimetres (≤ 0.5 mm rounding, ≈ 0.1 % at arm's length); values
//! beyond 65.535 m are stored as invalid. The calibrated point map is rebuilt by back-projecting
//! the depth with the intrinsics ([`StoredFrame::point_map`]), which is exact for every
//! pinhole depth backend (sidecar, scaled, depth-anything); a backend that predicts points off
//! the pixel rays (CUT3R) loses the lateral offsets.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, Float32Array, Float32Builder, ListArray, ListBuilder,
    RecordBatch, UInt16Array, UInt16Builder, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::dataset::check_clip_id;
use crate::error::{Hand3dError, Result};
use crate::geometry::{Intrinsics, PointMap, backproject};

/// Version of the frame-store schema.
pub const FRAMES_SCHEMA_VERSION: u32 = 1;
/// Folder of the frame files, relative to the dataset root.
pub const FRAMES_DIR: &str = "frames";
const SCHEMA_KEY: &str = "vipa.frames_schema";
const CLIP_KEY: &str = "vipa.clip_id";

/// One stored frame.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFrame {
    pub frame_idx: u32,
    pub width: u32,
    pub height: u32,
    /// `u8[h, w, 3]` RGB.
    pub rgb: Vec<u8>,
    /// `u16[h, w]` calibrated depth in millimetres, 0 = invalid.
    pub depth_mm: Vec<u16>,
    pub intrinsics: Intrinsics,
    /// The calibration scale that was applied to the backend's point map.
    pub scale: f32,
}

/// Metres → stored millimetres (0 for invalid or out-of-range depth).
pub fn depth_to_mm(z_m: f32) -> u16 {
    if !(z_m.is_finite() && z_m > 0.0) {
        return 0;
    }
    let mm = (z_m * 1000.0).round();
    if (1.0..=f32::from(u16::MAX)).contains(&mm) {
        mm as u16
    } else {
        0
    }
}

impl StoredFrame {
    /// Builds a stored frame from the backend's (uncalibrated) point map and the clip's scale:
    /// the stored depth is `s · z`.
    pub fn from_point_map(
        frame_idx: u32,
        rgb: Vec<u8>,
        point_map: &PointMap,
        intrinsics: Intrinsics,
        scale: f32,
    ) -> Result<Self> {
        let (w, h) = (point_map.width(), point_map.height());
        if (intrinsics.width, intrinsics.height) != (w, h) {
            return Err(Hand3dError::bad_input(
                format!("frame {frame_idx} intrinsics"),
                format!(
                    "are for {}x{}, the point map is {w}x{h}",
                    intrinsics.width, intrinsics.height
                ),
            ));
        }
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Hand3dError::bad_input(
                format!("frame {frame_idx} scale"),
                format!("is {scale}, must be finite and > 0"),
            ));
        }
        let depth_mm = point_map
            .as_slice()
            .chunks_exact(3)
            .map(|p| {
                let valid = p.iter().all(|c| c.is_finite()) && p[2] > 0.0;
                if valid { depth_to_mm(p[2] * scale) } else { 0 }
            })
            .collect();
        let frame = Self {
            frame_idx,
            width: w,
            height: h,
            rgb,
            depth_mm,
            intrinsics,
            scale,
        };
        frame.check()?;
        Ok(frame)
    }

    /// Checks that the buffers match the size.
    pub fn check(&self) -> Result<()> {
        let n = self.width as usize * self.height as usize;
        let what = || format!("stored frame {}", self.frame_idx);
        if n == 0 {
            return Err(Hand3dError::bad_input(what(), "image is empty"));
        }
        if self.rgb.len() != n * 3 {
            return Err(Hand3dError::bad_input(
                what(),
                format!(
                    "rgb has {} bytes, u8[h={}, w={}, 3] needs {}",
                    self.rgb.len(),
                    self.height,
                    self.width,
                    n * 3
                ),
            ));
        }
        if self.depth_mm.len() != n {
            return Err(Hand3dError::bad_input(
                what(),
                format!(
                    "depth has {} values, u16[h, w] needs {n}",
                    self.depth_mm.len()
                ),
            ));
        }
        if (self.intrinsics.width, self.intrinsics.height) != (self.width, self.height) {
            return Err(Hand3dError::bad_input(
                what(),
                "intrinsics size differs from the image",
            ));
        }
        self.intrinsics.validate()
    }

    /// `f32[h, w]` calibrated depth in metres; NaN where invalid.
    pub fn depth_m(&self) -> Vec<f32> {
        self.depth_mm
            .iter()
            .map(|&d| {
                if d == 0 {
                    f32::NAN
                } else {
                    f32::from(d) * 1e-3
                }
            })
            .collect()
    }

    /// The calibrated camera-frame point map `f32[h, w, 3]` (metres).
    pub fn point_map(&self) -> Result<PointMap> {
        backproject(&self.depth_m(), &self.intrinsics)
    }
}

/// The frames stored for one clip, sorted by frame index.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipFrames {
    pub clip_id: String,
    pub frames: Vec<StoredFrame>,
}

impl ClipFrames {
    /// The stored frame with this index.
    pub fn get(&self, frame_idx: u32) -> Option<&StoredFrame> {
        self.frames
            .binary_search_by_key(&frame_idx, |f| f.frame_idx)
            .ok()
            .map(|i| &self.frames[i])
    }
}

/// `<root>/frames/<clip_id>.parquet`.
pub fn frames_path(root: &Path, clip_id: &str) -> PathBuf {
    root.join(FRAMES_DIR).join(format!("{clip_id}.parquet"))
}

/// Removes leftover temp files of an interrupted run (call once when opening for writing).
pub fn clean_tmp(root: &Path) -> Result<()> {
    let dir = root.join(FRAMES_DIR);
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in fs::read_dir(&dir).map_err(|e| Hand3dError::io(&dir, e))? {
        let entry = entry.map_err(|e| Hand3dError::io(&dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") {
            fs::remove_file(entry.path()).map_err(|e| Hand3dError::io(entry.path(), e))?;
        }
    }
    Ok(())
}

fn schema() -> Arc<Schema> {
    let list = |name: &str, item: DataType| {
        Field::new(
            name,
            DataType::List(Arc::new(Field::new("item", item, true))),
            false,
        )
    };
    Arc::new(Schema::new(vec![
        Field::new("frame_idx", DataType::UInt32, false),
        Field::new("width", DataType::UInt32, false),
        Field::new("height", DataType::UInt32, false),
        Field::new("rgb", DataType::Binary, false),
        list("depth_mm", DataType::UInt16),
        list("intrinsics", DataType::Float32),
        Field::new("scale", DataType::Float32, false),
    ]))
}

fn to_batch(frames: &[&StoredFrame]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut depth = ListBuilder::new(UInt16Builder::new());
    let mut k = ListBuilder::new(Float32Builder::new());
    for f in frames {
        depth.values().append_slice(&f.depth_mm);
        depth.append(true);
        let i = f.intrinsics;
        k.values().append_slice(&[i.fx, i.fy, i.cx, i.cy]);
        k.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from_iter_values(
            frames.iter().map(|f| f.frame_idx),
        )),
        Arc::new(UInt32Array::from_iter_values(
            frames.iter().map(|f| f.width),
        )),
        Arc::new(UInt32Array::from_iter_values(
            frames.iter().map(|f| f.height),
        )),
        Arc::new(BinaryArray::from_iter_values(
            frames.iter().map(|f| f.rgb.as_slice()),
        )),
        Arc::new(depth.finish()),
        Arc::new(k.finish()),
        Arc::new(Float32Array::from_iter_values(
            frames.iter().map(|f| f.scale),
        )),
    ];
    RecordBatch::try_new(schema(), columns)
}

/// Writes a clip's frames (sorted, duplicates by `frame_idx` dropped) to
/// [`frames_path`] via a temp name and a rename. Returns the path.
pub fn write_clip_frames(root: &Path, clip_id: &str, frames: &[StoredFrame]) -> Result<PathBuf> {
    check_clip_id(clip_id)?;
    let mut sorted: Vec<&StoredFrame> = frames.iter().collect();
    sorted.sort_by_key(|f| f.frame_idx);
    sorted.dedup_by_key(|f| f.frame_idx);
    for f in &sorted {
        f.check()?;
    }
    let dir = root.join(FRAMES_DIR);
    fs::create_dir_all(&dir).map_err(|e| Hand3dError::io(&dir, e))?;
    let path = frames_path(root, clip_id);
    let tmp = dir.join(format!(".{clip_id}.parquet.tmp"));
    let batch = to_batch(&sorted).map_err(|e| Hand3dError::shard(&tmp, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(vec![
            KeyValue::new(SCHEMA_KEY.to_owned(), FRAMES_SCHEMA_VERSION.to_string()),
            KeyValue::new(CLIP_KEY.to_owned(), clip_id.to_owned()),
        ]))
        .build();
    let file = fs::File::create(&tmp).map_err(|e| Hand3dError::io(&tmp, e))?;
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props))
        .map_err(|e| Hand3dError::shard(&tmp, e))?;
    w.write(&batch).map_err(|e| Hand3dError::shard(&tmp, e))?;
    let file = w.into_inner().map_err(|e| Hand3dError::shard(&tmp, e))?;
    file.sync_all().map_err(|e| Hand3dError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| Hand3dError::io(&path, e))?;
    Ok(path)
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str, path: &Path) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            Hand3dError::shard(
                path,
                format!("frame store column `{name}` missing or of the wrong type"),
            )
        })
}

/// Reads the frames of one clip. A missing file or a schema mismatch is an error naming the
/// file.
pub fn read_clip_frames(root: &Path, clip_id: &str) -> Result<ClipFrames> {
    let path = frames_path(root, clip_id);
    let file = fs::File::open(&path).map_err(|e| Hand3dError::io(&path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Hand3dError::shard(&path, e))?;
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default();
    let version = kv
        .iter()
        .find(|k| k.key == SCHEMA_KEY)
        .and_then(|k| k.value.clone());
    if version.as_deref() != Some(&FRAMES_SCHEMA_VERSION.to_string()) {
        return Err(Hand3dError::shard(
            &path,
            format!(
                "frame store schema {version:?}, this build reads {FRAMES_SCHEMA_VERSION}; re-annotate into a new folder"
            ),
        ));
    }
    let reader = builder.build().map_err(|e| Hand3dError::shard(&path, e))?;
    let mut frames = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| Hand3dError::shard(&path, e))?;
        let idx = column::<UInt32Array>(&batch, "frame_idx", &path)?;
        let width = column::<UInt32Array>(&batch, "width", &path)?;
        let height = column::<UInt32Array>(&batch, "height", &path)?;
        let rgb = column::<BinaryArray>(&batch, "rgb", &path)?;
        let depth = column::<ListArray>(&batch, "depth_mm", &path)?;
        let k = column::<ListArray>(&batch, "intrinsics", &path)?;
        let scale = column::<Float32Array>(&batch, "scale", &path)?;
        for i in 0..batch.num_rows() {
            let bad = |what: &str| Hand3dError::shard(&path, format!("row {i}: bad `{what}`"));
            let d = depth.value(i);
            let d = d
                .as_any()
                .downcast_ref::<UInt16Array>()
                .ok_or_else(|| bad("depth_mm"))?;
            let kv = k.value(i);
            let kv = kv
                .as_any()
                .downcast_ref::<Float32Array>()
                .filter(|a| a.len() == 4 && a.null_count() == 0)
                .ok_or_else(|| bad("intrinsics"))?;
            let frame = StoredFrame {
                frame_idx: idx.value(i),
                width: width.value(i),
                height: height.value(i),
                rgb: rgb.value(i).to_vec(),
                depth_mm: d.values().to_vec(),
                intrinsics: Intrinsics {
                    fx: kv.value(0),
                    fy: kv.value(1),
                    cx: kv.value(2),
                    cy: kv.value(3),
                    width: width.value(i),
                    height: height.value(i),
                },
                scale: scale.value(i),
            };
            frame.check().map_err(|e| Hand3dError::shard(&path, e))?;
            frames.push(frame);
        }
    }
    frames.sort_by_key(|f| f.frame_idx);
    Ok(ClipFrames {
        clip_id: clip_id.to_owned(),
        frames,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(idx: u32, scale: f32) -> (StoredFrame, PointMap) {
        let k = Intrinsics::from_hfov(8, 6, 60.0).unwrap();
        // Depth 0.5..0.98 m, one invalid pixel.
        let mut depth: Vec<f32> = (0..48).map(|i| 0.5 + 0.01 * i as f32).collect();
        depth[7] = f32::NAN;
        let pm = backproject(&depth, &k).unwrap();
        let rgb: Vec<u8> = (0..144).map(|i| (i * 7 + idx as usize) as u8).collect();
        (
            StoredFrame::from_point_map(idx, rgb, &pm, k, scale).unwrap(),
            pm,
        )
    }

    #[test]
    fn round_trip_rebuilds_the_calibrated_point_map() {
        let dir = tempfile::tempdir().unwrap();
        let (a, pm) = frame(4, 2.0);
        let (b, _) = frame(1, 2.0);
        let path =
            write_clip_frames(dir.path(), "clip_a", &[a.clone(), b.clone(), a.clone()]).unwrap();
        assert_eq!(path, frames_path(dir.path(), "clip_a"));
        let got = read_clip_frames(dir.path(), "clip_a").unwrap();
        assert_eq!(got.frames.len(), 2);
        assert_eq!(got.frames[0], b);
        assert_eq!(got.get(4), Some(&a));
        assert!(got.get(2).is_none());
        // The rebuilt map is 2× the input map, to the millimetre rounding.
        let rebuilt = got.get(4).unwrap().point_map().unwrap();
        for (p, q) in pm.as_slice().chunks(3).zip(rebuilt.as_slice().chunks(3)) {
            if p[2].is_nan() {
                assert!(q[2].is_nan());
                continue;
            }
            for c in 0..3 {
                assert!(
                    (q[c] - 2.0 * p[c]).abs() <= 0.0006 * (1.0 + p[c].abs()),
                    "{p:?} {q:?}"
                );
            }
        }
        // No temp file left behind.
        let names: Vec<String> = fs::read_dir(dir.path().join(FRAMES_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["clip_a.parquet".to_owned()]);
    }

    #[test]
    fn depth_rounding_and_range() {
        assert_eq!(depth_to_mm(0.6234), 623);
        assert_eq!(depth_to_mm(f32::NAN), 0);
        assert_eq!(depth_to_mm(-1.0), 0);
        assert_eq!(depth_to_mm(70.0), 0);
    }

    #[test]
    fn missing_and_bad_inputs_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_clip_frames(dir.path(), "nope")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.parquet"), "{e}");
        let (mut f, _) = frame(0, 1.0);
        f.rgb.pop();
        let e = write_clip_frames(dir.path(), "c", &[f])
            .unwrap_err()
            .to_string();
        assert!(e.contains("rgb"), "{e}");
        let (_, pm) = frame(0, 1.0);
        let k = Intrinsics::from_hfov(8, 6, 60.0).unwrap();
        assert!(StoredFrame::from_point_map(0, vec![0; 144], &pm, k, f32::NAN).is_err());
    }
}
