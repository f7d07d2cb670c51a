//! The annotation config: one serde struct, `deny_unknown_fields`, every field defaulted, one
//! `validate()`. Defaults and why are documented per field; `Config::default()` is the
//! preset the dataflow uses.

use serde::{Deserialize, Serialize};

use crate::answer::DEFAULT_GAMMA;
use crate::error::{Hand3dError, Result};

/// Whether one scale is fitted per clip or per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationMode {
    #[default]
    PerClip,
    PerFrame,
}

/// Default share of an object box (per side) that counts as its central region (see
/// [`crate::objects`]).
pub const DEFAULT_CENTRAL_FRACTION: f32 = 0.5;

/// Everything `annotate_clip` and the dataset writer read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Seed for template choice, window lengths and sample subsets. Default 0.
    pub seed: u64,
    pub visibility: VisibilityConfig,
    pub calibration: CalibrationConfig,
    pub objects: ObjectsConfig,
    pub qa: QaConfig,
    pub action: ActionConfig,
    pub split: SplitConfig,
}

/// Which joints count (see [`crate::observe`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VisibilityConfig {
    /// Also require the ground-truth visibility flag when the source has one. Default true.
    pub use_gt_visibility: bool,
    /// A hand is visible in a frame with at least this many valid joints. Default 3 (a hand
    /// with 1–2 joints in view is usually entering the frame; its position is unreliable).
    pub min_visible_joints: usize,
}

impl Default for VisibilityConfig {
    fn default() -> Self {
        Self {
            use_gt_visibility: true,
            min_visible_joints: 3,
        }
    }
}

/// Scale calibration (see [`crate::calibrate`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalibrationConfig {
    /// `per_clip` (default: one scale per clip; a depth network's scale error is mostly
    /// per-video, and pooling hundreds of joints beats any single frame's noise) or
    /// `per_frame`.
    pub mode: CalibrationMode,
    /// Fewest joint ratios a scale may rest on (per frame or per clip). Default 5.
    pub min_valid_joints: usize,
    /// Metres subtracted from each joint depth before the ratio, to undo the hand-surface
    /// bias. Default 0.0 = the paper's formula exactly.
    pub surface_offset_m: f32,
    /// Undo the hand-surface bias per joint instead: each joint's skin is its average-adult
    /// half-thickness (scaled by the hand's size) in front of it along the viewing ray (see
    /// [`crate::calibrate`]). Default false; excludes `surface_offset_m`.
    pub joint_thickness_prior: bool,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        Self {
            mode: CalibrationMode::PerClip,
            min_valid_joints: 5,
            surface_offset_m: 0.0,
            joint_thickness_prior: false,
        }
    }
}

/// Object positions (see [`crate::objects`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectsConfig {
    /// Share of the box width/height (around its centre) whose points seed the estimate (and,
    /// in the centre fallback, are the estimate). Default 0.5.
    pub central_fraction: f32,
    /// Which position an object has (see [`crate::objects`]). Off (default): its **visible
    /// surface**, the per-axis median of the box's points that belong to it (table, hands,
    /// forearm and what lies in front left out). On: an estimate of the **centre of its
    /// bounding volume** (the occluded back and, under a grasp, top completed by priors:
    /// 1–3 cm off for held or oblong objects).
    pub complete_depth: bool,
    /// Radius (metres) of the 2D hand-bone capsules masked out of object boxes by the centre
    /// estimator, and by the visible-surface one in frames with too few joints for a metric
    /// 3D test; 0 disables them. Default 0.015.
    pub hand_mask_radius_m: f32,
    /// With `complete_depth`: segment the object from the table before taking its centre
    /// (fit the table plane around the box, keep the box's points standing above it, off the
    /// hand, and take the centre of their extent in a table-aligned frame). Falls back to the
    /// central-region median + thickness prior when no table is found. Default true.
    pub segment_table: bool,
}

impl Default for ObjectsConfig {
    fn default() -> Self {
        Self {
            central_fraction: DEFAULT_CENTRAL_FRACTION,
            complete_depth: false,
            hand_mask_radius_m: 0.015,
            segment_table: true,
        }
    }
}

/// Which point of a hand the Q&A measures from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HandPoint {
    /// Mean of the wrist and the four finger MCP joints (0, 5, 9, 13, 17): the middle of the
    /// palm, where "the hand" is for a person looking at the image.
    #[default]
    Palm,
    /// Joint 0 (the wrist), as in Hand3D-action.
    Wrist,
}

/// Hand3D-visual Q&A.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QaConfig {
    /// Direction threshold γ. Default 0.3 (see [`crate::answer`] for why).
    pub gamma: f32,
    /// Frames per second sampled from a clip for Q&A. Default 1.0 (the paper).
    pub sample_fps: f32,
    /// Most frames shown in a spatial-relation question. Default 4 (the paper: 1–4).
    pub max_context_frames: usize,
    /// Largest gap in sampled frames between the two frames of a movement question.
    /// Default 3 (1–3 s apart at 1 fps).
    pub max_pair_gap: usize,
    /// Cap on questions per type per clip (a random subset, by seed). Default 64.
    pub max_per_type: usize,
    pub hand_point: HandPoint,
    /// Camera-movement pairs need at least this rotation (degrees) or `camera_min_m`
    /// translation; a static camera yields no camera questions. Default 1.0.
    pub camera_min_deg: f32,
    /// Default 0.01 m.
    pub camera_min_m: f32,
    /// Question types to generate. All on by default.
    pub spatial_relation: bool,
    pub task_completion: bool,
    pub hand_movement: bool,
    pub camera_movement: bool,
}

impl Default for QaConfig {
    fn default() -> Self {
        Self {
            gamma: DEFAULT_GAMMA,
            sample_fps: 1.0,
            max_context_frames: 4,
            max_pair_gap: 3,
            max_per_type: 64,
            hand_point: HandPoint::Palm,
            camera_min_deg: 1.0,
            camera_min_m: 0.01,
            spatial_relation: true,
            task_completion: true,
            hand_movement: true,
            camera_movement: true,
        }
    }
}

/// Hand3D-action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionConfig {
    /// Chunk length in seconds. Default 10.0 (the paper, after UniHand).
    pub chunk_s: f32,
    /// Waypoints per second inside a chunk. Default 4.0 (unspecified in the paper; 40
    /// waypoints = 120 tokens per 10 s chunk keeps samples short while resolving a reach).
    pub waypoints_per_s: f32,
    /// Chunks with fewer waypoints are dropped. Default 4.
    pub min_waypoints: usize,
    /// A chunk whose wrist never gets this far (metres) from its first waypoint is
    /// "insignificant motion" and filtered (counted). Default 0.05.
    pub min_motion_m: f32,
    /// Observation gaps longer than this (seconds) split a trajectory. Default 0.5.
    pub max_gap_s: f32,
    /// Motion-translation descriptions cut the chunk into phases this long. Default 2.0.
    pub description_segment_s: f32,
    /// Phases moving less than this (metres) are left out of a description. Default 0.03.
    pub min_segment_m: f32,
    /// Task types to generate. All on by default.
    pub motion_generation: bool,
    pub motion_translation: bool,
    pub motion_prediction: bool,
}

impl Default for ActionConfig {
    fn default() -> Self {
        Self {
            chunk_s: 10.0,
            waypoints_per_s: 4.0,
            min_waypoints: 4,
            min_motion_m: 0.05,
            max_gap_s: 0.5,
            description_segment_s: 2.0,
            min_segment_m: 0.03,
            motion_generation: true,
            motion_translation: true,
            motion_prediction: true,
        }
    }
}

/// Train/test split by clip (held-out clips form Hand3D-test).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitConfig {
    /// Share of clips held out. Default 0.1.
    pub test_fraction: f32,
    /// Seed of the clip hash. Default 0.
    pub seed: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            test_fraction: 0.1,
            seed: 0,
        }
    }
}

fn check(ok: bool, key: &'static str, problem: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Hand3dError::Config {
            key,
            problem: problem(),
        })
    }
}

fn positive(v: f32) -> bool {
    v.is_finite() && v > 0.0
}

impl Config {
    /// Parses JSON (nodes parse YAML through `vipa-node-kit` into the same struct).
    pub fn from_json(text: &str) -> Result<Self> {
        let cfg: Self = serde_json::from_str(text).map_err(|e| Hand3dError::Config {
            key: "(file)",
            problem: format!("{e}; see vipa_hand3d::Config for the keys"),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Rejects values that would make the pipeline meaningless.
    pub fn validate(&self) -> Result<()> {
        let q = &self.qa;
        let a = &self.action;
        check(
            (1..=21).contains(&self.visibility.min_visible_joints),
            "visibility.min_visible_joints",
            || format!("is {}, must be 1..=21", self.visibility.min_visible_joints),
        )?;
        check(
            self.calibration.min_valid_joints >= 1,
            "calibration.min_valid_joints",
            || "must be at least 1".to_owned(),
        )?;
        let off = self.calibration.surface_offset_m;
        check(
            off.is_finite() && (0.0..0.1).contains(&off),
            "calibration.surface_offset_m",
            || format!("is {off}, must be in [0, 0.1) metres"),
        )?;
        check(
            !(self.calibration.joint_thickness_prior && off != 0.0),
            "calibration.surface_offset_m",
            || {
                format!(
                    "is {off} while calibration.joint_thickness_prior is on; they are two models \
                     of the same skin offset, set one"
                )
            },
        )?;
        let cf = self.objects.central_fraction;
        check(cf > 0.0 && cf <= 1.0, "objects.central_fraction", || {
            format!("is {cf}, must be in (0, 1]")
        })?;
        let hm = self.objects.hand_mask_radius_m;
        check(
            hm.is_finite() && (0.0..0.1).contains(&hm),
            "objects.hand_mask_radius_m",
            || format!("is {hm}, must be in [0, 0.1) metres"),
        )?;
        check(
            q.gamma.is_finite() && (0.0..0.577).contains(&q.gamma),
            "qa.gamma",
            || {
                format!(
                    "is {}, must be in [0, 0.577) so every vector gets a word",
                    q.gamma
                )
            },
        )?;
        check(positive(q.sample_fps), "qa.sample_fps", || {
            format!("is {}, must be > 0", q.sample_fps)
        })?;
        check(q.max_context_frames >= 1, "qa.max_context_frames", || {
            "must be ≥ 1".to_owned()
        })?;
        check(q.max_pair_gap >= 1, "qa.max_pair_gap", || {
            "must be ≥ 1".to_owned()
        })?;
        check(
            q.camera_min_deg >= 0.0 && q.camera_min_m >= 0.0,
            "qa.camera_min_deg",
            || "camera thresholds must be ≥ 0".to_owned(),
        )?;
        check(positive(a.chunk_s), "action.chunk_s", || {
            format!("is {}, must be > 0", a.chunk_s)
        })?;
        check(
            positive(a.waypoints_per_s),
            "action.waypoints_per_s",
            || format!("is {}, must be > 0", a.waypoints_per_s),
        )?;
        check(a.min_waypoints >= 2, "action.min_waypoints", || {
            "must be ≥ 2".to_owned()
        })?;
        check(a.min_motion_m >= 0.0, "action.min_motion_m", || {
            "must be ≥ 0".to_owned()
        })?;
        check(positive(a.max_gap_s), "action.max_gap_s", || {
            "must be > 0".to_owned()
        })?;
        check(
            positive(a.description_segment_s),
            "action.description_segment_s",
            || "must be > 0".to_owned(),
        )?;
        let tf = self.split.test_fraction;
        check((0.0..=1.0).contains(&tf), "split.test_fraction", || {
            format!("is {tf}, must be in [0, 1]")
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip_through_json() {
        let c = Config::default();
        c.validate().unwrap();
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(Config::from_json(&text).unwrap(), c);
        // Partial configs fill in defaults.
        let c2 = Config::from_json(r#"{"qa": {"gamma": 0.25}}"#).unwrap();
        assert_eq!(c2.qa.gamma, 0.25);
        assert_eq!(c2.action, ActionConfig::default());
    }

    #[test]
    fn unknown_and_bad_values_are_rejected_with_the_key() {
        let e = Config::from_json(r#"{"qa": {"gama": 0.3}}"#).unwrap_err();
        assert!(e.to_string().contains("gama"), "{e}");
        let e = Config::from_json(r#"{"qa": {"gamma": 0.9}}"#).unwrap_err();
        assert!(e.to_string().contains("qa.gamma"), "{e}");
        let e = Config::from_json(r#"{"split": {"test_fraction": 1.5}}"#).unwrap_err();
        assert!(e.to_string().contains("split.test_fraction"), "{e}");
        // Two models of the same skin offset at once.
        let e = Config::from_json(
            r#"{"calibration": {"surface_offset_m": 0.009, "joint_thickness_prior": true}}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("calibration.surface_offset_m")
                && e.to_string().contains("joint_thickness_prior"),
            "{e}"
        );
        Config::from_json(r#"{"calibration": {"joint_thickness_prior": true}}"#).unwrap();
    }
}
