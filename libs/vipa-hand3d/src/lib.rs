//! `vipa-hand3d`: the Hand3D annotation pipeline as a plain library (no dora, no candle).
//!
//! Human manipulation video → 3D spatial supervision (paper §2.2–2.3):
//!
//! ```text
//! per frame:  point map (any backend) + metric hand joints + object boxes
//!               └─ observe::observe_frame ─▶ FrameObservation (small: joint depths, raw object positions)
//! per clip:   pipeline::annotate_clip(ClipInputs, Config)
//!               ├─ calibrate: s = median_k (j_k^z / j̃_k^z)      (paper, exact)
//!               ├─ objects ×s → metric, same frame as the hands
//!               ├─ qa: spatial relation, task completion, hand movement, camera movement
//!               └─ motion: wrist chunks → <mx_i><my_j><mz_k> tokens → 3 motion tasks
//! dataset:    dataset::DatasetWriter (per-clip Parquet shards + manifest.json), DatasetReader
//! ```
//!
//! Coordinates everywhere: camera frame, OpenCV axes, metres — +x right, +y down,
//! +z forward. The modules document their choices (nearest sampling, surface bias, object
//! statistic, γ, sign conventions, token spelling).

pub mod answer;
pub mod backend;
pub mod baseline;
pub mod calibrate;
pub mod config;
pub mod dataset;
pub mod error;
pub mod frames;
pub mod geometry;
pub mod interval;
pub mod motion;
pub mod objects;
pub mod observe;
pub mod pipeline;
pub mod qa;
pub mod sample;
pub mod stats;
pub mod truth;

pub use answer::{
    AnswerScore, AnswerTruth, Directions, Metrics, ParsedAnswer, Unit, evaluate, parse_answer,
    score_answer,
};
pub use config::Config;
pub use dataset::{DatasetReader, DatasetWriter, Manifest, Split};
pub use error::{Hand3dError, Result};
pub use geometry::{Intrinsics, PointMap, Pose, Vec3};
pub use observe::{FrameInput, FrameObservation, HandInput, ObjectInput, Side, observe_frame};
pub use pipeline::{ClipAnnotations, ClipInputs, ClipMeta, ClipStats, annotate_clip};
pub use sample::{Sample, Task};
