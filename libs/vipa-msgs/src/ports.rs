//! Port ids: the names that node inputs and outputs carry in the dataflow YAML (`inputs:`
//! keys and `outputs:` entries), written once. A node's input and the output that feeds it
//! usually share the name (`lift-depth/pointmap` → `annotate`'s `pointmap`), so one
//! constant serves both sides; a graph may still wire any output into any input.

/// Video frames (`ImageFrame`): video-ingest → lift-depth, lift-hands, annotate; the dataset
/// reader → encoder-2d (and encoder-3d's `cut3r` backend).
pub const IMAGE: &str = "image";
/// Point maps (`PointMap`): lift-depth → lift-hands, annotate; the dataset reader → encoder-3d.
pub const POINTMAP: &str = "pointmap";
/// Hand joints (`HandsMsg`): lift-hands → annotate.
pub const HANDS: &str = "hands";
/// End-of-clip / end-of-stream control messages: video-ingest → the per-frame nodes.
pub const CLIP_END: &str = "clip_end";
/// Flow-control acknowledgements back to video-ingest: annotate, frame-check.
pub const ACK: &str = "ack";
/// Timer ticks that pace video-ingest (`dora/timer/...`).
pub const TICK: &str = "tick";
/// Credit requests of the pull protocol: the trainer (or feature-check) → the dataset reader.
pub const REQUEST: &str = "request";
/// Hand3D samples (`QaBatch`): the dataset reader → the trainer.
pub const SAMPLE: &str = "sample";
/// Semantic tokens (`TensorMsg`): encoder-2d → the trainer.
pub const TOKENS_2D: &str = "tokens_2d";
/// 3D tokens (`TensorMsg`): encoder-3d → the trainer.
pub const TOKENS_3D: &str = "tokens_3d";
