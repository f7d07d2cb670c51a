//! Object detections of one frame: a name, a 2D box, an optional 3D centre and a score.
//!
//! # Wire format
//! A `StructArray` with **one row per object** (zero rows when nothing is detected), columns:
//!
//! | column | Arrow type | shape per message |
//! |---|---|---|
//! | `name` | `Utf8` | `[objects]` (open vocabulary, e.g. `"black mug"`) |
//! | `box_xyxy` | `FixedSizeList<Float32, 4>` | `f32[objects, xyxy=4]`: `x0, y0, x1, y1` pixels |
//! | `center_xyz` | `FixedSizeList<Float32, 3>`, **nullable** | `f32[objects, xyz=3]`, metres; null = unknown |
//! | `score` | `Float32` | `[objects]`, in `[0, 1]` |
//!
//! Metadata: `kind = "detections"`, `frame = "camera"`, `units = "m"`, and the
//! [`StreamHeader`] keys. Boxes use pixel coordinates with pixel centres at integers, `x0 <= x1`
//! and `y0 <= y1` (checked on decode). A centre that is not finite is decoded as unknown, so
//! NaN written by a producer that skipped the null is still read correctly.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float32Array, StringArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Fields};

use crate::meta::{MetaReader, MetaValue, Metadata, keys, put};
use crate::{MsgError, Payload, StreamHeader, wire};

/// One detected object.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub name: String,
    /// `[x0, y0, x1, y1]` in pixels.
    pub box_xyxy: [f32; 4],
    /// Camera-frame centre in metres, when a depth or point map was available.
    pub center_xyz: Option<[f32; 3]>,
    pub score: f32,
}

/// All objects detected in one frame.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DetectionsMsg {
    pub header: StreamHeader,
    pub detections: Vec<Detection>,
}

impl DetectionsMsg {
    const KIND: &'static str = "detections";

    /// The highest-scoring detection called `name`, if any.
    pub fn best(&self, name: &str) -> Option<&Detection> {
        self.detections
            .iter()
            .filter(|d| d.name == name)
            .max_by(|a, b| a.score.total_cmp(&b.score))
    }
}

const NAME: &str = "name";
const BOX_XYXY: &str = "box_xyxy";
const CENTER_XYZ: &str = "center_xyz";
const SCORE: &str = "score";

impl Payload for DetectionsMsg {
    const KIND: &'static str = Self::KIND;

    fn to_arrow(&self) -> (ArrayRef, Metadata) {
        let dets = &self.detections;
        let name = StringArray::from_iter_values(dets.iter().map(|d| d.name.as_str()));
        let boxes: Vec<f32> = dets.iter().flat_map(|d| d.box_xyxy).collect();
        let centres: Vec<f32> = dets
            .iter()
            .flat_map(|d| d.center_xyz.unwrap_or([f32::NAN; 3]))
            .collect();
        let known = NullBuffer::from_iter(dets.iter().map(|d| d.center_xyz.is_some()));
        let score = Float32Array::from_iter_values(dets.iter().map(|d| d.score));
        let fields = Fields::from(vec![
            Field::new(NAME, DataType::Utf8, false),
            Field::new(BOX_XYXY, wire::f32_list_type(4), false),
            Field::new(CENTER_XYZ, wire::f32_list_type(3), true),
            Field::new(SCORE, DataType::Float32, false),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(name),
            Arc::new(wire::f32_list_array(boxes, 4, None)),
            Arc::new(wire::f32_list_array(centres, 3, Some(known))),
            Arc::new(score),
        ];
        let mut meta = Metadata::new();
        self.header.write(&mut meta);
        put(&mut meta, keys::KIND, MetaValue::String(Self::KIND.into()));
        wire::write_camera_metric(&mut meta);
        (wire::struct_array(fields, columns), meta)
    }

    fn from_arrow(array: &dyn Array, meta: &Metadata) -> Result<Self, MsgError> {
        let kind = Self::KIND;
        let r = MetaReader::new(kind, meta);
        let header = StreamHeader::read(kind, meta)?;
        wire::read_camera_metric(&r)?;

        let rows = wire::rows(kind, "detections", array)?;
        let name = wire::column(kind, rows, NAME, "Utf8")?;
        let name = wire::downcast::<StringArray>(kind, NAME, name.as_ref(), "Utf8")?;
        wire::no_nulls(kind, NAME, name)?;
        let boxes = wire::column(kind, rows, BOX_XYXY, "FixedSizeList<Float32, 4>")?;
        let (_, boxes) = wire::f32_lists(kind, BOX_XYXY, boxes.as_ref(), 4, false)?;
        let centres = wire::column(kind, rows, CENTER_XYZ, "FixedSizeList<Float32, 3>")?;
        let (centre_lists, centres) = wire::f32_lists(kind, CENTER_XYZ, centres.as_ref(), 3, true)?;
        let score = wire::column(kind, rows, SCORE, "Float32")?;
        let score = wire::downcast::<Float32Array>(kind, SCORE, score.as_ref(), "Float32")?;
        wire::no_nulls(kind, SCORE, score)?;

        let mut detections = Vec::with_capacity(rows.len());
        for i in 0..rows.len() {
            let b = [
                boxes[4 * i],
                boxes[4 * i + 1],
                boxes[4 * i + 2],
                boxes[4 * i + 3],
            ];
            // `!(a <= b)` also rejects NaN corners.
            if !(b[0] <= b[2] && b[1] <= b[3]) {
                return Err(MsgError::Invalid {
                    kind,
                    field: BOX_XYXY.into(),
                    problem: format!("row {i}: need x0 <= x1 and y0 <= y1, got {b:?}"),
                });
            }
            let c = [centres[3 * i], centres[3 * i + 1], centres[3 * i + 2]];
            let center_xyz =
                (centre_lists.is_valid(i) && c.iter().all(|v| v.is_finite())).then_some(c);
            detections.push(Detection {
                name: name.value(i).to_owned(),
                box_xyxy: b,
                center_xyz,
                score: score.value(i),
            });
        }
        Ok(Self { header, detections })
    }
}
