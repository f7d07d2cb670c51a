//! `vipa-tools`: running vipa dataflows from Rust through the real `dora` CLI, for the tools
//! (`vipa-run`, `vipa-ablation`), the benchmarks (`benches/`) and the end-to-end tests
//! (`tests/`).
//!
//! The helpers here:
//! - find the `dora` CLI ([`dora_cli`]: `$DORA`, else `<repo>/.venv/bin/dora`);
//! - build the node binaries once ([`build_nodes`]);
//! - write small test videos with OpenCV ([`write_test_clip`]);
//! - turn a committed dataflow (`dataflows/*.yml`) into a runnable copy in a temp folder with
//!   absolute node paths and per-node `VIPA_CONFIG` ([`Dataflow`]), run it with `dora run`
//!   and read the frame-check summary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use eyre::{WrapErr, bail, eyre};
use opencv::core::{Mat, Point, Rect, Scalar, Size};
use opencv::prelude::*;
use opencv::{imgproc, videoio};

/// The repository root (the workspace folder: this crate sits in `tools/vipa-tools`).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

/// The `dora` CLI: `$DORA` if set, else `<repo>/.venv/bin/dora`.
pub fn dora_cli() -> eyre::Result<PathBuf> {
    if let Some(p) = std::env::var_os("DORA") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!(
            "DORA={} does not exist; unset it or point it at the dora 1.1 CLI",
            p.display()
        );
    }
    let p = repo_root().join(".venv/bin/dora");
    if p.is_file() {
        return Ok(p);
    }
    bail!(
        "the dora CLI was not found at {} and $DORA is unset: run `make setup` (installs dora-rs-cli 1.1.0 into .venv) or set DORA=/path/to/dora",
        p.display()
    )
}

/// Folder of the debug node binaries (`target/debug`, or `$CARGO_TARGET_DIR/debug`).
pub fn bin_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("debug")
}

/// Builds the node binaries once per process with `cargo build --workspace --bins` — the same
/// command the dataflows' `build:` lines and `make test` run, so every caller shares one set of
/// compiled dependencies (building a subset with `-p` resolves features differently and
/// recompiles the dependency tree). Later calls return the first result.
///
/// Set `VIPA_E2E_NO_BUILD=1` when the binaries were just built (e.g. by `make test`): a nested
/// cargo waits for the build lock of any other cargo running on the machine. `bins` are then
/// only checked to exist.
pub fn build_nodes(bins: &[&str]) -> eyre::Result<()> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if std::env::var_os("VIPA_E2E_NO_BUILD").is_some_and(|v| v == "1") {
                return Ok(());
            }
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let out = Command::new(cargo)
                .current_dir(repo_root())
                .args(["build", "--workspace", "--bins"])
                .output()
                .map_err(|e| format!("cannot run cargo: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "cargo build of the node binaries failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        })
        .clone()
        .map_err(|e| eyre!(e))?;
    for bin in bins {
        let path = bin_dir().join(bin);
        if !path.is_file() {
            return Err(eyre!(
                "{} is missing: run `cargo build --workspace --bins`",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Only one `dora run` at a time: parallel in-process daemons would compete for ports and CPU.
pub fn dora_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A synthetic test clip: a solid background with a square moving left to right.
#[derive(Debug, Clone)]
pub struct ClipSpec {
    pub width: i32,
    pub height: i32,
    pub fps: f64,
    pub frames: usize,
    /// Background colour, R, G, B.
    pub background: [u8; 3],
}

/// Draws frame `i` of `spec` (BGR, as OpenCV writes it).
pub fn draw_frame(spec: &ClipSpec, i: usize) -> eyre::Result<Mat> {
    let [r, g, b] = spec.background.map(f64::from);
    let mut m = Mat::new_rows_cols_with_default(
        spec.height,
        spec.width,
        opencv::core::CV_8UC3,
        Scalar::new(b, g, r, 0.0),
    )?;
    let side = (spec.height / 4).max(2);
    let span = (spec.width - side).max(1);
    let x = (i as i32 * 3) % span;
    imgproc::rectangle(
        &mut m,
        Rect::new(x, spec.height / 2 - side / 2, side, side),
        Scalar::new(255.0, 255.0, 255.0, 0.0),
        -1,
        imgproc::LINE_8,
        0,
    )?;
    // A marker in the corner keeps the encoder from treating frames as identical.
    imgproc::circle(
        &mut m,
        Point::new(side / 2, side / 2),
        (side / 4).max(1),
        Scalar::new(0.0, 0.0, 0.0, 0.0),
        -1,
        imgproc::LINE_8,
        0,
    )?;
    Ok(m)
}

/// Mean colour (R, G, B) of a drawn BGR frame: the expected value, computed before encoding.
pub fn mean_rgb_of(frame: &Mat) -> eyre::Result<[f64; 3]> {
    let m = opencv::core::mean_def(frame)?;
    Ok([m[2], m[1], m[0]])
}

/// Writes `spec` as H.264 (`avc1`) mp4 at `path`. Returns the first frame's mean RGB.
pub fn write_test_clip(path: &Path, spec: &ClipSpec) -> eyre::Result<[f64; 3]> {
    let path_str = path.to_str().ok_or_else(|| eyre!("non-UTF-8 path"))?;
    let fourcc = videoio::VideoWriter::fourcc('a', 'v', 'c', '1')?;
    let mut writer = videoio::VideoWriter::new(
        path_str,
        fourcc,
        spec.fps,
        Size::new(spec.width, spec.height),
        true,
    )?;
    if !writer.is_opened()? {
        bail!("OpenCV cannot write H.264 to {}", path.display());
    }
    let mut first = None;
    for i in 0..spec.frames {
        let frame = draw_frame(spec, i)?;
        if first.is_none() {
            first = Some(mean_rgb_of(&frame)?);
        }
        writer.write(&frame)?;
    }
    writer.release()?;
    first.ok_or_else(|| eyre!("a clip needs at least one frame"))
}

/// A committed dataflow rewritten to run from a temp folder.
pub struct Dataflow {
    doc: serde_yaml::Value,
    name: String,
}

impl Dataflow {
    /// Loads `dataflows/<name>`.
    pub fn load(name: &str) -> eyre::Result<Self> {
        let path = repo_root().join("dataflows").join(name);
        let text = std::fs::read_to_string(&path)
            .wrap_err_with(|| format!("cannot read {}", path.display()))?;
        let doc = serde_yaml::from_str(&text)
            .wrap_err_with(|| format!("{} is not valid YAML", path.display()))?;
        Ok(Self {
            doc,
            name: name.to_owned(),
        })
    }

    fn node_mut(&mut self, id: &str) -> eyre::Result<&mut serde_yaml::Mapping> {
        let nodes = self
            .doc
            .get_mut("nodes")
            .and_then(|n| n.as_sequence_mut())
            .ok_or_else(|| eyre!("{}: no `nodes` list", self.name))?;
        nodes
            .iter_mut()
            .filter_map(|n| n.as_mapping_mut())
            .find(|n| n.get("id").and_then(|v| v.as_str()) == Some(id))
            .ok_or_else(|| eyre!("{}: no node `{id}`", self.name))
    }

    /// A node's `VIPA_CONFIG`, parsed (inline YAML; `{}` when it has none).
    pub fn config(&mut self, node: &str) -> eyre::Result<serde_yaml::Mapping> {
        let name = self.name.clone();
        let n = self.node_mut(node)?;
        let text = n
            .get("env")
            .and_then(|e| e.get("VIPA_CONFIG"))
            .and_then(|v| v.as_str())
            .unwrap_or("{}")
            .to_owned();
        serde_yaml::from_str(&text)
            .wrap_err_with(|| format!("{name}: node `{node}`: VIPA_CONFIG is not a YAML mapping"))
    }

    /// Sets a node's `VIPA_CONFIG` to inline YAML.
    pub fn set_config(&mut self, node: &str, yaml: &str) -> eyre::Result<&mut Self> {
        let n = self.node_mut(node)?;
        let env = n
            .entry("env".into())
            .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
        let env = env
            .as_mapping_mut()
            .ok_or_else(|| eyre!("node `{node}`: `env` is not a mapping"))?;
        env.insert("VIPA_CONFIG".into(), yaml.into());
        Ok(self)
    }

    /// Sets keys of a node's existing `VIPA_CONFIG` (parsed as YAML, keys replaced, written
    /// back inline); other keys stay as the committed graph has them.
    pub fn patch_config(
        &mut self,
        node: &str,
        pairs: &[(&str, serde_yaml::Value)],
    ) -> eyre::Result<&mut Self> {
        let name = self.name.clone();
        let n = self.node_mut(node)?;
        let current = n
            .get("env")
            .and_then(|e| e.get("VIPA_CONFIG"))
            .and_then(|v| v.as_str())
            .unwrap_or("{}")
            .to_owned();
        let mut cfg: serde_yaml::Mapping = serde_yaml::from_str(&current).wrap_err_with(|| {
            format!("{name}: node `{node}`: VIPA_CONFIG is not a YAML mapping")
        })?;
        for (k, v) in pairs {
            cfg.insert((*k).into(), v.clone());
        }
        let text = serde_json::to_string(&cfg)?;
        self.set_config(node, &text)
    }

    /// Removes an input of a node (e.g. to run without flow control).
    pub fn remove_input(&mut self, node: &str, input: &str) -> eyre::Result<&mut Self> {
        let n = self.node_mut(node)?;
        if let Some(inputs) = n.get_mut("inputs").and_then(|i| i.as_mapping_mut()) {
            inputs.remove(input);
        }
        Ok(self)
    }

    /// Sets an input's `queue_policy` (`drop_oldest` or `backpressure`), turning a short
    /// `name: node/output` input into the long form.
    pub fn set_queue_policy(
        &mut self,
        node: &str,
        input: &str,
        policy: &str,
    ) -> eyre::Result<&mut Self> {
        let name = self.name.clone();
        let n = self.node_mut(node)?;
        let inputs = n
            .get_mut("inputs")
            .and_then(|i| i.as_mapping_mut())
            .ok_or_else(|| eyre!("{name}: node `{node}` has no inputs"))?;
        let entry = inputs
            .get_mut(input)
            .ok_or_else(|| eyre!("{name}: node `{node}` has no input `{input}`"))?;
        if let Some(source) = entry.as_str() {
            let mut long = serde_yaml::Mapping::new();
            long.insert("source".into(), source.into());
            *entry = serde_yaml::Value::Mapping(long);
        }
        let long = entry
            .as_mapping_mut()
            .ok_or_else(|| eyre!("{name}: node `{node}`: input `{input}` is malformed"))?;
        long.insert("queue_policy".into(), policy.into());
        Ok(self)
    }

    /// Writes the runnable copy into `dir`: `build` removed (the caller builds once), node
    /// paths made absolute (`target/debug/<binary>`).
    pub fn write_to(&mut self, dir: &Path) -> eyre::Result<PathBuf> {
        let bins = bin_dir();
        let nodes = self
            .doc
            .get_mut("nodes")
            .and_then(|n| n.as_sequence_mut())
            .ok_or_else(|| eyre!("no `nodes` list"))?;
        for n in nodes.iter_mut().filter_map(|n| n.as_mapping_mut()) {
            n.remove("build");
            let path = n
                .get("path")
                .and_then(|p| p.as_str())
                .ok_or_else(|| eyre!("a node has no `path`"))?;
            let file = Path::new(path)
                .file_name()
                .ok_or_else(|| eyre!("node path {path} has no file name"))?;
            let abs = bins.join(file);
            n.insert("path".into(), abs.display().to_string().into());
        }
        let out = dir.join(&self.name);
        std::fs::write(&out, serde_yaml::to_string(&self.doc)?)?;
        Ok(out)
    }
}

/// `annotate.yml` rewritten for a test: clips and sidecars in `videos`, the dataset written to
/// `out`, the given depth backend and `hand3d` config (inline YAML).
pub fn annotate_flow(
    dir: &Path,
    videos: &Path,
    out: &Path,
    depth_backend: &str,
    hand3d: &str,
) -> eyre::Result<PathBuf> {
    let v = yaml_path(videos);
    let mut flow = Dataflow::load("annotate.yml")?;
    flow.set_config(
        "ingest",
        &inline_yaml(&[
            ("folder", v.clone()),
            ("encoding", "rgb8".into()),
            ("max_in_flight", "8".into()),
            ("ack_timeout_ms", "60000".into()),
            ("exit_grace_ms", "60000".into()),
        ]),
    )?;
    flow.set_config(
        "lift-depth",
        &inline_yaml(&[
            ("backend", depth_backend.into()),
            ("sidecar_dir", v.clone()),
        ]),
    )?;
    flow.set_config("lift-hands", &inline_yaml(&[("sidecar_dir", v.clone())]))?;
    flow.set_config(
        "annotate",
        &inline_yaml(&[
            ("out", yaml_path(out)),
            ("clip_info_dir", v.clone()),
            ("expect_videos_in", v),
            ("hand3d", hand3d.into()),
        ]),
    )?;
    flow.write_to(dir)
}

/// What a `dora run` did.
#[derive(Debug)]
pub struct RunOutput {
    pub success: bool,
    pub code: Option<i32>,
    /// stdout and stderr together (node logs included).
    pub log: String,
    pub elapsed: Duration,
}

/// Runs `dora run <yml> --stop-after <bound>` in the yml's folder.
pub fn dora_run(yml: &Path, stop_after: Duration) -> eyre::Result<RunOutput> {
    let dora = dora_cli()?;
    let dir = yml.parent().ok_or_else(|| eyre!("yml has no parent"))?;
    let _guard = dora_lock();
    let start = Instant::now();
    let out = Command::new(&dora)
        .current_dir(dir)
        .arg("run")
        .arg(yml)
        .arg("--stop-after")
        .arg(format!("{}s", stop_after.as_secs().max(1)))
        .env("RUST_LOG", "info")
        .output()
        .wrap_err_with(|| format!("cannot run {}", dora.display()))?;
    let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(RunOutput {
        success: out.status.success(),
        code: out.status.code(),
        log,
        elapsed: start.elapsed(),
    })
}

/// Runs `dora run <yml> --stop-after <bound>` in the yml's folder with the terminal attached
/// (node logs stream live), for long user-facing runs.
pub fn dora_run_live(yml: &Path, stop_after: Duration) -> eyre::Result<bool> {
    let dora = dora_cli()?;
    let dir = yml.parent().ok_or_else(|| eyre!("yml has no parent"))?;
    let status = Command::new(&dora)
        .current_dir(dir)
        .arg("run")
        .arg(yml)
        .arg("--stop-after")
        .arg(format!("{}s", stop_after.as_secs().max(1)))
        .status()
        .wrap_err_with(|| format!("cannot run {}", dora.display()))?;
    Ok(status.success())
}

/// Reads a frame-check summary as JSON.
pub fn read_summary(path: &Path) -> eyre::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .wrap_err_with(|| format!("no frame-check summary at {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// Inline YAML for a flow mapping, from key/value pairs (values are already YAML).
pub fn inline_yaml(pairs: &[(&str, String)]) -> String {
    let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("{{{}}}", body.join(", "))
}

/// Quotes a path for YAML.
pub fn yaml_path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// Frames per clip, keyed by clip id, from a summary.
pub fn clip_frames(summary: &serde_json::Value) -> BTreeMap<String, u64> {
    summary["clips"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v["frames"].as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// A Hand3D frame-store frame as the dataset reader sends it: the RGB `ImageFrame` and the
/// calibrated `PointMap` (back-projected depth), both under `header`.
pub fn stored_frame_messages(
    stored: &vipa_hand3d::frames::StoredFrame,
    header: vipa_msgs::StreamHeader,
) -> eyre::Result<(vipa_msgs::ImageFrame, vipa_msgs::PointMap)> {
    let image = vipa_msgs::ImageFrame::new(
        header.clone(),
        stored.width,
        stored.height,
        vipa_msgs::Encoding::Rgb8,
        stored.rgb.clone(),
    )?;
    let points = stored.point_map()?;
    let pm = vipa_msgs::PointMap::new(
        header,
        stored.height,
        stored.width,
        points.as_slice().to_vec(),
    )?;
    Ok((image, pm))
}
