//! Control messages: end of clip, end of stream, pull requests (credits) and acks.
//!
//! # Wire format
//! All data travels in the metadata, so a receiver can dispatch on `kind` (see [`kind_of`],
//! [`Control::is_control`]) without looking at the array, and any node can build one. The
//! array must be **empty** (senders use a zero-length `UInt8Array`; any zero-length array is
//! accepted, a non-empty one is refused so that a data message is never mistaken for a control
//! message).
//!
//! | payload | `kind` | keys |
//! |---|---|---|
//! | [`ClipEnd`] | `clip_end` | header keys, `frames`, `complete`, optional `last_seq` |
//! | [`StreamEnd`] | `stream_end` | header keys, `clips`, `frames`, `bad_sources` |
//! | [`Request`] | `request` | `seq`, `credits` (≥ 1), optional `skip` (absent = 0) |
//! | [`Ack`] | `ack` | `seq`, `received` |
//!
//! "Header keys" are the [`StreamHeader`] keys; `seq` is always the sender's per-output counter,
//! so sequence-gap counting works on control outputs too. All carry `schema_version`.
//! `Request` and `Ack` have no header: they travel upstream and belong to no frame.
//!
//! # Protocols
//! - **Clips:** video ingest sends a `ClipEnd` after the last frame of each clip, with
//!   `frames` = frames sent for the clip and `last_seq` = the `seq` of its last frame on the
//!   frame output. A receiver that saw fewer frames knows some were dropped.
//! - **End of stream:** before exiting, a sender sends `StreamEnd` and never sends again
//!   (dora may drop a node's last messages if it exits right away, so senders should wait for
//!   an ack or linger briefly).
//! - **Pull-driven training:** the trainer sends `Request { credits: n }` and the reader answers
//!   with exactly `n` batches, so nothing queues beyond what was asked for and dora's
//!   drop-oldest queues never lose a training batch. A resumed trainer's first request
//!   (`seq` 0) carries `skip`: the samples its checkpoint already trained on, which the reader
//!   passes over without sending (their `sample_seq` numbers stay taken), so nothing
//!   downstream encodes them again.
//! - **Acks:** a receiver reports how many messages it has received so far; a sender that
//!   keeps at most `N` un-acked messages in flight never overfills a queue of depth `N`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, UInt8Array};

use crate::meta::{MetaReader, MetaValue, Metadata, keys, put};
use crate::{MsgError, Payload, StreamHeader, wire};

/// Metadata key: frames sent (per clip in [`ClipEnd`], in total in [`StreamEnd`]).
pub const FRAMES: &str = "frames";
/// Metadata key: whether a clip was read to its end ([`ClipEnd`]).
pub const COMPLETE: &str = "complete";
/// Metadata key: `seq` of the last data message of a clip ([`ClipEnd`]).
pub const LAST_SEQ: &str = "last_seq";
/// Metadata key: clips ended ([`StreamEnd`]).
pub const CLIPS: &str = "clips";
/// Metadata key: inputs that could not be read at all ([`StreamEnd`]).
pub const BAD_SOURCES: &str = "bad_sources";
/// Metadata key: batches requested ([`Request`]).
pub const CREDITS: &str = "credits";
/// Metadata key: samples to pass over before the first one sent ([`Request`], optional).
pub const SKIP: &str = "skip";
/// Metadata key: messages received so far ([`Ack`]).
pub const RECEIVED: &str = "received";

/// The `kind` key of `meta`, if it is a string.
pub fn kind_of(meta: &Metadata) -> Option<&str> {
    match meta.get(keys::KIND) {
        Some(MetaValue::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

/// End of one clip.
///
/// `header.seq` is this message's position on its output, `header.clip_id` the clip that
/// ended, `header.frame_idx` = `frames` (one past the last frame index), `header.timestamp_ns`
/// the clip's end time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipEnd {
    pub header: StreamHeader,
    /// Data messages sent for the clip.
    pub frames: u64,
    /// `false` when a read error cut the clip short.
    pub complete: bool,
    /// `seq` of the clip's last data message on the data output; `None` when no frame was
    /// sent (then the key is absent, and it must be).
    pub last_seq: Option<u64>,
}

/// The last message of a sender: it will send nothing more on any output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEnd {
    /// Stream position; `clip_id` is empty.
    pub header: StreamHeader,
    /// Clips ended (0 for streams without clips).
    pub clips: u64,
    /// Data messages sent in total.
    pub frames: u64,
    /// Inputs (files, shards) skipped because they could not be read at all.
    pub bad_sources: u64,
}

/// A pull request: "send me exactly `credits` more batches".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// This request's position on the requester's output.
    pub seq: u64,
    /// Batches asked for, at least 1.
    pub credits: u32,
    /// Samples to pass over, unsent, before the first one sent: a resumed requester's
    /// position. Only a stream's first request (`seq` 0) may carry it; 0 = none.
    pub skip: u64,
}

/// Flow control: "I have received `received` of your messages so far".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// This ack's position on the acking node's output.
    pub seq: u64,
    /// A running count, so a lost ack is repaired by the next one.
    pub received: u64,
}

/// A frame a node could not answer (no sidecar, an unreadable input, a model error): sent in
/// place of its output, so that the stream still carries one message per input frame in `seq`
/// order and the receiver learns which frame failed, where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// The frame's header, with `seq` this message's position on the sender's output.
    pub header: StreamHeader,
    /// The node that failed (`lift-depth`, `lift-hands`).
    pub node: String,
    /// Why, in words.
    pub error: String,
}

/// Any control message, for receivers that dispatch on `kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    ClipEnd(ClipEnd),
    StreamEnd(StreamEnd),
    Request(Request),
    Ack(Ack),
}

impl Control {
    /// The `kind` values of control messages.
    pub const KINDS: [&'static str; 4] = [ClipEnd::KIND, StreamEnd::KIND, Request::KIND, Ack::KIND];

    /// Whether `meta` announces a control message (by its `kind`). Use it to route a message
    /// before decoding it as data or as [`Control`].
    pub fn is_control(meta: &Metadata) -> bool {
        kind_of(meta).is_some_and(|k| Self::KINDS.contains(&k))
    }

    /// Decodes whichever control message `meta`'s `kind` names.
    pub fn from_arrow(array: &dyn Array, meta: &Metadata) -> Result<Self, MsgError> {
        let r = MetaReader::new("control", meta);
        match r.str(keys::KIND)? {
            ClipEnd::KIND => ClipEnd::from_arrow(array, meta).map(Self::ClipEnd),
            StreamEnd::KIND => StreamEnd::from_arrow(array, meta).map(Self::StreamEnd),
            Request::KIND => Request::from_arrow(array, meta).map(Self::Request),
            Ack::KIND => Ack::from_arrow(array, meta).map(Self::Ack),
            other => Err(r.bad(
                keys::KIND,
                format!(
                    "is not a control message kind ({}), got {other:?}",
                    Self::KINDS.join(", ")
                ),
            )),
        }
    }

    /// Encodes the wrapped message.
    pub fn to_arrow(&self) -> (ArrayRef, Metadata) {
        match self {
            Self::ClipEnd(m) => m.to_arrow(),
            Self::StreamEnd(m) => m.to_arrow(),
            Self::Request(m) => m.to_arrow(),
            Self::Ack(m) => m.to_arrow(),
        }
    }

    /// The message's `seq`.
    pub fn seq(&self) -> u64 {
        match self {
            Self::ClipEnd(m) => m.header.seq,
            Self::StreamEnd(m) => m.header.seq,
            Self::Request(m) => m.seq,
            Self::Ack(m) => m.seq,
        }
    }
}

/// Metadata with `kind` (and the header, or `seq` and `schema_version`), and the empty array.
fn encode(kind: &'static str, header: Option<&StreamHeader>, seq: u64) -> (ArrayRef, Metadata) {
    let mut meta = Metadata::new();
    match header {
        Some(h) => h.write(&mut meta),
        None => {
            put(&mut meta, keys::SEQ, int(seq));
            put(
                &mut meta,
                keys::SCHEMA_VERSION,
                MetaValue::Integer(crate::SCHEMA_VERSION),
            );
        }
    }
    put(&mut meta, keys::KIND, MetaValue::String(kind.into()));
    (Arc::new(UInt8Array::from(Vec::<u8>::new())), meta)
}

/// Checks that `kind` matches and the array is empty.
fn check<'a>(
    kind: &'static str,
    array: &dyn Array,
    meta: &'a Metadata,
) -> Result<MetaReader<'a>, MsgError> {
    let r = MetaReader::new(kind, meta);
    wire::expect_str(&r, keys::KIND, kind)?;
    if !array.is_empty() {
        return Err(MsgError::WrongShape {
            kind,
            field: "array".into(),
            expected: "an empty array (control data travels in the metadata)".into(),
            found: format!("{} values of {}", array.len(), array.data_type()),
        });
    }
    Ok(r)
}

fn int(v: u64) -> MetaValue {
    MetaValue::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

impl ClipEnd {
    const KIND: &'static str = "clip_end";
}

impl Payload for ClipEnd {
    const KIND: &'static str = Self::KIND;

    fn to_arrow(&self) -> (ArrayRef, Metadata) {
        let (array, mut meta) = encode(Self::KIND, Some(&self.header), 0);
        put(&mut meta, FRAMES, int(self.frames));
        put(&mut meta, COMPLETE, MetaValue::Bool(self.complete));
        if let Some(last) = self.last_seq {
            put(&mut meta, LAST_SEQ, int(last));
        }
        (array, meta)
    }

    fn from_arrow(array: &dyn Array, meta: &Metadata) -> Result<Self, MsgError> {
        let r = check(Self::KIND, array, meta)?;
        let header = StreamHeader::read(Self::KIND, meta)?;
        let frames = r.uint(FRAMES)?;
        let complete = r.bool(COMPLETE)?;
        let last_seq = if r.has(LAST_SEQ) {
            if frames == 0 {
                return Err(r.bad(LAST_SEQ, "must be absent when `frames` is 0"));
            }
            Some(r.uint(LAST_SEQ)?)
        } else {
            None
        };
        Ok(Self {
            header,
            frames,
            complete,
            last_seq,
        })
    }
}

impl StreamEnd {
    const KIND: &'static str = "stream_end";
}

impl Payload for StreamEnd {
    const KIND: &'static str = Self::KIND;

    fn to_arrow(&self) -> (ArrayRef, Metadata) {
        let (array, mut meta) = encode(Self::KIND, Some(&self.header), 0);
        put(&mut meta, CLIPS, int(self.clips));
        put(&mut meta, FRAMES, int(self.frames));
        put(&mut meta, BAD_SOURCES, int(self.bad_sources));
        (array, meta)
    }

    fn from_arrow(array: &dyn Array, meta: &Metadata) -> Result<Self, MsgError> {
        let r = check(Self::KIND, array, meta)?;
        Ok(Self {
            header: StreamHeader::read(Self::KIND, meta)?,
            clips: r.uint(CLIPS)?,
            frames: r.uint(FRAMES)?,
            bad_sources: r.uint(BAD_SOURCES)?,
        })
    }
}

impl Request {
    const KIND: &'static str = "request";
}

impl Payload for Request {
    const KIND: &'static str = Self::KIND;

    fn to_arrow(&self) -> (ArrayRef, Metadata) {
        let (array, mut meta) = encode(Self::KIND, None, self.seq);
        put(&mut meta, CREDITS, MetaValue::Integer(self.credits.into()));
        if self.skip > 0 {
            put(&mut meta, SKIP, int(self.skip));
        }
        (array, meta)
    }

    fn from_arrow(array: &dyn Array, meta: &Metadata) -> Result<Self, MsgError> {
        let r = check(Self::KIND, array, meta)?;
        let seq = r.uint(keys::SEQ)?;
        // `dim`: a positive u32, since a request for 0 batches is a bug in the requester.
        let credits = r.dim(CREDITS)?;
        let skip = if r.has(SKIP) { r.uint(SKIP)? } else { 0 };
        Ok(Self { seq, credits, skip })
    }
}

impl FrameError {
    const KIND: &'static str = "frame_error";
    /// Metadata key of the reason.
    pub const KEY_ERROR: &'static str = "error";
    /// Metadata key of the failing node.
    pub const KEY_NODE: &'static str = "node";
}

impl Payload for FrameError {
    const KIND: &'static str = Self::KIND;

    fn to_arrow(&self) -> (ArrayRef, Metadata) {
        let (array, mut meta) = encode(Self::KIND, Some(&self.header), 0);
        put(
            &mut meta,
            Self::KEY_ERROR,
            MetaValue::String(self.error.clone()),
        );
        put(
            &mut meta,
            Self::KEY_NODE,
            MetaValue::String(self.node.clone()),
        );
        (array, meta)
    }

    fn from_arrow(array: &dyn Array, meta: &Metadata) -> Result<Self, MsgError> {
        let r = check(Self::KIND, array, meta)?;
        Ok(Self {
            header: StreamHeader::read(Self::KIND, meta)?,
            node: r.str(Self::KEY_NODE)?.to_owned(),
            error: r.str(Self::KEY_ERROR)?.to_owned(),
        })
    }
}

impl Ack {
    const KIND: &'static str = "ack";
}

impl Payload for Ack {
    const KIND: &'static str = Self::KIND;

    fn to_arrow(&self) -> (ArrayRef, Metadata) {
        let (array, mut meta) = encode(Self::KIND, None, self.seq);
        put(&mut meta, RECEIVED, int(self.received));
        (array, meta)
    }

    fn from_arrow(array: &dyn Array, meta: &Metadata) -> Result<Self, MsgError> {
        let r = check(Self::KIND, array, meta)?;
        Ok(Self {
            seq: r.uint(keys::SEQ)?,
            received: r.uint(RECEIVED)?,
        })
    }
}
