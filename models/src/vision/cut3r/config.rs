//! Configuration of Cut3R, beside the model ([`super`]): the fields of upstream's
//! `ARCroco3DStereoConfig`, and its named sizes ([`Cut3rPreset`]).

use candle_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// A `(mode, vmin, vmax)` regression mode of Cut3R's heads, as the official
/// `depth_mode=('exp', -inf, inf)` / `conf_mode=('exp', 1, inf)` tuples. JSON has no infinity,
/// so an unbounded side is `null`: `["exp", null, null]`, `["exp", 1.0, null]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cut3rRegMode(pub String, pub Option<f64>, pub Option<f64>);

impl Cut3rRegMode {
    /// `('exp', -inf, inf)`.
    pub fn exp_unbounded() -> Self {
        Self("exp".to_string(), None, None)
    }

    /// `('exp', vmin, inf)`.
    pub fn exp_min(vmin: f64) -> Self {
        Self("exp".to_string(), Some(vmin), None)
    }
}

/// Cut3R (`ARCroco3DStereo`, github.com/CUT3R/CUT3R `src/dust3r/model.py`): the paper's frozen
/// 3D encoder.
///
/// Field names are those of the official `ARCroco3DStereoConfig(...)` constructor and of the
/// CroCo kwargs it forwards (`img_size`, `enc_embed_dim`, …), i.e. the string stored in the
/// released checkpoint's `args.model`; `models/scripts/convert_cut3r.py` turns that string into
/// this struct's JSON. Three fields are ours (`dpt_*`): the official DPT head hard-codes them; we
/// expose them only so that tests can build a DPT head small enough for a fixture (defaults =
/// the official values). `enc_rope_f16` (ours too) selects the encoder's RoPE numerics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cut3rConfig {
    /// `"pts3d+pose"` (the only mode with a camera token, which VLM-3R reads).
    #[serde(default = "cut3r_default_output_mode")]
    pub output_mode: String,
    /// `"dpt"` (released checkpoint; the only head implemented here).
    #[serde(default = "cut3r_default_head_type")]
    pub head_type: String,
    /// Point regression; only `exp` (and `linear`), unbounded, as upstream asserts.
    #[serde(default = "Cut3rRegMode::exp_unbounded")]
    pub depth_mode: Cut3rRegMode,
    /// Confidence regression: `vmin + exp(x)`.
    #[serde(default = "cut3r_default_conf_mode")]
    pub conf_mode: Cut3rRegMode,
    /// Camera translation regression.
    #[serde(default = "Cut3rRegMode::exp_unbounded")]
    pub pose_mode: Cut3rRegMode,
    /// Number of persistent state tokens (768 in the release).
    #[serde(default = "cut3r_default_state_size")]
    pub state_size: usize,
    /// Slots of the pose retriever's local memory (256).
    #[serde(default = "cut3r_default_local_mem_size")]
    pub local_mem_size: usize,
    /// State token positions: `"2d"` (release) or `"1d"`.
    #[serde(default = "cut3r_default_state_pe")]
    pub state_pe: String,
    /// Heads of the state decoder (`dec_blocks_state`), 16 by default upstream.
    #[serde(default = "cut3r_default_state_heads")]
    pub state_dec_num_heads: usize,
    /// Blocks of the ray-map encoder (present in the checkpoint, unused for images).
    #[serde(default = "cut3r_default_ray_enc_depth")]
    pub ray_enc_depth: usize,
    /// Whether the checkpoint has an RGB DPT head (`downstream_head.dpt_rgb`, not run here).
    #[serde(default)]
    pub rgb_head: bool,
    /// Camera-pose token and pose head; required (the DPT head strips the pose token).
    #[serde(default = "cut3r_default_true")]
    pub pose_head: bool,
    /// Patch-embed class upstream (`ManyAR_PatchEmbed` / `PatchEmbedDust3R`); both are the same
    /// convolution for landscape-or-square inputs.
    #[serde(default = "cut3r_default_patch_embed_cls")]
    pub patch_embed_cls: String,
    /// Whether upstream transposes portrait inputs (the release sets `false`; we never do).
    #[serde(default)]
    pub landscape_only: bool,
    /// Training resolution `[h, w]`; any multiple of `patch_size` works at inference (RoPE).
    #[serde(default = "cut3r_default_img_size")]
    pub img_size: [usize; 2],
    /// Patch side (16).
    #[serde(default = "cut3r_default_patch_size")]
    pub patch_size: usize,
    /// Encoder width (1024, ViT-L).
    pub enc_embed_dim: usize,
    /// Encoder blocks (24).
    pub enc_depth: usize,
    /// Encoder heads (16).
    pub enc_num_heads: usize,
    /// Decoder width (768): the width of the tokens VLM-3R feeds its fusion.
    pub dec_embed_dim: usize,
    /// Blocks of each of the two decoders (12).
    pub dec_depth: usize,
    /// Heads of the image decoder (`dec_blocks`) and of the pose retriever (12).
    pub dec_num_heads: usize,
    /// MLP ratio of every block (4).
    #[serde(default = "cut3r_default_mlp_ratio")]
    pub mlp_ratio: f64,
    /// `norm_y` on the cross-attended tokens in decoder blocks (CroCo default `true`).
    #[serde(default = "cut3r_default_true")]
    pub norm_im2_in_dec: bool,
    /// `"RoPE100"`: 2D RoPE with base 100.
    #[serde(default = "cut3r_default_pos_embed")]
    pub pos_embed: String,
    /// Ours: round q, k to float16 around the encoder's RoPE, as the released model runs
    /// (CroCo's encoder blocks cast to float16 for the cuRoPE kernel). `false` = plain f32
    /// (tests use it for a comparison free of rounding-boundary flips).
    #[serde(default = "cut3r_default_true")]
    pub enc_rope_f16: bool,
    /// Ours: DPT fusion width (official: 256).
    #[serde(default = "cut3r_default_dpt_feature_dim")]
    pub dpt_feature_dim: usize,
    /// Ours: DPT per-hook widths (official `DPTOutputAdapter` default `[96, 192, 384, 768]`).
    #[serde(default = "cut3r_default_dpt_layer_dims")]
    pub dpt_layer_dims: [usize; 4],
    /// Ours: DPT last conv width (official: `feature_dim // 2` = 128).
    #[serde(default = "cut3r_default_dpt_last_dim")]
    pub dpt_last_dim: usize,
}

fn cut3r_default_output_mode() -> String {
    "pts3d+pose".to_string()
}
fn cut3r_default_head_type() -> String {
    "dpt".to_string()
}
fn cut3r_default_conf_mode() -> Cut3rRegMode {
    Cut3rRegMode::exp_min(1.0)
}
fn cut3r_default_state_size() -> usize {
    324
}
fn cut3r_default_local_mem_size() -> usize {
    256
}
fn cut3r_default_state_pe() -> String {
    "2d".to_string()
}
fn cut3r_default_state_heads() -> usize {
    16
}
fn cut3r_default_ray_enc_depth() -> usize {
    2
}
fn cut3r_default_true() -> bool {
    true
}
fn cut3r_default_patch_embed_cls() -> String {
    "PatchEmbedDust3R".to_string()
}
fn cut3r_default_img_size() -> [usize; 2] {
    [224, 224]
}
fn cut3r_default_patch_size() -> usize {
    16
}
fn cut3r_default_mlp_ratio() -> f64 {
    4.0
}
fn cut3r_default_pos_embed() -> String {
    "RoPE100".to_string()
}
fn cut3r_default_dpt_feature_dim() -> usize {
    256
}
fn cut3r_default_dpt_layer_dims() -> [usize; 4] {
    [96, 192, 384, 768]
}
fn cut3r_default_dpt_last_dim() -> usize {
    128
}

/// The Cut3R sizes (`cut3r.preset` of lift-depth and encoder-3d): `cut3r_512`, the release
/// (`cut3r_512_dpt_4_64.pth`), and `tiny`, the test fixture's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Cut3rPreset {
    #[serde(rename = "tiny")]
    Tiny,
    #[default]
    #[serde(rename = "cut3r_512")]
    Cut3r512,
}

impl Cut3rConfig {
    /// The released `cut3r_512_dpt_4_64.pth` (`config/dpt_512_vary_4_64.yaml`): ViT-L encoder
    /// (1024, 24 blocks, 16 heads), two 12-block decoders of width 768 (12 / 16 heads),
    /// 768 state tokens, DPT head with pose, RGB head.
    pub fn cut3r_512() -> Self {
        Self {
            output_mode: cut3r_default_output_mode(),
            head_type: cut3r_default_head_type(),
            depth_mode: Cut3rRegMode::exp_unbounded(),
            conf_mode: Cut3rRegMode::exp_min(1.0),
            pose_mode: Cut3rRegMode::exp_unbounded(),
            state_size: 768,
            local_mem_size: 256,
            state_pe: "2d".to_string(),
            state_dec_num_heads: 16,
            ray_enc_depth: 2,
            rgb_head: true,
            pose_head: true,
            patch_embed_cls: "ManyAR_PatchEmbed".to_string(),
            landscape_only: false,
            img_size: [512, 512],
            patch_size: 16,
            enc_embed_dim: 1024,
            enc_depth: 24,
            enc_num_heads: 16,
            dec_embed_dim: 768,
            dec_depth: 12,
            dec_num_heads: 12,
            mlp_ratio: 4.0,
            norm_im2_in_dec: true,
            pos_embed: "RoPE100".to_string(),
            enc_rope_f16: true,
            dpt_feature_dim: 256,
            dpt_layer_dims: [96, 192, 384, 768],
            dpt_last_dim: 128,
        }
    }

    /// Unit-test size (the committed fixture `fixtures/cut3r/tiny.*`): encoder 32 wide (2 blocks,
    /// 2 heads), decoders 16 wide (2 blocks; 2 image / 4 state heads), 12 state tokens, 8 memory
    /// slots, DPT 8 wide, 32×48 frames.
    pub fn tiny() -> Self {
        Self {
            state_size: 12,
            local_mem_size: 8,
            state_dec_num_heads: 4,
            ray_enc_depth: 1,
            rgb_head: false,
            patch_embed_cls: "PatchEmbedDust3R".to_string(),
            img_size: [32, 48],
            enc_embed_dim: 32,
            enc_depth: 2,
            enc_num_heads: 2,
            dec_embed_dim: 16,
            dec_depth: 2,
            dec_num_heads: 2,
            dpt_feature_dim: 8,
            dpt_layer_dims: [4, 8, 8, 12],
            dpt_last_dim: 4,
            ..Self::cut3r_512()
        }
    }

    /// The configuration of a named preset.
    pub fn preset(preset: Cut3rPreset) -> Self {
        match preset {
            Cut3rPreset::Tiny => Self::tiny(),
            Cut3rPreset::Cut3r512 => Self::cut3r_512(),
        }
    }

    /// RoPE base from `pos_embed` (`"RoPE100"` → 100).
    pub fn rope_base(&self) -> Result<f32> {
        self.pos_embed
            .strip_prefix("RoPE")
            .and_then(|f| f.parse::<f32>().ok())
            .ok_or_else(|| {
                Error::Msg(format!(
                    "Cut3R: pos_embed `{}` is not supported (only `RoPE<base>`, e.g. RoPE100)",
                    self.pos_embed
                ))
            })
    }

    /// MLP hidden width for a block of width `dim` (`int(dim * mlp_ratio)`, as upstream).
    pub fn mlp_hidden(&self, dim: usize) -> usize {
        (dim as f64 * self.mlp_ratio) as usize
    }

    /// Checks what this implementation supports and the divisibility RoPE needs.
    pub fn validate(&self) -> Result<()> {
        let fail = |msg: String| Err(Error::Msg(format!("Cut3R config: {msg}")));
        if self.output_mode != "pts3d+pose" || !self.pose_head {
            return fail(format!(
                "output_mode `{}` with pose_head={} is not supported (only `pts3d+pose` with \
                 pose_head=true, as the released checkpoint)",
                self.output_mode, self.pose_head
            ));
        }
        if self.head_type != "dpt" {
            return fail(format!(
                "head_type `{}` is not implemented (only dpt, the released checkpoint's head)",
                self.head_type
            ));
        }
        for (name, mode) in [
            ("depth_mode", &self.depth_mode),
            ("pose_mode", &self.pose_mode),
        ] {
            if !matches!(mode.0.as_str(), "exp" | "linear" | "square")
                || mode.1.is_some()
                || mode.2.is_some()
            {
                return fail(format!(
                    "{name} {mode:?} is not supported (exp, square or linear, unbounded)"
                ));
            }
        }
        if self.conf_mode.0 != "exp" {
            return fail(format!("conf_mode {:?} (only exp)", self.conf_mode));
        }
        // Upstream's `state_pe="none"` passes `None` positions into RoPE blocks and fails there.
        if !matches!(self.state_pe.as_str(), "2d" | "1d") {
            return fail(format!("state_pe `{}` (use 2d or 1d)", self.state_pe));
        }
        if self.dec_depth < 2 {
            return fail(format!(
                "dec_depth {} < 2: the DPT hooks (0, depth/2, 3·depth/4, depth) need two blocks",
                self.dec_depth
            ));
        }
        self.rope_base()?;
        for (name, dim, heads) in [
            ("enc", self.enc_embed_dim, self.enc_num_heads),
            ("dec", self.dec_embed_dim, self.dec_num_heads),
            ("state dec", self.dec_embed_dim, self.state_dec_num_heads),
            ("pose memory", 2 * self.dec_embed_dim, self.dec_num_heads),
        ] {
            if heads == 0 || !dim.is_multiple_of(heads) || !(dim / heads).is_multiple_of(4) {
                return fail(format!(
                    "{name}: width {dim} / {heads} heads must give a head dim that is a multiple \
                     of 4 (2D RoPE)"
                ));
            }
        }
        if self.patch_size == 0 {
            return fail("patch_size 0".to_string());
        }
        Ok(())
    }
}
