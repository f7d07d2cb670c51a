//! Decoding helpers shared by the payload modules: checked downcasts, null checks, checked
//! shapes and fixed-size-list columns. Each helper turns a mismatch into a [`MsgError`] that
//! names the payload kind and the field, so the payload modules stay short.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, FixedSizeListArray, Float32Array, ListArray,
    PrimitiveArray, StringArray, StructArray, new_empty_array,
};
use arrow::buffer::NullBuffer;
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields};

use crate::MsgError;
use crate::meta::{CAMERA_FRAME, METRES, MetaReader, MetaValue, Metadata, keys, put};

/// Downcasts `array` to `T`, or names the field and both types.
pub(crate) fn downcast<'a, T: Array + 'static>(
    kind: &'static str,
    field: &str,
    array: &'a dyn Array,
    expected: &str,
) -> Result<&'a T, MsgError> {
    array
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| MsgError::WrongDtype {
            kind,
            field: field.to_owned(),
            expected: expected.to_owned(),
            found: array.data_type().to_string(),
        })
}

/// Rejects arrays with null slots.
pub(crate) fn no_nulls(kind: &'static str, field: &str, array: &dyn Array) -> Result<(), MsgError> {
    if array.null_count() > 0 {
        return Err(MsgError::Invalid {
            kind,
            field: field.to_owned(),
            problem: format!("{} null values where none are allowed", array.null_count()),
        });
    }
    Ok(())
}

/// Checks that `len == expected`; `what` describes the expected shape (`"[h, w] = [4, 5]"`).
pub(crate) fn expect_len(
    kind: &'static str,
    field: &str,
    len: usize,
    expected: usize,
    what: impl FnOnce() -> String,
) -> Result<(), MsgError> {
    if len != expected {
        return Err(MsgError::WrongShape {
            kind,
            field: field.to_owned(),
            expected: format!("{} = {expected} values", what()),
            found: format!("{len} values"),
        });
    }
    Ok(())
}

/// The element count of `shape`, or an error if it overflows `usize` (a corrupt or hostile
/// `shape` key must not panic the receiver).
pub(crate) fn numel(kind: &'static str, field: &str, shape: &[usize]) -> Result<usize, MsgError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| MsgError::WrongShape {
            kind,
            field: field.to_owned(),
            expected: "a shape whose element count fits in memory".into(),
            found: format!("{shape:?}"),
        })
}

/// A named column of a struct array, or a `WrongDtype` error naming the missing column.
pub(crate) fn column<'a>(
    kind: &'static str,
    rows: &'a StructArray,
    name: &str,
    expected: &str,
) -> Result<&'a ArrayRef, MsgError> {
    rows.column_by_name(name)
        .ok_or_else(|| MsgError::WrongDtype {
            kind,
            field: name.to_owned(),
            expected: format!("a struct column `{name}` of type {expected}"),
            found: format!("no such column in {}", rows.data_type()),
        })
}

/// The payload's top-level struct array (one row per item), rejecting null rows.
pub(crate) fn rows<'a>(
    kind: &'static str,
    field: &str,
    array: &'a dyn Array,
) -> Result<&'a StructArray, MsgError> {
    let rows = downcast::<StructArray>(kind, field, array, "Struct (one row per item)")?;
    no_nulls(kind, field, rows)?;
    Ok(rows)
}

/// A `FixedSizeList<Float32, size>` column, returned with its flat values (`rows * size`
/// floats, row-major, no copy). Null list slots are allowed only when `nullable`; the values
/// under them are unspecified. Null floats inside the lists are never allowed.
pub(crate) fn f32_lists<'a>(
    kind: &'static str,
    field: &str,
    array: &'a dyn Array,
    size: usize,
    nullable: bool,
) -> Result<(&'a FixedSizeListArray, &'a [f32]), MsgError> {
    let expected = || format!("FixedSizeList<Float32, {size}>");
    let lists = downcast::<FixedSizeListArray>(kind, field, array, &expected())?;
    if lists.value_length() as usize != size {
        return Err(MsgError::WrongShape {
            kind,
            field: field.to_owned(),
            expected: format!("{size} values per row"),
            found: format!("{} values per row", lists.value_length()),
        });
    }
    if !nullable {
        no_nulls(kind, field, lists)?;
    }
    let values = downcast::<Float32Array>(kind, field, lists.values().as_ref(), &expected())?;
    no_nulls(kind, field, values)?;
    let n = lists.len() * size;
    // `FixedSizeListArray::slice` slices its child, so row 0 starts at child index 0.
    let flat = values
        .values()
        .get(..n)
        .ok_or_else(|| MsgError::WrongShape {
            kind,
            field: field.to_owned(),
            expected: format!("{n} child values for {} rows", lists.len()),
            found: format!("{} child values", values.len()),
        })?;
    Ok((lists, flat))
}

/// Builds a `FixedSizeList<Float32, size>` column from flat row-major values.
pub(crate) fn f32_list_array(
    values: Vec<f32>,
    size: usize,
    nulls: Option<NullBuffer>,
) -> FixedSizeListArray {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    // Infallible for our callers: `values.len()` is always `rows * size` and `nulls`, if any,
    // has one slot per row. Fall back to an empty list rather than panic.
    let size_i32 = i32::try_from(size).unwrap_or(i32::MAX);
    FixedSizeListArray::try_new(
        item.clone(),
        size_i32,
        Arc::new(Float32Array::from(values)),
        nulls,
    )
    .unwrap_or_else(|_| FixedSizeListArray::new_null(item, size_i32, 0))
}

/// The data type of a `FixedSizeList<Float32, size>` column, for struct schemas.
pub(crate) fn f32_list_type(size: usize) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new("item", DataType::Float32, false)),
        i32::try_from(size).unwrap_or(i32::MAX),
    )
}

/// Requires the string key `key` to equal `expected`.
pub(crate) fn expect_str(r: &MetaReader<'_>, key: &str, expected: &str) -> Result<(), MsgError> {
    let found = r.str(key)?;
    if found != expected {
        return Err(r.bad(key, format!("must be {expected:?}, got {found:?}")));
    }
    Ok(())
}

/// Writes `frame = "camera"` and `units = "m"`.
pub(crate) fn write_camera_metric(meta: &mut Metadata) {
    put(meta, keys::FRAME, MetaValue::String(CAMERA_FRAME.into()));
    put(meta, keys::UNITS, MetaValue::String(METRES.into()));
}

/// Requires `frame = "camera"` and `units = "m"`: 3D data in any other frame or unit would be
/// silently misread, so it is refused.
pub(crate) fn read_camera_metric(r: &MetaReader<'_>) -> Result<(), MsgError> {
    expect_str(r, keys::FRAME, CAMERA_FRAME)?;
    expect_str(r, keys::UNITS, METRES)
}

/// Writes the tensor keys (`shape`, `dtype`, `axes`), so that a generic [`crate::TensorMsg`]
/// decoder can also read the payload.
pub(crate) fn write_tensor_keys(meta: &mut Metadata, shape: &[usize], dtype: &str, axes: &[&str]) {
    put(
        meta,
        keys::SHAPE,
        MetaValue::ListInt(
            shape
                .iter()
                .map(|&d| i64::try_from(d).unwrap_or(i64::MAX))
                .collect(),
        ),
    );
    put(meta, keys::DTYPE, MetaValue::String(dtype.into()));
    put(
        meta,
        keys::AXES,
        MetaValue::ListString(axes.iter().map(|a| (*a).to_owned()).collect()),
    );
}

/// Reads and checks the tensor keys of a payload with fixed `dtype` and axis names; returns
/// the shape. Axis sizes given in `fixed` (e.g. `Some(3)` for `xyz`) must match too.
pub(crate) fn read_tensor_keys(
    r: &MetaReader<'_>,
    dtype: &str,
    axes: &[&str],
    fixed: &[Option<usize>],
) -> Result<Vec<usize>, MsgError> {
    expect_str(r, keys::DTYPE, dtype)?;
    let found_axes = r.list_string(keys::AXES)?;
    if found_axes.len() != axes.len() || found_axes.iter().zip(axes).any(|(a, b)| a != b) {
        return Err(r.bad(keys::AXES, format!("must be {axes:?}, got {found_axes:?}")));
    }
    let shape = r.shape(keys::SHAPE)?;
    let matches = shape.len() == axes.len()
        && shape
            .iter()
            .zip(fixed)
            .all(|(&d, f)| f.is_none_or(|f| f == d));
    if !matches {
        let want: Vec<String> = axes
            .iter()
            .zip(fixed)
            .map(|(a, f)| f.map_or_else(|| (*a).to_owned(), |f| format!("{a}={f}")))
            .collect();
        return Err(r.bad(
            keys::SHAPE,
            format!("must be [{}], got {shape:?}", want.join(", ")),
        ));
    }
    Ok(shape)
}

/// Builds a struct array from columns that the caller built to match `fields` (same count,
/// types and lengths). A mismatch would be a bug in this crate; it yields an empty array of
/// the right type (which the round-trip tests would catch) rather than a panic.
pub(crate) fn struct_array(fields: Fields, columns: Vec<ArrayRef>) -> ArrayRef {
    match StructArray::try_new(fields.clone(), columns, None) {
        Ok(rows) => Arc::new(rows),
        Err(_) => new_empty_array(&DataType::Struct(fields)),
    }
}

/// A non-null `Utf8` column of a struct array.
pub(crate) fn str_column<'a>(
    kind: &'static str,
    rows: &'a StructArray,
    name: &str,
) -> Result<&'a StringArray, MsgError> {
    let col = column(kind, rows, name, "Utf8")?;
    let col = downcast::<StringArray>(kind, name, col.as_ref(), "Utf8")?;
    no_nulls(kind, name, col)?;
    Ok(col)
}

/// A primitive column of a struct array; nulls allowed only when `nullable`.
pub(crate) fn prim_column<'a, T: ArrowPrimitiveType>(
    kind: &'static str,
    rows: &'a StructArray,
    name: &str,
    expected: &str,
    nullable: bool,
) -> Result<&'a PrimitiveArray<T>, MsgError> {
    let col = column(kind, rows, name, expected)?;
    let col = downcast::<PrimitiveArray<T>>(kind, name, col.as_ref(), expected)?;
    if !nullable {
        no_nulls(kind, name, col)?;
    }
    Ok(col)
}

/// A `List<primitive>` column of a struct array with its flat child values; null lists are
/// allowed only when `nullable`, null items never.
pub(crate) fn prim_lists<'a, T: ArrowPrimitiveType>(
    kind: &'static str,
    rows: &'a StructArray,
    name: &str,
    expected: &str,
    nullable: bool,
) -> Result<(&'a ListArray, &'a [T::Native]), MsgError> {
    let col = column(kind, rows, name, expected)?;
    let lists = downcast::<ListArray>(kind, name, col.as_ref(), expected)?;
    if !nullable {
        no_nulls(kind, name, lists)?;
    }
    let values = downcast::<PrimitiveArray<T>>(kind, name, lists.values().as_ref(), expected)?;
    no_nulls(kind, name, values)?;
    Ok((lists, values.values()))
}

/// Row `i` of a list column (offsets index the child values directly).
pub(crate) fn list_row<'a, N>(
    kind: &'static str,
    name: &str,
    lists: &ListArray,
    values: &'a [N],
    i: usize,
) -> Result<&'a [N], MsgError> {
    let offsets = lists.value_offsets();
    let range = offsets
        .get(i)
        .zip(offsets.get(i + 1))
        .and_then(|(&a, &b)| Some(usize::try_from(a).ok()?..usize::try_from(b).ok()?));
    range
        .and_then(|r| values.get(r))
        .ok_or_else(|| MsgError::Invalid {
            kind,
            field: name.to_owned(),
            problem: format!("row {i}: list offsets out of range"),
        })
}

/// Builds a `List<primitive>` column (non-nullable items) from optional rows.
pub(crate) fn prim_list_array<T: ArrowPrimitiveType>(rows: &[Option<Vec<T::Native>>]) -> ListArray {
    let mut offsets = Vec::with_capacity(rows.len() + 1);
    let mut flat = Vec::new();
    offsets.push(0i32);
    for r in rows {
        if let Some(r) = r {
            flat.extend_from_slice(r);
        }
        offsets.push(i32::try_from(flat.len()).unwrap_or(i32::MAX));
    }
    let item = Arc::new(Field::new("item", T::DATA_TYPE, false));
    let nulls = rows
        .iter()
        .any(Option::is_none)
        .then(|| NullBuffer::from_iter(rows.iter().map(Option::is_some)));
    ListArray::try_new(
        item.clone(),
        OffsetBuffer::new(offsets.into()),
        Arc::new(PrimitiveArray::<T>::from_iter_values(flat)),
        nulls,
    )
    // Only reachable past 2^31 values per column, far beyond any message.
    .unwrap_or_else(|_| ListArray::new_null(item, 0))
}

/// The data type of a `List<primitive>` column with non-nullable items.
pub(crate) fn prim_list_type<T: ArrowPrimitiveType>() -> DataType {
    DataType::List(Arc::new(Field::new("item", T::DATA_TYPE, false)))
}
