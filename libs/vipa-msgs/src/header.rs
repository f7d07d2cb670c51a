//! Where a message sits in its stream: sequence number, clip, frame and time.

use crate::MsgError;
use crate::meta::{MetaReader, MetaValue, Metadata, keys, put};

/// Stream position carried by every stream message.
///
/// `seq` counts messages per sender output from 0 with no gaps; a receiver that sees a jump
/// knows how many messages dora dropped. `frame_idx` and `timestamp_ns` locate the source frame
/// within `clip_id`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamHeader {
    pub seq: u64,
    pub clip_id: String,
    pub frame_idx: u64,
    pub timestamp_ns: u64,
}

impl StreamHeader {
    /// Writes the header keys into `meta`.
    pub fn write(&self, meta: &mut Metadata) {
        put(meta, keys::SEQ, MetaValue::Integer(clamp_i64(self.seq)));
        put(meta, keys::CLIP_ID, MetaValue::String(self.clip_id.clone()));
        put(
            meta,
            keys::FRAME_IDX,
            MetaValue::Integer(clamp_i64(self.frame_idx)),
        );
        put(
            meta,
            keys::TIMESTAMP_NS,
            MetaValue::Integer(clamp_i64(self.timestamp_ns)),
        );
        put(
            meta,
            keys::SCHEMA_VERSION,
            MetaValue::Integer(crate::SCHEMA_VERSION),
        );
    }

    /// Reads the header keys; every one is required.
    pub fn read(kind: &'static str, meta: &Metadata) -> Result<Self, MsgError> {
        let r = MetaReader::new(kind, meta);
        Ok(Self {
            seq: r.uint(keys::SEQ)?,
            clip_id: r.str(keys::CLIP_ID)?.to_owned(),
            frame_idx: r.uint(keys::FRAME_IDX)?,
            timestamp_ns: r.uint(keys::TIMESTAMP_NS)?,
        })
    }
}

/// dora metadata integers are `i64`; values past `i64::MAX` (584 years of nanoseconds) saturate.
fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
