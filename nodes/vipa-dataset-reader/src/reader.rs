//! The reader's per-message logic, without dora: answer each credit of a `request` with one
//! sample (and its frames), end every output with a `StreamEnd` when the data runs out.
//!
//! # What one sample sends, in this order
//! 1. on `image`: one [`ImageFrame`] (rgb8, stored size) per frame of the sample;
//! 2. on `pointmap`: one calibrated [`vipa_msgs::PointMap`] (camera frame, metres) per frame;
//! 3. on `sample`: a [`QaBatch`] with exactly one [`vipa_msgs::QaSample`].
//!
//! Every message of a sample carries `sample_seq` (the sample's number, 0, 1, 2, … over the
//! whole run, also the `seq` of its `sample` message) and `n_frames`; the frame messages add
//! `frame_slot` (0 … n_frames−1, oldest first). Each output has its own gap-free `seq`. All
//! messages of a sample are built before the first is sent, so a failing frame never leaves a
//! half-sent sample.
//!
//! # Skipped samples
//! A sample whose frame store is missing or lacks one of its frames is skipped: an error log
//! names the clip and the frame, [`Reader::skipped`] counts it, and the `StreamEnd` on every
//! output reports the count in `bad_sources`. The credit is not used up: the next sample takes
//! its place.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::ArrayRef;

use vipa_hand3d::frames::{ClipFrames, read_clip_frames};
use vipa_hand3d::{DatasetReader, Hand3dError, Sample, Split, Task};
use vipa_msgs::ports;
use vipa_msgs::{
    Encoding, ImageFrame, MetaValue, Metadata, Payload, PointMap, QaBatch, Request, StreamEnd,
    StreamHeader,
};
use vipa_node_kit::{InputMsg, IoError, Outputs, SeqEvent, SeqTracker};

use crate::config::ReaderConfig;

/// Metadata keys added to the payloads' own keys.
pub mod keys {
    /// The feed's shared keys: `sample_seq` (the sample's number over the run, counting
    /// passed-over ones), `n_frames`, `frame_slot`.
    pub use vipa_msgs::meta::keys::{FRAME_SLOT, N_FRAMES, SAMPLE_SEQ};
    /// Integer: the epoch the sample belongs to (`sample` only).
    pub const EPOCH: &str = "epoch";
    /// String: `train` or `test` (`sample` only).
    pub const SPLIT: &str = "split";
}

/// Why the reader cannot go on (the node exits with this error).
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    #[error("cannot open the Hand3D dataset {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: Hand3dError,
    },
    #[error(
        "the {split} split of {path} has no samples of the tasks {tasks:?}; check `split` and `tasks` in the reader config"
    )]
    Empty {
        path: PathBuf,
        split: &'static str,
        tasks: Vec<&'static str>,
    },
    #[error("cannot read epoch {epoch} of {path}: {source}")]
    Epoch {
        path: PathBuf,
        epoch: u64,
        #[source]
        source: Hand3dError,
    },
    #[error(
        "request {seq}: {missing} earlier request(s) were lost, so their credits are unknown; give the `request` input a deeper queue_size"
    )]
    RequestGap { seq: u64, missing: u64 },
    #[error(transparent)]
    Io(#[from] IoError),
}

/// Why one sample was skipped (the run goes on).
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("clip `{clip_id}`: cannot read its frame store: {source}")]
    FrameStore {
        clip_id: String,
        #[source]
        source: Hand3dError,
    },
    #[error(
        "clip `{clip_id}`, frame {frame_idx}: not in the frame store (re-annotate the clip to store it)"
    )]
    MissingFrame { clip_id: String, frame_idx: u32 },
    #[error("clip `{clip_id}`, frame {frame_idx}: {problem}")]
    BadFrame {
        clip_id: String,
        frame_idx: u32,
        problem: String,
    },
    #[error("clip `{clip_id}`: sample has no frames")]
    NoFrames { clip_id: String },
}

/// Counts for the log and the stream ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderTotals {
    /// Samples sent.
    pub samples: u64,
    /// Samples passed over unsent at a resumed requester's `skip` (they keep their
    /// `sample_seq`: the first sample sent is `passed_over`).
    pub passed_over: u64,
    pub images: u64,
    pub pointmaps: u64,
    pub skipped: u64,
    pub credits_unused: u64,
}

/// The pull-driven sample source.
pub struct Reader {
    cfg: ReaderConfig,
    split: Split,
    tasks: Vec<Task>,
    dataset: DatasetReader,
    epoch: u64,
    order: Vec<Sample>,
    pos: usize,
    cache: VecDeque<Arc<ClipFrames>>,
    credits: u64,
    totals: ReaderTotals,
    ended: bool,
    seq: SeqTracker,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("epoch", &self.epoch)
            .field("pos", &self.pos)
            .field("totals", &self.totals)
            .field("ended", &self.ended)
            .finish()
    }
}

fn int(v: u64) -> MetaValue {
    MetaValue::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

impl Reader {
    /// Opens the dataset and shuffles the first epoch. Fails if the split (after the task
    /// filter) has no samples.
    pub fn open(cfg: &ReaderConfig) -> Result<Self, ReaderError> {
        use vipa_node_kit::NodeConfig;
        let invalid = |m: String| ReaderError::Open {
            path: cfg.dataset.clone(),
            source: Hand3dError::Config {
                key: "reader",
                problem: m,
            },
        };
        cfg.validate().map_err(invalid)?;
        let split = cfg.split().map_err(invalid)?;
        let tasks = cfg.task_filter().map_err(invalid)?;
        let dataset = DatasetReader::open(&cfg.dataset).map_err(|source| ReaderError::Open {
            path: cfg.dataset.clone(),
            source,
        })?;
        let mut reader = Self {
            cfg: cfg.clone(),
            split,
            tasks,
            dataset,
            epoch: 0,
            order: Vec::new(),
            pos: 0,
            cache: VecDeque::new(),
            credits: 0,
            totals: ReaderTotals::default(),
            ended: false,
            seq: SeqTracker::new(),
        };
        reader.order = reader.load_epoch(0)?;
        if reader.order.is_empty() {
            return Err(ReaderError::Empty {
                path: cfg.dataset.clone(),
                split: split.as_str(),
                tasks: reader.tasks.iter().map(|t| t.as_str()).collect(),
            });
        }
        tracing::info!(
            samples_per_epoch = reader.order.len(),
            epochs = cfg.epochs,
            max_samples = ?cfg.max_samples,
            split = split.as_str(),
            "dataset opened"
        );
        Ok(reader)
    }

    fn load_epoch(&self, epoch: u64) -> Result<Vec<Sample>, ReaderError> {
        self.dataset
            .epoch(self.split, &self.tasks, self.cfg.seed, epoch)
            .map_err(|source| ReaderError::Epoch {
                path: self.cfg.dataset.clone(),
                epoch,
                source,
            })
    }

    /// Samples per epoch (after the task filter).
    pub fn samples_per_epoch(&self) -> usize {
        self.order.len()
    }

    /// Whether the `StreamEnd`s have been sent (nothing more will be sent).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    pub fn totals(&self) -> ReaderTotals {
        ReaderTotals {
            credits_unused: self.credits,
            ..self.totals
        }
    }

    /// Samples skipped for missing or bad frames.
    pub fn skipped(&self) -> u64 {
        self.totals.skipped
    }

    /// The sequence check of the `request` input.
    pub fn seq(&self) -> &SeqTracker {
        &self.seq
    }

    /// Handles one input message (only `request` is expected).
    pub fn on_input(&mut self, msg: &InputMsg, out: &mut impl Outputs) -> Result<(), ReaderError> {
        if msg.id != ports::REQUEST {
            tracing::warn!(input = %msg.id, "ignoring unexpected input");
            return Ok(());
        }
        let req: Request = msg.decode()?;
        self.on_request(req, out)
    }

    /// Adds the request's credits and sends samples until they are used up or the data ends.
    pub fn on_request(&mut self, req: Request, out: &mut impl Outputs) -> Result<(), ReaderError> {
        match self.seq.observe(ports::REQUEST, req.seq) {
            SeqEvent::InOrder => {}
            SeqEvent::Gap { missing } => {
                return Err(ReaderError::RequestGap {
                    seq: req.seq,
                    missing,
                });
            }
            // A requester that heard nothing for a while may resend its last request (it
            // cannot tell a lost request from a slow graph); the same seq again adds nothing.
            SeqEvent::Late => {
                tracing::info!(seq = req.seq, "repeated request ignored (already counted)");
                return Ok(());
            }
        }
        if self.ended {
            tracing::warn!(
                credits = req.credits,
                "request after the end of stream: nothing left to send"
            );
            self.credits += u64::from(req.credits);
            return Ok(());
        }
        if req.skip > 0 {
            self.pass_over(req, out)?;
        }
        self.credits += u64::from(req.credits);
        while self.credits > 0 && !self.ended {
            match self.next_sample()? {
                None => self.end(out)?,
                Some(sample) => match self.build(&sample) {
                    Ok(messages) => {
                        self.send(messages, out)?;
                        self.credits -= 1;
                        if self.no_more_data() {
                            self.end(out)?;
                        }
                    }
                    Err(e) => {
                        self.totals.skipped += 1;
                        tracing::error!(skipped = self.totals.skipped, "sample skipped: {e}");
                    }
                },
            }
        }
        Ok(())
    }

    /// Passes over `req.skip` samples without sending them: the ones a resumed trainer's
    /// checkpoint already trained on. Each is built (so a sample that fails to build is
    /// skipped exactly as in the first run, and the `sample_seq` numbers line up) but nothing
    /// reaches the encoders. Only the stream's first request may ask for it.
    fn pass_over(&mut self, req: Request, out: &mut impl Outputs) -> Result<(), ReaderError> {
        if req.seq != 0 || self.totals.samples > 0 || self.totals.passed_over > 0 {
            tracing::warn!(
                seq = req.seq,
                skip = req.skip,
                "`skip` on a request after the first one: ignored"
            );
            return Ok(());
        }
        while self.totals.passed_over < req.skip && !self.ended {
            match self.next_sample()? {
                None => self.end(out)?,
                Some(sample) => match self.build(&sample) {
                    Ok(_) => self.totals.passed_over += 1,
                    Err(e) => {
                        self.totals.skipped += 1;
                        tracing::error!(skipped = self.totals.skipped, "sample skipped: {e}");
                    }
                },
            }
        }
        tracing::info!(
            passed_over = self.totals.passed_over,
            "resumed requester: passed over the samples it already trained on"
        );
        if !self.ended && self.no_more_data() {
            self.end(out)?;
        }
        Ok(())
    }

    /// The `sample_seq` of the next sample: passed over and sent ones both count.
    fn next_sample_seq(&self) -> u64 {
        self.totals.passed_over + self.totals.samples
    }

    /// True when `max_samples` is reached or the last epoch has no samples left.
    fn no_more_data(&self) -> bool {
        let limit = self
            .cfg
            .max_samples
            .is_some_and(|m| self.next_sample_seq() >= m);
        let last = self.epoch + 1 >= self.cfg.epochs && self.pos >= self.order.len();
        limit || last
    }

    /// The next sample in (epoch, shuffled) order, or `None` at the end of the data.
    fn next_sample(&mut self) -> Result<Option<Sample>, ReaderError> {
        if self
            .cfg
            .max_samples
            .is_some_and(|m| self.next_sample_seq() >= m)
        {
            return Ok(None);
        }
        while self.pos >= self.order.len() {
            if self.epoch + 1 >= self.cfg.epochs {
                return Ok(None);
            }
            self.epoch += 1;
            self.order = self.load_epoch(self.epoch)?;
            self.pos = 0;
            tracing::info!(epoch = self.epoch, samples = self.order.len(), "new epoch");
        }
        let sample = self.order[self.pos].clone();
        self.pos += 1;
        Ok(Some(sample))
    }

    /// The frame store of a clip, from a small most-recently-used cache.
    fn clip_frames(&mut self, clip_id: &str) -> Result<Arc<ClipFrames>, SampleError> {
        if let Some(i) = self.cache.iter().position(|c| c.clip_id == clip_id) {
            let hit = self.cache.remove(i).ok_or_else(|| SampleError::NoFrames {
                clip_id: clip_id.to_owned(),
            })?;
            self.cache.push_front(Arc::clone(&hit));
            return Ok(hit);
        }
        let frames = read_clip_frames(&self.cfg.dataset, clip_id).map_err(|source| {
            SampleError::FrameStore {
                clip_id: clip_id.to_owned(),
                source,
            }
        })?;
        let frames = Arc::new(frames);
        self.cache.push_front(Arc::clone(&frames));
        self.cache.truncate(self.cfg.frame_cache_clips);
        Ok(frames)
    }

    /// Every message of one sample, not yet sent.
    fn build(&mut self, sample: &Sample) -> Result<SampleMessages, SampleError> {
        let clip_id = sample.clip_id.clone();
        let all = &sample.frame_idxs;
        let k = self.cfg.max_frames.min(all.len());
        let frames: Vec<u32> = all[all.len() - k..].to_vec();
        let Some(&last) = frames.last() else {
            return Err(SampleError::NoFrames { clip_id });
        };
        let store = self.clip_frames(&clip_id)?;
        let sample_seq = self.next_sample_seq();
        let n_frames = frames.len() as u64;
        let mut images = Vec::with_capacity(frames.len());
        let mut pointmaps = Vec::with_capacity(frames.len());
        for (slot, &frame_idx) in frames.iter().enumerate() {
            let stored = store
                .get(frame_idx)
                .ok_or_else(|| SampleError::MissingFrame {
                    clip_id: clip_id.clone(),
                    frame_idx,
                })?;
            let bad = |problem: String| SampleError::BadFrame {
                clip_id: clip_id.clone(),
                frame_idx,
                problem,
            };
            let header = |seq: u64| StreamHeader {
                seq,
                clip_id: clip_id.clone(),
                frame_idx: u64::from(frame_idx),
                timestamp_ns: 0,
            };
            let image = ImageFrame::new(
                header(self.totals.images + slot as u64),
                stored.width,
                stored.height,
                Encoding::Rgb8,
                stored.rgb.clone(),
            )
            .map_err(|e| bad(e.to_string()))?;
            let points = stored.point_map().map_err(|e| bad(e.to_string()))?;
            let pointmap = PointMap::new(
                header(self.totals.pointmaps + slot as u64),
                stored.height,
                stored.width,
                points.as_slice().to_vec(),
            )
            .map_err(|e| bad(e.to_string()))?;
            let extra = |meta: &mut Metadata| {
                meta.insert(keys::SAMPLE_SEQ.into(), int(sample_seq));
                meta.insert(keys::FRAME_SLOT.into(), int(slot as u64));
                meta.insert(keys::N_FRAMES.into(), int(n_frames));
            };
            let (array, mut meta) = image.to_arrow();
            extra(&mut meta);
            images.push((array, meta));
            let (array, mut meta) = pointmap.to_arrow();
            extra(&mut meta);
            pointmaps.push((array, meta));
        }
        let mut qa = sample.to_qa_sample(format!("{clip_id}#{sample_seq}"));
        qa.frame_indices = frames.iter().map(|&f| u64::from(f)).collect();
        let batch = QaBatch {
            header: StreamHeader {
                // The output's own gap-free count (equal to `sample_seq` unless resumed).
                seq: self.totals.samples,
                clip_id,
                frame_idx: u64::from(last),
                timestamp_ns: 0,
            },
            samples: vec![qa],
        };
        let (array, mut meta) = batch.to_arrow();
        meta.insert(keys::SAMPLE_SEQ.into(), int(sample_seq));
        meta.insert(keys::N_FRAMES.into(), int(n_frames));
        meta.insert(keys::EPOCH.into(), int(self.epoch));
        meta.insert(
            keys::SPLIT.into(),
            MetaValue::String(self.split.as_str().into()),
        );
        Ok(SampleMessages {
            images,
            pointmaps,
            sample: (array, meta),
        })
    }

    fn send(&mut self, m: SampleMessages, out: &mut impl Outputs) -> Result<(), ReaderError> {
        for (array, meta) in m.images {
            out.send_raw(ports::IMAGE, array, meta)?;
            self.totals.images += 1;
        }
        for (array, meta) in m.pointmaps {
            out.send_raw(ports::POINTMAP, array, meta)?;
            self.totals.pointmaps += 1;
        }
        let (array, meta) = m.sample;
        out.send_raw(ports::SAMPLE, array, meta)?;
        self.totals.samples += 1;
        Ok(())
    }

    /// Sends a `StreamEnd` on every output (once).
    fn end(&mut self, out: &mut impl Outputs) -> Result<(), ReaderError> {
        if self.ended {
            return Ok(());
        }
        let t = self.totals;
        for (output, seq) in [
            (ports::IMAGE, t.images),
            (ports::POINTMAP, t.pointmaps),
            (ports::SAMPLE, t.samples),
        ] {
            let end = StreamEnd {
                header: StreamHeader {
                    seq,
                    ..StreamHeader::default()
                },
                clips: 0,
                frames: seq,
                bad_sources: t.skipped,
            };
            out.send(output, &end)?;
        }
        self.ended = true;
        tracing::info!(
            samples = t.samples,
            images = t.images,
            skipped = t.skipped,
            "end of data: stream ends sent"
        );
        Ok(())
    }
}

struct SampleMessages {
    images: Vec<(ArrayRef, Metadata)>,
    pointmaps: Vec<(ArrayRef, Metadata)>,
    sample: (ArrayRef, Metadata),
}
