//! Question–answer samples (Hand3D-visual VQA and Hand3D-action motion tasks), a batch per
//! message.
//!
//! # Wire format
//! A `StructArray` with **one row per sample**, columns:
//!
//! | column | Arrow type | meaning |
//! |---|---|---|
//! | `question_id` | `Utf8` | unique id of the sample |
//! | `task` | `Utf8` | a [`TaskType`] (`spatial_relation`, …, `motion_prediction`) |
//! | `clip_id` | `Utf8` | the clip the frames come from |
//! | `frame_indices` | `List<UInt64>` | `u64[frames]`, the input frames in order (1–4 in stage 1) |
//! | `question` | `Utf8` | prompt text |
//! | `answer` | `Utf8` | answer text (e.g. `"left and down and forward, 0.44m"`) |
//! | `direction` | `FixedSizeList<Float32, 3>`, nullable | `f32[xyz=3]` camera-frame direction (not necessarily unit length) |
//! | `distance_m` | `Float32`, nullable | distance in metres |
//! | `degrees` | `Float32`, nullable | rotation angle in degrees (camera movement) |
//! | `motion_tokens` | `List<UInt32>`, nullable | `u32[waypoints · 3]`: the motion of a motion task, tokens of [`crate::MotionBins::PAPER`] |
//!
//! `direction`, `distance_m` and `degrees` are the numeric ground truth used to score answers
//! (Hand3D-test: direction score, distance error); null when the task has no such quantity.
//! `motion_tokens` holds the target trajectory of `motion_generation` / `motion_prediction`
//! and the input trajectory of `motion_translation`; null otherwise.
//!
//! Metadata: `kind = "qa"`, `frame = "camera"`, `units = "m"`, and the [`StreamHeader`] keys.
//! A batch may mix clips: the header's `seq` counts batches, its `clip_id`, `frame_idx` and
//! `timestamp_ns` are those of the first sample (or empty / 0) and carry no meaning of their
//! own; each row has its own clip and frames.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float32Array, StringArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Fields, UInt32Type, UInt64Type};

use crate::meta::{MetaReader, MetaValue, Metadata, keys, put};
use crate::{MsgError, Payload, StreamHeader, wire};

/// The kind of question, after the paper's Hand3D-visual (stage 1) and Hand3D-action
/// (stage 2) task categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskType {
    SpatialRelation,
    TaskCompletion,
    HandMovement,
    CameraMovement,
    MotionGeneration,
    MotionTranslation,
    MotionPrediction,
}

impl TaskType {
    pub const ALL: [Self; 7] = [
        Self::SpatialRelation,
        Self::TaskCompletion,
        Self::HandMovement,
        Self::CameraMovement,
        Self::MotionGeneration,
        Self::MotionTranslation,
        Self::MotionPrediction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SpatialRelation => "spatial_relation",
            Self::TaskCompletion => "task_completion",
            Self::HandMovement => "hand_movement",
            Self::CameraMovement => "camera_movement",
            Self::MotionGeneration => "motion_generation",
            Self::MotionTranslation => "motion_translation",
            Self::MotionPrediction => "motion_prediction",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The pretraining stage whose dataset holds this task: 1 (Hand3D-visual) or 2
    /// (Hand3D-action).
    pub fn stage(self) -> u8 {
        match self {
            Self::SpatialRelation
            | Self::TaskCompletion
            | Self::HandMovement
            | Self::CameraMovement => 1,
            Self::MotionGeneration | Self::MotionTranslation | Self::MotionPrediction => 2,
        }
    }
}

impl std::fmt::Display for TaskType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Numeric ground truth of an answer; each part is present only when the task has it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QaTarget {
    /// Camera-frame direction, `f32[xyz=3]`.
    pub direction: Option<[f32; 3]>,
    pub distance_m: Option<f32>,
    pub degrees: Option<f32>,
}

/// One question with its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct QaSample {
    pub question_id: String,
    pub task: TaskType,
    pub clip_id: String,
    /// Input frames, in order.
    pub frame_indices: Vec<u64>,
    pub question: String,
    pub answer: String,
    pub target: QaTarget,
    /// `[waypoints][xyz]` bins of [`crate::MotionBins::PAPER`], for motion tasks.
    pub motion_tokens: Option<Vec<[u32; 3]>>,
}

/// A batch of samples.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QaBatch {
    pub header: StreamHeader,
    pub samples: Vec<QaSample>,
}

impl QaBatch {
    const KIND: &'static str = "qa";
}

const QUESTION_ID: &str = "question_id";
const TASK: &str = "task";
const CLIP_ID: &str = "clip_id";
const FRAME_INDICES: &str = "frame_indices";
const QUESTION: &str = "question";
const ANSWER: &str = "answer";
const DIRECTION: &str = "direction";
const DISTANCE_M: &str = "distance_m";
const DEGREES: &str = "degrees";
const MOTION_TOKENS: &str = "motion_tokens";

impl Payload for QaBatch {
    const KIND: &'static str = Self::KIND;

    fn to_arrow(&self) -> (ArrayRef, Metadata) {
        let s = &self.samples;
        let strings = |f: fn(&QaSample) -> &str| StringArray::from_iter_values(s.iter().map(f));
        let frames: Vec<Option<Vec<u64>>> =
            s.iter().map(|q| Some(q.frame_indices.clone())).collect();
        let dirs: Vec<f32> = s
            .iter()
            .flat_map(|q| q.target.direction.unwrap_or([f32::NAN; 3]))
            .collect();
        let dir_known = NullBuffer::from_iter(s.iter().map(|q| q.target.direction.is_some()));
        let distance = Float32Array::from_iter(s.iter().map(|q| q.target.distance_m));
        let degrees = Float32Array::from_iter(s.iter().map(|q| q.target.degrees));
        let motion: Vec<Option<Vec<u32>>> = s
            .iter()
            .map(|q| {
                q.motion_tokens
                    .as_ref()
                    .map(|m| m.iter().flatten().copied().collect())
            })
            .collect();

        let fields = Fields::from(vec![
            Field::new(QUESTION_ID, DataType::Utf8, false),
            Field::new(TASK, DataType::Utf8, false),
            Field::new(CLIP_ID, DataType::Utf8, false),
            Field::new(FRAME_INDICES, wire::prim_list_type::<UInt64Type>(), false),
            Field::new(QUESTION, DataType::Utf8, false),
            Field::new(ANSWER, DataType::Utf8, false),
            Field::new(DIRECTION, wire::f32_list_type(3), true),
            Field::new(DISTANCE_M, DataType::Float32, true),
            Field::new(DEGREES, DataType::Float32, true),
            Field::new(MOTION_TOKENS, wire::prim_list_type::<UInt32Type>(), true),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(strings(|q| &q.question_id)),
            Arc::new(strings(|q| q.task.as_str())),
            Arc::new(strings(|q| &q.clip_id)),
            Arc::new(wire::prim_list_array::<UInt64Type>(&frames)),
            Arc::new(strings(|q| &q.question)),
            Arc::new(strings(|q| &q.answer)),
            Arc::new(wire::f32_list_array(dirs, 3, Some(dir_known))),
            Arc::new(distance),
            Arc::new(degrees),
            Arc::new(wire::prim_list_array::<UInt32Type>(&motion)),
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

        let rows = wire::rows(kind, "samples", array)?;
        let question_id = wire::str_column(kind, rows, QUESTION_ID)?;
        let task = wire::str_column(kind, rows, TASK)?;
        let clip_id = wire::str_column(kind, rows, CLIP_ID)?;
        let (frame_lists, frames) =
            wire::prim_lists::<UInt64Type>(kind, rows, FRAME_INDICES, "List<UInt64>", false)?;
        let question = wire::str_column(kind, rows, QUESTION)?;
        let answer = wire::str_column(kind, rows, ANSWER)?;
        let dir = wire::column(kind, rows, DIRECTION, "FixedSizeList<Float32, 3>")?;
        let (dir_lists, dirs) = wire::f32_lists(kind, DIRECTION, dir.as_ref(), 3, true)?;
        let distance = wire::prim_column::<arrow::datatypes::Float32Type>(
            kind, rows, DISTANCE_M, "Float32", true,
        )?;
        let degrees = wire::prim_column::<arrow::datatypes::Float32Type>(
            kind, rows, DEGREES, "Float32", true,
        )?;
        let (motion_lists, motion) =
            wire::prim_lists::<UInt32Type>(kind, rows, MOTION_TOKENS, "List<UInt32>", true)?;

        let mut samples = Vec::with_capacity(rows.len());
        for i in 0..rows.len() {
            let t = task.value(i);
            let task = TaskType::parse(t).ok_or_else(|| MsgError::Invalid {
                kind,
                field: TASK.into(),
                problem: format!(
                    "row {i}: unknown task {t:?} (one of {})",
                    TaskType::ALL.map(TaskType::as_str).join(", ")
                ),
            })?;
            let frame_indices =
                wire::list_row(kind, FRAME_INDICES, frame_lists, frames, i)?.to_vec();
            let motion_tokens = if motion_lists.is_valid(i) {
                let m = wire::list_row(kind, MOTION_TOKENS, motion_lists, motion, i)?;
                if m.len() % 3 != 0 {
                    return Err(MsgError::WrongShape {
                        kind,
                        field: MOTION_TOKENS.into(),
                        expected: format!("row {i}: [waypoints · 3] values"),
                        found: format!("{} values", m.len()),
                    });
                }
                let bins = crate::MotionBins::PAPER.bins;
                if let Some(bad) = m.iter().find(|&&b| b >= bins) {
                    return Err(MsgError::Invalid {
                        kind,
                        field: MOTION_TOKENS.into(),
                        problem: format!("row {i}: token {bad} is not a bin (0..{bins})"),
                    });
                }
                Some(m.chunks_exact(3).map(|t| [t[0], t[1], t[2]]).collect())
            } else {
                None
            };
            let opt = |a: &Float32Array| a.is_valid(i).then(|| a.value(i));
            samples.push(QaSample {
                question_id: question_id.value(i).to_owned(),
                task,
                clip_id: clip_id.value(i).to_owned(),
                frame_indices,
                question: question.value(i).to_owned(),
                answer: answer.value(i).to_owned(),
                target: QaTarget {
                    direction: dir_lists
                        .is_valid(i)
                        .then(|| [dirs[3 * i], dirs[3 * i + 1], dirs[3 * i + 2]]),
                    distance_m: opt(distance),
                    degrees: opt(degrees),
                },
                motion_tokens,
            });
        }
        Ok(Self { header, samples })
    }
}
