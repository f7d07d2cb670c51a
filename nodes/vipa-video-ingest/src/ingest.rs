//! The per-message logic of the ingest node, without dora: one call to [`Ingest::step`] sends
//! exactly one message (a frame, a clip end or the stream end) through an [`Outputs`].
//!
//! Bad sources (missing, unreadable, no decodable frame) are logged once each, with the running
//! count, and skipped; the stream goes on with the next source.

use std::path::PathBuf;

use vipa_msgs::ports;
use vipa_msgs::{ClipEnd, Encoding, ImageFrame, MetaValue, Payload, StreamEnd, StreamHeader};
use vipa_node_kit::{IoError, Outputs};

use crate::config::{IngestConfig, SourceSpec};
use crate::resample::Resampler;
use crate::source::{
    RawFrame, Skipped, SourceError, SourceKind, VideoSource, clip_ids, list_folder, sort_candidates,
};

/// Metadata key of the send time (ns since the Unix epoch), for latency measurements.
pub const KEY_SENT_UNIX_NS: &str = "sent_unix_ns";

/// Errors that stop the node (bad sources do not: they are skipped).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(
        "source folder {0} does not exist; create it (e.g. `cargo run -p vipa-synth -- --out {0}`) or set `folder`/`files`/`glob` in VIPA_CONFIG"
    )]
    NoFolder(PathBuf),
    #[error("cannot list source folder {path}: {message}")]
    ListFolder { path: PathBuf, message: String },
    #[error("invalid glob pattern {pattern:?}: {message}")]
    BadGlob { pattern: String, message: String },
    #[error("nothing to read: {0}; point `folder`, `files` or `glob` in VIPA_CONFIG at videos")]
    NothingToRead(String),
    #[error("{0}")]
    Io(#[from] IoError),
    #[error("a decoded frame does not match its own size: {0}")]
    Frame(#[from] vipa_msgs::MsgError),
}

/// One source to read, with its clip id (unique in the run, see [`crate::source::clip_ids`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub kind: SourceKind,
    pub clip_id: String,
}

/// The sources of a run, in order, and the folder or glob entries left out (each logged; those
/// named like a video but unreadable count as bad sources).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sources {
    pub list: Vec<Source>,
    pub skipped: Vec<Skipped>,
}

impl Sources {
    /// Sources to read.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there is nothing to read.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// The resolved sources, in order. A folder without a video file or a glob that matches
/// none is an error (a run that reads nothing is a mistake, not a success); entries of a
/// folder or glob that are not video files are left out, with their reason.
pub fn resolve_sources(cfg: &IngestConfig) -> Result<Sources, IngestError> {
    let (files, skipped) = match cfg.source() {
        SourceSpec::Camera(index) => {
            return Ok(Sources {
                list: vec![Source {
                    kind: SourceKind::Camera(index),
                    clip_id: SourceKind::Camera(index).clip_id(),
                }],
                skipped: Vec::new(),
            });
        }
        SourceSpec::Files(files) => {
            if files.is_empty() {
                return Err(IngestError::NothingToRead(
                    "`files` is an empty list".into(),
                ));
            }
            (files, Vec::new())
        }
        SourceSpec::Folder(folder) => {
            if !folder.is_dir() {
                return Err(IngestError::NoFolder(folder));
            }
            let (files, skipped) = list_folder(&folder).map_err(|e| IngestError::ListFolder {
                path: folder.clone(),
                message: e.to_string(),
            })?;
            if files.is_empty() {
                return Err(IngestError::NothingToRead(format!(
                    "folder {} holds no video file (.mp4 .avi .mkv .mov .webm){}",
                    folder.display(),
                    left_out(&skipped)
                )));
            }
            (files, skipped)
        }
        SourceSpec::Glob(pattern) => {
            let bad = |message: String| IngestError::BadGlob {
                pattern: pattern.clone(),
                message,
            };
            let mut matches = Vec::new();
            for entry in glob::glob(&pattern).map_err(|e| bad(e.to_string()))? {
                matches.push(entry.map_err(|e| bad(e.to_string()))?);
            }
            let (files, skipped) = sort_candidates(matches);
            if files.is_empty() {
                return Err(IngestError::NothingToRead(format!(
                    "glob {pattern:?} matches no video file{}",
                    left_out(&skipped)
                )));
            }
            (files, skipped)
        }
    };
    let ids = clip_ids(&files);
    Ok(Sources {
        list: files
            .into_iter()
            .zip(ids)
            .map(|(p, clip_id)| Source {
                kind: SourceKind::File(p),
                clip_id,
            })
            .collect(),
        skipped,
    })
}

fn left_out(skipped: &[Skipped]) -> String {
    if skipped.is_empty() {
        String::new()
    } else {
        format!(
            " ({} other entries left out, e.g. {}: {})",
            skipped.len(),
            skipped[0].path.display(),
            skipped[0].reason
        )
    }
}

/// Totals of a run, logged at the end and carried by the [`StreamEnd`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestTotals {
    pub clips: u64,
    pub frames: u64,
    pub bad_sources: u64,
    /// Clips cut short by a decode error after their first frame.
    pub truncated_clips: u64,
}

/// The clip being read.
struct OpenClip {
    clip_id: String,
    name: String,
    source: VideoSource,
    resampler: Resampler,
    /// Next source frame index.
    src_idx: u64,
    /// Output frames of the current source frame still to send: (frame, src idx, stamps).
    pending: Option<(RawFrame, u64, std::vec::IntoIter<u64>)>,
    sent: u64,
    last_ts: u64,
    complete: bool,
}

/// What [`Ingest::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Frame,
    ClipEnd,
    /// The stream end was sent: nothing more will be.
    StreamEnd,
    /// Called again after the stream end: nothing sent.
    Finished,
}

/// Reads the configured sources and turns them into messages.
pub struct Ingest {
    queue: std::collections::VecDeque<(Source, u32)>,
    loops: u32,
    encoding: Encoding,
    resize: Option<[u32; 2]>,
    target_fps: Option<f64>,
    max_frames: Option<u64>,
    current: Option<OpenClip>,
    image_seq: u64,
    control_seq: u64,
    totals: IngestTotals,
    finished: bool,
    /// Messages sent on all outputs (for ack-based flow control).
    sent_messages: u64,
}

impl Ingest {
    /// Reads `sources` in order; the entries they left out are logged here, one line each,
    /// and those named like a video are counted as bad sources.
    pub fn new(cfg: &IngestConfig, sources: Sources) -> Self {
        for s in &sources.skipped {
            if s.bad {
                tracing::warn!(path = %s.path.display(), "bad source, left out: {}", s.reason);
            } else {
                tracing::info!(path = %s.path.display(), "left out: {}", s.reason);
            }
        }
        let skipped = sources.skipped.iter().filter(|s| s.bad).count() as u64;
        let sources = sources.list;
        // A camera is one endless clip; repeating it makes no sense.
        let loops = if sources
            .iter()
            .any(|s| matches!(s.kind, SourceKind::Camera(_)))
        {
            1
        } else {
            cfg.loops
        };
        let queue = (0..loops)
            .flat_map(|pass| sources.iter().cloned().map(move |s| (s, pass)))
            .collect();
        Self {
            queue,
            loops,
            encoding: cfg.encoding(),
            resize: cfg.resize,
            target_fps: cfg.fps,
            max_frames: cfg.max_frames_per_clip,
            current: None,
            image_seq: 0,
            control_seq: 0,
            totals: IngestTotals {
                bad_sources: skipped,
                ..IngestTotals::default()
            },
            finished: false,
            sent_messages: 0,
        }
    }

    pub fn totals(&self) -> &IngestTotals {
        &self.totals
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Messages sent so far on all outputs.
    pub fn sent_messages(&self) -> u64 {
        self.sent_messages
    }

    /// Sends the next message.
    pub fn step(&mut self, out: &mut impl Outputs) -> Result<Step, IngestError> {
        if self.finished {
            return Ok(Step::Finished);
        }
        loop {
            if self.current.is_none() && !self.open_next() {
                self.send_stream_end(out)?;
                return Ok(Step::StreamEnd);
            }
            let Some(clip) = self.current.as_mut() else {
                continue;
            };
            match next_output(clip, self.max_frames) {
                Some((frame, src_idx, ts)) => {
                    self.send_frame(out, frame, src_idx, ts)?;
                    return Ok(Step::Frame);
                }
                None => {
                    self.send_clip_end(out)?;
                    return Ok(Step::ClipEnd);
                }
            }
        }
    }

    /// Opens sources until one yields a first frame; false when none is left.
    fn open_next(&mut self) -> bool {
        while let Some((source, pass)) = self.queue.pop_front() {
            let clip_id = if self.loops > 1 {
                format!("{}@{pass}", source.clip_id)
            } else {
                source.clip_id.clone()
            };
            match self.open_clip(&source.kind, clip_id) {
                Ok(clip) => {
                    tracing::info!(source = %clip.name, clip = %clip.clip_id, fps = clip.source.fps(), "reading clip");
                    self.current = Some(clip);
                    return true;
                }
                Err(e) => {
                    self.totals.bad_sources += 1;
                    tracing::error!(
                        bad_sources = self.totals.bad_sources,
                        "skipping source: {e}"
                    );
                }
            }
        }
        false
    }

    fn open_clip(&self, kind: &SourceKind, clip_id: String) -> Result<OpenClip, SourceError> {
        let mut source = VideoSource::open(kind, self.encoding, self.resize)?;
        let name = kind.name();
        // Read the first frame now, so an unreadable file is a bad source (one error, no
        // clip messages) rather than an empty clip.
        let first = source.next_frame()?.ok_or_else(|| SourceError::NoFrames {
            source_name: name.clone(),
        })?;
        let mut resampler = Resampler::new(source.fps(), self.target_fps);
        let stamps = resampler.outputs_for(0);
        Ok(OpenClip {
            clip_id,
            name,
            source,
            resampler,
            src_idx: 1,
            pending: Some((first, 0, stamps.into_iter())),
            sent: 0,
            last_ts: 0,
            complete: true,
        })
    }

    fn send_frame(
        &mut self,
        out: &mut impl Outputs,
        frame: RawFrame,
        src_idx: u64,
        ts: u64,
    ) -> Result<(), IngestError> {
        let Some(clip) = self.current.as_mut() else {
            return Ok(());
        };
        let header = StreamHeader {
            seq: self.image_seq,
            clip_id: clip.clip_id.clone(),
            frame_idx: src_idx,
            timestamp_ns: ts,
        };
        let image = ImageFrame::new(
            header,
            frame.width,
            frame.height,
            self.encoding,
            frame.pixels,
        )?;
        let (array, mut meta) = image.to_arrow();
        meta.insert(
            KEY_SENT_UNIX_NS.into(),
            MetaValue::Integer(vipa_node_kit::unix_time_ns()),
        );
        out.send_raw(ports::IMAGE, array, meta)?;
        self.image_seq += 1;
        self.sent_messages += 1;
        self.totals.frames += 1;
        clip.sent += 1;
        clip.last_ts = ts;
        Ok(())
    }

    fn send_clip_end(&mut self, out: &mut impl Outputs) -> Result<(), IngestError> {
        let Some(clip) = self.current.take() else {
            return Ok(());
        };
        let msg = ClipEnd {
            header: StreamHeader {
                seq: self.control_seq,
                clip_id: clip.clip_id.clone(),
                frame_idx: clip.sent,
                timestamp_ns: clip.last_ts,
            },
            frames: clip.sent,
            complete: clip.complete,
            // Frames of a clip are consecutive on the image output.
            last_seq: (clip.sent > 0).then(|| self.image_seq - 1),
        };
        out.send(ports::CLIP_END, &msg)?;
        self.control_seq += 1;
        self.sent_messages += 1;
        self.totals.clips += 1;
        if !clip.complete {
            self.totals.truncated_clips += 1;
        }
        tracing::info!(clip = %clip.clip_id, frames = clip.sent, complete = clip.complete, "clip done");
        Ok(())
    }

    fn send_stream_end(&mut self, out: &mut impl Outputs) -> Result<(), IngestError> {
        let msg = StreamEnd {
            header: StreamHeader {
                seq: self.control_seq,
                clip_id: String::new(),
                frame_idx: 0,
                timestamp_ns: 0,
            },
            clips: self.totals.clips,
            frames: self.totals.frames,
            bad_sources: self.totals.bad_sources,
        };
        out.send(ports::CLIP_END, &msg)?;
        self.control_seq += 1;
        self.sent_messages += 1;
        self.finished = true;
        let t = &self.totals;
        tracing::info!(
            clips = t.clips,
            frames = t.frames,
            bad_sources = t.bad_sources,
            truncated_clips = t.truncated_clips,
            "stream done"
        );
        Ok(())
    }
}

/// The next output frame of `clip` (decoding as needed), or `None` at the end of the clip.
fn next_output(clip: &mut OpenClip, max_frames: Option<u64>) -> Option<(RawFrame, u64, u64)> {
    if max_frames.is_some_and(|m| clip.sent >= m) {
        return None;
    }
    loop {
        if let Some((frame, idx, stamps)) = clip.pending.as_mut()
            && let Some(ts) = stamps.next()
        {
            // Duplicates share the decoded bytes: cheap to clone relative to decoding.
            let (frame, idx) = (frame.clone(), *idx);
            return Some((frame, idx, ts));
        }
        clip.pending = None;
        match clip.source.next_frame() {
            Ok(Some(frame)) => {
                let idx = clip.src_idx;
                clip.src_idx += 1;
                let stamps = clip.resampler.outputs_for(idx);
                clip.pending = Some((frame, idx, stamps.into_iter()));
            }
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(clip = %clip.clip_id, "decode error, ending the clip early: {e}");
                clip.complete = false;
                return None;
            }
        }
    }
}
