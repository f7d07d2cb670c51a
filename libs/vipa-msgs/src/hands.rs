//! 3D hand poses of one frame: 21 joints per hand in the camera frame, with per-joint
//! confidence and 2D projections.
//!
//! # Joint order
//! MediaPipe / MANO-21 ([`JOINT_NAMES`]): 0 wrist; thumb 1–4 (CMC, MCP, IP, TIP); index 5–8
//! (MCP, PIP, DIP, TIP); middle 9–12; ring 13–16; pinky 17–20.
//!
//! # Wire format
//! A `StructArray` with **one row per hand** (zero rows when no hand is seen), columns:
//!
//! | column | Arrow type | shape per message |
//! |---|---|---|
//! | `side` | `Utf8` (`left` \| `right`) | `[hands]` |
//! | `joints_xyz` | `FixedSizeList<Float32, 63>` | `f32[hands, joints=21, xyz=3]`, metres |
//! | `confidence` | `FixedSizeList<Float32, 21>` | `f32[hands, joints=21]`, in `[0, 1]` |
//! | `joints_uv` | `FixedSizeList<Float32, 42>` | `f32[hands, joints=21, uv=2]`, pixels |
//!
//! Metadata: `kind = "hands"`, `joint_order = "mediapipe21"`, `frame = "camera"`,
//! `units = "m"`, and the [`StreamHeader`] keys. A joint with no estimate has NaN coordinates
//! and confidence 0; `joints_uv` are the projections of `joints_xyz` through the frame's
//! intrinsics (pixel centres at integer coordinates) and may lie outside the image.
//!
//! Hands are small (≈ 500 bytes each), so decoding copies them into fixed-size arrays, which
//! is what every consumer wants to index.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Fields};

use crate::meta::{MetaReader, MetaValue, Metadata, keys, put};
use crate::{MsgError, Payload, StreamHeader, wire};

/// Joints per hand.
pub const NUM_JOINTS: usize = 21;
/// Index of the wrist joint (the root; motion tokens follow it).
pub const WRIST: usize = 0;
/// Indices of the five fingertips, thumb to pinky.
pub const FINGERTIPS: [usize; 5] = [4, 8, 12, 16, 20];

/// Joint names in wire order.
pub const JOINT_NAMES: [&str; NUM_JOINTS] = [
    "wrist",
    "thumb_cmc",
    "thumb_mcp",
    "thumb_ip",
    "thumb_tip",
    "index_mcp",
    "index_pip",
    "index_dip",
    "index_tip",
    "middle_mcp",
    "middle_pip",
    "middle_dip",
    "middle_tip",
    "ring_mcp",
    "ring_pip",
    "ring_dip",
    "ring_tip",
    "pinky_mcp",
    "pinky_pip",
    "pinky_dip",
    "pinky_tip",
];

/// The 20 bones as `(parent, child)` joint indices: each finger is a chain from the wrist.
pub const BONES: [(usize, usize); NUM_JOINTS - 1] = [
    (0, 1),
    (1, 2),
    (2, 3),
    (3, 4),
    (0, 5),
    (5, 6),
    (6, 7),
    (7, 8),
    (0, 9),
    (9, 10),
    (10, 11),
    (11, 12),
    (0, 13),
    (13, 14),
    (14, 15),
    (15, 16),
    (0, 17),
    (17, 18),
    (18, 19),
    (19, 20),
];

/// The palm's cross links, drawn and filled between the finger chains: the knuckle line
/// (index–middle–ring–pinky) first, then the thumb web.
pub const PALM_WEB: [(usize, usize); 6] = [(5, 9), (9, 13), (13, 17), (1, 5), (2, 5), (1, 9)];

/// Value of the `joint_order` metadata key.
pub const JOINT_ORDER: &str = "mediapipe21";
/// Metadata key naming the joint order.
pub const JOINT_ORDER_KEY: &str = "joint_order";

/// Which hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HandSide {
    Left,
    Right,
}

impl HandSide {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::Right => "right",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "left" => Some(Self::Left),
            "right" => Some(Self::Right),
            _ => None,
        }
    }
}

impl std::fmt::Display for HandSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One hand.
///
/// # Shapes
/// `joints_xyz: f32[joints=21, xyz=3]` camera-frame metres; `confidence: f32[joints=21]`;
/// `joints_uv: f32[joints=21, uv=2]` pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Hand {
    pub side: HandSide,
    pub joints_xyz: [[f32; 3]; NUM_JOINTS],
    /// Visibility / confidence per joint in `[0, 1]`; 0 = not visible or no estimate.
    pub confidence: [f32; NUM_JOINTS],
    pub joints_uv: [[f32; 2]; NUM_JOINTS],
}

impl Hand {
    /// The wrist position, camera-frame metres.
    pub fn wrist(&self) -> [f32; 3] {
        self.joints_xyz[WRIST]
    }
}

/// All hands seen in one frame.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HandsMsg {
    pub header: StreamHeader,
    /// In any order; a side may appear more than once (several people).
    pub hands: Vec<Hand>,
}

impl HandsMsg {
    const KIND: &'static str = "hands";

    /// The first hand of `side`, if any.
    pub fn hand(&self, side: HandSide) -> Option<&Hand> {
        self.hands.iter().find(|h| h.side == side)
    }
}

const SIDE: &str = "side";
const JOINTS_XYZ: &str = "joints_xyz";
const CONFIDENCE: &str = "confidence";
const JOINTS_UV: &str = "joints_uv";

impl Payload for HandsMsg {
    const KIND: &'static str = Self::KIND;

    fn to_arrow(&self) -> (ArrayRef, Metadata) {
        let n = self.hands.len();
        let side = StringArray::from_iter_values(self.hands.iter().map(|h| h.side.as_str()));
        let mut xyz = Vec::with_capacity(n * NUM_JOINTS * 3);
        let mut conf = Vec::with_capacity(n * NUM_JOINTS);
        let mut uv = Vec::with_capacity(n * NUM_JOINTS * 2);
        for h in &self.hands {
            xyz.extend(h.joints_xyz.iter().flatten());
            conf.extend(h.confidence);
            uv.extend(h.joints_uv.iter().flatten());
        }
        let fields = Fields::from(vec![
            Field::new(SIDE, DataType::Utf8, false),
            Field::new(JOINTS_XYZ, wire::f32_list_type(NUM_JOINTS * 3), false),
            Field::new(CONFIDENCE, wire::f32_list_type(NUM_JOINTS), false),
            Field::new(JOINTS_UV, wire::f32_list_type(NUM_JOINTS * 2), false),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(side),
            Arc::new(wire::f32_list_array(xyz, NUM_JOINTS * 3, None)),
            Arc::new(wire::f32_list_array(conf, NUM_JOINTS, None)),
            Arc::new(wire::f32_list_array(uv, NUM_JOINTS * 2, None)),
        ];
        let rows = wire::struct_array(fields, columns);

        let mut meta = Metadata::new();
        self.header.write(&mut meta);
        put(&mut meta, keys::KIND, MetaValue::String(Self::KIND.into()));
        put(
            &mut meta,
            JOINT_ORDER_KEY,
            MetaValue::String(JOINT_ORDER.into()),
        );
        wire::write_camera_metric(&mut meta);
        (rows, meta)
    }

    fn from_arrow(array: &dyn Array, meta: &Metadata) -> Result<Self, MsgError> {
        let kind = Self::KIND;
        let r = MetaReader::new(kind, meta);
        let header = StreamHeader::read(kind, meta)?;
        wire::expect_str(&r, JOINT_ORDER_KEY, JOINT_ORDER)?;
        wire::read_camera_metric(&r)?;

        let rows = wire::rows(kind, "hands", array)?;
        let side = wire::column(kind, rows, SIDE, "Utf8")?;
        let side = wire::downcast::<StringArray>(kind, SIDE, side.as_ref(), "Utf8")?;
        wire::no_nulls(kind, SIDE, side)?;
        let xyz = wire::column(kind, rows, JOINTS_XYZ, "FixedSizeList<Float32, 63>")?;
        let (_, xyz) = wire::f32_lists(kind, JOINTS_XYZ, xyz.as_ref(), NUM_JOINTS * 3, false)?;
        let conf = wire::column(kind, rows, CONFIDENCE, "FixedSizeList<Float32, 21>")?;
        let (_, conf) = wire::f32_lists(kind, CONFIDENCE, conf.as_ref(), NUM_JOINTS, false)?;
        let uv = wire::column(kind, rows, JOINTS_UV, "FixedSizeList<Float32, 42>")?;
        let (_, uv) = wire::f32_lists(kind, JOINTS_UV, uv.as_ref(), NUM_JOINTS * 2, false)?;

        let mut hands = Vec::with_capacity(rows.len());
        for i in 0..rows.len() {
            let s = side.value(i);
            let side = HandSide::parse(s).ok_or_else(|| MsgError::Invalid {
                kind,
                field: SIDE.into(),
                problem: format!("row {i}: must be \"left\" or \"right\", got {s:?}"),
            })?;
            let xyz = &xyz[i * NUM_JOINTS * 3..(i + 1) * NUM_JOINTS * 3];
            let conf = &conf[i * NUM_JOINTS..(i + 1) * NUM_JOINTS];
            let uv = &uv[i * NUM_JOINTS * 2..(i + 1) * NUM_JOINTS * 2];
            hands.push(Hand {
                side,
                joints_xyz: std::array::from_fn(|j| [xyz[3 * j], xyz[3 * j + 1], xyz[3 * j + 2]]),
                confidence: std::array::from_fn(|j| conf[j]),
                joints_uv: std::array::from_fn(|j| [uv[2 * j], uv[2 * j + 1]]),
            });
        }
        Ok(Self { header, hands })
    }
}
