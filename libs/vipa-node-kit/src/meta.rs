//! Conversion between `vipa_msgs::Metadata` and dora's `MetadataParameters`.
//!
//! `MetaValue` mirrors dora's `Parameter` one to one, so vipa → dora is lossless. dora has one
//! variant vipa does not carry (`Timestamp`, a wall-clock date); [`from_dora`] skips it with a
//! debug log, because the message timestamp vipa relies on travels in `timestamp_ns`, and
//! [`from_dora_strict`] reports it as an error for callers that must not lose keys.

use dora_node_api::{MetadataParameters, Parameter};
use vipa_msgs::{MetaValue, Metadata};

/// A dora metadata value vipa cannot represent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("metadata key `{key}` has dora type {variant}, which vipa messages do not carry")]
pub struct UnsupportedParameter {
    pub key: String,
    pub variant: &'static str,
}

/// vipa metadata → dora parameters (lossless).
pub fn to_dora(meta: &Metadata) -> MetadataParameters {
    meta.iter()
        .map(|(k, v)| (k.clone(), value_to_dora(v)))
        .collect()
}

fn value_to_dora(v: &MetaValue) -> Parameter {
    match v {
        MetaValue::Bool(b) => Parameter::Bool(*b),
        MetaValue::Integer(i) => Parameter::Integer(*i),
        MetaValue::Float(f) => Parameter::Float(*f),
        MetaValue::String(s) => Parameter::String(s.clone()),
        MetaValue::ListInt(l) => Parameter::ListInt(l.clone()),
        MetaValue::ListFloat(l) => Parameter::ListFloat(l.clone()),
        MetaValue::ListString(l) => Parameter::ListString(l.clone()),
    }
}

fn value_from_dora(key: &str, p: &Parameter) -> Result<MetaValue, UnsupportedParameter> {
    Ok(match p {
        Parameter::Bool(b) => MetaValue::Bool(*b),
        Parameter::Integer(i) => MetaValue::Integer(*i),
        Parameter::Float(f) => MetaValue::Float(*f),
        Parameter::String(s) => MetaValue::String(s.clone()),
        Parameter::ListInt(l) => MetaValue::ListInt(l.clone()),
        Parameter::ListFloat(l) => MetaValue::ListFloat(l.clone()),
        Parameter::ListString(l) => MetaValue::ListString(l.clone()),
        Parameter::Timestamp(_) => {
            return Err(UnsupportedParameter {
                key: key.to_owned(),
                variant: "Timestamp",
            });
        }
    })
}

/// dora parameters → vipa metadata; keys of unsupported types are skipped (debug log).
pub fn from_dora(params: &MetadataParameters) -> Metadata {
    let mut meta = Metadata::new();
    for (key, p) in params {
        match value_from_dora(key, p) {
            Ok(v) => {
                meta.insert(key.clone(), v);
            }
            Err(e) => tracing::debug!("skipping metadata: {e}"),
        }
    }
    meta
}

/// dora parameters → vipa metadata; the first key of an unsupported type is an error.
pub fn from_dora_strict(params: &MetadataParameters) -> Result<Metadata, UnsupportedParameter> {
    params
        .iter()
        .map(|(k, p)| Ok((k.clone(), value_from_dora(k, p)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_variant() -> Metadata {
        let mut m = Metadata::new();
        m.insert("b".into(), MetaValue::Bool(true));
        m.insert("i".into(), MetaValue::Integer(-7));
        m.insert("f".into(), MetaValue::Float(0.25));
        m.insert("s".into(), MetaValue::String("rgb8".into()));
        m.insert("li".into(), MetaValue::ListInt(vec![480, 640, 3]));
        m.insert("lf".into(), MetaValue::ListFloat(vec![1.5, -2.0]));
        m.insert(
            "ls".into(),
            MetaValue::ListString(vec!["h".into(), "w".into()]),
        );
        m
    }

    #[test]
    fn round_trip_is_lossless_for_every_variant() {
        let m = every_variant();
        let p = to_dora(&m);
        assert_eq!(p.len(), 7);
        assert_eq!(p.get("li"), Some(&Parameter::ListInt(vec![480, 640, 3])));
        assert_eq!(p.get("s"), Some(&Parameter::String("rgb8".into())));
        assert_eq!(from_dora(&p), m);
        assert_eq!(from_dora_strict(&p).unwrap(), m);
    }

    #[test]
    fn timestamp_is_skipped_or_rejected() {
        let mut p = to_dora(&every_variant());
        p.insert("when".into(), Parameter::Timestamp(Default::default()));
        assert_eq!(from_dora(&p), every_variant());
        let err = from_dora_strict(&p).unwrap_err();
        assert_eq!(err.key, "when");
        assert_eq!(err.variant, "Timestamp");
    }
}
