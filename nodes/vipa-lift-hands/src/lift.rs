//! The per-message logic of lift-hands, without dora: [`LiftHands::on_input`] answers every
//! `image` with exactly one message on [`ports::HANDS`] (hands or a frame error).

use vipa_msgs::ports;
use vipa_msgs::{Control, FrameError, Hand, HandSide, HandsMsg, ImageFrame, Payload, StreamHeader};
use vipa_node_kit::{InputMsg, IoError, Outputs, SeqTracker};
use vipa_truth::{ClipCache, ClipTruth, HandSide as SynthSide};

use crate::config::LiftHandsConfig;

/// Confidence written for a joint the sidecar marks visible (0 for an occluded one).
pub const VISIBLE_CONFIDENCE: f32 = 1.0;

/// Run totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandsTotals {
    pub frames: u64,
    pub hands: u64,
    pub frame_errors: u64,
    pub bad_messages: u64,
}

/// Looks up hand joints with the configured backend.
pub struct LiftHands {
    /// The sidecar of the clip being lifted (one clip in memory at a time).
    clip: ClipCache,
    out_seq: u64,
    seq: SeqTracker,
    totals: HandsTotals,
}

impl LiftHands {
    pub fn new(cfg: LiftHandsConfig) -> Self {
        Self {
            clip: ClipCache::new(
                cfg.sidecar_dir,
                "the `sidecar` hands backend reads ground-truth joints",
            ),
            out_seq: 0,
            seq: SeqTracker::new(),
            totals: HandsTotals::default(),
        }
    }

    pub fn totals(&self) -> &HandsTotals {
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
                match Control::from_arrow(msg.array.as_ref(), &msg.meta) {
                    Ok(c) => {
                        self.seq.observe(ports::CLIP_END, c.seq());
                        if matches!(c, Control::ClipEnd(_) | Control::StreamEnd(_)) {
                            self.clip.clear();
                        }
                    }
                    Err(e) => {
                        self.totals.bad_messages += 1;
                        tracing::warn!("bad message on `{}`: {e}", ports::CLIP_END);
                    }
                }
                Ok(())
            }
            other => {
                tracing::warn!(input = other, "ignoring unexpected input");
                Ok(())
            }
        }
    }

    fn on_image(&mut self, msg: &InputMsg, out: &mut impl Outputs) -> Result<(), IoError> {
        let image = match msg.decode::<ImageFrame>() {
            Ok(i) => i,
            Err(e) => {
                self.totals.bad_messages += 1;
                tracing::error!("cannot decode a frame, no hands sent: {e}");
                return Ok(());
            }
        };
        self.seq.observe(ports::IMAGE, image.header.seq);
        self.totals.frames += 1;
        let header = StreamHeader {
            seq: self.out_seq,
            ..image.header
        };
        let (array, meta) = match self.hands(&header) {
            Ok(msg) => {
                self.totals.hands += msg.hands.len() as u64;
                msg.to_arrow()
            }
            Err(reason) => {
                self.totals.frame_errors += 1;
                FrameError {
                    header,
                    node: "lift-hands".into(),
                    error: reason,
                }
                .to_arrow()
            }
        };
        out.send_raw(ports::HANDS, array, meta)?;
        self.out_seq += 1;
        Ok(())
    }

    fn load(&mut self, clip_id: &str) -> Result<&ClipTruth, String> {
        self.clip.get(clip_id, |reason| {
            tracing::error!(clip = clip_id, "cannot lift hands for this clip: {reason}");
        })
    }

    fn hands(&mut self, header: &StreamHeader) -> Result<HandsMsg, String> {
        let truth = self.load(&header.clip_id)?;
        let idx =
            u32::try_from(header.frame_idx).map_err(|_| "frame index too large".to_owned())?;
        let frame = truth
            .frames
            .get(idx as usize)
            .filter(|f| f.frame_idx == idx)
            .or_else(|| truth.frames.iter().find(|f| f.frame_idx == idx))
            .ok_or_else(|| {
                format!(
                    "the sidecar has no frame {idx} (it has {}); the video and its sidecar disagree",
                    truth.frames.len()
                )
            })?;
        let hands = frame
            .hands
            .iter()
            .map(|h| Hand {
                side: match h.side {
                    SynthSide::Left => HandSide::Left,
                    SynthSide::Right => HandSide::Right,
                },
                joints_xyz: h.joints_cam,
                confidence: h.visible.map(|v| if v { VISIBLE_CONFIDENCE } else { 0.0 }),
                joints_uv: h.joints_2d,
            })
            .collect();
        Ok(HandsMsg {
            header: header.clone(),
            hands,
        })
    }

    /// Logs the totals and the sequence check.
    pub fn log_summary(&self) {
        self.seq.log_summary();
        let t = &self.totals;
        tracing::info!(
            frames = t.frames,
            hands = t.hands,
            frame_errors = t.frame_errors,
            bad_messages = t.bad_messages,
            "lift-hands summary"
        );
    }
}
