//! Dense tensors (encoder features, point maps, depth): a flat primitive array plus `shape`,
//! `dtype` and named `axes`.
//!
//! # Wire format
//! - array: a flat primitive array (`Float32Array`, `UInt8Array`, ...) of `prod(shape)` values,
//!   row-major. `bf16`/`f16` travel as `UInt16Array` bit patterns with `dtype` saying which.
//! - metadata: `shape: ListInt`, `dtype: String`, `axes: ListString` (one name per axis), plus
//!   the [`StreamHeader`] keys.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float32Array, Float64Array, Int32Array, Int64Array, UInt8Array, UInt16Array,
    UInt32Array,
};

use crate::meta::{MetaReader, MetaValue, Metadata, keys, put};
use crate::{MsgError, Payload, StreamHeader};

/// Element type of a [`TensorMsg`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    U8,
    U32,
    I32,
    I64,
    F32,
    F64,
    /// bfloat16 bit patterns in a `UInt16Array`.
    BF16,
    /// IEEE half bit patterns in a `UInt16Array`.
    F16,
}

impl DType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::U8 => "u8",
            Self::U32 => "u32",
            Self::I32 => "i32",
            Self::I64 => "i64",
            Self::F32 => "f32",
            Self::F64 => "f64",
            Self::BF16 => "bf16",
            Self::F16 => "f16",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "u8" => Self::U8,
            "u32" => Self::U32,
            "i32" => Self::I32,
            "i64" => Self::I64,
            "f32" => Self::F32,
            "f64" => Self::F64,
            "bf16" => Self::BF16,
            "f16" => Self::F16,
            _ => return None,
        })
    }

    /// Whether `array`'s Arrow type is the carrier of this dtype.
    fn matches(self, array: &dyn Array) -> bool {
        let any = array.as_any();
        match self {
            Self::U8 => any.is::<UInt8Array>(),
            Self::U32 => any.is::<UInt32Array>(),
            Self::I32 => any.is::<Int32Array>(),
            Self::I64 => any.is::<Int64Array>(),
            Self::F32 => any.is::<Float32Array>(),
            Self::F64 => any.is::<Float64Array>(),
            Self::BF16 | Self::F16 => any.is::<UInt16Array>(),
        }
    }

    fn carrier(self) -> &'static str {
        match self {
            Self::U8 => "UInt8",
            Self::U32 => "UInt32",
            Self::I32 => "Int32",
            Self::I64 => "Int64",
            Self::F32 => "Float32",
            Self::F64 => "Float64",
            Self::BF16 | Self::F16 => "UInt16",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dense tensor message.
///
/// # Shapes
/// `values: dtype[shape...]`, row-major, with `axes[i]` naming `shape[i]`
/// (e.g. `tokens_3d: f32[frames=1, tokens=730, channels=768]`).
#[derive(Debug, Clone)]
pub struct TensorMsg {
    pub header: StreamHeader,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub axes: Vec<String>,
    /// The flat values; shares the received Arrow buffer.
    pub values: ArrayRef,
}

// Written out because `#[derive(PartialEq)]` cannot compare `Arc<dyn Array>` fields.
impl PartialEq for TensorMsg {
    fn eq(&self, other: &Self) -> bool {
        self.header == other.header
            && self.dtype == other.dtype
            && self.shape == other.shape
            && self.axes == other.axes
            && self.values.as_ref() == other.values.as_ref()
    }
}

impl TensorMsg {
    const KIND: &'static str = "tensor";

    /// Builds a tensor message, checking dtype, element count and axis names.
    pub fn new(
        header: StreamHeader,
        shape: Vec<usize>,
        axes: Vec<String>,
        dtype: DType,
        values: ArrayRef,
    ) -> Result<Self, MsgError> {
        if !dtype.matches(values.as_ref()) {
            return Err(MsgError::WrongDtype {
                kind: Self::KIND,
                field: "values".into(),
                expected: format!("{} (carrier of {dtype})", dtype.carrier()),
                found: values.data_type().to_string(),
            });
        }
        // Checked: a corrupt `shape` key must give an error, not an overflow panic.
        let numel = crate::wire::numel(Self::KIND, "shape", &shape)?;
        if numel != values.len() {
            return Err(MsgError::WrongShape {
                kind: Self::KIND,
                field: "values".into(),
                expected: format!("{shape:?} = {numel} values"),
                found: format!("{} values", values.len()),
            });
        }
        if axes.len() != shape.len() {
            return Err(MsgError::WrongShape {
                kind: Self::KIND,
                field: "axes".into(),
                expected: format!("{} axis names for shape {shape:?}", shape.len()),
                found: format!("{axes:?}"),
            });
        }
        if values.null_count() > 0 {
            return Err(MsgError::Invalid {
                kind: Self::KIND,
                field: "values".into(),
                problem: format!("{} null values", values.null_count()),
            });
        }
        Ok(Self {
            header,
            dtype,
            shape,
            axes,
            values,
        })
    }

    /// Shorthand for an `f32` tensor from owned values.
    pub fn from_f32(
        header: StreamHeader,
        shape: Vec<usize>,
        axes: &[&str],
        values: Vec<f32>,
    ) -> Result<Self, MsgError> {
        let axes = axes.iter().map(|a| (*a).to_owned()).collect();
        Self::new(
            header,
            shape,
            axes,
            DType::F32,
            Arc::new(Float32Array::from(values)),
        )
    }

    /// The values as `f32`, if that is the dtype.
    pub fn f32_values(&self) -> Result<&[f32], MsgError> {
        self.values
            .as_any()
            .downcast_ref::<Float32Array>()
            .map(|a| a.values().as_ref())
            .ok_or_else(|| MsgError::WrongDtype {
                kind: Self::KIND,
                field: "values".into(),
                expected: "Float32".into(),
                found: self.values.data_type().to_string(),
            })
    }

    /// Checks that the tensor has exactly these axis names (in order); returns the shape.
    pub fn expect_axes(&self, axes: &[&str]) -> Result<&[usize], MsgError> {
        if self.axes.len() != axes.len() || self.axes.iter().zip(axes).any(|(a, b)| a != b) {
            return Err(MsgError::WrongShape {
                kind: Self::KIND,
                field: "axes".into(),
                expected: format!("{axes:?}"),
                found: format!("{:?}", self.axes),
            });
        }
        Ok(&self.shape)
    }
}

impl Payload for TensorMsg {
    const KIND: &'static str = Self::KIND;

    fn to_arrow(&self) -> (ArrayRef, Metadata) {
        let mut meta = Metadata::new();
        self.header.write(&mut meta);
        put(&mut meta, keys::KIND, MetaValue::String(Self::KIND.into()));
        put(
            &mut meta,
            keys::SHAPE,
            MetaValue::ListInt(self.shape.iter().map(|&d| d as i64).collect()),
        );
        put(
            &mut meta,
            keys::DTYPE,
            MetaValue::String(self.dtype.as_str().into()),
        );
        put(
            &mut meta,
            keys::AXES,
            MetaValue::ListString(self.axes.clone()),
        );
        (self.values.clone(), meta)
    }

    fn from_arrow(array: &dyn Array, meta: &Metadata) -> Result<Self, MsgError> {
        let r = MetaReader::new(Self::KIND, meta);
        let header = StreamHeader::read(Self::KIND, meta)?;
        let shape = r.shape(keys::SHAPE)?;
        let dtype_s = r.str(keys::DTYPE)?;
        let dtype = DType::parse(dtype_s).ok_or_else(|| MsgError::BadMeta {
            kind: Self::KIND,
            key: keys::DTYPE.into(),
            problem: format!("unknown dtype {dtype_s:?} (u8, u32, i32, i64, f32, f64, bf16, f16)"),
        })?;
        let axes = r.list_string(keys::AXES)?.to_vec();
        Self::new(
            header,
            shape,
            axes,
            dtype,
            arrow::array::make_array(array.to_data()),
        )
    }
}
