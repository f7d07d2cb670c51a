//! Sending and receiving vipa payloads, behind a trait so node logic runs without dora.
//!
//! Node logic takes `&mut impl Outputs`: in a dataflow that is [`DoraOutputs`] (wrapping the
//! `DoraNode`), in unit tests it is [`RecordingOutputs`], which keeps every message in memory.

use arrow::array::{Array, ArrayRef};
use dora_node_api::dora_core::config::DataId;
use dora_node_api::{DoraArray, DoraNode, Event};
use vipa_msgs::{Metadata, MsgError, Payload};

use crate::meta;

/// Why a message could not be sent or decoded.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// dora refused the message (daemon gone, shared memory exhausted, type check, …).
    #[error("sending on output `{output}` failed: {message}")]
    Send { output: String, message: String },
    /// A received message is not the expected payload.
    #[error("input `{input}`: {source}")]
    Decode {
        input: String,
        #[source]
        source: MsgError,
    },
}

/// Where a node's messages go.
pub trait Outputs {
    /// Sends one message: an Arrow array and its metadata.
    fn send_raw(&mut self, output: &str, array: ArrayRef, meta: Metadata) -> Result<(), IoError>;

    /// Sends a payload (its Arrow array shares the payload's buffers).
    fn send<P: Payload>(&mut self, output: &str, payload: &P) -> Result<(), IoError>
    where
        Self: Sized,
    {
        let (array, meta) = payload.to_arrow();
        self.send_raw(output, array, meta)
    }
}

/// [`Outputs`] of a running dora node.
pub struct DoraOutputs<'a> {
    node: &'a mut DoraNode,
}

impl<'a> DoraOutputs<'a> {
    pub fn new(node: &'a mut DoraNode) -> Self {
        Self { node }
    }
}

impl Outputs for DoraOutputs<'_> {
    fn send_raw(&mut self, output: &str, array: ArrayRef, meta: Metadata) -> Result<(), IoError> {
        // `From<ArrayRef>` keeps the array as is; dora copies it once into shared memory.
        self.node
            .send_output(
                DataId::from(output.to_owned()),
                meta::to_dora(&meta),
                DoraArray::from(array),
            )
            .map_err(|e| IoError::Send {
                output: output.to_owned(),
                message: format!("{e:#}"),
            })
    }
}

/// One message recorded by [`RecordingOutputs`].
#[derive(Debug, Clone)]
pub struct Sent {
    pub output: String,
    pub array: ArrayRef,
    pub meta: Metadata,
}

impl Sent {
    /// Decodes the recorded message as payload `P`.
    pub fn decode<P: Payload>(&self) -> Result<P, MsgError> {
        P::from_arrow(self.array.as_ref(), &self.meta)
    }
}

/// [`Outputs`] that keeps every message in memory, for tests of node logic.
#[derive(Debug, Default)]
pub struct RecordingOutputs {
    pub sent: Vec<Sent>,
    /// When set, every send fails with this message (to test error paths).
    pub fail_with: Option<String>,
}

impl RecordingOutputs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Messages sent on `output`, in order.
    pub fn on<'a>(&'a self, output: &'a str) -> impl Iterator<Item = &'a Sent> + 'a {
        self.sent.iter().filter(move |s| s.output == output)
    }
}

impl Outputs for RecordingOutputs {
    fn send_raw(&mut self, output: &str, array: ArrayRef, meta: Metadata) -> Result<(), IoError> {
        if let Some(message) = &self.fail_with {
            return Err(IoError::Send {
                output: output.to_owned(),
                message: message.clone(),
            });
        }
        self.sent.push(Sent {
            output: output.to_owned(),
            array,
            meta,
        });
        Ok(())
    }
}

/// A received input, converted to vipa types (no pixel or tensor copy).
#[derive(Debug, Clone)]
pub struct InputMsg {
    /// Input id as named in the dataflow YAML.
    pub id: String,
    pub array: ArrayRef,
    pub meta: Metadata,
}

impl InputMsg {
    /// Converts a dora `Event::Input`; other events give `None`.
    pub fn from_event(event: &Event) -> Option<Self> {
        match event {
            Event::Input { id, metadata, data } => Some(Self {
                id: id.to_string(),
                array: data.as_array().clone(),
                meta: meta::from_dora(&metadata.parameters),
            }),
            _ => None,
        }
    }

    /// Decodes the payload, naming the input on error.
    pub fn decode<P: Payload>(&self) -> Result<P, IoError> {
        P::from_arrow(self.array.as_ref(), &self.meta).map_err(|source| IoError::Decode {
            input: self.id.clone(),
            source,
        })
    }

    /// The `kind` metadata key, if present.
    pub fn kind(&self) -> Option<&str> {
        vipa_msgs::kind_of(&self.meta)
    }

    /// Bytes of the payload array's values (for logging sizes).
    pub fn len(&self) -> usize {
        self.array.len()
    }

    pub fn is_empty(&self) -> bool {
        self.array.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vipa_msgs::{Ack, ClipEnd, StreamHeader};

    #[test]
    fn recording_outputs_keep_payloads_decodable() {
        let mut out = RecordingOutputs::new();
        out.send(
            "ack",
            &Ack {
                seq: 0,
                received: 1,
            },
        )
        .unwrap();
        let clip_end = ClipEnd {
            header: StreamHeader {
                seq: 0,
                clip_id: "c".into(),
                frame_idx: 2,
                timestamp_ns: 0,
            },
            frames: 2,
            complete: true,
            last_seq: Some(1),
        };
        out.send("clip_end", &clip_end).unwrap();
        assert_eq!(out.on("ack").count(), 1);
        let got: ClipEnd = out.on("clip_end").next().unwrap().decode().unwrap();
        assert_eq!(got, clip_end);
    }

    #[test]
    fn failing_outputs_name_the_output() {
        let mut out = RecordingOutputs {
            fail_with: Some("daemon gone".into()),
            ..Default::default()
        };
        let err = out
            .send(
                "ack",
                &Ack {
                    seq: 0,
                    received: 1,
                },
            )
            .unwrap_err();
        assert!(err.to_string().contains("`ack`"), "{err}");
        assert!(out.sent.is_empty());
    }
}
