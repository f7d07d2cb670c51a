//! Direction words, answer formatting in the paper's form, the answer parser, and the
//! Hand3D-test metrics (paper Table 8).
//!
//! # Sign conventions (OpenCV camera frame, metres)
//! Translations `v = (x, y, z)`: **+x right / −x left, +y down / −y up, +z forward (away from
//! the camera) / −z backward**. With `v̂ = v/‖v‖`, an axis gets its word only when
//! `|v̂_axis| > γ`; words are listed x, y, z and joined by `" and "`:
//! `"left and down and forward, 0.44m"`.
//!
//! Camera rotations (relative rotation `R1ᵀR2` of camera 2 in camera 1's frame, axis-angle
//! `(u, φ)`): the words say where the camera *turned*, from the camera's own point of view:
//! - **left / right** — pan: rotation about the y axis; `u_y > 0` turns the optical axis
//!   toward +x, i.e. **right**; `u_y < 0` is **left**.
//! - **up / down** — tilt: rotation about the x axis; `u_x > 0` turns the optical axis toward
//!   −y, i.e. **up**; `u_x < 0` is **down**.
//! - **clockwise / counterclockwise** — roll about the optical axis; `u_z > 0` turns the
//!   camera's right side downward, which is **clockwise** as seen from behind the camera (the
//!   image content turns counterclockwise).
//!
//! The same γ gate applies to `u`. Degrees print with 3 decimals (`"left, 12.384 degrees"`),
//! metres with 2 (`"0.21m"`).
//!
//! # Why γ = 0.3 by default
//! `|v̂_axis| > 0.3` means the axis carries more than 9 % of the squared length (the motion
//! leaves the other two axes' plane by more than 17.5°). Smaller components are within the
//! noise of hand/object positions at 0.5 m (a few cm) for typical 10–30 cm motions, so naming
//! them would teach noise. A pure diagonal in two axes (0.71 each) or in three (0.58 each)
//! still names every axis, and since `1/√3 > 0.3` every non-zero vector gets at least one word.

use serde::{Deserialize, Serialize};

use crate::geometry::{Vec3, norm};

/// Default direction threshold γ (see the module docs).
pub const DEFAULT_GAMMA: f32 = 0.3;

/// Per-axis direction signs in *word slots*: `-1`, `0` (no word), `+1`.
/// Slot 0: left(−)/right(+). Slot 1: up(−)/down(+). Slot 2: backward(−)/forward(+) for
/// translations, counterclockwise(−)/clockwise(+) for rotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Directions(pub [i8; 3]);

/// What a magnitude measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Metres,
    Degrees,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Metres => "m",
            Unit::Degrees => "deg",
        }
    }
}

const TRANSLATION_WORDS: [[&str; 2]; 3] =
    [["left", "right"], ["up", "down"], ["backward", "forward"]];
const ROTATION_WORDS: [[&str; 2]; 3] = [
    ["left", "right"],
    ["up", "down"],
    ["counterclockwise", "clockwise"],
];

impl Directions {
    /// Words of a translation vector under threshold γ (all zero for a zero vector).
    pub fn of_translation(v: Vec3, gamma: f32) -> Self {
        let n = norm(v);
        if n.is_nan() || n <= 0.0 {
            return Self::default();
        }
        Self([0, 1, 2].map(|i| gate(v[i] / n, gamma)))
    }

    /// Words of a rotation with unit axis `u` (see the module docs for the mapping).
    pub fn of_rotation(axis: Vec3, gamma: f32) -> Self {
        let n = norm(axis);
        if n.is_nan() || n <= 0.0 {
            return Self::default();
        }
        let u = axis.map(|c| c / n);
        // Pan right is +u_y; tilt up is +u_x (slot 1 is up = −1); clockwise roll is +u_z.
        Self([gate(u[1], gamma), -gate(u[0], gamma), gate(u[2], gamma)])
    }

    fn words(self, table: &[[&'static str; 2]; 3]) -> Vec<&'static str> {
        (0..3)
            .filter_map(|i| match self.0[i] {
                -1 => Some(table[i][0]),
                1 => Some(table[i][1]),
                _ => None,
            })
            .collect()
    }

    /// `"left and down and forward"`, or `"stationary"` when no axis has a word.
    pub fn translation_phrase(self) -> String {
        phrase(self.words(&TRANSLATION_WORDS))
    }

    /// `"left and clockwise"`, or `"stationary"` when no axis has a word.
    pub fn rotation_phrase(self) -> String {
        phrase(self.words(&ROTATION_WORDS))
    }

    /// Number of axes (0–3) on which `self` and `other` agree (same word or both none).
    pub fn score(self, other: Directions) -> u8 {
        (0..3).filter(|&i| self.0[i] == other.0[i]).count() as u8
    }
}

fn gate(c: f32, gamma: f32) -> i8 {
    if c > gamma {
        1
    } else if c < -gamma {
        -1
    } else {
        0
    }
}

fn phrase(words: Vec<&str>) -> String {
    if words.is_empty() {
        "stationary".to_owned()
    } else {
        words.join(" and ")
    }
}

/// `"left and down and forward, 0.44m"`.
pub fn format_translation(v: Vec3, gamma: f32) -> String {
    format!(
        "{}, {:.2}m",
        Directions::of_translation(v, gamma).translation_phrase(),
        norm(v)
    )
}

/// `"left, 12.384 degrees"` from a unit axis and an angle in degrees.
pub fn format_rotation(axis: Vec3, degrees: f32, gamma: f32) -> String {
    format!(
        "{}, {:.3} degrees",
        Directions::of_rotation(axis, gamma).rotation_phrase(),
        degrees
    )
}

/// One parsed clause of an answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParsedAnswer {
    pub directions: Directions,
    /// Metres or degrees, per `unit`.
    pub value: f32,
    pub unit: Unit,
}

/// Parses the first clause of an answer (`"left and down, 0.44m"`; clauses are separated by
/// `;`). Accepts: the direction words above plus `leftward(s)`, `rightward(s)`, `upward(s)`,
/// `downward(s)`, `forwards`, `backwards`, `anticlockwise`, `counter-clockwise`; a number
/// followed by `m`, `meter(s)`, `metre(s)`, `cm` (converted to metres), `degree(s)`, `deg` or
/// `°`; a bare number counts as metres. Returns `None` when there is no number or when one
/// axis gets both of its words (`"left and right"`).
pub fn parse_answer(text: &str) -> Option<ParsedAnswer> {
    parse_clause(text.split(';').next()?)
}

/// Parses every `;`-separated clause; unparseable clauses are left out.
pub fn parse_clauses(text: &str) -> Vec<ParsedAnswer> {
    text.split(';').filter_map(parse_clause).collect()
}

fn parse_clause(clause: &str) -> Option<ParsedAnswer> {
    let lower = clause.to_lowercase();
    let mut dirs = [0i8; 3];
    let mut set = |slot: usize, sign: i8| -> bool {
        if dirs[slot] == -sign {
            return false;
        }
        dirs[slot] = sign;
        true
    };
    for word in lower.split(|c: char| !(c.is_ascii_alphabetic() || c == '-')) {
        let (slot, sign) = match word.trim_matches('-') {
            "left" | "leftward" | "leftwards" => (0, -1),
            "right" | "rightward" | "rightwards" => (0, 1),
            "up" | "upward" | "upwards" => (1, -1),
            "down" | "downward" | "downwards" => (1, 1),
            "backward" | "backwards" | "back" => (2, -1),
            "forward" | "forwards" => (2, 1),
            "counterclockwise" | "anticlockwise" | "counter-clockwise" | "anti-clockwise" => {
                (2, -1)
            }
            "clockwise" => (2, 1),
            _ => continue,
        };
        if !set(slot, sign) {
            return None;
        }
    }
    let (value, unit) = parse_magnitude(&lower)?;
    Some(ParsedAnswer {
        directions: Directions(dirs),
        value,
        unit,
    })
}

/// The last number in the clause and the unit word right after it.
fn parse_magnitude(s: &str) -> Option<(f32, Unit)> {
    let bytes = s.as_bytes();
    let mut found: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            found = Some((start, i));
        } else {
            i += 1;
        }
    }
    let (start, end) = found?;
    let mut value: f32 = s[start..end].trim_end_matches('.').parse().ok()?;
    let rest = s[end..].trim_start();
    let unit_word: String = rest
        .chars()
        .take_while(|c| c.is_alphabetic() || *c == '°')
        .collect();
    let unit = match unit_word.as_str() {
        "cm" | "centimeter" | "centimeters" | "centimetre" | "centimetres" => {
            value /= 100.0;
            Unit::Metres
        }
        "degree" | "degrees" | "deg" | "°" => Unit::Degrees,
        _ => Unit::Metres,
    };
    Some((value, unit))
}

/// The numeric truth an answer is scored against.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnswerTruth {
    pub directions: Directions,
    pub value: f32,
    pub unit: Unit,
}

/// Hand3D-test metrics (paper Table 8) over a set of (truth, predicted text) pairs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Answers scored.
    pub n: usize,
    /// Answers [`parse_answer`] understood.
    pub n_parsed: usize,
    /// `n_parsed / n`.
    pub parse_rate: f32,
    /// Mean |predicted − true| metres over parsed metre answers (NaN when none).
    pub distance_mae_m: f32,
    /// Median |predicted − true| metres over the same answers (NaN when none): a few absurd
    /// distances move the mean, not the median.
    #[serde(default = "nan")]
    pub distance_median_m: f32,
    /// Mean |predicted − true| degrees over parsed degree answers (NaN when none).
    pub degrees_mae: f32,
    /// Mean per-axis direction agreement out of 3 over **all** answers (an unparseable answer
    /// scores 0, so a model cannot gain by answering in the wrong format).
    pub direction_score: f32,
}

fn nan() -> f32 {
    f32::NAN
}

/// The score of one answer, from which [`Metrics`] are aggregated (and resampled by
/// [`crate::interval`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnswerScore {
    /// Whether [`parse_answer`] understood the text.
    pub parsed: bool,
    /// Axes (0–3) whose direction word agrees; 0 when unparsed.
    pub direction: u8,
    /// |predicted − true| in the truth's unit, when parsed in that unit.
    pub error: Option<f32>,
    /// The truth's unit.
    pub unit: Unit,
}

/// Scores one answer against its truth. A parsed answer in the wrong unit counts as parsed but
/// has no error (it is rare and has no meaningful distance).
pub fn score_answer(truth: &AnswerTruth, text: &str) -> AnswerScore {
    let Some(p) = parse_answer(text) else {
        return AnswerScore {
            parsed: false,
            direction: 0,
            error: None,
            unit: truth.unit,
        };
    };
    AnswerScore {
        parsed: true,
        direction: p.directions.score(truth.directions),
        error: (p.unit == truth.unit).then(|| (p.value - truth.value).abs()),
        unit: truth.unit,
    }
}

impl Metrics {
    /// Aggregates per-answer scores.
    pub fn of_scores<'a>(scores: impl IntoIterator<Item = &'a AnswerScore>) -> Metrics {
        let (mut n, mut n_parsed, mut dir_sum) = (0usize, 0usize, 0u32);
        let (mut dist, mut deg_sum, mut deg_n) = (Vec::new(), 0f64, 0usize);
        for s in scores {
            n += 1;
            n_parsed += usize::from(s.parsed);
            dir_sum += u32::from(s.direction);
            match (s.error, s.unit) {
                (Some(e), Unit::Metres) => dist.push(e),
                (Some(e), Unit::Degrees) => {
                    deg_sum += f64::from(e);
                    deg_n += 1;
                }
                (None, _) => {}
            }
        }
        let mean = |s: f64, k: usize| {
            if k == 0 {
                f32::NAN
            } else {
                (s / k as f64) as f32
            }
        };
        let dist_sum: f64 = dist.iter().map(|&e| f64::from(e)).sum();
        Metrics {
            n,
            n_parsed,
            parse_rate: if n == 0 {
                0.0
            } else {
                n_parsed as f32 / n as f32
            },
            distance_mae_m: mean(dist_sum, dist.len()),
            distance_median_m: crate::stats::median(dist).unwrap_or(f32::NAN),
            degrees_mae: mean(deg_sum, deg_n),
            direction_score: if n == 0 {
                0.0
            } else {
                dir_sum as f32 / n as f32
            },
        }
    }

    /// Answers that did not parse.
    pub fn n_unparsed(&self) -> usize {
        self.n - self.n_parsed
    }
}

/// Scores predictions ([`score_answer`] each, then [`Metrics::of_scores`]).
pub fn evaluate<'a>(pairs: impl IntoIterator<Item = (&'a AnswerTruth, &'a str)>) -> Metrics {
    let scores: Vec<AnswerScore> = pairs
        .into_iter()
        .map(|(t, text)| score_answer(t, text))
        .collect();
    Metrics::of_scores(&scores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{axis_angle, rotation_from_axis_angle};

    #[test]
    fn paper_examples_format_and_parse_back() {
        let v = [-0.25f32, 0.2, 0.3];
        let s = format_translation(v, DEFAULT_GAMMA);
        assert_eq!(s, format!("left and down and forward, {:.2}m", norm(v)));
        let p = parse_answer(&s).unwrap();
        assert_eq!(p.directions, Directions([-1, 1, 1]));
        assert_eq!(p.unit, Unit::Metres);
        assert!((p.value - norm(v)).abs() < 0.005);
        // Small components get no word.
        assert_eq!(format_translation([0.2, 0.01, -0.05], 0.3), "right, 0.21m");
        let p = parse_answer("left, 12.384 degrees").unwrap();
        assert_eq!(
            (p.directions, p.value, p.unit),
            (Directions([-1, 0, 0]), 12.384, Unit::Degrees)
        );
    }

    #[test]
    fn camera_pan_left_is_negative_y_rotation() {
        // Camera 2 turned so its optical axis points to camera 1's left (−x).
        let r = rotation_from_axis_angle([0.0, 1.0, 0.0], -12.384f32.to_radians());
        let fwd2 = [r[0][2], r[1][2], r[2][2]];
        assert!(fwd2[0] < 0.0, "optical axis turned left");
        let (axis, angle) = axis_angle(&r);
        assert_eq!(
            format_rotation(axis, angle.to_degrees(), 0.3),
            "left, 12.384 degrees"
        );
        // Tilt: optical axis toward −y is "up".
        let r = rotation_from_axis_angle([1.0, 0.0, 0.0], 0.2);
        assert!(r[1][2] < 0.0);
        let (axis, angle) = axis_angle(&r);
        assert!(format_rotation(axis, angle.to_degrees(), 0.3).starts_with("up, "));
    }

    #[test]
    fn parser_variants_and_rejections() {
        let p = parse_answer("The mug is about 44 cm away, upward and to the right.").unwrap();
        assert_eq!(p.directions, Directions([1, -1, 0]));
        assert!((p.value - 0.44).abs() < 1e-6);
        assert_eq!(
            parse_answer("counter-clockwise, 3.5°").unwrap().directions,
            Directions([0, 0, -1])
        );
        assert!(parse_answer("left and right, 0.3m").is_none());
        assert!(parse_answer("somewhere to the left").is_none());
        let cl = parse_clauses("left, 1.000 degrees; right and forward, 0.10m");
        assert_eq!(cl.len(), 2);
        assert_eq!(cl[1].directions, Directions([1, 0, 1]));
    }

    #[test]
    fn metrics_match_hand_computation() {
        let t = AnswerTruth {
            directions: Directions([-1, 1, 1]),
            value: 0.44,
            unit: Unit::Metres,
        };
        let preds = [
            "left and down, 0.40m",
            "right and down and forward, 0.54m",
            "no idea",
        ];
        let m = evaluate(preds.iter().map(|p| (&t, *p)));
        assert_eq!((m.n, m.n_parsed), (3, 2));
        assert!((m.parse_rate - 2.0 / 3.0).abs() < 1e-6);
        assert!(
            (m.distance_mae_m - 0.07).abs() < 1e-5,
            "{}",
            m.distance_mae_m
        );
        // Scores 2 and 2 and 0 → 4/3.
        assert!((m.direction_score - 4.0 / 3.0).abs() < 1e-6);
        // Errors 0.04 and 0.10: the median of two is their mean.
        assert!((m.distance_median_m - 0.07).abs() < 1e-5);
        assert_eq!(m.n_unparsed(), 1);
    }
}
