//! The image-blind baseline of Hand3D-test: per task, one constant answer fitted to the train
//! split's truths, scored on the test split like a model's answers. A model that does no better
//! has learned the answer format and the dataset's prior, not anything it sees.

use std::collections::BTreeMap;

use crate::answer::{AnswerTruth, Directions, Metrics, Unit, evaluate};
use crate::sample::{Sample, Task};

/// Per visual task, the constant answer that does best on `train` without looking: on each axis
/// the most frequent direction (which maximises the expected per-axis agreement), and the
/// median magnitude (which minimises the mean absolute error) in the task's most frequent unit.
/// Formatted as the dataset's answers are (`"right and forward, 0.25m"`,
/// `"left, 12.384 degrees"`).
pub fn prior_answers(train: &[Sample]) -> BTreeMap<Task, String> {
    let mut by_task: BTreeMap<Task, Vec<AnswerTruth>> = BTreeMap::new();
    for s in train {
        if let (true, Some(t)) = (s.task.is_visual(), s.truth) {
            by_task.entry(s.task).or_default().push(t);
        }
    }
    by_task
        .into_iter()
        .map(|(task, truths)| (task, constant_answer(&truths)))
        .collect()
}

fn constant_answer(truths: &[AnswerTruth]) -> String {
    let metres = truths.iter().filter(|t| t.unit == Unit::Metres).count();
    let unit = if 2 * metres >= truths.len() {
        Unit::Metres
    } else {
        Unit::Degrees
    };
    let of_unit: Vec<&AnswerTruth> = truths.iter().filter(|t| t.unit == unit).collect();
    let mut dirs = [0i8; 3];
    for (axis, d) in dirs.iter_mut().enumerate() {
        let count = |sign: i8| {
            of_unit
                .iter()
                .filter(|t| t.directions.0[axis] == sign)
                .count()
        };
        // Ties go to "no word", then to the positive word: deterministic.
        *d = [0i8, 1, -1]
            .into_iter()
            .max_by_key(|&s| (count(s), s == 0, s == 1))
            .unwrap_or(0);
    }
    let median = crate::stats::median(of_unit.iter().map(|t| t.value)).unwrap_or(0.0);
    match unit {
        Unit::Metres => format!("{}, {median:.2}m", Directions(dirs).translation_phrase()),
        Unit::Degrees => format!(
            "{}, {median:.3} degrees",
            Directions(dirs).rotation_phrase()
        ),
    }
}

/// [`prior_answers`] of `train` scored on the visual samples of `test` that have a truth (a
/// task missing from `train` gets an empty answer, which scores as unparsed).
pub fn prior_metrics(train: &[Sample], test: &[Sample]) -> Metrics {
    let answers = prior_answers(train);
    let pairs: Vec<(AnswerTruth, &str)> = test
        .iter()
        .filter(|s| s.task.is_visual())
        .filter_map(|s| {
            let answer = answers.get(&s.task).map_or("", String::as_str);
            s.truth.map(|t| (t, answer))
        })
        .collect();
    evaluate(pairs.iter().map(|(t, a)| (t, *a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(task: Task, dirs: [i8; 3], value: f32, unit: Unit) -> Sample {
        Sample {
            clip_id: "c".into(),
            task,
            frame_idxs: vec![0],
            template: 0,
            question: String::new(),
            answer: String::new(),
            side: None,
            object: None,
            truth: Some(AnswerTruth {
                directions: Directions(dirs),
                value,
                unit,
            }),
            vector: None,
            camera_translation: None,
            motion_tokens: vec![],
        }
    }

    #[test]
    fn majority_directions_and_median_magnitude_per_task() {
        let m = Unit::Metres;
        let train = [
            sample(Task::SpatialRelation, [1, 0, 1], 0.10, m),
            sample(Task::SpatialRelation, [1, 1, 1], 0.30, m),
            sample(Task::SpatialRelation, [-1, 0, 1], 0.20, m),
            sample(Task::CameraMovement, [-1, 0, 0], 12.0, Unit::Degrees),
            sample(Task::CameraMovement, [-1, 0, 1], 14.0, Unit::Degrees),
            // Not visual: ignored.
            sample(Task::MotionGeneration, [0, 0, 0], 9.0, m),
        ];
        let a = prior_answers(&train);
        assert_eq!(a.len(), 2);
        assert_eq!(a[&Task::SpatialRelation], "right and forward, 0.20m");
        // Tie on the third axis (none vs clockwise): no word.
        assert_eq!(a[&Task::CameraMovement], "left, 13.000 degrees");
    }

    #[test]
    fn the_prior_scores_like_any_answer() {
        let m = Unit::Metres;
        let train = [
            sample(Task::HandMovement, [1, 0, 0], 0.20, m),
            sample(Task::HandMovement, [1, 0, 0], 0.20, m),
        ];
        // One test answer equal to the prior, one opposite and farther; one task unseen.
        let test = [
            sample(Task::HandMovement, [1, 0, 0], 0.20, m),
            sample(Task::HandMovement, [-1, 1, 0], 0.50, m),
            sample(Task::SpatialRelation, [1, 0, 0], 0.20, m),
        ];
        let r = prior_metrics(&train, &test);
        assert_eq!((r.n, r.n_parsed), (3, 2));
        assert!((r.distance_mae_m - 0.15).abs() < 1e-6, "{r:?}");
        // 3 + 1 axes agree over 3 answers (the unparsed one scores 0).
        assert!((r.direction_score - 4.0 / 3.0).abs() < 1e-6, "{r:?}");
    }
}
