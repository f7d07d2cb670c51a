//! The one error type of message decoding. Every variant names the payload and the field.

/// Why a received message could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MsgError {
    /// A metadata key the payload needs is absent.
    #[error("{kind}: missing metadata key `{key}`")]
    MissingKey { kind: &'static str, key: String },

    /// A metadata key holds a value of the wrong type or an invalid value.
    #[error("{kind}: metadata key `{key}` {problem}")]
    BadMeta {
        kind: &'static str,
        key: String,
        problem: String,
    },

    /// The Arrow array has the wrong data type.
    #[error("{kind}: field `{field}` expected Arrow type {expected}, got {found}")]
    WrongDtype {
        kind: &'static str,
        field: String,
        expected: String,
        found: String,
    },

    /// The number of elements or the shape does not match what the metadata announces.
    #[error("{kind}: field `{field}` expected shape {expected}, got {found}")]
    WrongShape {
        kind: &'static str,
        field: String,
        expected: String,
        found: String,
    },

    /// The array contains nulls where none are allowed, or another structural problem.
    #[error("{kind}: field `{field}`: {problem}")]
    Invalid {
        kind: &'static str,
        field: String,
        problem: String,
    },
}
