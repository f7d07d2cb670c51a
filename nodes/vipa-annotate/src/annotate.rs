//! The per-message logic of the annotate node, without dora.
//!
//! # Joining
//! dora delivers `image`, `pointmap` and `hands` on separate queues, so a frame's three parts
//! arrive in any order. They are joined by `(clip_id, frame_idx, timestamp_ns)` (the timestamp
//! keeps frames apart that ingest duplicated when resampling). A joined frame is reduced at
//! once to a small `FrameObservation` (plus what the frame store needs), so a clip never holds
//! its point maps.
//!
//! # Clips
//! A clip is finished when ingest's `ClipEnd` has arrived and all its `frames` are joined. It
//! is then annotated with `vipa_hand3d::annotate_clip`, its frame store is written, then its
//! shard (the shard marks the clip done, so it is written last). A clip that fails — a lift
//! node's frame error (no sidecar, wrong size), no clip info, no visible hand — is recorded as
//! skipped with one reason; the others go on. A clip whose shard already exists (resume) is
//! not re-annotated.
//!
//! # Flow control
//! Every ingest message handled (a joined frame, a finished clip, the stream end) raises the
//! running count sent on [`ports::ACK`]. Ingest keeps at most `max_in_flight` messages un-acked,
//! so no queue of the graph ever holds more than that many frames and dora's drop-oldest
//! queues never drop one; the sequence check on every input proves it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use vipa_hand3d::calibrate::{CalibrationMode, fit_scale, frame_ratios};
use vipa_hand3d::dataset::DatasetWriter;
use vipa_hand3d::frames::{StoredFrame, clean_tmp, depth_to_mm, write_clip_frames};
use vipa_hand3d::geometry::{Intrinsics, PointMap as H3dPointMap, Pose};
use vipa_hand3d::{
    ClipInputs, ClipMeta, FrameInput, FrameObservation, Hand3dError, HandInput, ObjectInput, Side,
    annotate_clip, observe_frame,
};
use vipa_msgs::ports;
use vipa_msgs::{
    Ack, ClipEnd, Control, FrameError, HandSide, HandsMsg, ImageFrame, MetaValue, Metadata,
    Payload, PointMap, StreamEnd, StreamHeader, kind_of,
};
use vipa_node_kit::{InputMsg, IoError, Outputs, SeqStats, SeqTracker};
use vipa_truth::{ClipTruth, read_clip_truth, sidecar_path};

use crate::config::{AnnotateConfig, ObjectSource};

/// Extra keys lift-depth puts on a point map.
pub const KEY_INTRINSICS: &str = "intrinsics";
pub const KEY_POSE: &str = "world_from_camera";
/// The run report written next to the manifest.
pub const REPORT_FILE: &str = "annotate_report.json";
/// Joint confidence above which a joint counts as visible.
pub const VISIBLE_CONFIDENCE: f32 = 0.5;
/// Video file extensions checked by `expect_videos_in` (same list as video-ingest).
pub const VIDEO_EXTENSIONS: &[&str] = &["mp4", "avi", "mkv", "mov", "webm"];

/// Errors that stop the node (bad clips do not: they are skipped).
#[derive(Debug, thiserror::Error)]
pub enum AnnotateError {
    #[error("{0}")]
    Io(#[from] IoError),
    #[error("dataset {path}: {source}")]
    Dataset {
        path: PathBuf,
        #[source]
        source: Hand3dError,
    },
    #[error("cannot write the run report {path}: {message}")]
    Report { path: PathBuf, message: String },
}

/// Per-clip line of the run report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClipReport {
    pub clip_id: String,
    pub frames: u64,
    pub samples: usize,
    pub scale: f32,
    pub median_abs_rel_residual: f32,
    pub calibration_joints: usize,
    pub frames_no_hand: usize,
    pub stored_frames: usize,
}

/// What one run did (written to [`REPORT_FILE`]; the manifest holds the dataset itself).
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct RunReport {
    pub frames_received: u64,
    pub frames_joined: u64,
    pub frames_annotated: u64,
    pub clips_written: Vec<ClipReport>,
    pub clips_already_done: Vec<String>,
    pub clips_skipped: BTreeMap<String, String>,
    /// `bad_sources` of ingest's stream end (videos it could not read at all).
    pub ingest_bad_sources: u64,
    pub inputs: BTreeMap<String, SeqStats>,
    pub all_inputs_clean: bool,
    pub stream_complete: bool,
    pub elapsed_s: f64,
    pub frames_per_s: f64,
}

/// A frame whose parts are still arriving.
#[derive(Default)]
struct Partial {
    image: Option<ImageFrame>,
    pointmap: Option<Result<(PointMap, Metadata), String>>,
    hands: Option<Result<HandsMsg, String>>,
}

impl Partial {
    fn complete(&self) -> bool {
        self.image.is_some() && self.pointmap.is_some() && self.hands.is_some()
    }
}

/// What the frame store needs of a frame.
struct Kept {
    rgb: Vec<u8>,
    /// `f32[h, w]` point-map z (uncalibrated), NaN where invalid.
    z: Vec<f32>,
    k: Intrinsics,
}

/// A clip being collected.
struct ClipState {
    done_before: bool,
    truth: Option<ClipTruth>,
    info_error: Option<String>,
    depth_error: Option<String>,
    hands_error: Option<String>,
    frame_error: Option<String>,
    observations: Vec<FrameObservation>,
    kept: BTreeMap<u32, Kept>,
    intrinsics: Option<Intrinsics>,
    joined: u64,
    end: Option<ClipEnd>,
}

impl ClipState {
    fn error(&self) -> Option<String> {
        self.depth_error
            .clone()
            .or_else(|| self.hands_error.clone())
            .or_else(|| self.info_error.clone())
            .or_else(|| self.frame_error.clone())
    }
}

type Key = (String, u64, u64);

/// Joins, annotates and writes; see the module docs.
pub struct Annotator {
    cfg: AnnotateConfig,
    writer: Option<DatasetWriter>,
    seq: SeqTracker,
    partial: BTreeMap<Key, Partial>,
    clips: BTreeMap<String, ClipState>,
    seen: BTreeSet<String>,
    handled: u64,
    ack_seq: u64,
    stream_end: Option<StreamEnd>,
    finished: bool,
    started: Option<Instant>,
    report: RunReport,
}

fn dataset_err(path: &std::path::Path) -> impl FnOnce(Hand3dError) -> AnnotateError + '_ {
    move |source| AnnotateError::Dataset {
        path: path.to_path_buf(),
        source,
    }
}

impl Annotator {
    /// Opens the dataset for writing (resume: finished clips are kept and skipped).
    pub fn new(cfg: AnnotateConfig) -> Result<Self, AnnotateError> {
        let writer = DatasetWriter::open(&cfg.out, &cfg.hand3d).map_err(dataset_err(&cfg.out))?;
        clean_tmp(&cfg.out).map_err(dataset_err(&cfg.out))?;
        Ok(Self {
            cfg,
            writer: Some(writer),
            seq: SeqTracker::new(),
            partial: BTreeMap::new(),
            clips: BTreeMap::new(),
            seen: BTreeSet::new(),
            handled: 0,
            ack_seq: 0,
            stream_end: None,
            finished: false,
            started: None,
            report: RunReport::default(),
        })
    }

    /// True once the manifest is written.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub fn report(&self) -> &RunReport {
        &self.report
    }

    pub fn seq(&self) -> &SeqTracker {
        &self.seq
    }

    /// Ingest messages handled so far (the running count of the acks).
    pub fn handled(&self) -> u64 {
        self.handled
    }

    /// Handles one input message. Errors: a failed send or a dataset write failure.
    pub fn on_input(
        &mut self,
        msg: &InputMsg,
        out: &mut impl Outputs,
    ) -> Result<(), AnnotateError> {
        self.started.get_or_insert_with(Instant::now);
        let before = self.handled;
        match msg.id.as_str() {
            ports::IMAGE => self.on_image(msg)?,
            ports::POINTMAP => self.on_pointmap(msg)?,
            ports::HANDS => self.on_hands(msg)?,
            ports::CLIP_END => self.on_control(msg)?,
            other => tracing::warn!(input = other, "ignoring unexpected input"),
        }
        if self.handled != before {
            out.send(
                ports::ACK,
                &Ack {
                    seq: self.ack_seq,
                    received: self.handled,
                },
            )?;
            self.ack_seq += 1;
        }
        Ok(())
    }

    fn on_image(&mut self, msg: &InputMsg) -> Result<(), AnnotateError> {
        let image = match msg.decode::<ImageFrame>() {
            Ok(i) => i,
            Err(e) => {
                tracing::error!("cannot decode a frame: {e}");
                return Ok(());
            }
        };
        self.seq.observe(ports::IMAGE, image.header.seq);
        self.report.frames_received += 1;
        let key = self.key(&image.header);
        self.partial.entry(key.clone()).or_default().image = Some(image);
        self.try_join(key)
    }

    fn on_pointmap(&mut self, msg: &InputMsg) -> Result<(), AnnotateError> {
        let Some((header, part)) = decode_part(msg, |a, m| {
            PointMap::from_arrow(a, m).map(|p| (p.header.clone(), (p, m.clone())))
        }) else {
            return Ok(());
        };
        self.seq.observe(ports::POINTMAP, header.seq);
        let key = self.key(&header);
        self.partial.entry(key.clone()).or_default().pointmap = Some(part);
        self.try_join(key)
    }

    fn on_hands(&mut self, msg: &InputMsg) -> Result<(), AnnotateError> {
        let Some((header, part)) = decode_part(msg, |a, m| {
            HandsMsg::from_arrow(a, m).map(|h| (h.header.clone(), h))
        }) else {
            return Ok(());
        };
        self.seq.observe(ports::HANDS, header.seq);
        let key = self.key(&header);
        self.partial.entry(key.clone()).or_default().hands = Some(part);
        self.try_join(key)
    }

    fn on_control(&mut self, msg: &InputMsg) -> Result<(), AnnotateError> {
        let control = match Control::from_arrow(msg.array.as_ref(), &msg.meta) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("bad message on `{}`: {e}", ports::CLIP_END);
                return Ok(());
            }
        };
        self.seq.observe(ports::CLIP_END, control.seq());
        match control {
            Control::ClipEnd(end) => {
                let clip_id = end.header.clip_id.clone();
                self.ensure_clip(&clip_id);
                if let Some(c) = self.clips.get_mut(&clip_id) {
                    if end.frames == 0 {
                        // A video ingest could not read at all (if ingest reports those).
                        c.frame_error = Some(
                            "video-ingest sent no frame of this video (corrupt or empty file)"
                                .into(),
                        );
                    }
                    c.end = Some(end);
                }
                self.finish_ready_clips()?;
            }
            Control::StreamEnd(end) => {
                self.report.ingest_bad_sources = end.bad_sources;
                self.stream_end = Some(end);
                self.try_finish_stream(false)?;
            }
            other => tracing::warn!(?other, "ignoring unexpected control message"),
        }
        Ok(())
    }

    fn key(&self, h: &StreamHeader) -> Key {
        (h.clip_id.clone(), h.frame_idx, h.timestamp_ns)
    }

    /// Creates the clip's state on its first message: resume check, clip info.
    fn ensure_clip(&mut self, clip_id: &str) {
        if self.clips.contains_key(clip_id) {
            return;
        }
        self.seen.insert(clip_id.to_owned());
        let done_before = self.writer.as_ref().is_some_and(|w| w.is_done(clip_id));
        let (truth, info_error) = if done_before {
            tracing::info!(
                clip = clip_id,
                "clip already annotated (shard exists): skipping it"
            );
            (None, None)
        } else {
            let path = sidecar_path(&self.cfg.clip_info_dir, clip_id);
            if path.is_file() {
                match read_clip_truth(&path) {
                    Ok(t) => (Some(t), None),
                    Err(e) => (None, Some(format!("cannot read the clip info: {e}"))),
                }
            } else {
                (
                    None,
                    Some(format!(
                        "no clip info {} (annotate reads the instruction, frame rate and object boxes from the clip's sidecar; set `clip_info_dir`)",
                        path.display()
                    )),
                )
            }
        };
        self.clips.insert(
            clip_id.to_owned(),
            ClipState {
                done_before,
                truth,
                info_error,
                depth_error: None,
                hands_error: None,
                frame_error: None,
                observations: Vec::new(),
                kept: BTreeMap::new(),
                intrinsics: None,
                joined: 0,
                end: None,
            },
        );
    }

    fn try_join(&mut self, key: Key) -> Result<(), AnnotateError> {
        if !self.partial.get(&key).is_some_and(Partial::complete) {
            return self.finish_ready_clips();
        }
        let Some(part) = self.partial.remove(&key) else {
            return Ok(());
        };
        let clip_id = key.0.clone();
        self.ensure_clip(&clip_id);
        self.handled += 1;
        self.report.frames_joined += 1;
        let cfg = &self.cfg;
        if let Some(clip) = self.clips.get_mut(&clip_id) {
            clip.joined += 1;
            if !clip.done_before {
                observe(clip, part, cfg);
            }
        }
        self.finish_ready_clips()
    }

    /// Whether every data input has delivered a message at or past `last_seq`. The lift nodes
    /// answer each image with exactly one message, in order, so their `seq` follows the image
    /// `seq`; once all three streams are past a clip's last frame, nothing more of it can come.
    fn inputs_past(&self, last_seq: u64) -> bool {
        [ports::IMAGE, ports::POINTMAP, ports::HANDS]
            .iter()
            .all(|input| {
                self.seq
                    .stats(input)
                    .and_then(|s| s.last_seq)
                    .is_some_and(|s| s >= last_seq)
            })
    }

    /// Finishes every clip whose end has arrived and that has all its frames, or whose frames
    /// can no longer arrive (a message was lost in transport).
    fn finish_ready_clips(&mut self) -> Result<(), AnnotateError> {
        let ready: Vec<String> = self
            .clips
            .iter()
            .filter(|(_, c)| {
                c.end.as_ref().is_some_and(|e| {
                    c.joined >= e.frames || e.last_seq.is_some_and(|l| self.inputs_past(l))
                })
            })
            .map(|(id, _)| id.clone())
            .collect();
        for clip_id in ready {
            let Some(mut clip) = self.clips.remove(&clip_id) else {
                continue;
            };
            let frames = clip.end.as_ref().map_or(0, |e| e.frames);
            if clip.joined < frames {
                let lost = frames - clip.joined;
                tracing::error!(clip = %clip_id, lost, "frames lost in transport");
                clip.frame_error.get_or_insert(format!(
                    "{lost} of {frames} frames lost in transport (dora dropped a message; see the sequence check); re-run to annotate this clip"
                ));
                // Their parts will never complete: drop them and count the frames as handled,
                // so ingest's ack count stays exact.
                self.partial.retain(|k, _| k.0 != clip_id);
                self.handled += lost;
            }
            self.finish_clip(&clip_id, clip)?;
            self.handled += 1;
        }
        self.try_finish_stream(false)
    }

    fn finish_clip(&mut self, clip_id: &str, clip: ClipState) -> Result<(), AnnotateError> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        if clip.done_before {
            self.report.clips_already_done.push(clip_id.to_owned());
            return Ok(());
        }
        let skip = |writer: &mut DatasetWriter, report: &mut RunReport, reason: String| {
            tracing::error!(clip = clip_id, "clip skipped: {reason}");
            writer.record_skip(clip_id, reason.clone());
            report.clips_skipped.insert(clip_id.to_owned(), reason);
        };
        if let Some(reason) = clip.error() {
            skip(writer, &mut self.report, reason);
            return Ok(());
        }
        let (Some(truth), Some(k)) = (&clip.truth, clip.intrinsics) else {
            skip(
                writer,
                &mut self.report,
                "no frame of the clip arrived".into(),
            );
            return Ok(());
        };
        let info = &truth.info;
        let inputs = ClipInputs {
            meta: ClipMeta {
                clip_id: clip_id.to_owned(),
                fps: info.fps as f32,
                intrinsics: k,
                instruction: info.instruction.clone(),
                target_object: Some(info.target_object.clone()),
            },
            frames: clip.observations.clone(),
        };
        let ann = match annotate_clip(&inputs, &self.cfg.hand3d) {
            Ok(a) => a,
            Err(e) => {
                let reason = match e {
                    Hand3dError::ClipSkipped { reason, .. } => reason,
                    other => other.to_string(),
                };
                skip(writer, &mut self.report, reason);
                return Ok(());
            }
        };
        // Frame store first, shard second: a clip with a shard always has its frames.
        let scales = frame_scales(&clip.observations, &self.cfg.hand3d, ann.stats.scale);
        let referenced: BTreeSet<u32> = ann
            .samples
            .iter()
            .flat_map(|s| s.frame_idxs.iter().copied())
            .collect();
        let mut stored = Vec::with_capacity(referenced.len());
        for idx in &referenced {
            let Some(kept) = clip.kept.get(idx) else {
                continue;
            };
            let s = scales.get(idx).copied().unwrap_or(ann.stats.scale);
            stored.push(StoredFrame {
                frame_idx: *idx,
                width: kept.k.width,
                height: kept.k.height,
                rgb: kept.rgb.clone(),
                depth_mm: kept.z.iter().map(|z| depth_to_mm(z * s)).collect(),
                intrinsics: kept.k,
                scale: s,
            });
        }
        let out = self.cfg.out.clone();
        write_clip_frames(&out, clip_id, &stored).map_err(dataset_err(&out))?;
        let rows = writer.write_clip(&ann).map_err(dataset_err(&out))?;
        let st = &ann.stats;
        tracing::info!(
            clip = clip_id,
            frames = st.frames,
            samples = rows,
            scale = st.scale,
            residual = st.median_abs_rel_residual,
            calibration_joints = st.calibration_joints,
            frames_no_hand = st.frames_no_hand,
            stored_frames = stored.len(),
            "clip annotated"
        );
        self.report.frames_annotated += clip.joined;
        self.report.clips_written.push(ClipReport {
            clip_id: clip_id.to_owned(),
            frames: clip.joined,
            samples: rows,
            scale: st.scale,
            median_abs_rel_residual: st.median_abs_rel_residual,
            calibration_joints: st.calibration_joints,
            frames_no_hand: st.frames_no_hand,
            stored_frames: stored.len(),
        });
        Ok(())
    }

    /// Writes the manifest once the stream end has arrived and every clip is finished
    /// (`force`: also when clips are incomplete because all inputs closed).
    pub fn try_finish_stream(&mut self, force: bool) -> Result<(), AnnotateError> {
        if self.finished || self.stream_end.is_none() {
            return Ok(());
        }
        if !self.clips.is_empty() && !force {
            return Ok(());
        }
        // Clips that never completed (frames lost): skipped with the count.
        let open: Vec<String> = self.clips.keys().cloned().collect();
        for clip_id in open {
            if let Some(mut clip) = self.clips.remove(&clip_id) {
                let frames = clip.end.as_ref().map_or(0, |e| e.frames);
                clip.frame_error.get_or_insert(format!(
                    "only {} of {frames} frames arrived complete (image, point map and hands)",
                    clip.joined
                ));
                if clip.done_before {
                    self.report.clips_already_done.push(clip_id.clone());
                } else if let Some(w) = self.writer.as_mut() {
                    let reason = clip.error().unwrap_or_default();
                    tracing::error!(clip = %clip_id, "clip skipped: {reason}");
                    w.record_skip(&clip_id, reason.clone());
                    self.report.clips_skipped.insert(clip_id.clone(), reason);
                }
            }
        }
        self.skip_unseen_videos();
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        let out = self.cfg.out.clone();
        let manifest = writer.finish().map_err(dataset_err(&out))?;
        self.handled += 1; // the stream end
        self.finished = true;
        self.report.inputs = self.seq.all().clone();
        self.report.all_inputs_clean = self.seq.is_clean() && self.partial.is_empty();
        self.report.stream_complete = !force;
        let elapsed = self.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        self.report.elapsed_s = elapsed;
        self.report.frames_per_s = if elapsed > 0.0 {
            self.report.frames_joined as f64 / elapsed
        } else {
            0.0
        };
        let path = out.join(REPORT_FILE);
        let text =
            serde_json::to_string_pretty(&self.report).map_err(|e| AnnotateError::Report {
                path: path.clone(),
                message: e.to_string(),
            })?;
        std::fs::write(&path, text).map_err(|e| AnnotateError::Report {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let c = &manifest.counts;
        tracing::info!(
            samples = c.samples,
            clips = c.clips,
            skipped_clips = c.skipped_clips,
            written_this_run = self.report.clips_written.len(),
            already_done = self.report.clips_already_done.len(),
            frames = self.report.frames_joined,
            frames_per_s = self.report.frames_per_s,
            dataset = %out.display(),
            "manifest written"
        );
        if !self.report.all_inputs_clean {
            tracing::warn!(
                unjoined = self.partial.len(),
                "some messages were lost or never joined"
            );
        }
        Ok(())
    }

    /// `expect_videos_in`: videos that never produced a message are skipped clips.
    fn skip_unseen_videos(&mut self) {
        let Some(dir) = &self.cfg.expect_videos_in else {
            return;
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "cannot list `expect_videos_in`: {e}");
                return;
            }
        };
        let mut unseen = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let is_video = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
            let Some(stem) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
                continue;
            };
            if is_video && !self.seen.contains(&stem) {
                unseen.push((stem, path));
            }
        }
        unseen.sort();
        if unseen.len() as u64 != self.report.ingest_bad_sources {
            tracing::warn!(
                unseen = unseen.len(),
                ingest_bad_sources = self.report.ingest_bad_sources,
                "videos without frames and ingest's bad-source count differ (is `expect_videos_in` the folder ingest reads?)"
            );
        }
        for (clip_id, path) in unseen {
            let reason = format!(
                "video-ingest sent no frame of {} (corrupt, unreadable or empty video; see the ingest log)",
                path.display()
            );
            tracing::error!(clip = %clip_id, "clip skipped: {reason}");
            if let Some(w) = self.writer.as_mut() {
                w.record_skip(&clip_id, reason.clone());
            }
            self.report.clips_skipped.insert(clip_id, reason);
        }
    }

    /// All inputs closed: finish with what arrived if the stream end came, else leave the
    /// dataset unfinished (no manifest) so a re-run resumes it.
    pub fn on_all_closed(&mut self) -> Result<(), AnnotateError> {
        if self.finished {
            return Ok(());
        }
        if self.stream_end.is_some() {
            tracing::warn!(
                open_clips = self.clips.len(),
                "inputs closed with clips still open"
            );
            return self.try_finish_stream(true);
        }
        tracing::warn!(
            written = self.report.clips_written.len(),
            "the stream ended without ingest's stream end: no manifest written; re-run to resume"
        );
        Ok(())
    }

    /// Logs the sequence check.
    pub fn log_summary(&self) {
        self.seq.log_summary();
    }
}

/// Decodes a lift node's message: its payload, or its frame-error reason. `None` when even the
/// header is unreadable (logged).
fn decode_part<T>(
    msg: &InputMsg,
    decode: impl FnOnce(
        &dyn arrow::array::Array,
        &Metadata,
    ) -> Result<(StreamHeader, T), vipa_msgs::MsgError>,
) -> Option<(StreamHeader, Result<T, String>)> {
    if kind_of(&msg.meta) == Some(<FrameError as Payload>::KIND) {
        return match FrameError::from_arrow(msg.array.as_ref(), &msg.meta) {
            Ok(f) => Some((f.header, Err(format!("{}: {}", f.node, f.error)))),
            Err(e) => {
                tracing::error!(input = %msg.id, "bad frame-error marker: {e}");
                None
            }
        };
    }
    match decode(msg.array.as_ref(), &msg.meta) {
        Ok((header, v)) => Some((header, Ok(v))),
        Err(e) => match StreamHeader::read("frame", &msg.meta) {
            // Undecodable payload with a readable header: a frame error of this frame.
            Ok(header) => Some((header, Err(format!("input `{}`: {e}", msg.id)))),
            Err(_) => {
                tracing::error!(input = %msg.id, "cannot decode: {e}");
                None
            }
        },
    }
}

fn list_float(meta: &Metadata, key: &str, n: usize) -> Option<Vec<f32>> {
    match meta.get(key) {
        Some(MetaValue::ListFloat(v)) if v.len() == n && v.iter().all(|x| x.is_finite()) => {
            Some(v.iter().map(|&x| x as f32).collect())
        }
        _ => None,
    }
}

/// Reduces one joined frame into the clip's observations (or records why it cannot).
fn observe(clip: &mut ClipState, part: Partial, cfg: &AnnotateConfig) {
    let (Some(image), Some(pointmap), Some(hands)) = (part.image, part.pointmap, part.hands) else {
        return;
    };
    let (pm, meta) = match pointmap {
        Ok(p) => p,
        Err(e) => {
            clip.depth_error.get_or_insert(e);
            return;
        }
    };
    let hands = match hands {
        Ok(h) => h,
        Err(e) => {
            clip.hands_error.get_or_insert(e);
            return;
        }
    };
    if clip.error().is_some() {
        return;
    }
    let idx = image.header.frame_idx as u32;
    let fail = |clip: &mut ClipState, why: String| {
        clip.frame_error
            .get_or_insert(format!("frame {idx}: {why}"));
    };
    if (pm.width, pm.height) != (image.width, image.height) {
        return fail(
            clip,
            format!(
                "point map is {}x{}, the image {}x{}",
                pm.width, pm.height, image.width, image.height
            ),
        );
    }
    // lift-depth's intrinsics put pixel centres at integer coordinates; vipa-hand3d at +0.5.
    let Some(kv) = list_float(&meta, KEY_INTRINSICS, 4) else {
        return fail(
            clip,
            format!("the point map has no `{KEY_INTRINSICS}` [fx, fy, cx, cy]"),
        );
    };
    let k = Intrinsics {
        fx: kv[0],
        fy: kv[1],
        cx: kv[2] + 0.5,
        cy: kv[3] + 0.5,
        width: pm.width,
        height: pm.height,
    };
    let pose = list_float(&meta, KEY_POSE, 16).map(|m| Pose {
        rotation: [[m[0], m[1], m[2]], [m[4], m[5], m[6]], [m[8], m[9], m[10]]],
        translation: [m[3], m[7], m[11]],
    });
    let map = match H3dPointMap::new(pm.width, pm.height, pm.values().to_vec()) {
        Ok(m) => m,
        Err(e) => return fail(clip, e.to_string()),
    };
    let hand_inputs: Vec<HandInput> = hands
        .hands
        .iter()
        .map(|h| HandInput {
            side: match h.side {
                HandSide::Left => Side::Left,
                HandSide::Right => Side::Right,
            },
            joints: h.joints_xyz,
            gt_visible: Some(h.confidence.map(|c| c > VISIBLE_CONFIDENCE)),
        })
        .collect();
    let objects: Vec<ObjectInput> = match (cfg.objects, &clip.truth) {
        (ObjectSource::Sidecar, Some(t)) => t
            .frames
            .iter()
            .find(|f| f.frame_idx == idx)
            .map(|f| vipa_hand3d::truth::frame_parts(f).1)
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let input = FrameInput {
        frame_idx: idx,
        point_map: &map,
        hands: hand_inputs,
        objects,
        camera_pose: pose,
    };
    match observe_frame(&input, &k, &cfg.hand3d) {
        Ok(obs) => clip.observations.push(obs),
        Err(e) => return fail(clip, e.to_string()),
    }
    clip.intrinsics.get_or_insert(k);
    clip.kept.entry(idx).or_insert_with(|| Kept {
        rgb: image.rgb().into_owned(),
        z: map.as_slice().chunks_exact(3).map(|p| p[2]).collect(),
        k,
    });
}

/// The scale applied to each frame's depth in the frame store: the clip scale (per-clip
/// mode), or the frame's own fit (per-frame mode, as `annotate_clip` computes it).
fn frame_scales(
    obs: &[FrameObservation],
    cfg: &vipa_hand3d::Config,
    clip_scale: f32,
) -> BTreeMap<u32, f32> {
    let c = &cfg.calibration;
    obs.iter()
        .map(|f| {
            let s = match c.mode {
                CalibrationMode::PerClip => clip_scale,
                CalibrationMode::PerFrame => fit_scale(&frame_ratios(f, c), c.min_valid_joints)
                    .map_or(clip_scale, |cal| cal.scale),
            };
            (f.frame_idx, s)
        })
        .collect()
}
