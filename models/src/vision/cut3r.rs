//! Cut3R (`ARCroco3DStereo`, CVPR 2025, github.com/CUT3R/CUT3R): the paper's frozen 3D encoder.
//!
//! Per frame, in the order of upstream's `_forward_impl` / VLM-3R's `Cut3rEncoder.forward`:
//!
//! 1. **Encoder** (CroCo ViT): 16-px patch convolution → `enc_depth` pre-norm blocks with 2D
//!    RoPE (base 100) → `enc_norm`: `feat f32[b, n, enc]`, `n = (h/16)·(w/16)`.
//! 2. **Pose token**: on the first frame the learned `pose_token`; later the pose retriever's
//!    answer to the frame's mean feature, read from its local memory.
//! 3. **Two interleaved decoders** (`dec_blocks_state`, `dec_blocks`): the persistent state
//!    tokens `f32[b, state_size, dec]` and the image tokens `[pose token, decoder_embed(feat)]`
//!    `f32[b, 1 + n, dec]` each run a block that self-attends and cross-attends to the *other*
//!    stream's previous output. The final `dec_norm_state` output is the new state;
//!    the final `dec_norm` output is what VLM-3R (and [`Cut3rFrameOutput::tokens`]) takes: the
//!    camera token followed by the patch tokens.
//! 4. **Memory write**: the pose retriever writes (mean feature, output camera token) into its
//!    memory.
//! 5. **Heads**: the DPT head `dpt_self` over hooks (encoder output, decoder layers
//!    `depth/2`, `3·depth/4`, `depth`) gives the point map in the frame's own camera
//!    (`pts3d_in_self_view`, `x·expm1(|x|)/|x|`) and its confidence (`1 + exp(c)`); the pose
//!    head gives the camera pose (translation + unit quaternion, real part first).
//!    Optionally ([`Cut3r::new_with_world_points`]) the world head (`final_transform`: two
//!    blocks whose norms are modulated by the camera token, then `dpt_cross`) gives the point
//!    map in the first frame's camera (`pts3d_in_other_view`) and its confidence.
//!
//! The state update is upstream's default (`img_mask = update = true`, `reset = false`): every
//! frame replaces the state and memory.
//!
//! **Not implemented** (not needed for the tokens or the point maps): the ray-map encoder
//! (`patch_embed_ray_map`, `enc_blocks_ray_map`: upstream runs it on a zero map and multiplies
//! by 0 when no ray map is given) and the RGB head (`dpt_rgb`). Their checkpoint keys are simply
//! not read.
//!
//! **Numerics:** upstream's encoder blocks (CroCo `models/blocks.py`) cast q and k to float16
//! around RoPE and its cuRoPE kernel writes its float32 result back into that float16 tensor, so
//! the released model sees q, k rounded to half precision in the encoder (not in the decoders,
//! which use `dust3r/blocks.py` and stay in float32). We reproduce that rounding so that
//! features match the official CUDA inference (`Cut3rConfig::enc_rope_f16`, default on). Pose
//! tokens have RoPE position (-1, -1), as upstream (which only the cuRoPE kernel supports).
//!
//! Weights: plain (frozen) tensors under the official checkpoint keys (`enc_blocks.N.attn.qkv`,
//! `dec_blocks_state.N.cross_attn.projq`, `pose_retriever.mem`, `downstream_head.dpt_self.…`);
//! see `models/VISION.md` and `models/scripts/convert_cut3r.py`.

pub mod config;
mod dpt;

use std::path::Path;
use std::sync::Arc;

use candle_core::{D, DType, Device, Error, Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};

use crate::checkpoint::Checkpoint;
use crate::vision::config::{Cut3rConfig, Cut3rRegMode};
use crate::vision::spatial::{SpatialEncoder, SpatialInput, SpatialTokens};

use dpt::Dpt;

/// LayerNorm epsilon of every Cut3R norm (`partial(nn.LayerNorm, eps=1e-6)` upstream).
const LN_EPS: f64 = 1e-6;

/// `[-1, 1]` normalisation Cut3R expects (`ToTensor` then `Normalize(0.5, 0.5)`):
/// `rgb01: f32[b, 3, h, w]` in `[0, 1]` → `2·x − 1`.
pub fn normalize_rgb01(rgb01: &Tensor) -> Result<Tensor> {
    rgb01.affine(2.0, -1.0)
}

fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder<'_>) -> Result<Linear> {
    let weight = vb.get((out_dim, in_dim), "weight")?;
    let bias = vb.get(out_dim, "bias")?;
    Ok(Linear::new(weight, Some(bias)))
}

fn layer_norm(dim: usize, vb: VarBuilder<'_>) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        vb.get(dim, "weight")?,
        vb.get(dim, "bias")?,
        LN_EPS,
    ))
}

/// Rounds to float16 and back (upstream's `q.to(torch.float16)` around RoPE in the encoder).
fn round_f16(xs: &Tensor) -> Result<Tensor> {
    xs.to_dtype(DType::F16)?.to_dtype(xs.dtype())
}

/// cos/sin tables of upstream's 2D RoPE (`RoPE2D` / cuRoPE) for one token list and head dim:
/// the first half of each head is rotated by the row (y) position, the second half by the
/// column (x) position, each half in the rotate-half layout with `Q = head_dim / 4` frequencies
/// `base^(-i/Q)`.
#[derive(Debug, Clone)]
struct Rope2d {
    cos_y: Tensor,
    sin_y: Tensor,
    cos_x: Tensor,
    sin_x: Tensor,
}

impl Rope2d {
    /// `positions`: `(y, x)` per token (may be -1 for the pose token).
    fn new(positions: &[(i64, i64)], head_dim: usize, base: f32, dev: &Device) -> Result<Self> {
        let q = head_dim / 4;
        // cuRoPE: inv_freq = 1 / base^(i / Q), angle = pos · inv_freq, all in f32.
        let inv: Vec<f32> = (0..q)
            .map(|i| 1.0 / base.powf(i as f32 / q as f32))
            .collect();
        let n = positions.len();
        let table = |pick: fn(&(i64, i64)) -> i64, f: fn(f32) -> f32| -> Result<Tensor> {
            let mut v = Vec::with_capacity(n * q);
            for p in positions {
                let p = pick(p) as f32;
                v.extend(inv.iter().map(|&w| f(p * w)));
            }
            Tensor::from_vec(v, (n, q), dev)
        };
        Ok(Self {
            cos_y: table(|p| p.0, f32::cos)?,
            sin_y: table(|p| p.0, f32::sin)?,
            cos_x: table(|p| p.1, f32::cos)?,
            sin_x: table(|p| p.1, f32::sin)?,
        })
    }

    /// `xs: f32[b, heads, n, head_dim]` → rotated, same shape.
    fn apply(&self, xs: &Tensor) -> Result<Tensor> {
        let hd = xs.dim(3)?;
        let half = hd / 2;
        let dtype = xs.dtype();
        let rot = |part: Tensor, cos: &Tensor, sin: &Tensor| -> Result<Tensor> {
            candle_nn::rotary_emb::rope(
                &part.contiguous()?,
                &cos.to_dtype(dtype)?,
                &sin.to_dtype(dtype)?,
            )
        };
        let y = rot(xs.narrow(3, 0, half)?, &self.cos_y, &self.sin_y)?;
        let x = rot(xs.narrow(3, half, half)?, &self.cos_x, &self.sin_x)?;
        Tensor::cat(&[&y, &x], 3)
    }
}

/// Applies `rope` (if any), optionally with upstream's float16 round trip.
fn maybe_rope(xs: Tensor, rope: Option<&Rope2d>, f16_round: bool) -> Result<Tensor> {
    match rope {
        None => Ok(xs),
        Some(r) if f16_round => round_f16(&r.apply(&round_f16(&xs)?)?),
        Some(r) => r.apply(&xs),
    }
}

/// `softmax(q kᵀ · scale) v` over `[b, heads, n, head_dim]` (frozen: fused softmax is fine).
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    let att = (q.matmul(&k.t()?)? * scale)?;
    candle_nn::ops::softmax_last_dim(&att)?.matmul(v)
}

/// `[b, n, c]` → `[b, heads, n, c / heads]`, contiguous.
fn split_heads(xs: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, n, c) = xs.dims3()?;
    xs.reshape((b, n, heads, c / heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// `[b, heads, n, hd]` → `[b, n, heads · hd]`.
fn merge_heads(xs: &Tensor) -> Result<Tensor> {
    let (b, h, n, hd) = xs.dims4()?;
    xs.transpose(1, 2)?.reshape((b, n, h * hd))
}

/// Self-attention (keys `qkv`, `proj`).
#[derive(Debug, Clone)]
struct SelfAttention {
    qkv: Linear,
    proj: Linear,
    heads: usize,
    /// CroCo encoder blocks round q, k to float16 around RoPE.
    f16_rope: bool,
}

impl SelfAttention {
    fn new(dim: usize, heads: usize, f16_rope: bool, vb: VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            qkv: linear(dim, 3 * dim, vb.pp("qkv"))?,
            proj: linear(dim, dim, vb.pp("proj"))?,
            heads,
            f16_rope,
        })
    }

    fn forward(&self, xs: &Tensor, rope: Option<&Rope2d>) -> Result<Tensor> {
        let (b, n, c) = xs.dims3()?;
        let hd = c / self.heads;
        // Upstream: reshape(b, n, 3, heads, hd).transpose(1, 3) → q, k, v = [b, heads, n, hd].
        let qkv = self
            .qkv
            .forward(xs)?
            .reshape((b, n, 3, self.heads, hd))?
            .permute((2, 0, 3, 1, 4))?;
        let q = maybe_rope(qkv.get(0)?.contiguous()?, rope, self.f16_rope)?;
        let k = maybe_rope(qkv.get(1)?.contiguous()?, rope, self.f16_rope)?;
        let v = qkv.get(2)?.contiguous()?;
        let out = attend(&q, &k, &v, 1.0 / (hd as f64).sqrt())?;
        self.proj.forward(&merge_heads(&out)?)
    }
}

/// Cross-attention (keys `projq`, `projk`, `projv`, `proj`).
#[derive(Debug, Clone)]
struct CrossAttention {
    projq: Linear,
    projk: Linear,
    projv: Linear,
    proj: Linear,
    heads: usize,
}

impl CrossAttention {
    fn new(dim: usize, heads: usize, vb: VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            projq: linear(dim, dim, vb.pp("projq"))?,
            projk: linear(dim, dim, vb.pp("projk"))?,
            projv: linear(dim, dim, vb.pp("projv"))?,
            proj: linear(dim, dim, vb.pp("proj"))?,
            heads,
        })
    }

    fn forward(
        &self,
        query: &Tensor,
        kv: &Tensor,
        qrope: Option<&Rope2d>,
        krope: Option<&Rope2d>,
    ) -> Result<Tensor> {
        let hd = query.dim(2)? / self.heads;
        let q = maybe_rope(
            split_heads(&self.projq.forward(query)?, self.heads)?,
            qrope,
            false,
        )?;
        let k = maybe_rope(
            split_heads(&self.projk.forward(kv)?, self.heads)?,
            krope,
            false,
        )?;
        let v = split_heads(&self.projv.forward(kv)?, self.heads)?;
        let out = attend(&q, &k, &v, 1.0 / (hd as f64).sqrt())?;
        self.proj.forward(&merge_heads(&out)?)
    }
}

/// `fc1 → GELU (erf) → fc2`.
#[derive(Debug, Clone)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn new(dim: usize, hidden: usize, out: usize, vb: VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            fc1: linear(dim, hidden, vb.pp("fc1"))?,
            fc2: linear(hidden, out, vb.pp("fc2"))?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(xs)?.gelu_erf()?)
    }
}

/// Encoder block: `x + attn(norm1(x))`, `x + mlp(norm2(x))`.
#[derive(Debug, Clone)]
struct EncoderBlock {
    norm1: LayerNorm,
    attn: SelfAttention,
    norm2: LayerNorm,
    mlp: Mlp,
}

impl EncoderBlock {
    fn new(cfg: &Cut3rConfig, vb: VarBuilder<'_>) -> Result<Self> {
        let d = cfg.enc_embed_dim;
        Ok(Self {
            norm1: layer_norm(d, vb.pp("norm1"))?,
            attn: SelfAttention::new(d, cfg.enc_num_heads, cfg.enc_rope_f16, vb.pp("attn"))?,
            norm2: layer_norm(d, vb.pp("norm2"))?,
            mlp: Mlp::new(d, cfg.mlp_hidden(d), d, vb.pp("mlp"))?,
        })
    }

    fn forward(&self, xs: &Tensor, rope: &Rope2d) -> Result<Tensor> {
        let xs = (xs + self.attn.forward(&self.norm1.forward(xs)?, Some(rope))?)?;
        &xs + self.mlp.forward(&self.norm2.forward(&xs)?)?
    }
}

/// CroCo decoder block: self-attention, cross-attention to `y` (normalised by `norm_y`), MLP.
#[derive(Debug, Clone)]
struct DecoderBlock {
    norm1: LayerNorm,
    attn: SelfAttention,
    norm2: LayerNorm,
    cross_attn: CrossAttention,
    norm3: LayerNorm,
    mlp: Mlp,
    norm_y: Option<LayerNorm>,
}

impl DecoderBlock {
    fn new(
        dim: usize,
        heads: usize,
        mlp_hidden: usize,
        norm_mem: bool,
        vb: VarBuilder<'_>,
    ) -> Result<Self> {
        Ok(Self {
            norm1: layer_norm(dim, vb.pp("norm1"))?,
            attn: SelfAttention::new(dim, heads, false, vb.pp("attn"))?,
            norm2: layer_norm(dim, vb.pp("norm2"))?,
            cross_attn: CrossAttention::new(dim, heads, vb.pp("cross_attn"))?,
            norm3: layer_norm(dim, vb.pp("norm3"))?,
            mlp: Mlp::new(dim, mlp_hidden, dim, vb.pp("mlp"))?,
            norm_y: if norm_mem {
                Some(layer_norm(dim, vb.pp("norm_y"))?)
            } else {
                None
            },
        })
    }

    /// `x: [b, nx, d]` attends to itself and to `y: [b, ny, d]`.
    fn forward(
        &self,
        x: &Tensor,
        y: &Tensor,
        xrope: Option<&Rope2d>,
        yrope: Option<&Rope2d>,
    ) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.norm1.forward(x)?, xrope)?)?;
        let y = match &self.norm_y {
            Some(n) => n.forward(y)?,
            None => y.clone(),
        };
        let x = (&x
            + self
                .cross_attn
                .forward(&self.norm2.forward(&x)?, &y, xrope, yrope)?)?;
        &x + self.mlp.forward(&self.norm3.forward(&x)?)?
    }
}

/// adaLN (`ModLN`): `LayerNorm(x)·(1 + scale) + shift`, `(shift, scale) = Linear(SiLU(mod))`
/// (keys `norm`, `mlp.1`).
#[derive(Debug, Clone)]
struct ModLn {
    norm: LayerNorm,
    proj: Linear,
}

impl ModLn {
    fn new(dim: usize, vb: VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            norm: layer_norm(dim, vb.pp("norm"))?,
            proj: linear(dim, 2 * dim, vb.pp("mlp").pp(1))?,
        })
    }

    /// `x: [b, n, d]`, `modulation: [b, d]`.
    fn forward(&self, x: &Tensor, modulation: &Tensor) -> Result<Tensor> {
        let d = x.dim(2)?;
        let ss = self.proj.forward(&candle_nn::ops::silu(modulation)?)?; // [b, 2d]
        let shift = ss.narrow(1, 0, d)?.unsqueeze(1)?;
        let scale = (ss.narrow(1, d, d)?.unsqueeze(1)? + 1.0)?;
        self.norm
            .forward(x)?
            .broadcast_mul(&scale)?
            .broadcast_add(&shift)
    }
}

/// `ConditionModulationBlock` of the world-frame head: a pre-norm block whose norms are
/// modulated by the camera token (RoPE self-attention on the patch tokens).
#[derive(Debug, Clone)]
struct ModulationBlock {
    norm1: ModLn,
    attn: SelfAttention,
    norm2: ModLn,
    mlp: Mlp,
}

impl ModulationBlock {
    fn new(cfg: &Cut3rConfig, vb: VarBuilder<'_>) -> Result<Self> {
        let d = cfg.dec_embed_dim;
        Ok(Self {
            norm1: ModLn::new(d, vb.pp("norm1"))?,
            attn: SelfAttention::new(d, cfg.dec_num_heads, false, vb.pp("attn"))?,
            norm2: ModLn::new(d, vb.pp("norm2"))?,
            mlp: Mlp::new(d, 4 * d, d, vb.pp("mlp"))?,
        })
    }

    fn forward(&self, x: &Tensor, modulation: &Tensor, rope: &Rope2d) -> Result<Tensor> {
        let x = (x + self
            .attn
            .forward(&self.norm1.forward(x, modulation)?, Some(rope))?)?;
        &x + self.mlp.forward(&self.norm2.forward(&x, modulation)?)?
    }
}

/// The world-frame point head (`final_transform` + `dpt_cross`): points of this frame in the
/// first frame's camera (`pts3d_in_other_view`).
#[derive(Debug, Clone)]
struct WorldHead {
    final_transform: Vec<ModulationBlock>,
    dpt_cross: Dpt,
}

/// The pose retriever (`LocalMemory`): a learned memory `f32[1, slots, 2·dec]` read with
/// (projected frame feature, masked token) queries and written with (projected frame feature,
/// output camera token) pairs, through decoder blocks without RoPE.
#[derive(Debug, Clone)]
struct PoseRetriever {
    proj_q: Linear,
    masked_token: Tensor,
    mem: Tensor,
    write_blocks: Vec<DecoderBlock>,
    read_blocks: Vec<DecoderBlock>,
    v_dim: usize,
}

impl PoseRetriever {
    /// Upstream: `LocalMemory(size=local_mem_size, k_dim=enc, v_dim=dec, num_heads=dec_num_heads,
    /// mlp_ratio=4, qkv_bias=True, depth=2 (default), norm_mem=True, rope=None)`.
    fn new(cfg: &Cut3rConfig, vb: VarBuilder<'_>) -> Result<Self> {
        let v = cfg.dec_embed_dim;
        let dim = 2 * v;
        let blocks = |name: &str| -> Result<Vec<DecoderBlock>> {
            (0..2)
                .map(|i| {
                    DecoderBlock::new(dim, cfg.dec_num_heads, 4 * dim, true, vb.pp(name).pp(i))
                })
                .collect()
        };
        Ok(Self {
            proj_q: linear(cfg.enc_embed_dim, v, vb.pp("proj_q"))?,
            masked_token: vb.get((1, 1, v), "masked_token")?,
            mem: vb.get((1, cfg.local_mem_size, dim), "mem")?,
            write_blocks: blocks("write_blocks")?,
            read_blocks: blocks("read_blocks")?,
            v_dim: v,
        })
    }

    /// `query: [b, 1, enc]`, `mem: [b, slots, 2·dec]` → pose token `[b, 1, dec]`.
    fn inquire(&self, query: &Tensor, mem: &Tensor) -> Result<Tensor> {
        let x = self.proj_q.forward(query)?;
        let b = x.dim(0)?;
        let masked = self.masked_token.expand((b, 1, self.v_dim))?;
        let mut x = Tensor::cat(&[&x, &masked], 2)?;
        for blk in &self.read_blocks {
            x = blk.forward(&x, mem, None, None)?;
        }
        x.narrow(2, self.v_dim, self.v_dim)
    }

    /// Writes `(proj_q(feat_k), feat_v)` (`[b, 1, enc]`, `[b, 1, dec]`) into `mem`.
    fn update_mem(&self, mem: &Tensor, feat_k: &Tensor, feat_v: &Tensor) -> Result<Tensor> {
        let feat = Tensor::cat(&[&self.proj_q.forward(feat_k)?, feat_v], 2)?;
        let mut mem = mem.clone();
        for blk in &self.write_blocks {
            mem = blk.forward(&mem, &feat, None, None)?;
        }
        Ok(mem)
    }
}

/// The recurrent state of one batch of sequences.
#[derive(Debug, Clone)]
pub struct Cut3rState {
    /// State tokens `f32[b, state_size, dec]`.
    pub state: Tensor,
    /// Pose-retriever memory `f32[b, local_mem_size, 2·dec]`.
    pub mem: Tensor,
    /// Frames consumed so far (the first frame uses the learned pose token).
    pub frames_seen: usize,
}

/// What Cut3R gives for one frame.
#[derive(Debug, Clone)]
pub struct Cut3rFrameOutput {
    /// Last decoder layer (after `dec_norm`), `f32[b, 1 + n_patches, dec]`: the camera token,
    /// then the patch tokens in row-major order — VLM-3R's 3D features.
    pub tokens: Tensor,
    /// Point map in this frame's camera (`pts3d_in_self_view`), `f32[b, h, w, 3]`.
    pub pts3d_self: Tensor,
    /// Its confidence (`conf_self`, ≥ 1), `f32[b, h, w]`.
    pub conf: Tensor,
    /// Camera pose (`camera_pose`, "absT_quaR"), `f32[b, 7]`: translation, then a unit
    /// quaternion with the real part first and non-negative.
    pub camera_pose: Tensor,
    /// Point map in the first frame's camera (`pts3d_in_other_view`), `f32[b, h, w, 3]`; only
    /// from a model built with [`Cut3r::new_with_world_points`].
    pub pts3d_world: Option<Tensor>,
    /// Its confidence (`conf`), `f32[b, h, w]`.
    pub conf_world: Option<Tensor>,
}

/// Cut3R with the DPT point-map head and the pose head; frozen.
#[derive(Debug, Clone)]
pub struct Cut3r {
    cfg: Cut3rConfig,
    rope_base: f32,
    patch_w: Tensor,
    patch_b: Tensor,
    enc_blocks: Vec<EncoderBlock>,
    enc_norm: LayerNorm,
    decoder_embed: Linear,
    dec_blocks: Vec<DecoderBlock>,
    dec_norm: LayerNorm,
    decoder_embed_state: Linear,
    dec_blocks_state: Vec<DecoderBlock>,
    dec_norm_state: LayerNorm,
    register_tokens: Tensor,
    pose_token: Tensor,
    pose_retriever: PoseRetriever,
    dpt_self: Dpt,
    pose_head: Mlp,
    world: Option<WorldHead>,
}

impl Cut3r {
    /// Builds the model from `vb`, whose keys are the official checkpoint's (no prefix):
    /// tokens, camera-frame points and pose.
    pub fn new(cfg: &Cut3rConfig, vb: VarBuilder<'_>) -> Result<Self> {
        Self::build(cfg, vb, false)
    }

    /// As [`Cut3r::new`], plus the world-frame point head (`downstream_head.final_transform`,
    /// `downstream_head.dpt_cross`), which costs a second DPT pass per frame.
    pub fn new_with_world_points(cfg: &Cut3rConfig, vb: VarBuilder<'_>) -> Result<Self> {
        Self::build(cfg, vb, true)
    }

    fn build(cfg: &Cut3rConfig, vb: VarBuilder<'_>, world_points: bool) -> Result<Self> {
        cfg.validate()?;
        let (e, d, p) = (cfg.enc_embed_dim, cfg.dec_embed_dim, cfg.patch_size);
        let dec_blocks = |name: &str, heads: usize| -> Result<Vec<DecoderBlock>> {
            (0..cfg.dec_depth)
                .map(|i| {
                    DecoderBlock::new(
                        d,
                        heads,
                        cfg.mlp_hidden(d),
                        cfg.norm_im2_in_dec,
                        vb.pp(name).pp(i),
                    )
                })
                .collect()
        };
        let head = vb.pp("downstream_head");
        Ok(Self {
            cfg: cfg.clone(),
            rope_base: cfg.rope_base()?,
            patch_w: vb.get((e, 3, p, p), "patch_embed.proj.weight")?,
            patch_b: vb.get(e, "patch_embed.proj.bias")?,
            enc_blocks: (0..cfg.enc_depth)
                .map(|i| EncoderBlock::new(cfg, vb.pp("enc_blocks").pp(i)))
                .collect::<Result<_>>()?,
            enc_norm: layer_norm(e, vb.pp("enc_norm"))?,
            decoder_embed: linear(e, d, vb.pp("decoder_embed"))?,
            dec_blocks: dec_blocks("dec_blocks", cfg.dec_num_heads)?,
            dec_norm: layer_norm(d, vb.pp("dec_norm"))?,
            decoder_embed_state: linear(e, d, vb.pp("decoder_embed_state"))?,
            dec_blocks_state: dec_blocks("dec_blocks_state", cfg.state_dec_num_heads)?,
            dec_norm_state: layer_norm(d, vb.pp("dec_norm_state"))?,
            register_tokens: vb.get((cfg.state_size, e), "register_tokens.weight")?,
            pose_token: vb.get((1, 1, d), "pose_token")?,
            pose_retriever: PoseRetriever::new(cfg, vb.pp("pose_retriever"))?,
            dpt_self: Dpt::new(cfg, 4, head.pp("dpt_self"))?,
            pose_head: Mlp::new(d, 4 * d, 7, head.pp("pose_head").pp("mlp"))?,
            world: if world_points {
                Some(WorldHead {
                    final_transform: (0..2)
                        .map(|i| ModulationBlock::new(cfg, head.pp("final_transform").pp(i)))
                        .collect::<Result<_>>()?,
                    dpt_cross: Dpt::new(cfg, 4, head.pp("dpt_cross"))?,
                })
            } else {
                None
            },
        })
    }

    /// Opens safetensors file(s) converted by `scripts/convert_cut3r.py` and loads the model
    /// as frozen f32 tensors. Missing keys, wrong shapes and unreadable files are errors naming
    /// the key and the file.
    pub fn load<P: AsRef<Path>>(cfg: &Cut3rConfig, paths: &[P], dev: &Device) -> Result<Self> {
        let ckpt = Arc::new(Checkpoint::open(paths)?);
        Self::new(cfg, ckpt.frozen(DType::F32, dev))
    }

    /// [`Cut3r::load`] with the world-frame point head.
    pub fn load_with_world_points<P: AsRef<Path>>(
        cfg: &Cut3rConfig,
        paths: &[P],
        dev: &Device,
    ) -> Result<Self> {
        let ckpt = Arc::new(Checkpoint::open(paths)?);
        Self::new_with_world_points(cfg, ckpt.frozen(DType::F32, dev))
    }

    /// The configuration.
    pub fn config(&self) -> &Cut3rConfig {
        &self.cfg
    }

    fn check_image(&self, img: &Tensor) -> Result<(usize, usize, usize)> {
        let (b, c, h, w) = img.dims4().map_err(|_| {
            Error::Msg(format!(
                "Cut3R: an image must be f32[b, 3, h, w], got shape {:?}",
                img.shape()
            ))
        })?;
        let p = self.cfg.patch_size;
        if c != 3 || h == 0 || w == 0 || !h.is_multiple_of(p) || !w.is_multiple_of(p) {
            return Err(Error::Msg(format!(
                "Cut3R: an image must be f32[b, 3, h, w] with h and w multiples of {p} \
                 (resize or crop it first), got {:?}",
                img.shape()
            )));
        }
        Ok((b, h / p, w / p))
    }

    /// Patch grid positions `(y, x)` in row-major order (upstream `PositionGetter`).
    fn grid_positions(gh: usize, gw: usize) -> Vec<(i64, i64)> {
        (0..gh)
            .flat_map(|y| (0..gw).map(move |x| (y as i64, x as i64)))
            .collect()
    }

    /// State token positions (`state_pe`): `2d` lays them out on a grid whose width is
    /// `⌊√state_size⌋` rounded up to even; `1d` gives token `i` position `(i, i)`.
    fn state_positions(&self) -> Vec<(i64, i64)> {
        let s = self.cfg.state_size;
        if self.cfg.state_pe == "1d" {
            return (0..s as i64).map(|i| (i, i)).collect();
        }
        let mut width = (s as f64).sqrt() as usize;
        if width % 2 == 1 {
            width += 1;
        }
        (0..s)
            .map(|i| ((i / width) as i64, (i % width) as i64))
            .collect()
    }

    /// Encoder: `img: f32[b, 3, h, w]` in `[-1, 1]` → `f32[b, (h/16)·(w/16), enc]`.
    pub fn encode_image(&self, img: &Tensor) -> Result<Tensor> {
        let (_, gh, gw) = self.check_image(img)?;
        let p = self.cfg.patch_size;
        let x = img
            .conv2d(&self.patch_w, 0, p, 1, 1)?
            .broadcast_add(&self.patch_b.reshape((1, (), 1, 1))?)?; // [b, e, gh, gw]
        let mut x = x.flatten_from(2)?.transpose(1, 2)?.contiguous()?;
        let hd = self.cfg.enc_embed_dim / self.cfg.enc_num_heads;
        let rope = Rope2d::new(
            &Self::grid_positions(gh, gw),
            hd,
            self.rope_base,
            img.device(),
        )?;
        for blk in &self.enc_blocks {
            x = blk.forward(&x, &rope)?;
        }
        self.enc_norm.forward(&x)
    }

    /// A fresh state for `batch` sequences: `decoder_embed_state(register_tokens)` and the
    /// learned memory, broadcast over the batch.
    pub fn init_state(&self, batch: usize) -> Result<Cut3rState> {
        let d = self.cfg.dec_embed_dim;
        let state = self
            .decoder_embed_state
            .forward(&self.register_tokens)?
            .unsqueeze(0)?
            .expand((batch, self.cfg.state_size, d))?
            .contiguous()?;
        let mem = self
            .pose_retriever
            .mem
            .expand((batch, self.cfg.local_mem_size, 2 * d))?
            .contiguous()?;
        Ok(Cut3rState {
            state,
            mem,
            frames_seen: 0,
        })
    }

    /// Consumes one frame `img: f32[b, 3, h, w]` (in `[-1, 1]`, see [`normalize_rgb01`]),
    /// updates `state` and returns the frame's tokens, point map, confidence and pose.
    pub fn step(&self, state: &mut Cut3rState, img: &Tensor) -> Result<Cut3rFrameOutput> {
        let (b, gh, gw) = self.check_image(img)?;
        let sb = state.state.dim(0)?;
        if sb != b {
            return Err(Error::Msg(format!(
                "Cut3R: the state holds {sb} sequences but the frame has batch {b}"
            )));
        }
        let dev = img.device();
        let d = self.cfg.dec_embed_dim;
        let feat = self.encode_image(img)?; // [b, n, e]
        let global = feat.mean_keepdim(1)?; // [b, 1, e]
        let pose_feat = if state.frames_seen == 0 {
            self.pose_token.expand((b, 1, d))?.contiguous()?
        } else {
            self.pose_retriever.inquire(&global, &state.mem)?
        };

        // RoPE tables: image stream = [pose (-1, -1), patches]; state stream = state grid.
        let mut img_pos = vec![(-1i64, -1i64)];
        img_pos.extend(Self::grid_positions(gh, gw));
        let state_pos = self.state_positions();
        let img_hd = d / self.cfg.dec_num_heads;
        let state_hd = d / self.cfg.state_dec_num_heads;
        let base = self.rope_base;
        let img_rope = Rope2d::new(&img_pos, img_hd, base, dev)?;
        let state_rope_in_img = Rope2d::new(&state_pos, img_hd, base, dev)?;
        let state_rope = Rope2d::new(&state_pos, state_hd, base, dev)?;
        let img_rope_in_state = Rope2d::new(&img_pos, state_hd, base, dev)?;

        // Both decoders read the other stream's previous-layer output (upstream `_decoder`).
        let mut f_state = state.state.clone();
        let mut f_img = Tensor::cat(&[&pose_feat, &self.decoder_embed.forward(&feat)?], 1)?;
        let depth = self.cfg.dec_depth;
        let mut layers = Vec::with_capacity(depth);
        for (blk_state, blk_img) in self.dec_blocks_state.iter().zip(&self.dec_blocks) {
            let new_state = blk_state.forward(
                &f_state,
                &f_img,
                Some(&state_rope),
                Some(&img_rope_in_state),
            )?;
            let new_img =
                blk_img.forward(&f_img, &f_state, Some(&img_rope), Some(&state_rope_in_img))?;
            f_state = new_state;
            f_img = new_img;
            layers.push(f_img.clone());
        }
        let new_state = self.dec_norm_state.forward(&f_state)?;
        let tokens = self.dec_norm.forward(&f_img)?; // [b, 1 + n, d]

        let camera = tokens.narrow(1, 0, 1)?; // [b, 1, d]
        let new_mem = self
            .pose_retriever
            .update_mem(&state.mem, &global, &camera)?;

        // Head hooks (upstream `head_input`): encoder output, layers depth/2 and 3·depth/4
        // (1-based, camera token dropped), final normalised tokens (camera token dropped).
        let n = gh * gw;
        let hook = |i: usize| match i.checked_sub(1).and_then(|j| layers.get(j)) {
            Some(layer) => layer.narrow(1, 1, n),
            None => Err(Error::Msg(format!("Cut3R: no decoder layer {i} to hook"))),
        };
        let h1 = hook(depth * 2 / 4)?;
        let h2 = hook(depth * 3 / 4)?;
        let h3 = tokens.narrow(1, 1, n)?;
        let raw = self.dpt_self.forward([&feat, &h1, &h2, &h3], (gh, gw))?; // [b, 4, h, w]
        let fmap = raw.permute((0, 2, 3, 1))?; // [b, h, w, 4]
        let pts3d_self = reg_dense_depth(&fmap.narrow(3, 0, 3)?, &self.cfg.depth_mode)?;
        let conf = reg_dense_conf(&fmap.narrow(3, 3, 1)?.squeeze(3)?, &self.cfg.conf_mode)?;
        let pose_raw = self.pose_head.forward(&camera.squeeze(1)?)?; // [b, 7]
        let camera_pose = postprocess_pose(&pose_raw, &self.cfg.pose_mode)?;
        let (pts3d_world, conf_world) = match &self.world {
            None => (None, None),
            Some(world) => {
                // Patch tokens modulated by the camera token, RoPE on the patch grid.
                let modulation = camera.squeeze(1)?; // [b, d]
                let rope = Rope2d::new(&Self::grid_positions(gh, gw), img_hd, base, dev)?;
                let mut cross = h3.clone();
                for blk in &world.final_transform {
                    cross = blk.forward(&cross, &modulation, &rope)?;
                }
                let raw = world
                    .dpt_cross
                    .forward([&feat, &h1, &h2, &cross], (gh, gw))?
                    .permute((0, 2, 3, 1))?;
                (
                    Some(reg_dense_depth(
                        &raw.narrow(3, 0, 3)?,
                        &self.cfg.depth_mode,
                    )?),
                    Some(reg_dense_conf(
                        &raw.narrow(3, 3, 1)?.squeeze(3)?,
                        &self.cfg.conf_mode,
                    )?),
                )
            }
        };

        state.state = new_state;
        state.mem = new_mem;
        state.frames_seen += 1;
        Ok(Cut3rFrameOutput {
            tokens,
            pts3d_self,
            conf,
            camera_pose,
            pts3d_world,
            conf_world,
        })
    }

    /// Runs a sequence of frames (each `f32[b, 3, h, w]`, in `[-1, 1]`) from a fresh state.
    pub fn forward_frames(&self, frames: &[Tensor]) -> Result<Vec<Cut3rFrameOutput>> {
        let Some(first) = frames.first() else {
            return Ok(Vec::new());
        };
        let (b, _, _) = self.check_image(first)?;
        let mut state = self.init_state(b)?;
        frames.iter().map(|f| self.step(&mut state, f)).collect()
    }
}

/// `exp(x) − 1`, accurate near 0 (a Taylor series below |x| < 1e-2 where `exp(x) − 1` loses
/// digits in f32).
fn expm1(x: &Tensor) -> Result<Tensor> {
    let direct = (x.exp()? - 1.0)?;
    // x·(1 + x/2·(1 + x/3·(1 + x/4))): error ~x⁵/120.
    let series =
        x.mul(&((x * 0.5)?.mul(&((x / 3.0)?.mul(&((x * 0.25)? + 1.0)?)? + 1.0)?)? + 1.0)?)?;
    let small = x.abs()?.lt(1e-2)?;
    small.where_cond(&series, &direct)
}

/// Upstream `reg_dense_depth`: `xyz: [.., 3]` → `xyz/|xyz| · f(|xyz|)`, `f` = `expm1` (`exp`),
/// `d²` (`square`) or identity (`linear`).
fn reg_dense_depth(xyz: &Tensor, mode: &Cut3rRegMode) -> Result<Tensor> {
    if mode.0 == "linear" {
        return Ok(xyz.clone());
    }
    let d = xyz.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    let dir = xyz.broadcast_div(&d.clamp(1e-8f32, f32::INFINITY)?)?;
    let scale = if mode.0 == "square" {
        d.sqr()?
    } else {
        expm1(&d)?
    };
    dir.broadcast_mul(&scale)
}

/// Upstream `reg_dense_conf` (`exp` mode): `vmin + exp(x)`, clipped at `vmax − vmin`.
fn reg_dense_conf(x: &Tensor, mode: &Cut3rRegMode) -> Result<Tensor> {
    let vmin = mode.1.unwrap_or(0.0);
    let e = x.exp()?;
    let e = match mode.2 {
        Some(vmax) => e.clamp(f32::NEG_INFINITY, (vmax - vmin) as f32)?,
        None => e,
    };
    e + vmin
}

/// Upstream `postprocess_pose`: translation `t · f(|t|)/|t|`, quaternion normalised with its real
/// part made non-negative. `out: f32[b, 7]`.
fn postprocess_pose(out: &Tensor, mode: &Cut3rRegMode) -> Result<Tensor> {
    let trans = out.narrow(1, 0, 3)?;
    let quats = out.narrow(1, 3, 4)?;
    if mode.0 == "linear" {
        return Ok(trans);
    }
    let d = trans.sqr()?.sum_keepdim(1)?.sqrt()?;
    let f = if mode.0 == "square" {
        d.sqr()?
    } else {
        expm1(&d)?
    };
    let trans = trans.broadcast_mul(&f.div(&d.clamp(1e-8f32, f32::INFINITY)?)?)?;
    // F.normalize: x / max(|x|, 1e-12).
    let qn = quats.sqr()?.sum_keepdim(1)?.sqrt()?;
    let quats = quats.broadcast_div(&qn.clamp(1e-12f32, f32::INFINITY)?)?;
    // Sign +1 where the real part is ≥ 0, −1 where it is negative.
    let sign = quats
        .narrow(1, 0, 1)?
        .lt(0f32)?
        .to_dtype(quats.dtype())?
        .affine(-2.0, 1.0)?;
    Tensor::cat(&[&trans, &quats.broadcast_mul(&sign)?], 1)
}

impl SpatialEncoder for Cut3r {
    /// `SpatialInput::Images(f32[b, 3, h, w])` in `[-1, 1]`: each batch item is a one-frame
    /// sequence from a fresh state (the single-frame use of stages 2–3); tokens are the last
    /// decoder layer, `f32[b, 1 + n_patches, dec]` (camera token first), all valid. For
    /// multi-frame clips use [`Cut3r::forward_frames`], which carries the state.
    fn encode(&self, input: &SpatialInput) -> Result<SpatialTokens> {
        match input {
            SpatialInput::Images(img) => {
                let mut state = self.init_state(img.dim(0)?)?;
                let out = self.step(&mut state, img)?;
                Ok(SpatialTokens {
                    tokens: out.tokens,
                    valid: None,
                })
            }
            SpatialInput::PointMaps(_) => Err(Error::Msg(
                "Cut3R encodes RGB images (SpatialInput::Images), not point maps; use the \
                 point-map ViT backend for point maps"
                    .to_string(),
            )),
        }
    }

    fn output_size(&self) -> usize {
        self.cfg.dec_embed_dim
    }
}
