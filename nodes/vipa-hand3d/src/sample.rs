//! One training sample (a question/answer pair or a motion-task pair) and its numeric truth.
//! Images are referenced by `(clip_id, frame_idxs)`, never stored in a sample.

use serde::{Deserialize, Serialize};

use crate::answer::AnswerTruth;
use crate::geometry::Vec3;
use crate::observe::Side;

/// The seven task types: four Hand3D-visual Q&A types, three Hand3D-action types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    SpatialRelation,
    TaskCompletion,
    HandMovement,
    CameraMovement,
    MotionGeneration,
    MotionTranslation,
    MotionPrediction,
}

impl Task {
    pub const ALL: [Task; 7] = [
        Task::SpatialRelation,
        Task::TaskCompletion,
        Task::HandMovement,
        Task::CameraMovement,
        Task::MotionGeneration,
        Task::MotionTranslation,
        Task::MotionPrediction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Task::SpatialRelation => "spatial_relation",
            Task::TaskCompletion => "task_completion",
            Task::HandMovement => "hand_movement",
            Task::CameraMovement => "camera_movement",
            Task::MotionGeneration => "motion_generation",
            Task::MotionTranslation => "motion_translation",
            Task::MotionPrediction => "motion_prediction",
        }
    }

    pub fn parse(s: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Hand3D-visual (stage 1) or Hand3D-action (stage 2).
    pub fn is_visual(self) -> bool {
        matches!(
            self,
            Task::SpatialRelation
                | Task::TaskCompletion
                | Task::HandMovement
                | Task::CameraMovement
        )
    }
}

/// One sample. `question`/`answer` are the text the LLM sees (motion tokens spelled
/// `<mx_i><my_j><mz_k>`); the other fields are the numeric truth for evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub clip_id: String,
    pub task: Task,
    /// Frames shown with the question, oldest first.
    pub frame_idxs: Vec<u32>,
    /// Index of the question template used.
    pub template: u32,
    pub question: String,
    pub answer: String,
    pub side: Option<Side>,
    pub object: Option<String>,
    /// Directions and magnitude of the answer's first clause (visual tasks).
    pub truth: Option<AnswerTruth>,
    /// The answer's vector: translation (metres) or, for camera movement, the unit rotation
    /// axis.
    pub vector: Option<Vec3>,
    /// Camera movement only: where camera 2 sits in camera 1's frame (metres).
    pub camera_translation: Option<Vec3>,
    /// Action tasks: the answer's motion-token ids, 3 per waypoint (x, y, z bins).
    pub motion_tokens: Vec<u32>,
}
