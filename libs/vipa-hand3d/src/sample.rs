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

impl Task {
    /// The wire-format task type of `vipa-msgs` (same names).
    pub fn to_msg(self) -> vipa_msgs::TaskType {
        use vipa_msgs::TaskType as T;
        match self {
            Task::SpatialRelation => T::SpatialRelation,
            Task::TaskCompletion => T::TaskCompletion,
            Task::HandMovement => T::HandMovement,
            Task::CameraMovement => T::CameraMovement,
            Task::MotionGeneration => T::MotionGeneration,
            Task::MotionTranslation => T::MotionTranslation,
            Task::MotionPrediction => T::MotionPrediction,
        }
    }
}

impl Sample {
    /// The `vipa-msgs` payload row of this sample (for the annotate node's `qa` output).
    /// Target: translations → `direction` = vector, `distance_m`; camera movement →
    /// `direction` = rotation axis, `degrees`, and `distance_m` = camera translation length.
    pub fn to_qa_sample(&self, question_id: impl Into<String>) -> vipa_msgs::QaSample {
        use crate::answer::Unit;
        let mut target = vipa_msgs::QaTarget {
            direction: self.vector,
            ..Default::default()
        };
        if let Some(t) = self.truth {
            match t.unit {
                Unit::Metres => target.distance_m = Some(t.value),
                Unit::Degrees => {
                    target.degrees = Some(t.value);
                    target.distance_m = self.camera_translation.map(crate::geometry::norm);
                }
            }
        }
        vipa_msgs::QaSample {
            question_id: question_id.into(),
            task: self.task.to_msg(),
            clip_id: self.clip_id.clone(),
            frame_indices: self.frame_idxs.iter().map(|&f| u64::from(f)).collect(),
            question: self.question.clone(),
            answer: self.answer.clone(),
            target,
            motion_tokens: (!self.motion_tokens.is_empty()).then(|| {
                self.motion_tokens
                    .chunks(3)
                    .filter(|c| c.len() == 3)
                    .map(|c| [c[0], c[1], c[2]])
                    .collect()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::{Directions, Unit};

    #[test]
    fn task_names_match_the_wire_names() {
        for t in Task::ALL {
            assert_eq!(t.as_str(), t.to_msg().as_str());
            assert_eq!(Task::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn qa_sample_carries_the_numeric_truth() {
        let s = Sample {
            clip_id: "c".into(),
            task: Task::CameraMovement,
            frame_idxs: vec![3, 13],
            template: 0,
            question: "q".into(),
            answer: "left, 12.384 degrees; moved right, 0.05m".into(),
            side: None,
            object: None,
            truth: Some(AnswerTruth {
                directions: Directions([-1, 0, 0]),
                value: 12.384,
                unit: Unit::Degrees,
            }),
            vector: Some([0.0, -1.0, 0.0]),
            camera_translation: Some([0.03, 0.0, 0.04]),
            motion_tokens: vec![],
        };
        let q = s.to_qa_sample("c/00000");
        assert_eq!(q.frame_indices, vec![3, 13]);
        assert_eq!(q.target.degrees, Some(12.384));
        assert!((q.target.distance_m.unwrap() - 0.05).abs() < 1e-6);
        assert_eq!(q.motion_tokens, None);
        let m = Sample {
            task: Task::MotionGeneration,
            truth: None,
            vector: None,
            camera_translation: None,
            motion_tokens: vec![1, 2, 3, 4, 5, 6],
            ..s
        };
        assert_eq!(
            m.to_qa_sample("x").motion_tokens,
            Some(vec![[1, 2, 3], [4, 5, 6]])
        );
    }
}
