//! The per-message logic of lift-depth, without dora: [`LiftDepth::on_input`] answers every
//! `image` with exactly one message on [`ports::POINTMAP`] (a point map or a frame error).

use arrow::array::ArrayRef;
use vipa_hand3d::backend::{ScaledBackend, sidecar_point_map};
use vipa_hand3d::geometry::{Intrinsics, backproject};
use vipa_hand3d::truth::{clip_seed, intrinsics};
use vipa_msgs::ports;
use vipa_msgs::{
    Control, FrameError, ImageFrame, MetaValue, Metadata, Payload, PointMap, StreamHeader,
};
use vipa_node_kit::{InputMsg, IoError, Outputs, SeqTracker};
use vipa_truth::{ClipCache, ClipTruth, FrameTruth, sidecar_path};

use crate::config::{Backend, LiftDepthConfig};
use crate::cut3r::{Cut3rBackend, Cut3rBackendError, estimate_intrinsics};
use crate::depth_anything::{DepthAnything, DepthAnythingError};

/// Why a backend could not be set up (one error naming the file or key).
#[derive(Debug, thiserror::Error)]
pub enum LiftSetupError {
    #[error(transparent)]
    DepthAnything(#[from] DepthAnythingError),
    #[error(transparent)]
    Cut3r(#[from] Cut3rBackendError),
}

/// Extra metadata key: `[fx, fy, cx, cy]` (`ListFloat`), pixel centres at integer coordinates.
pub const KEY_INTRINSICS: &str = "intrinsics";
/// Extra metadata key: `world_from_camera`, 16 floats row-major (`ListFloat`), when known.
pub const KEY_POSE: &str = "world_from_camera";
/// Extra metadata key: the backend that made the point map (`String`).
pub const KEY_BACKEND: &str = "backend";

/// Run totals, logged at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiftTotals {
    pub frames: u64,
    pub point_maps: u64,
    pub frame_errors: u64,
    /// Messages that could not be decoded at all (no header to answer with).
    pub bad_messages: u64,
    pub clips: u64,
    pub stream_ended: bool,
}

/// Lifts frames to point maps with the configured backend.
pub struct LiftDepth {
    cfg: LiftDepthConfig,
    model: Option<DepthAnything>,
    cut3r: Option<Cut3rBackend>,
    /// The sidecar of the clip being lifted (one clip in memory at a time).
    clip: ClipCache,
    out_seq: u64,
    seq: SeqTracker,
    totals: LiftTotals,
}

impl LiftDepth {
    /// Sets the backend up; loading a network checkpoint can fail (named file).
    pub fn new(cfg: LiftDepthConfig) -> Result<Self, LiftSetupError> {
        let model = match cfg.backend {
            Backend::DepthAnythingV2 => Some(DepthAnything::load(&cfg.depth_anything)?),
            Backend::Sidecar | Backend::Scaled | Backend::Cut3r => None,
        };
        let cut3r = match cfg.backend {
            Backend::Cut3r => Some(Cut3rBackend::load(&cfg.cut3r)?),
            _ => None,
        };
        let reader = format!(
            "the `{}` depth backend reads ground-truth depth",
            cfg.backend.as_str()
        );
        Ok(Self {
            clip: ClipCache::new(cfg.sidecar_dir.clone(), reader),
            cfg,
            model,
            cut3r,
            out_seq: 0,
            seq: SeqTracker::new(),
            totals: LiftTotals::default(),
        })
    }

    pub fn totals(&self) -> &LiftTotals {
        &self.totals
    }

    pub fn seq(&self) -> &SeqTracker {
        &self.seq
    }

    /// Handles one input message. Only a failed send is an error; bad inputs are logged.
    pub fn on_input(&mut self, msg: &InputMsg, out: &mut impl Outputs) -> Result<(), IoError> {
        match msg.id.as_str() {
            ports::IMAGE => self.on_image(msg, out),
            ports::CLIP_END => {
                self.on_control(msg);
                Ok(())
            }
            other => {
                tracing::warn!(input = other, "ignoring unexpected input");
                Ok(())
            }
        }
    }

    fn on_control(&mut self, msg: &InputMsg) {
        match Control::from_arrow(msg.array.as_ref(), &msg.meta) {
            Ok(c) => {
                self.seq.observe(ports::CLIP_END, c.seq());
                match c {
                    Control::ClipEnd(end) => {
                        self.totals.clips += 1;
                        if let Some(c) = &mut self.cut3r {
                            c.end_clip(&end.header.clip_id);
                        }
                        self.clip.end_clip(&end.header.clip_id);
                    }
                    Control::StreamEnd(_) => {
                        self.totals.stream_ended = true;
                        if let Some(c) = &mut self.cut3r {
                            c.reset();
                        }
                        self.clip.clear();
                    }
                    _ => {}
                }
            }
            Err(e) => {
                self.totals.bad_messages += 1;
                tracing::warn!("bad message on `{}`: {e}", ports::CLIP_END);
            }
        }
    }

    fn on_image(&mut self, msg: &InputMsg, out: &mut impl Outputs) -> Result<(), IoError> {
        let image = match msg.decode::<ImageFrame>() {
            Ok(i) => i,
            Err(e) => {
                self.totals.bad_messages += 1;
                tracing::error!("cannot decode a frame, no point map sent: {e}");
                return Ok(());
            }
        };
        self.seq.observe(ports::IMAGE, image.header.seq);
        self.totals.frames += 1;
        let header = StreamHeader {
            seq: self.out_seq,
            ..image.header.clone()
        };
        let result = self.lift(&image, &header);
        let (array, meta) = match result {
            Ok(pair) => {
                self.totals.point_maps += 1;
                pair
            }
            Err(reason) => {
                self.totals.frame_errors += 1;
                FrameError {
                    header,
                    node: "lift-depth".into(),
                    error: reason,
                }
                .to_arrow()
            }
        };
        out.send_raw(ports::POINTMAP, array, meta)?;
        self.out_seq += 1;
        Ok(())
    }

    /// The clip's sidecar, loaded if it is not the cached one. A failure is logged once per
    /// clip and then answered from the cache.
    fn load(&mut self, clip_id: &str) -> Result<&ClipTruth, String> {
        self.clip.get(clip_id, |reason| {
            tracing::error!(clip = clip_id, "cannot lift this clip: {reason}");
        })
    }

    fn lift(
        &mut self,
        image: &ImageFrame,
        header: &StreamHeader,
    ) -> Result<(ArrayRef, Metadata), String> {
        match self.cfg.backend {
            Backend::Sidecar | Backend::Scaled => self.lift_sidecar(image, header),
            Backend::DepthAnythingV2 => self.lift_network(image, header),
            Backend::Cut3r => self.lift_cut3r(image, header),
        }
    }

    fn lift_sidecar(
        &mut self,
        image: &ImageFrame,
        header: &StreamHeader,
    ) -> Result<(ArrayRef, Metadata), String> {
        let backend = self.cfg.backend;
        let noise_rel = self.cfg.noise_rel;
        let truth = self.load(&header.clip_id)?;
        let info = &truth.info;
        if (info.width, info.height) != (image.width, image.height) {
            return Err(format!(
                "the frame is {}x{} but the sidecar's depth is {}x{}; don't resize in video-ingest with the `{}` backend",
                image.width,
                image.height,
                info.width,
                info.height,
                backend.as_str()
            ));
        }
        let idx = frame_index(header)?;
        let frame = sidecar_frame(truth, idx)?;
        let k = intrinsics(info);
        let depth = frame.depth_m();
        let pm = match backend {
            Backend::Scaled => {
                ScaledBackend { noise_rel }.point_map(&depth, &k, clip_seed(info), idx)
            }
            _ => sidecar_point_map(&depth, &k),
        }
        .map_err(|e| e.to_string())?;
        encode(header, &pm, k, Some(&frame.world_from_camera), backend)
    }

    /// The network backend: intrinsics (and pose) from the clip's sidecar when it has one of
    /// the frame's size, else the field-of-view guess.
    fn lift_network(
        &mut self,
        image: &ImageFrame,
        header: &StreamHeader,
    ) -> Result<(ArrayRef, Metadata), String> {
        let idx = frame_index(header)?;
        let has_sidecar = sidecar_path(&self.cfg.sidecar_dir, &header.clip_id).is_file();
        let known = if has_sidecar {
            self.load(&header.clip_id).ok().and_then(|t| {
                let same_size = (t.info.width, t.info.height) == (image.width, image.height);
                let pose = sidecar_frame(t, idx).ok().map(|f| f.world_from_camera);
                same_size.then(|| (intrinsics(&t.info), pose))
            })
        } else {
            None
        };
        let (k, pose) = match known {
            Some(kp) => kp,
            None => (
                Intrinsics::from_hfov(image.width, image.height, self.cfg.depth_anything.hfov_deg)
                    .map_err(|e| e.to_string())?,
                None,
            ),
        };
        let Some(model) = &self.model else {
            return Err("the depth-anything-v2 model is not loaded".into());
        };
        let rgb = image.rgb();
        let depth = model
            .depth(&rgb, image.width, image.height)
            .map_err(|e| e.to_string())?;
        let pm = backproject(&depth, &k).map_err(|e| e.to_string())?;
        encode(header, &pm, k, pose.as_ref(), self.cfg.backend)
    }

    /// The Cut3R backend: its point map; intrinsics (and pose) from the clip's sidecar when it
    /// has one of the frame's size, else fitted to the points.
    fn lift_cut3r(
        &mut self,
        image: &ImageFrame,
        header: &StreamHeader,
    ) -> Result<(ArrayRef, Metadata), String> {
        let idx = frame_index(header)?;
        let has_sidecar = sidecar_path(&self.cfg.sidecar_dir, &header.clip_id).is_file();
        let known = if has_sidecar {
            self.load(&header.clip_id).ok().and_then(|t| {
                let same_size = (t.info.width, t.info.height) == (image.width, image.height);
                let pose = sidecar_frame(t, idx).ok().map(|f| f.world_from_camera);
                same_size.then(|| (intrinsics(&t.info), pose))
            })
        } else {
            None
        };
        let Some(model) = &mut self.cut3r else {
            return Err("the cut3r model is not loaded".into());
        };
        let rgb = image.rgb();
        let pm = model
            .points(&header.clip_id, &rgb, image.width, image.height)
            .map_err(|e| e.to_string())?;
        let (k, pose) = match known {
            Some(kp) => kp,
            None => (
                estimate_intrinsics(&pm).ok_or_else(|| {
                    "cut3r: no valid point in front of the camera to fit intrinsics to".to_string()
                })?,
                None,
            ),
        };
        encode(header, &pm, k, pose.as_ref(), self.cfg.backend)
    }

    /// Logs the totals and the sequence check.
    pub fn log_summary(&self) {
        self.seq.log_summary();
        let t = &self.totals;
        tracing::info!(
            frames = t.frames,
            point_maps = t.point_maps,
            frame_errors = t.frame_errors,
            bad_messages = t.bad_messages,
            clips = t.clips,
            stream_ended = t.stream_ended,
            "lift-depth summary"
        );
    }
}

fn frame_index(header: &StreamHeader) -> Result<u32, String> {
    u32::try_from(header.frame_idx)
        .map_err(|_| format!("frame index {} too large", header.frame_idx))
}

fn sidecar_frame(truth: &ClipTruth, idx: u32) -> Result<&FrameTruth, String> {
    truth
        .frames
        .get(idx as usize)
        .filter(|f| f.frame_idx == idx)
        .or_else(|| truth.frames.iter().find(|f| f.frame_idx == idx))
        .ok_or_else(|| {
            format!(
                "the sidecar has no frame {idx} (it has {}); the video and its sidecar disagree",
                truth.frames.len()
            )
        })
}

/// The point-map message with the extra keys. `k` is in vipa-hand3d's convention (pixel
/// centres at +0.5); the wire key uses vipa-msgs' (centres at integers), hence the −0.5.
fn encode(
    header: &StreamHeader,
    pm: &vipa_hand3d::PointMap,
    k: Intrinsics,
    pose: Option<&[f32; 16]>,
    backend: Backend,
) -> Result<(ArrayRef, Metadata), String> {
    let msg = PointMap::new(
        header.clone(),
        pm.height(),
        pm.width(),
        pm.as_slice().to_vec(),
    )
    .map_err(|e| e.to_string())?;
    let (array, mut meta) = msg.to_arrow();
    meta.insert(
        KEY_INTRINSICS.into(),
        MetaValue::ListFloat([k.fx, k.fy, k.cx - 0.5, k.cy - 0.5].map(f64::from).to_vec()),
    );
    if let Some(pose) = pose {
        meta.insert(
            KEY_POSE.into(),
            MetaValue::ListFloat(pose.map(f64::from).to_vec()),
        );
    }
    meta.insert(
        KEY_BACKEND.into(),
        MetaValue::String(backend.as_str().into()),
    );
    Ok((array, meta))
}
