//! The Hand3D dataset on disk: one Parquet shard per clip plus `manifest.json`.
//!
//! # Layout
//! ```text
//! <root>/
//!   config.json                  the Config used (written first; a resume must match it)
//!   shards/<clip_id>.parquet     one per annotated clip; rows = samples (schema below);
//!                                key-value metadata `vipa.clip_stats` (ClipStats JSON) and
//!                                `vipa.dataset_schema`
//!   shards/.<clip_id>.parquet.tmp  a shard being written (deleted by the next open)
//!   manifest.json                written last, by `finish`: schema version, config, counts
//!                                per task / split / clip, the split of every clip, the shard
//!                                list with row counts, the skipped clips with reasons
//! ```
//! Images are referenced by `(clip_id, frame_idxs)`; the frames stay in the source videos.
//!
//! # Crash safety
//! A shard is written under a temp name and renamed, so a shard file is either complete or
//! absent. `manifest.json` is deleted when a writer opens and written (again via a temp name)
//! only by [`DatasetWriter::finish`], so its presence means the dataset is complete. A re-run
//! with the same root skips clips whose shard exists ([`DatasetWriter::is_done`]), and
//! `finish` builds the manifest from *all* shards in the folder, so an interrupted run plus a
//! resume gives the same files as one uninterrupted run.
//!
//! # Split
//! By clip: a clip is in `test` (Hand3D-test) when `hash(split.seed, clip_id) < test_fraction`
//! (FNV-1a mapped to [0, 1)). It depends only on the clip's name, so adding clips or resuming
//! never moves a clip between splits.
//!
//! # Shard schema (dataset schema 1)
//! | column | Arrow type | meaning |
//! |---|---|---|
//! | `sample_id` | Utf8 | `<clip_id>/<index:05>` |
//! | `clip_id` | Utf8 | |
//! | `task` | Utf8 | [`Task`] name |
//! | `frame_idxs` | List<UInt32> | frames shown, oldest first |
//! | `template` | UInt32 | question template index |
//! | `question`, `answer` | Utf8 | the text |
//! | `side`, `object` | Utf8, nullable | |
//! | `truth_directions` | List<Int8>, nullable | `[lr, ud, fb/roll]` ∈ {−1, 0, 1} |
//! | `truth_value` | Float32, nullable | metres or degrees |
//! | `truth_unit` | Utf8, nullable | `m` or `deg` |
//! | `vector` | List<Float32>, nullable | `f32[3]` answer vector (m) or rotation axis |
//! | `camera_translation` | List<Float32>, nullable | `f32[3]` metres |
//! | `motion_tokens` | List<UInt32> | `u32[waypoints·3]`, empty for visual tasks |

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float32Array, Float32Builder, Int8Builder, ListArray, ListBuilder,
    RecordBatch, StringArray, StringBuilder, UInt32Array, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::answer::{AnswerTruth, Directions, Unit};
use crate::config::Config;
use crate::error::{Hand3dError, Result};
use crate::observe::Side;
use crate::pipeline::{ClipAnnotations, ClipStats};
use crate::sample::{Sample, Task};
use crate::stats::mix_seed;

/// Version of the shard schema and manifest layout.
pub const DATASET_SCHEMA_VERSION: u32 = 1;
const STATS_KEY: &str = "vipa.clip_stats";
const SCHEMA_KEY: &str = "vipa.dataset_schema";
const MANIFEST: &str = "manifest.json";
const CONFIG: &str = "config.json";
const SHARDS: &str = "shards";

/// Train or held-out test (Hand3D-test).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Test,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }

    /// The split of a clip (see the module docs).
    pub fn of_clip(clip_id: &str, seed: u64, test_fraction: f32) -> Split {
        // FNV-1a alone barely changes its high bits between names that differ in the last
        // characters (`clip_0000`, `clip_0001`, …), which put every clip of the default sample in
        // `train`; a splitmix64 finaliser spreads them over [0, 1).
        let mut z = mix_seed(seed, clip_id, 0x5917);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let u = (z >> 11) as f64 / (1u64 << 53) as f64;
        if u < f64::from(test_fraction) {
            Split::Test
        } else {
            Split::Train
        }
    }
}

/// One shard (= one clip) in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipEntry {
    pub clip_id: String,
    pub split: Split,
    /// Relative to the dataset root.
    pub shard: String,
    pub rows: usize,
    pub stats: ClipStats,
}

/// A clip that produced no shard, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedClip {
    pub clip_id: String,
    pub reason: String,
}

/// Totals over the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Counts {
    pub samples: usize,
    pub clips: usize,
    pub skipped_clips: usize,
    pub per_task: BTreeMap<String, usize>,
    pub per_split: BTreeMap<String, usize>,
    /// `split → task → samples`.
    pub per_split_task: BTreeMap<String, BTreeMap<String, usize>>,
    pub frames_no_hand: usize,
    pub action_chunks_filtered_static: usize,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub dataset_schema_version: u32,
    pub msgs_schema_version: i64,
    /// How motion tokens are spelled in text.
    pub motion_token_format: String,
    pub config: Config,
    pub counts: Counts,
    /// Sorted by clip id.
    pub clips: Vec<ClipEntry>,
    /// Sorted by clip id.
    pub skipped: Vec<SkippedClip>,
}

/// What [`DatasetWriter::record`] did with a clip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    Written { rows: usize },
    Skipped { reason: String },
}

/// Writes shards and, at the end, the manifest (see the module docs).
#[derive(Debug)]
pub struct DatasetWriter {
    root: PathBuf,
    config: Config,
    done: BTreeSet<String>,
    skipped: BTreeMap<String, String>,
}

/// Clip ids become file names: keep them to a safe alphabet.
pub fn check_clip_id(clip_id: &str) -> Result<()> {
    let ok = !clip_id.is_empty()
        && !clip_id.starts_with('.')
        && clip_id.len() <= 200
        && clip_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Hand3dError::bad_input(
            format!("clip id `{clip_id}`"),
            "must be 1–200 characters of [A-Za-z0-9_.-], not starting with '.' (it names the shard file)",
        ))
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    fs::write(&tmp, bytes).map_err(|e| Hand3dError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Hand3dError::io(path, e))
}

fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

impl DatasetWriter {
    /// Opens (creating) a dataset folder for writing. Deletes leftover temp files and the
    /// manifest of an earlier run; fails if `config.json` exists and differs from `config`.
    pub fn open(root: impl Into<PathBuf>, config: &Config) -> Result<Self> {
        config.validate()?;
        let root = root.into();
        let shards = root.join(SHARDS);
        fs::create_dir_all(&shards).map_err(|e| Hand3dError::io(&shards, e))?;
        let cfg_path = root.join(CONFIG);
        if cfg_path.exists() {
            let text = fs::read_to_string(&cfg_path).map_err(|e| Hand3dError::io(&cfg_path, e))?;
            let old: Config = serde_json::from_str(&text).map_err(|e| Hand3dError::Manifest {
                path: cfg_path.clone(),
                problem: format!("corrupt config: {e}"),
            })?;
            if &old != config {
                return Err(Hand3dError::Manifest {
                    path: cfg_path,
                    problem: "this folder was annotated with a different config; use a new output folder or the same config".to_owned(),
                });
            }
        } else {
            let text = serde_json::to_string_pretty(config).map_err(|e| Hand3dError::Manifest {
                path: cfg_path.clone(),
                problem: e.to_string(),
            })?;
            write_atomic(&cfg_path, text.as_bytes())?;
        }
        let manifest = root.join(MANIFEST);
        if manifest.exists() {
            fs::remove_file(&manifest).map_err(|e| Hand3dError::io(&manifest, e))?;
        }
        let mut done = BTreeSet::new();
        for entry in fs::read_dir(&shards).map_err(|e| Hand3dError::io(&shards, e))? {
            let entry = entry.map_err(|e| Hand3dError::io(&shards, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                fs::remove_file(entry.path()).map_err(|e| Hand3dError::io(entry.path(), e))?;
            } else if let Some(clip) = name.strip_suffix(".parquet") {
                done.insert(clip.to_owned());
            }
        }
        Ok(Self {
            root,
            config: config.clone(),
            done,
            skipped: BTreeMap::new(),
        })
    }

    /// Whether the clip already has a finished shard (skip it on a resume).
    pub fn is_done(&self, clip_id: &str) -> bool {
        self.done.contains(clip_id)
    }

    /// Writes a clip's shard (temp name, then rename).
    pub fn write_clip(&mut self, ann: &ClipAnnotations) -> Result<usize> {
        check_clip_id(&ann.clip_id)?;
        let path = self
            .root
            .join(SHARDS)
            .join(format!("{}.parquet", ann.clip_id));
        let tmp = tmp_path(&path);
        write_shard(&tmp, ann)?;
        fs::rename(&tmp, &path).map_err(|e| Hand3dError::io(&path, e))?;
        self.done.insert(ann.clip_id.clone());
        self.skipped.remove(&ann.clip_id);
        Ok(ann.samples.len())
    }

    /// Counts a clip as skipped (it gets no shard).
    pub fn record_skip(&mut self, clip_id: &str, reason: impl Into<String>) {
        self.skipped.insert(clip_id.to_owned(), reason.into());
    }

    /// Writes a successful annotation, or records any annotation error as a skip. Only the
    /// writer's own failures (disk, encoding) are returned as errors.
    pub fn record(&mut self, clip_id: &str, result: Result<ClipAnnotations>) -> Result<Recorded> {
        match result {
            Ok(ann) => Ok(Recorded::Written {
                rows: self.write_clip(&ann)?,
            }),
            Err(e) => {
                let reason = e.to_string();
                self.record_skip(clip_id, reason.clone());
                Ok(Recorded::Skipped { reason })
            }
        }
    }

    /// Builds the manifest from every shard in the folder and writes it (last).
    pub fn finish(self) -> Result<Manifest> {
        let mut clips = Vec::new();
        for clip_id in &self.done {
            let rel = format!("{SHARDS}/{clip_id}.parquet");
            let (rows, stats) = read_shard_meta(&self.root.join(&rel))?;
            clips.push(ClipEntry {
                clip_id: clip_id.clone(),
                split: Split::of_clip(
                    clip_id,
                    self.config.split.seed,
                    self.config.split.test_fraction,
                ),
                shard: rel,
                rows,
                stats,
            });
        }
        let skipped: Vec<SkippedClip> = self
            .skipped
            .iter()
            .filter(|(c, _)| !self.done.contains(*c))
            .map(|(c, r)| SkippedClip {
                clip_id: c.clone(),
                reason: r.clone(),
            })
            .collect();
        let mut counts = Counts {
            clips: clips.len(),
            skipped_clips: skipped.len(),
            ..Counts::default()
        };
        for c in &clips {
            counts.samples += c.rows;
            *counts
                .per_split
                .entry(c.split.as_str().to_owned())
                .or_insert(0) += c.rows;
            counts.frames_no_hand += c.stats.frames_no_hand;
            counts.action_chunks_filtered_static += c.stats.action.filtered_static;
            for (task, n) in &c.stats.samples_per_task {
                *counts.per_task.entry(task.clone()).or_insert(0) += n;
                *counts
                    .per_split_task
                    .entry(c.split.as_str().to_owned())
                    .or_default()
                    .entry(task.clone())
                    .or_insert(0) += n;
            }
        }
        let manifest = Manifest {
            dataset_schema_version: DATASET_SCHEMA_VERSION,
            msgs_schema_version: vipa_msgs::SCHEMA_VERSION,
            motion_token_format: "<mx_{i}><my_{j}><mz_{k}>".to_owned(),
            config: self.config,
            counts,
            clips,
            skipped,
        };
        let path = self.root.join(MANIFEST);
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| Hand3dError::Manifest {
            path: path.clone(),
            problem: e.to_string(),
        })?;
        write_atomic(&path, text.as_bytes())?;
        Ok(manifest)
    }
}

fn schema() -> Arc<Schema> {
    let list = |name: &str, item: DataType, nullable: bool| {
        Field::new(
            name,
            DataType::List(Arc::new(Field::new("item", item, true))),
            nullable,
        )
    };
    Arc::new(Schema::new(vec![
        Field::new("sample_id", DataType::Utf8, false),
        Field::new("clip_id", DataType::Utf8, false),
        Field::new("task", DataType::Utf8, false),
        list("frame_idxs", DataType::UInt32, false),
        Field::new("template", DataType::UInt32, false),
        Field::new("question", DataType::Utf8, false),
        Field::new("answer", DataType::Utf8, false),
        Field::new("side", DataType::Utf8, true),
        Field::new("object", DataType::Utf8, true),
        list("truth_directions", DataType::Int8, true),
        Field::new("truth_value", DataType::Float32, true),
        Field::new("truth_unit", DataType::Utf8, true),
        list("vector", DataType::Float32, true),
        list("camera_translation", DataType::Float32, true),
        list("motion_tokens", DataType::UInt32, false),
    ]))
}

fn strings_column(s: &[Sample], f: &dyn Fn(usize, &Sample) -> Option<String>) -> ArrayRef {
    let mut b = StringBuilder::new();
    for (i, x) in s.iter().enumerate() {
        b.append_option(f(i, x));
    }
    Arc::new(b.finish())
}

fn to_batch(ann: &ClipAnnotations) -> Result<RecordBatch, arrow::error::ArrowError> {
    let s = &ann.samples;
    let strings = |f: &dyn Fn(usize, &Sample) -> Option<String>| strings_column(s, f);
    let mut frames = ListBuilder::new(UInt32Builder::new());
    let mut dirs = ListBuilder::new(Int8Builder::new());
    let mut vector = ListBuilder::new(Float32Builder::new());
    let mut cam = ListBuilder::new(Float32Builder::new());
    let mut tokens = ListBuilder::new(UInt32Builder::new());
    for x in s {
        frames.values().append_slice(&x.frame_idxs);
        frames.append(true);
        match &x.truth {
            Some(t) => {
                dirs.values().append_slice(&t.directions.0);
                dirs.append(true);
            }
            None => dirs.append(false),
        }
        for (b, v) in [(&mut vector, x.vector), (&mut cam, x.camera_translation)] {
            match v {
                Some(v) => {
                    b.values().append_slice(&v);
                    b.append(true);
                }
                None => b.append(false),
            }
        }
        tokens.values().append_slice(&x.motion_tokens);
        tokens.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        strings(&|i, x| Some(format!("{}/{i:05}", x.clip_id))),
        strings(&|_, x| Some(x.clip_id.clone())),
        strings(&|_, x| Some(x.task.as_str().to_owned())),
        Arc::new(frames.finish()),
        Arc::new(UInt32Array::from_iter_values(s.iter().map(|x| x.template))),
        strings(&|_, x| Some(x.question.clone())),
        strings(&|_, x| Some(x.answer.clone())),
        strings(&|_, x| x.side.map(|v| v.as_str().to_owned())),
        strings(&|_, x| x.object.clone()),
        Arc::new(dirs.finish()),
        Arc::new(Float32Array::from_iter(
            s.iter().map(|x| x.truth.map(|t| t.value)),
        )),
        strings(&|_, x| x.truth.map(|t| t.unit.as_str().to_owned())),
        Arc::new(vector.finish()),
        Arc::new(cam.finish()),
        Arc::new(tokens.finish()),
    ];
    RecordBatch::try_new(schema(), columns)
}

fn write_shard(path: &Path, ann: &ClipAnnotations) -> Result<()> {
    let batch = to_batch(ann).map_err(|e| Hand3dError::shard(path, e))?;
    let stats = serde_json::to_string(&ann.stats).map_err(|e| Hand3dError::shard(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(vec![
            KeyValue::new(STATS_KEY.to_owned(), stats),
            KeyValue::new(SCHEMA_KEY.to_owned(), DATASET_SCHEMA_VERSION.to_string()),
        ]))
        .build();
    let file = fs::File::create(path).map_err(|e| Hand3dError::io(path, e))?;
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props))
        .map_err(|e| Hand3dError::shard(path, e))?;
    w.write(&batch).map_err(|e| Hand3dError::shard(path, e))?;
    let file = w.into_inner().map_err(|e| Hand3dError::shard(path, e))?;
    file.sync_all().map_err(|e| Hand3dError::io(path, e))
}

fn read_shard_meta(path: &Path) -> Result<(usize, ClipStats)> {
    let file = fs::File::open(path).map_err(|e| Hand3dError::io(path, e))?;
    let b =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Hand3dError::shard(path, e))?;
    let md = b.metadata().file_metadata();
    let rows = usize::try_from(md.num_rows()).map_err(|e| Hand3dError::shard(path, e))?;
    let kv = md.key_value_metadata().cloned().unwrap_or_default();
    let version = kv
        .iter()
        .find(|k| k.key == SCHEMA_KEY)
        .and_then(|k| k.value.clone());
    if version.as_deref() != Some(&DATASET_SCHEMA_VERSION.to_string()) {
        return Err(Hand3dError::shard(
            path,
            format!(
                "dataset schema {version:?}, this build reads {DATASET_SCHEMA_VERSION}; re-annotate into a new folder"
            ),
        ));
    }
    let stats = kv
        .iter()
        .find(|k| k.key == STATS_KEY)
        .and_then(|k| k.value.as_deref())
        .ok_or_else(|| Hand3dError::shard(path, format!("missing `{STATS_KEY}` metadata")))?;
    let stats: ClipStats = serde_json::from_str(stats).map_err(|e| Hand3dError::shard(path, e))?;
    Ok((rows, stats))
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str, path: &Path) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            Hand3dError::shard(
                path,
                format!("column `{name}` missing or of the wrong type"),
            )
        })
}

fn read_shard(path: &Path) -> Result<Vec<Sample>> {
    let file = fs::File::open(path).map_err(|e| Hand3dError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| Hand3dError::shard(path, e))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| Hand3dError::shard(path, e))?;
        let clip = column::<StringArray>(&batch, "clip_id", path)?;
        let task = column::<StringArray>(&batch, "task", path)?;
        let frames = column::<ListArray>(&batch, "frame_idxs", path)?;
        let template = column::<UInt32Array>(&batch, "template", path)?;
        let question = column::<StringArray>(&batch, "question", path)?;
        let answer = column::<StringArray>(&batch, "answer", path)?;
        let side = column::<StringArray>(&batch, "side", path)?;
        let object = column::<StringArray>(&batch, "object", path)?;
        let dirs = column::<ListArray>(&batch, "truth_directions", path)?;
        let value = column::<Float32Array>(&batch, "truth_value", path)?;
        let unit = column::<StringArray>(&batch, "truth_unit", path)?;
        let vector = column::<ListArray>(&batch, "vector", path)?;
        let cam = column::<ListArray>(&batch, "camera_translation", path)?;
        let tokens = column::<ListArray>(&batch, "motion_tokens", path)?;
        let bad = |what: &str, i: usize| Hand3dError::shard(path, format!("row {i}: bad `{what}`"));
        let u32s = |l: &ListArray, i: usize| -> Option<Vec<u32>> {
            let v = l.value(i);
            Some(v.as_any().downcast_ref::<UInt32Array>()?.values().to_vec())
        };
        let vec3 = |l: &ListArray, i: usize| -> Option<[f32; 3]> {
            if l.is_null(i) {
                return None;
            }
            let v = l.value(i);
            let a = v.as_any().downcast_ref::<Float32Array>()?;
            (a.len() == 3).then(|| [a.value(0), a.value(1), a.value(2)])
        };
        for i in 0..batch.num_rows() {
            let truth = if dirs.is_null(i) {
                None
            } else {
                let d = dirs.value(i);
                let d = d
                    .as_any()
                    .downcast_ref::<arrow::array::Int8Array>()
                    .filter(|d| d.len() == 3)
                    .ok_or_else(|| bad("truth_directions", i))?;
                let unit = match unit.is_valid(i).then(|| unit.value(i)) {
                    Some("m") => Unit::Metres,
                    Some("deg") => Unit::Degrees,
                    _ => return Err(bad("truth_unit", i)),
                };
                Some(AnswerTruth {
                    directions: Directions([d.value(0), d.value(1), d.value(2)]),
                    value: value.value(i),
                    unit,
                })
            };
            let side = match side.is_valid(i).then(|| side.value(i)) {
                None => None,
                Some("left") => Some(Side::Left),
                Some("right") => Some(Side::Right),
                Some(_) => return Err(bad("side", i)),
            };
            out.push(Sample {
                clip_id: clip.value(i).to_owned(),
                task: Task::parse(task.value(i)).ok_or_else(|| bad("task", i))?,
                frame_idxs: u32s(frames, i).ok_or_else(|| bad("frame_idxs", i))?,
                template: template.value(i),
                question: question.value(i).to_owned(),
                answer: answer.value(i).to_owned(),
                side,
                object: object.is_valid(i).then(|| object.value(i).to_owned()),
                truth,
                vector: vec3(vector, i),
                camera_translation: vec3(cam, i),
                motion_tokens: u32s(tokens, i).ok_or_else(|| bad("motion_tokens", i))?,
            });
        }
    }
    Ok(out)
}

/// Reads a finished dataset.
#[derive(Debug, Clone)]
pub struct DatasetReader {
    root: PathBuf,
    manifest: Manifest,
}

impl DatasetReader {
    /// Opens a dataset; fails if `manifest.json` is missing (unfinished run) or corrupt.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let path = root.join(MANIFEST);
        let text = fs::read_to_string(&path).map_err(|e| Hand3dError::Manifest {
            path: path.clone(),
            problem: format!(
                "{e}: no finished dataset here (the manifest is written last; re-run the annotation to finish it)"
            ),
        })?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| Hand3dError::Manifest {
                path: path.clone(),
                problem: format!("corrupt manifest: {e}"),
            })?;
        if manifest.dataset_schema_version != DATASET_SCHEMA_VERSION {
            return Err(Hand3dError::Manifest {
                path,
                problem: format!(
                    "dataset schema {}, this build reads {DATASET_SCHEMA_VERSION}",
                    manifest.dataset_schema_version
                ),
            });
        }
        Ok(Self { root, manifest })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Samples in a split according to the manifest.
    pub fn count(&self, split: Split) -> usize {
        self.clips(split).map(|c| c.rows).sum()
    }

    /// The clips of a split, in clip-id order.
    pub fn clips(&self, split: Split) -> impl Iterator<Item = &ClipEntry> {
        self.manifest.clips.iter().filter(move |c| c.split == split)
    }

    /// All samples of one clip's shard; fails if the row count disagrees with the manifest.
    pub fn read_clip(&self, entry: &ClipEntry) -> Result<Vec<Sample>> {
        let path = self.root.join(&entry.shard);
        let samples = read_shard(&path)?;
        if samples.len() != entry.rows {
            return Err(Hand3dError::shard(
                &path,
                format!(
                    "has {} rows, the manifest says {}",
                    samples.len(),
                    entry.rows
                ),
            ));
        }
        Ok(samples)
    }

    /// All samples of a split in manifest order (clip id, then sample index).
    pub fn samples(&self, split: Split) -> Result<Vec<Sample>> {
        let mut out = Vec::with_capacity(self.count(split));
        for c in self.clips(split) {
            out.extend(self.read_clip(c)?);
        }
        Ok(out)
    }

    /// The samples of a split, restricted to `tasks` (all tasks when empty), shuffled
    /// deterministically by `(seed, epoch)`: the same pair gives the same order on every
    /// machine, a new epoch gives a new order.
    pub fn epoch(
        &self,
        split: Split,
        tasks: &[Task],
        seed: u64,
        epoch: u64,
    ) -> Result<Vec<Sample>> {
        let mut all = self.samples(split)?;
        if !tasks.is_empty() {
            all.retain(|s| tasks.contains(&s.task));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(seed, "epoch", epoch));
        all.shuffle(&mut rng);
        Ok(all)
    }
}

#[cfg(test)]
mod split_tests {
    use super::Split;

    /// Sequentially named clips must spread over both splits at roughly the test fraction.
    #[test]
    fn sequential_clip_names_reach_the_test_split() {
        let n = 400;
        let test = (0..n)
            .filter(|i| Split::of_clip(&format!("clip_{i:04}"), 0, 0.1) == Split::Test)
            .count();
        assert!((20..=60).contains(&test), "{test} of {n} clips in test");
    }
}
