//! Motion tokens: wrist waypoints quantised into an axis-specific vocabulary, and the
//! tokenizer math.
//!
//! # Tokenizer (the paper's, §3.2)
//! Each camera-frame waypoint `(x, y, z)` (metres) becomes three tokens, one per axis. Each
//! axis range is cut into `K` uniform bins: `bin = clip(floor((a − lo) / (hi − lo) · K), 0,
//! K − 1)`, decoded at the bin centre `lo + (bin + ½) · (hi − lo) / K`. The paper's box
//! ([`MotionBins::PAPER`]) is x, y ∈ [−0.5, 0.5] m, z ∈ [0, 1] m, K = 1024 — a 1 m³ cube in
//! front of the camera, bin width 1/1024 m ≈ 0.98 mm, so the round-trip error inside the box
//! is at most half a bin (≈ 0.49 mm). Points outside are clipped to the edge bins, never
//! wrapped.
//!
//! The vocabulary is **axis-specific**: bin `b` of x, y and z are three different tokens. On the
//! wire a token is just its bin (`0..K`), its axis given by its column; an LLM that puts the
//! three axes in one vocabulary uses [`MotionBins::vocab_id`] (`axis · K + bin`).
//!
//! # Wire format
//! [`MotionTokens`]: `UInt32Array` `u32[waypoints, xyz=3]` row-major (the paper's sequence
//! `m_x1, m_y1, m_z1, …, m_xt, m_yt, m_zt`); metadata `shape = [waypoints, 3]`,
//! `dtype = "u32"`, `axes = ["waypoints", "xyz"]`, `side` (`left` | `right`),
//! `sample_rate_hz` (waypoints per second), `bins` (K), `x_range`, `y_range`, `z_range`
//! (`ListFloat` `[lo, hi]` metres), `frame = "camera"`, `units = "m"`, `kind = "motion_tokens"`,
//! and the [`StreamHeader`] keys (the frame the trajectory starts at).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, UInt32Array};

use crate::hands::HandSide;
use crate::meta::{MetaReader, MetaValue, Metadata, keys, put};
use crate::{MsgError, Payload, StreamHeader, wire};

/// One of the three motion axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Axis {
    X,
    Y,
    Z,
}

impl Axis {
    pub const ALL: [Self; 3] = [Self::X, Self::Y, Self::Z];

    /// 0, 1, 2 for x, y, z.
    pub fn index(self) -> usize {
        match self {
            Self::X => 0,
            Self::Y => 1,
            Self::Z => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::X => "x",
            Self::Y => "y",
            Self::Z => "z",
        }
    }
}

/// The quantisation box of the motion tokenizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotionBins {
    /// `[lo, hi]` of x in metres (camera frame, right).
    pub x: [f32; 2],
    /// `[lo, hi]` of y in metres (camera frame, down).
    pub y: [f32; 2],
    /// `[lo, hi]` of z in metres (camera frame, forward).
    pub z: [f32; 2],
    /// Bins per axis (`K`).
    pub bins: u32,
}

impl Default for MotionBins {
    fn default() -> Self {
        Self::PAPER
    }
}

impl MotionBins {
    const KIND: &'static str = "motion_tokens";

    /// The paper's tokenizer: x, y ∈ [−0.5, 0.5] m, z ∈ [0, 1] m, K = 1024.
    pub const PAPER: Self = Self {
        x: [-0.5, 0.5],
        y: [-0.5, 0.5],
        z: [0.0, 1.0],
        bins: 1024,
    };

    /// Builds a tokenizer box, checking that every range is finite with `lo < hi` and
    /// `bins >= 1`.
    pub fn new(x: [f32; 2], y: [f32; 2], z: [f32; 2], bins: u32) -> Result<Self, MsgError> {
        let b = Self { x, y, z, bins };
        b.validate()?;
        Ok(b)
    }

    /// Checks the invariants [`Self::new`] checks.
    pub fn validate(&self) -> Result<(), MsgError> {
        for axis in Axis::ALL {
            let [lo, hi] = self.range(axis);
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(MsgError::Invalid {
                    kind: Self::KIND,
                    field: range_key(axis).into(),
                    problem: format!("need finite lo < hi, got [{lo}, {hi}]"),
                });
            }
        }
        if self.bins == 0 {
            return Err(MsgError::Invalid {
                kind: Self::KIND,
                field: BINS.into(),
                problem: "need at least 1 bin".into(),
            });
        }
        Ok(())
    }

    /// `[lo, hi]` of `axis`.
    pub fn range(&self, axis: Axis) -> [f32; 2] {
        match axis {
            Axis::X => self.x,
            Axis::Y => self.y,
            Axis::Z => self.z,
        }
    }

    /// Width of one bin of `axis`, metres.
    pub fn bin_width(&self, axis: Axis) -> f64 {
        let [lo, hi] = self.range(axis);
        (f64::from(hi) - f64::from(lo)) / f64::from(self.bins)
    }

    /// The bin of coordinate `v` on `axis`, clipped to `0..bins`. NaN maps to bin 0; use
    /// [`Self::encode_checked`] to refuse non-finite input instead.
    pub fn encode_axis(&self, axis: Axis, v: f32) -> u32 {
        let [lo, hi] = self.range(axis);
        let (lo, hi) = (f64::from(lo), f64::from(hi));
        let k = f64::from(self.bins);
        // f64 so that a coordinate exactly on a bin edge lands in the bin above it.
        let t = ((f64::from(v) - lo) / (hi - lo) * k).floor();
        // `as` saturates (and maps NaN to 0), then the clamp keeps `hi` itself in the top bin.
        (t.max(0.0) as u32).min(self.bins.saturating_sub(1))
    }

    /// The centre of bin `bin` on `axis`; ids past the top bin decode as the top bin.
    pub fn decode_axis(&self, axis: Axis, bin: u32) -> f32 {
        let lo = f64::from(self.range(axis)[0]);
        let bin = bin.min(self.bins.saturating_sub(1));
        (lo + (f64::from(bin) + 0.5) * self.bin_width(axis)) as f32
    }

    /// Tokens of one waypoint, each axis clipped into its range.
    pub fn encode(&self, xyz: [f32; 3]) -> [u32; 3] {
        Axis::ALL.map(|a| self.encode_axis(a, xyz[a.index()]))
    }

    /// Like [`Self::encode`], but `None` if a coordinate is NaN or infinite.
    pub fn encode_checked(&self, xyz: [f32; 3]) -> Option<[u32; 3]> {
        xyz.iter().all(|v| v.is_finite()).then(|| self.encode(xyz))
    }

    /// The waypoint at the centres of the three bins.
    pub fn decode(&self, tokens: [u32; 3]) -> [f32; 3] {
        Axis::ALL.map(|a| self.decode_axis(a, tokens[a.index()]))
    }

    /// Whether `xyz` lies inside the box (no clipping happens when encoding it).
    pub fn contains(&self, xyz: [f32; 3]) -> bool {
        Axis::ALL.iter().all(|&a| {
            let [lo, hi] = self.range(a);
            (lo..=hi).contains(&xyz[a.index()])
        })
    }

    /// Size of a vocabulary holding all three axes' bins: `3 · K`.
    pub fn vocab_size(&self) -> u32 {
        self.bins.saturating_mul(3)
    }

    /// Id of (`axis`, `bin`) in a `3 · K` vocabulary: x bins first, then y, then z. Bins past
    /// the top clamp to the top bin, as in [`Self::decode_axis`].
    pub fn vocab_id(&self, axis: Axis, bin: u32) -> u32 {
        (axis.index() as u32)
            .saturating_mul(self.bins)
            .saturating_add(bin.min(self.bins.saturating_sub(1)))
    }

    /// Inverse of [`Self::vocab_id`]; `None` for ids past `3 · K`.
    pub fn from_vocab_id(&self, id: u32) -> Option<(Axis, u32)> {
        let axis = *Axis::ALL.get((id / self.bins.max(1)) as usize)?;
        Some((axis, id % self.bins.max(1)))
    }
}

/// A tokenized wrist trajectory of one hand.
///
/// # Shapes
/// `tokens: u32[waypoints, xyz=3]`, each entry a bin in `0..bins.bins`.
#[derive(Debug, Clone, PartialEq)]
pub struct MotionTokens {
    pub header: StreamHeader,
    pub side: HandSide,
    /// Waypoints per second.
    pub sample_rate_hz: f64,
    pub bins: MotionBins,
    /// Shares the Arrow buffer it was received in (no copy).
    pub tokens: UInt32Array,
}

const SIDE: &str = "side";
const SAMPLE_RATE_HZ: &str = "sample_rate_hz";
const BINS: &str = "bins";
const AXES: [&str; 2] = ["waypoints", "xyz"];

fn range_key(axis: Axis) -> &'static str {
    match axis {
        Axis::X => "x_range",
        Axis::Y => "y_range",
        Axis::Z => "z_range",
    }
}

impl MotionTokens {
    const KIND: &'static str = MotionBins::KIND;

    /// Builds a message, checking the tokenizer box, the sample rate, the length (a multiple
    /// of 3), and that every token is a valid bin.
    pub fn new(
        header: StreamHeader,
        side: HandSide,
        sample_rate_hz: f64,
        bins: MotionBins,
        tokens: impl Into<UInt32Array>,
    ) -> Result<Self, MsgError> {
        let kind = Self::KIND;
        let tokens = tokens.into();
        bins.validate()?;
        if !(sample_rate_hz.is_finite() && sample_rate_hz > 0.0) {
            return Err(MsgError::Invalid {
                kind,
                field: SAMPLE_RATE_HZ.into(),
                problem: format!("must be finite and > 0, got {sample_rate_hz}"),
            });
        }
        wire::no_nulls(kind, "tokens", &tokens)?;
        if tokens.len() % 3 != 0 {
            return Err(MsgError::WrongShape {
                kind,
                field: "tokens".into(),
                expected: "[waypoints, xyz=3] (a multiple of 3 values)".into(),
                found: format!("{} values", tokens.len()),
            });
        }
        if let Some(i) = tokens.values().iter().position(|&t| t >= bins.bins) {
            return Err(MsgError::Invalid {
                kind,
                field: "tokens".into(),
                problem: format!(
                    "token {} at waypoint {}, axis {} is not a bin (0..{})",
                    tokens.value(i),
                    i / 3,
                    Axis::ALL[i % 3].as_str(),
                    bins.bins
                ),
            });
        }
        Ok(Self {
            header,
            side,
            sample_rate_hz,
            bins,
            tokens,
        })
    }

    /// Tokenizes camera-frame waypoints (metres) with `bins`. Non-finite coordinates are
    /// refused rather than silently put in bin 0.
    pub fn from_waypoints(
        header: StreamHeader,
        side: HandSide,
        sample_rate_hz: f64,
        bins: MotionBins,
        waypoints: &[[f32; 3]],
    ) -> Result<Self, MsgError> {
        let mut tokens = Vec::with_capacity(waypoints.len() * 3);
        for (i, &p) in waypoints.iter().enumerate() {
            let t = bins.encode_checked(p).ok_or_else(|| MsgError::Invalid {
                kind: Self::KIND,
                field: "waypoints".into(),
                problem: format!("waypoint {i} is not finite: {p:?}"),
            })?;
            tokens.extend(t);
        }
        Self::new(header, side, sample_rate_hz, bins, tokens)
    }

    /// Number of waypoints.
    pub fn waypoints(&self) -> usize {
        self.tokens.len() / 3
    }

    /// The tokens of waypoint `i`.
    pub fn token(&self, i: usize) -> Option<[u32; 3]> {
        let t = self.tokens.values().get(3 * i..3 * i + 3)?;
        Some([t[0], t[1], t[2]])
    }

    /// The token triples, in time order.
    pub fn triples(&self) -> impl Iterator<Item = [u32; 3]> + '_ {
        self.tokens
            .values()
            .chunks_exact(3)
            .map(|t| [t[0], t[1], t[2]])
    }

    /// The waypoints at bin centres, camera-frame metres.
    pub fn decode_waypoints(&self) -> Vec<[f32; 3]> {
        self.triples().map(|t| self.bins.decode(t)).collect()
    }

    /// The flat sequence of ids in a `3 · K` vocabulary (see [`MotionBins::vocab_id`]).
    pub fn vocab_ids(&self) -> Vec<u32> {
        self.tokens
            .values()
            .iter()
            .enumerate()
            .map(|(i, &b)| self.bins.vocab_id(Axis::ALL[i % 3], b))
            .collect()
    }
}

impl Payload for MotionTokens {
    const KIND: &'static str = Self::KIND;

    fn to_arrow(&self) -> (ArrayRef, Metadata) {
        let mut meta = Metadata::new();
        self.header.write(&mut meta);
        put(&mut meta, keys::KIND, MetaValue::String(Self::KIND.into()));
        wire::write_tensor_keys(&mut meta, &[self.waypoints(), 3], "u32", &AXES);
        put(
            &mut meta,
            SIDE,
            MetaValue::String(self.side.as_str().into()),
        );
        put(
            &mut meta,
            SAMPLE_RATE_HZ,
            MetaValue::Float(self.sample_rate_hz),
        );
        put(&mut meta, BINS, MetaValue::Integer(self.bins.bins.into()));
        for axis in Axis::ALL {
            let range = self.bins.range(axis).map(f64::from).to_vec();
            put(&mut meta, range_key(axis), MetaValue::ListFloat(range));
        }
        wire::write_camera_metric(&mut meta);
        (Arc::new(self.tokens.clone()), meta)
    }

    fn from_arrow(array: &dyn Array, meta: &Metadata) -> Result<Self, MsgError> {
        let kind = Self::KIND;
        let r = MetaReader::new(kind, meta);
        let header = StreamHeader::read(kind, meta)?;
        wire::read_camera_metric(&r)?;
        let shape = wire::read_tensor_keys(&r, "u32", &AXES, &[None, Some(3)])?;
        let s = r.str(SIDE)?;
        let side = HandSide::parse(s)
            .ok_or_else(|| r.bad(SIDE, format!("must be \"left\" or \"right\", got {s:?}")))?;
        let sample_rate_hz = r.float(SAMPLE_RATE_HZ)?;
        let bins = r.dim(BINS)?;
        let mut ranges = [[0.0f32; 2]; 3];
        for axis in Axis::ALL {
            let key = range_key(axis);
            match r.list_float(key)? {
                &[lo, hi] => ranges[axis.index()] = [lo as f32, hi as f32],
                other => return Err(r.bad(key, format!("must be [lo, hi], got {other:?}"))),
            }
        }
        let bins = MotionBins::new(ranges[0], ranges[1], ranges[2], bins)?;
        let tokens = wire::downcast::<UInt32Array>(kind, "tokens", array, "UInt32")?;
        let n = wire::numel(kind, "tokens", &shape)?;
        wire::expect_len(kind, "tokens", tokens.len(), n, || {
            format!("[waypoints={}, xyz=3]", shape[0])
        })?;
        Self::new(header, side, sample_rate_hz, bins, tokens.clone())
    }
}
