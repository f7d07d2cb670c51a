//! The per-message logic of the frame-check sink, without dora.
//!
//! Every message is decoded and checked; the results add up to a [`Summary`] that says whether
//! the stream arrived complete: every sequence number, every frame a `clip_end` announced, and
//! the final `stream_end`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use vipa_msgs::ports;
use vipa_msgs::{Ack, ClipEnd, StreamEnd};
use vipa_msgs::{Encoding, ImageFrame};
use vipa_node_kit::{InputMsg, IoError, Outputs, SeqStats, SeqTracker};

use crate::config::FrameCheckConfig;

/// Metadata key of the sender's send time (ns since the Unix epoch).
pub const KEY_SENT_UNIX_NS: &str = "sent_unix_ns";
/// `kind` of image frames (`<ImageFrame as Payload>::KIND`).
const KIND_IMAGE: &str = "image";
/// `kind` of [`ClipEnd`].
const KIND_CLIP_END: &str = "clip_end";
/// `kind` of [`StreamEnd`].
const KIND_STREAM_END: &str = "stream_end";
/// At most this many bad-message descriptions are kept in the summary.
const MAX_BAD_EXAMPLES: usize = 10;

/// Per-clip results.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ClipSummary {
    /// Frames received.
    pub frames: u64,
    /// Frames the sender announced in its `clip_end` (`None`: no `clip_end` arrived).
    pub announced_frames: Option<u64>,
    /// Whether the sender read the clip to its end (from `clip_end`).
    pub sender_complete: Option<bool>,
    pub width: u32,
    pub height: u32,
    pub encoding: String,
    pub first_frame_idx: Option<u64>,
    pub last_frame_idx: Option<u64>,
    /// FNV-1a 64 of the first frame's pixel bytes, hex.
    pub first_frame_fnv1a: String,
    /// Mean of the first frame per channel, in R, G, B order whatever the encoding.
    pub first_frame_mean_rgb: [f64; 3],
}

/// Latency statistics (receive time − `sent_unix_ns`), nanoseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ns: i64,
    pub p99_ns: i64,
    pub max_ns: i64,
    pub mean_ns: f64,
}

/// Everything the sink learned, written as JSON.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    /// True only if the stream end arrived, no sequence number is missing, no message was
    /// bad, and every clip and the stream total have the announced frame counts.
    pub all_delivered: bool,
    /// Why `all_delivered` is false (empty when true).
    pub problems: Vec<String>,
    pub stream_end_received: bool,
    /// From the stream end: clips, frames and bad sources the sender reported.
    pub sender_clips: Option<u64>,
    pub sender_frames: Option<u64>,
    pub sender_bad_sources: Option<u64>,
    pub messages: u64,
    pub frames: u64,
    pub bad_messages: u64,
    pub bad_examples: Vec<String>,
    /// Sequence statistics per input.
    pub seq: BTreeMap<String, SeqStats>,
    /// Drops dora itself reported per input (`EventStream::drain_drop_counts`).
    pub dora_dropped: BTreeMap<String, u64>,
    /// Per clip id, in arrival order of first appearance is not kept: sorted by id.
    pub clips: BTreeMap<String, ClipSummary>,
    /// Receive times of the first and last frame (ns since the Unix epoch).
    pub first_frame_unix_ns: Option<i64>,
    pub last_frame_unix_ns: Option<i64>,
    /// Frames per second between the first and the last frame.
    pub receive_fps: Option<f64>,
    pub latency: Option<LatencySummary>,
}

/// Validates frames and control messages, tracks sequence numbers and clip contents.
pub struct FrameCheck {
    cfg: FrameCheckConfig,
    seq: SeqTracker,
    clips: BTreeMap<String, ClipSummary>,
    stream_end: Option<StreamEnd>,
    messages: u64,
    frames: u64,
    bad_messages: u64,
    bad_examples: Vec<String>,
    latencies: Vec<i64>,
    first_frame_unix_ns: Option<i64>,
    last_frame_unix_ns: Option<i64>,
    ack_seq: u64,
}

impl FrameCheck {
    pub fn new(cfg: FrameCheckConfig) -> Self {
        Self {
            cfg,
            seq: SeqTracker::new(),
            clips: BTreeMap::new(),
            stream_end: None,
            messages: 0,
            frames: 0,
            bad_messages: 0,
            bad_examples: Vec::new(),
            latencies: Vec::new(),
            first_frame_unix_ns: None,
            last_frame_unix_ns: None,
            ack_seq: 0,
        }
    }

    /// Whether the stream end has arrived.
    pub fn stream_ended(&self) -> bool {
        self.stream_end.is_some()
    }

    /// Handles one message received at `now_unix_ns`, then acks it on [`ports::ACK`].
    pub fn on_input(
        &mut self,
        msg: &InputMsg,
        now_unix_ns: i64,
        out: &mut impl Outputs,
    ) -> Result<(), IoError> {
        self.messages += 1;
        if let Err(problem) = self.check(msg, now_unix_ns) {
            self.bad_messages += 1;
            tracing::warn!(input = %msg.id, "bad message: {problem}");
            if self.bad_examples.len() < MAX_BAD_EXAMPLES {
                self.bad_examples
                    .push(format!("input `{}`: {problem}", msg.id));
            }
        }
        let ack = Ack {
            seq: self.ack_seq,
            received: self.messages,
        };
        self.ack_seq += 1;
        out.send(ports::ACK, &ack)
    }

    fn check(&mut self, msg: &InputMsg, now_unix_ns: i64) -> Result<(), String> {
        match msg.kind() {
            Some(KIND_CLIP_END) => {
                let c: ClipEnd = msg.decode().map_err(|e| e.to_string())?;
                self.seq.observe(&msg.id, c.header.seq);
                let clip = self.clips.entry(c.header.clip_id.clone()).or_default();
                clip.announced_frames = Some(c.frames);
                clip.sender_complete = Some(c.complete);
                Ok(())
            }
            Some(KIND_STREAM_END) => {
                let s: StreamEnd = msg.decode().map_err(|e| e.to_string())?;
                self.seq.observe(&msg.id, s.header.seq);
                tracing::info!(
                    clips = s.clips,
                    frames = s.frames,
                    bad_sources = s.bad_sources,
                    "stream end received"
                );
                self.stream_end = Some(s);
                Ok(())
            }
            // Frames from hub nodes carry no `kind`; the decoder checks the image keys.
            Some(KIND_IMAGE) | None => self.check_frame(msg, now_unix_ns),
            Some(other) => Err(format!("unknown message kind {other:?}")),
        }
    }

    fn check_frame(&mut self, msg: &InputMsg, now_unix_ns: i64) -> Result<(), String> {
        let frame: ImageFrame = msg.decode().map_err(|e| e.to_string())?;
        // Count the sequence number before the size checks: a wrong-size frame still arrived.
        self.seq.observe(&msg.id, frame.header.seq);
        if let Some(w) = self.cfg.expect_width
            && frame.width != w
        {
            return Err(format!("width {} != expected {w}", frame.width));
        }
        if let Some(h) = self.cfg.expect_height
            && frame.height != h
        {
            return Err(format!("height {} != expected {h}", frame.height));
        }
        if let Some(e) = self.cfg.encoding()
            && frame.encoding != e
        {
            return Err(format!("encoding {} != expected {e}", frame.encoding));
        }
        self.frames += 1;
        self.first_frame_unix_ns.get_or_insert(now_unix_ns);
        self.last_frame_unix_ns = Some(now_unix_ns);
        if let Some(vipa_msgs::MetaValue::Integer(sent)) = msg.meta.get(KEY_SENT_UNIX_NS) {
            self.latencies.push(now_unix_ns.saturating_sub(*sent));
        }
        let clip = self.clips.entry(frame.header.clip_id.clone()).or_default();
        if clip.frames == 0 {
            clip.width = frame.width;
            clip.height = frame.height;
            clip.encoding = frame.encoding.to_string();
            clip.first_frame_idx = Some(frame.header.frame_idx);
            clip.first_frame_fnv1a = format!("{:016x}", fnv1a64(frame.bytes()));
            clip.first_frame_mean_rgb = mean_rgb(frame.bytes(), frame.encoding);
        } else if (clip.width, clip.height) != (frame.width, frame.height) {
            return Err(format!(
                "clip {} changed size from {}x{} to {}x{}",
                frame.header.clip_id, clip.width, clip.height, frame.width, frame.height
            ));
        }
        clip.frames += 1;
        clip.last_frame_idx = Some(frame.header.frame_idx);
        Ok(())
    }

    /// The summary so far; `dora_dropped` comes from the event stream.
    pub fn summary(&self, dora_dropped: BTreeMap<String, u64>) -> Summary {
        let mut problems = Vec::new();
        match &self.stream_end {
            None => problems.push("no stream_end received".to_owned()),
            Some(s) => {
                if s.frames != self.frames {
                    problems.push(format!(
                        "sender sent {} frames, {} arrived intact",
                        s.frames, self.frames
                    ));
                }
                let clips_ended = self
                    .clips
                    .values()
                    .filter(|c| c.announced_frames.is_some())
                    .count() as u64;
                if s.clips != clips_ended {
                    problems.push(format!(
                        "sender sent {} clips, {clips_ended} clip_end messages arrived",
                        s.clips
                    ));
                }
            }
        }
        for (input, st) in self.seq.all() {
            if !st.is_clean() {
                problems.push(format!(
                    "input `{input}`: {} dropped, {} out of order",
                    st.dropped, st.out_of_order
                ));
            }
        }
        for (input, n) in &dora_dropped {
            if *n > 0 {
                problems.push(format!("dora dropped {n} messages on input `{input}`"));
            }
        }
        if self.bad_messages > 0 {
            problems.push(format!("{} bad messages", self.bad_messages));
        }
        for (id, c) in &self.clips {
            match c.announced_frames {
                Some(n) if n != c.frames => problems.push(format!(
                    "clip {id}: {n} frames announced, {} arrived",
                    c.frames
                )),
                None => problems.push(format!("clip {id}: no clip_end received")),
                _ => {}
            }
        }
        let receive_fps = match (self.first_frame_unix_ns, self.last_frame_unix_ns) {
            (Some(a), Some(b)) if b > a && self.frames > 1 => {
                Some((self.frames - 1) as f64 * 1e9 / (b - a) as f64)
            }
            _ => None,
        };
        Summary {
            all_delivered: problems.is_empty(),
            problems,
            stream_end_received: self.stream_end.is_some(),
            sender_clips: self.stream_end.as_ref().map(|s| s.clips),
            sender_frames: self.stream_end.as_ref().map(|s| s.frames),
            sender_bad_sources: self.stream_end.as_ref().map(|s| s.bad_sources),
            messages: self.messages,
            frames: self.frames,
            bad_messages: self.bad_messages,
            bad_examples: self.bad_examples.clone(),
            seq: self.seq.all().clone(),
            dora_dropped,
            clips: self.clips.clone(),
            first_frame_unix_ns: self.first_frame_unix_ns,
            last_frame_unix_ns: self.last_frame_unix_ns,
            receive_fps,
            latency: latency_summary(&self.latencies),
        }
    }

    /// Logs the sequence summary (call once at the end).
    pub fn log_summary(&self) {
        self.seq.log_summary();
    }
}

/// Writes `summary` as pretty JSON, creating parent folders; written to a temporary file
/// first and renamed, so a reader never sees half a file.
pub fn write_summary(path: &Path, summary: &Summary) -> std::io::Result<()> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    let json = serde_json::to_string_pretty(summary).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}

fn latency_summary(samples: &[i64]) -> Option<LatencySummary> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    // Nearest-rank percentile: the smallest sample with at least p% of samples at or below.
    let rank = |p: f64| {
        let r = (p * sorted.len() as f64).ceil() as usize;
        sorted[r.clamp(1, sorted.len()) - 1]
    };
    Some(LatencySummary {
        count: sorted.len() as u64,
        p50_ns: rank(0.50),
        p99_ns: rank(0.99),
        max_ns: sorted[sorted.len() - 1],
        mean_ns: sorted.iter().map(|&v| v as f64).sum::<f64>() / sorted.len() as f64,
    })
}

/// FNV-1a, 64 bit: a tiny stable checksum (not cryptographic).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Mean per channel in R, G, B order, `pixels: u8[h, w, c]`.
pub fn mean_rgb(pixels: &[u8], encoding: Encoding) -> [f64; 3] {
    let c = encoding.channels();
    let n = pixels.len() / c;
    if n == 0 {
        return [0.0; 3];
    }
    let mut sums = [0u64; 3];
    for px in pixels.chunks_exact(c) {
        for (k, s) in sums.iter_mut().enumerate() {
            *s += u64::from(px[k.min(c - 1)]);
        }
    }
    let mean = sums.map(|s| s as f64 / n as f64);
    match encoding {
        Encoding::Bgr8 => [mean[2], mean[1], mean[0]],
        Encoding::Rgb8 | Encoding::Mono8 => mean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vipa_msgs::{Payload, StreamHeader};

    #[test]
    fn image_kind_matches_the_payload() {
        assert_eq!(KIND_IMAGE, <ImageFrame as Payload>::KIND);
        assert_eq!(KIND_CLIP_END, <ClipEnd as Payload>::KIND);
        assert_eq!(KIND_STREAM_END, <StreamEnd as Payload>::KIND);
    }
    use vipa_node_kit::RecordingOutputs;

    fn msg_of<P: Payload>(input: &str, p: &P) -> InputMsg {
        let (array, meta) = p.to_arrow();
        InputMsg {
            id: input.into(),
            array,
            meta,
        }
    }

    fn frame(seq: u64, clip: &str, idx: u64, rgb: [u8; 3]) -> InputMsg {
        let pixels: Vec<u8> = std::iter::repeat_n(rgb, 4 * 2).flatten().collect();
        let header = StreamHeader {
            seq,
            clip_id: clip.into(),
            frame_idx: idx,
            timestamp_ns: idx * 1000,
        };
        msg_of(
            "image",
            &ImageFrame::new(header, 4, 2, Encoding::Rgb8, pixels).unwrap(),
        )
    }

    fn clip_end(seq: u64, clip: &str, frames: u64) -> InputMsg {
        let header = StreamHeader {
            seq,
            clip_id: clip.into(),
            frame_idx: frames,
            timestamp_ns: 0,
        };
        msg_of(
            "clip_end",
            &ClipEnd {
                header,
                frames,
                complete: true,
                last_seq: None,
            },
        )
    }

    fn stream_end(seq: u64, clips: u64, frames: u64) -> InputMsg {
        let header = StreamHeader {
            seq,
            ..Default::default()
        };
        msg_of(
            "clip_end",
            &StreamEnd {
                header,
                clips,
                frames,
                bad_sources: 1,
            },
        )
    }

    fn feed(msgs: &[InputMsg]) -> (FrameCheck, RecordingOutputs) {
        let mut check = FrameCheck::new(FrameCheckConfig::default());
        let mut out = RecordingOutputs::new();
        for (t, m) in msgs.iter().enumerate() {
            check.on_input(m, 1_000 + t as i64 * 100, &mut out).unwrap();
        }
        (check, out)
    }

    #[test]
    fn complete_stream_is_all_delivered() {
        let (check, out) = feed(&[
            frame(0, "a", 0, [10, 20, 30]),
            frame(1, "a", 1, [10, 20, 30]),
            clip_end(0, "a", 2),
            frame(2, "b", 0, [200, 0, 0]),
            clip_end(1, "b", 1),
            stream_end(2, 2, 3),
        ]);
        let s = check.summary(BTreeMap::new());
        assert!(s.all_delivered, "{:?}", s.problems);
        assert_eq!((s.frames, s.messages, s.bad_messages), (3, 6, 0));
        assert_eq!(s.sender_bad_sources, Some(1));
        assert_eq!(s.clips["a"].frames, 2);
        assert_eq!(s.clips["a"].first_frame_mean_rgb, [10.0, 20.0, 30.0]);
        assert_eq!(s.clips["b"].first_frame_mean_rgb, [200.0, 0.0, 0.0]);
        // 3 frames received 100 ns apart at t = 1000, 1100, 1300.
        assert_eq!(s.first_frame_unix_ns, Some(1000));
        assert_eq!(s.last_frame_unix_ns, Some(1300));
        // One ack per message with the running count.
        let acks: Vec<Ack> = out.on(ports::ACK).map(|m| m.decode().unwrap()).collect();
        assert_eq!(acks.len(), 6);
        assert_eq!(
            acks[5],
            Ack {
                seq: 5,
                received: 6
            }
        );
    }

    #[test]
    fn a_dropped_frame_is_detected_twice() {
        // Frame seq 1 never arrives: seq gap and announced-count mismatch.
        let (check, _) = feed(&[
            frame(0, "a", 0, [1, 2, 3]),
            frame(2, "a", 2, [1, 2, 3]),
            clip_end(0, "a", 3),
            stream_end(1, 1, 3),
        ]);
        let s = check.summary(BTreeMap::new());
        assert!(!s.all_delivered);
        assert_eq!(s.seq["image"].dropped, 1);
        assert!(
            s.problems
                .iter()
                .any(|p| p.contains("3 frames announced, 2 arrived")),
            "{:?}",
            s.problems
        );
    }

    #[test]
    fn missing_stream_end_and_dora_drops_are_problems() {
        let (check, _) = feed(&[frame(0, "a", 0, [0, 0, 0]), clip_end(0, "a", 1)]);
        let s = check.summary(BTreeMap::from([("image".to_owned(), 2)]));
        assert!(!s.all_delivered);
        assert!(s.problems.iter().any(|p| p.contains("no stream_end")));
        assert!(s.problems.iter().any(|p| p.contains("dora dropped 2")));
    }

    #[test]
    fn bad_messages_are_counted_and_described() {
        let mut bad = frame(0, "a", 0, [0, 0, 0]);
        bad.meta
            .insert("width".into(), vipa_msgs::MetaValue::Integer(5));
        let mut unknown = clip_end(0, "a", 1);
        unknown
            .meta
            .insert("kind".into(), vipa_msgs::MetaValue::String("weird".into()));
        let (check, out) = feed(&[bad, unknown]);
        let s = check.summary(BTreeMap::new());
        assert_eq!(s.bad_messages, 2);
        assert!(s.bad_examples[0].contains("pixels"), "{:?}", s.bad_examples);
        assert!(s.bad_examples[1].contains("weird"), "{:?}", s.bad_examples);
        // Bad messages are acked too: the sender counts messages, not good ones.
        assert_eq!(out.on(ports::ACK).count(), 2);
    }

    #[test]
    fn expected_size_is_enforced() {
        let mut check = FrameCheck::new(FrameCheckConfig {
            expect_width: Some(8),
            ..Default::default()
        });
        let mut out = RecordingOutputs::new();
        check
            .on_input(&frame(0, "a", 0, [0, 0, 0]), 0, &mut out)
            .unwrap();
        let s = check.summary(BTreeMap::new());
        assert_eq!((s.bad_messages, s.frames), (1, 0));
        assert!(s.bad_examples[0].contains("width 4 != expected 8"));
    }

    #[test]
    fn latency_percentiles_use_nearest_rank() {
        let samples: Vec<i64> = (1..=100).collect();
        let l = latency_summary(&samples).unwrap();
        assert_eq!((l.p50_ns, l.p99_ns, l.max_ns), (50, 99, 100));
        assert_eq!(l.mean_ns, 50.5);
        assert!(latency_summary(&[]).is_none());
    }

    #[test]
    fn fnv_and_mean_match_reference_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            mean_rgb(&[10, 20, 30, 30, 40, 50], Encoding::Bgr8),
            [40.0, 30.0, 20.0]
        );
    }

    #[test]
    fn summary_is_written_atomically_as_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/summary.json");
        let (check, _) = feed(&[frame(0, "a", 0, [1, 1, 1])]);
        write_summary(&path, &check.summary(BTreeMap::new())).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["frames"], 1);
        assert_eq!(v["all_delivered"], false);
        assert!(!path.with_extension("json.tmp").exists());
    }
}
