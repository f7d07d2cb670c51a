//! Robot state and action chunks: flat `f32` vectors whose dimensions are named.
//!
//! # Wire format
//! Both are tensor-shaped, so a generic [`crate::TensorMsg`] decoder reads them too:
//! - [`RobotState`]: `Float32Array` `f32[state_dim]`; metadata `shape = [state_dim]`,
//!   `dtype = "f32"`, `axes = ["state"]`, `kind = "robot_state"`.
//! - [`ActionChunk`]: `Float32Array` `f32[horizon, action_dim]` row-major (one row per
//!   future step); metadata `shape = [horizon, action_dim]`, `dtype = "f32"`,
//!   `axes = ["horizon", "action"]`, `kind = "action_chunk"`.
//!
//! Both carry `names` (`ListString`, one name per entry of the last axis, e.g.
//! `["eef_dx", …, "gripper"]`) and the [`StreamHeader`] keys. Values are in the robot's own
//! units, unnormalised; normalisation belongs to the policy.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float32Array};

use crate::meta::{MetaReader, MetaValue, Metadata, keys, put};
use crate::{MsgError, Payload, StreamHeader, wire};

/// The robot's proprioceptive state at one step.
///
/// # Shapes
/// `values: f32[state_dim]`, `names: [state_dim]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RobotState {
    pub header: StreamHeader,
    pub names: Vec<String>,
    /// Shares the Arrow buffer it was received in (no copy).
    pub values: Float32Array,
}

/// A chunk of future actions predicted (or recorded) at one step.
///
/// # Shapes
/// `values: f32[horizon, action_dim]`, `names: [action_dim]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionChunk {
    pub header: StreamHeader,
    pub horizon: usize,
    pub names: Vec<String>,
    /// Shares the Arrow buffer it was received in (no copy).
    pub values: Float32Array,
}

const STATE_AXES: [&str; 1] = ["state"];
const ACTION_AXES: [&str; 2] = ["horizon", "action"];

fn check(
    kind: &'static str,
    values: &Float32Array,
    rows: usize,
    names: &[String],
    what: impl FnOnce() -> String,
) -> Result<(), MsgError> {
    wire::no_nulls(kind, "values", values)?;
    let n = wire::numel(kind, "values", &[rows, names.len()])?;
    wire::expect_len(kind, "values", values.len(), n, what)
}

impl RobotState {
    const KIND: &'static str = "robot_state";

    /// Builds a state, checking that there is one name per value and no nulls.
    pub fn new(
        header: StreamHeader,
        names: Vec<String>,
        values: impl Into<Float32Array>,
    ) -> Result<Self, MsgError> {
        let values = values.into();
        check(Self::KIND, &values, 1, &names, || {
            format!("[state_dim={}] (one value per name)", names.len())
        })?;
        Ok(Self {
            header,
            names,
            values,
        })
    }

    pub fn state_dim(&self) -> usize {
        self.names.len()
    }

    /// The values, `f32[state_dim]`.
    pub fn as_slice(&self) -> &[f32] {
        self.values.values()
    }
}

impl ActionChunk {
    const KIND: &'static str = "action_chunk";

    /// Builds a chunk, checking that it holds `horizon × names.len()` values and no nulls.
    pub fn new(
        header: StreamHeader,
        horizon: usize,
        names: Vec<String>,
        values: impl Into<Float32Array>,
    ) -> Result<Self, MsgError> {
        let values = values.into();
        check(Self::KIND, &values, horizon, &names, || {
            format!("[horizon={horizon}, action_dim={}]", names.len())
        })?;
        Ok(Self {
            header,
            horizon,
            names,
            values,
        })
    }

    pub fn action_dim(&self) -> usize {
        self.names.len()
    }

    /// The action of future step `t`, `f32[action_dim]`.
    pub fn step(&self, t: usize) -> Option<&[f32]> {
        let d = self.action_dim();
        self.values.values().get(t * d..(t + 1) * d)
    }

    /// All steps in order.
    pub fn steps(&self) -> impl Iterator<Item = &[f32]> + '_ {
        // `max(1)`: a zero-width action has no steps to yield, and chunks(0) would panic.
        let d = self.action_dim().max(1);
        self.values.values().chunks_exact(d).take(self.horizon)
    }
}

fn encode(
    kind: &'static str,
    header: &StreamHeader,
    shape: &[usize],
    axes: &[&str],
    names: &[String],
    values: &Float32Array,
) -> (ArrayRef, Metadata) {
    let mut meta = Metadata::new();
    header.write(&mut meta);
    put(&mut meta, keys::KIND, MetaValue::String(kind.into()));
    wire::write_tensor_keys(&mut meta, shape, "f32", axes);
    put(
        &mut meta,
        keys::NAMES,
        MetaValue::ListString(names.to_vec()),
    );
    (Arc::new(values.clone()), meta)
}

/// Decodes header, names (which must match the last axis), shape and values.
fn decode(
    kind: &'static str,
    axes: &[&str],
    array: &dyn Array,
    meta: &Metadata,
) -> Result<(StreamHeader, Vec<usize>, Vec<String>, Float32Array), MsgError> {
    let r = MetaReader::new(kind, meta);
    let header = StreamHeader::read(kind, meta)?;
    let shape = wire::read_tensor_keys(&r, "f32", axes, &vec![None; axes.len()])?;
    let names = r.list_string(keys::NAMES)?.to_vec();
    let last = shape.last().copied().unwrap_or(0);
    if names.len() != last {
        return Err(r.bad(
            keys::NAMES,
            format!(
                "must have one name per entry of the last axis ({last}), got {}",
                names.len()
            ),
        ));
    }
    let values = wire::downcast::<Float32Array>(kind, "values", array, "Float32")?;
    Ok((header, shape, names, values.clone()))
}

impl Payload for RobotState {
    const KIND: &'static str = Self::KIND;

    fn to_arrow(&self) -> (ArrayRef, Metadata) {
        let shape = [self.state_dim()];
        encode(
            Self::KIND,
            &self.header,
            &shape,
            &STATE_AXES,
            &self.names,
            &self.values,
        )
    }

    fn from_arrow(array: &dyn Array, meta: &Metadata) -> Result<Self, MsgError> {
        let (header, _, names, values) = decode(Self::KIND, &STATE_AXES, array, meta)?;
        Self::new(header, names, values)
    }
}

impl Payload for ActionChunk {
    const KIND: &'static str = Self::KIND;

    fn to_arrow(&self) -> (ArrayRef, Metadata) {
        let shape = [self.horizon, self.action_dim()];
        encode(
            Self::KIND,
            &self.header,
            &shape,
            &ACTION_AXES,
            &self.names,
            &self.values,
        )
    }

    fn from_arrow(array: &dyn Array, meta: &Metadata) -> Result<Self, MsgError> {
        let (header, shape, names, values) = decode(Self::KIND, &ACTION_AXES, array, meta)?;
        Self::new(header, shape[0], names, values)
    }
}
