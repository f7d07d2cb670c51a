#!/usr/bin/env python3
"""Parity fixtures for the Rust Cut3R (`vipa_models::vision::cut3r`).

No Python package of CUT3R exists offline, so this file holds a compact PyTorch twin written
from a reading of the official code (github.com/CUT3R/CUT3R: `src/dust3r/model.py`
`ARCroco3DStereo` / `LocalMemory`, `src/croco/models/blocks.py`, `src/dust3r/blocks.py`,
`src/croco/models/dpt_block.py`, `src/dust3r/heads/dpt_head.py` `DPTPts3dPose`,
`src/dust3r/heads/postprocess.py`, `src/dust3r/utils/camera.py` `PoseDecoder`,
`src/croco/models/curope/kernels.cu`). It is our own code, not a copy, but it keeps the official
module tree, so `state_dict()` gives the **official checkpoint key names** (`enc_blocks.0.attn.qkv`,
`dec_blocks_state.1.cross_attn.projq`, `pose_retriever.mem`, `downstream_head.dpt_self.scratch.
refinenet1.resConfUnit1.conv1`, ...). What the twin leaves out (and the Rust reads nowhere): the
ray-map encoder (`patch_embed_ray_map`, `enc_blocks_ray_map`, `enc_norm_ray_map`,
`masked_*_token`) and `downstream_head.dpt_rgb`.

Numerics kept from the official model:
- CroCo encoder blocks cast q, k to float16 around RoPE, and the cuRoPE CUDA kernel writes its
  float32 result back to float16: `round16(rope_f32(round16(q)))`. Decoder blocks
  (`dust3r/blocks.py`) use float32 RoPE.
- The pose token has RoPE position (-1, -1).
- State positions for `state_pe="2d"`: width = int(sqrt(state_size)), +1 if odd.

The tiny config (= `Cut3rConfig::tiny()` in Rust) sets the DPT widths (hard-coded 256 /
[96, 192, 384, 768] / 128 upstream) small so the fixture stays under a megabyte; the DPT module
itself is the official one, which takes those as constructor arguments.

Every parameter (including norm weights) is random so that a wrong key cannot hide behind
ones/zeros. Three frames of batch 2 run recurrently, once as upstream (float16 round trip
around the encoder's RoPE) and once in plain float32 (`f32.*` keys, Rust `enc_rope_f16: false`:
this is the tight structural check, free of float16 rounding-boundary flips); references per
frame: encoder output,
tokens (last decoder layer), pts3d_in_self_view, conf_self, camera_pose, and the world-frame
pts3d_in_other_view / conf (`final_transform` + `dpt_cross`).

Run from the repository root:

    .venv-torch/bin/python models/scripts/make_cut3r_fixtures.py

Writes `models/fixtures/cut3r/tiny.{config.json,safetensors,io.safetensors}`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "cut3r"

# Mirrors Cut3rConfig::tiny() (field names of the official ARCroco3DStereoConfig + croco kwargs).
CONFIG = {
    "output_mode": "pts3d+pose",
    "head_type": "dpt",
    "depth_mode": ["exp", None, None],
    "conf_mode": ["exp", 1.0, None],
    "pose_mode": ["exp", None, None],
    "state_size": 12,
    "local_mem_size": 8,
    "state_pe": "2d",
    "state_dec_num_heads": 4,
    "ray_enc_depth": 1,
    "rgb_head": False,
    "pose_head": True,
    "patch_embed_cls": "PatchEmbedDust3R",
    "landscape_only": False,
    "img_size": [32, 48],
    "patch_size": 16,
    "enc_embed_dim": 32,
    "enc_depth": 2,
    "enc_num_heads": 2,
    "dec_embed_dim": 16,
    "dec_depth": 2,
    "dec_num_heads": 2,
    "mlp_ratio": 4.0,
    "norm_im2_in_dec": True,
    "pos_embed": "RoPE100",
    "enc_rope_f16": True,
    "dpt_feature_dim": 8,
    "dpt_layer_dims": [4, 8, 8, 12],
    "dpt_last_dim": 4,
}
ROPE_BASE = 100.0
# Official behaviour: the encoder rounds q, k to float16 around RoPE. Switched off for the
# `f32.*` references (Rust: `enc_rope_f16 = false`).
ENC_ROPE_F16 = [True]
LN = lambda d: nn.LayerNorm(d, eps=1e-6)  # noqa: E731


# ----------------------------------------------------------------------------- RoPE (cuRoPE)
def rope2d(tokens: torch.Tensor, pos: torch.Tensor, f16: bool) -> torch.Tensor:
    """tokens [B, H, N, D]; pos [B, N, 2] (y, x). First D/2 rotated by y, second by x; each half
    [u | v] with Q = D/4 frequencies 1 / base^(i/Q): (u cos - v sin, v cos + u sin)."""
    if f16:
        tokens = tokens.half().float()
    d = tokens.shape[-1]
    q = d // 4
    inv = 1.0 / (ROPE_BASE ** (torch.arange(q, dtype=torch.float32) / q))
    parts = []
    for axis in range(2):
        ang = pos[:, :, axis].float()[:, None, :, None] * inv  # B,1,N,Q
        cos, sin = ang.cos(), ang.sin()
        half = tokens[..., axis * 2 * q : (axis + 1) * 2 * q]
        u, v = half[..., :q], half[..., q:]
        parts += [u * cos - v * sin, v * cos + u * sin]
    out = torch.cat(parts, dim=-1)
    if f16:
        out = out.half().float()
    return out


# ----------------------------------------------------------------------------- blocks
class Mlp(nn.Module):
    def __init__(self, dim, hidden, out=None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out or dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, dim, heads, use_rope, f16):
        super().__init__()
        self.heads, self.use_rope, self.f16 = heads, use_rope, f16
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, xpos):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).transpose(1, 3)
        q, k, v = [qkv[:, :, i] for i in range(3)]
        if self.use_rope:
            f16 = self.f16 and ENC_ROPE_F16[0]
            q, k = rope2d(q, xpos, f16), rope2d(k, xpos, f16)
        x = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


class CrossAttention(nn.Module):
    def __init__(self, dim, heads, use_rope):
        super().__init__()
        self.heads, self.use_rope = heads, use_rope
        self.projq = nn.Linear(dim, dim)
        self.projk = nn.Linear(dim, dim)
        self.projv = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, query, key, value, qpos, kpos):
        b, nq, c = query.shape
        h = self.heads
        q = self.projq(query).reshape(b, nq, h, c // h).permute(0, 2, 1, 3)
        k = self.projk(key).reshape(b, key.shape[1], h, c // h).permute(0, 2, 1, 3)
        v = self.projv(value).reshape(b, value.shape[1], h, c // h).permute(0, 2, 1, 3)
        if self.use_rope:
            q, k = rope2d(q, qpos, False), rope2d(k, kpos, False)
        x = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, nq, c)
        return self.proj(x)


class Block(nn.Module):
    """CroCo encoder block (float16 round trip around RoPE)."""

    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = LN(dim)
        self.attn = Attention(dim, heads, True, True)
        self.norm2 = LN(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, xpos):
        x = x + self.attn(self.norm1(x), xpos)
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    def __init__(self, dim, heads, mlp_ratio, use_rope, norm_mem=True):
        super().__init__()
        self.norm1 = LN(dim)
        self.attn = Attention(dim, heads, use_rope, False)
        self.cross_attn = CrossAttention(dim, heads, use_rope)
        self.norm2 = LN(dim)
        self.norm3 = LN(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm_y = LN(dim) if norm_mem else nn.Identity()

    def forward(self, x, y, xpos, ypos):
        x = x + self.attn(self.norm1(x), xpos)
        y_ = self.norm_y(y)
        x = x + self.cross_attn(self.norm2(x), y_, y_, xpos, ypos)
        x = x + self.mlp(self.norm3(x))
        return x, y


class LocalMemory(nn.Module):
    def __init__(self, size, k_dim, v_dim, heads, depth=2):
        super().__init__()
        self.v_dim = v_dim
        self.proj_q = nn.Linear(k_dim, v_dim)
        self.masked_token = nn.Parameter(torch.randn(1, 1, v_dim) * 0.2)
        self.mem = nn.Parameter(torch.randn(1, size, 2 * v_dim) * 0.2)
        self.write_blocks = nn.ModuleList([DecoderBlock(2 * v_dim, heads, 4, False) for _ in range(depth)])
        self.read_blocks = nn.ModuleList([DecoderBlock(2 * v_dim, heads, 4, False) for _ in range(depth)])

    def update_mem(self, mem, feat_k, feat_v):
        feat = torch.cat([self.proj_q(feat_k), feat_v], dim=-1)
        for blk in self.write_blocks:
            mem, _ = blk(mem, feat, None, None)
        return mem

    def inquire(self, query, mem):
        x = self.proj_q(query)
        x = torch.cat([x, self.masked_token.expand(x.shape[0], -1, -1)], dim=-1)
        for blk in self.read_blocks:
            x, _ = blk(x, mem, None, None)
        return x[..., -self.v_dim :]


class PatchEmbed(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        b, _, h, w = x.shape
        x = self.proj(x)
        gh, gw = x.shape[2], x.shape[3]
        yy, xx = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        pos = torch.stack([yy.reshape(-1), xx.reshape(-1)], dim=-1)[None].expand(b, -1, 2)
        return x.flatten(2).transpose(1, 2), pos


# ----------------------------------------------------------------------------- DPT head
class ResidualConvUnit(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.conv1 = nn.Conv2d(f, f, 3, 1, 1, bias=True)
        self.conv2 = nn.Conv2d(f, f, 3, 1, 1, bias=True)

    def forward(self, x):
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class FeatureFusionBlock(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.out_conv = nn.Conv2d(f, f, 1, 1, 0, bias=True)
        self.resConfUnit1 = ResidualConvUnit(f)
        self.resConfUnit2 = ResidualConvUnit(f)

    def forward(self, *xs):
        out = xs[0]
        if len(xs) == 2:
            out = out + self.resConfUnit1(xs[1])
        out = self.resConfUnit2(out)
        out = F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=True)
        return self.out_conv(out)


class Interpolate(nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class DPTOutputAdapter(nn.Module):
    def __init__(self, num_channels, dim_tokens, layer_dims, feature_dim, last_dim, patch=16):
        super().__init__()
        self.patch = patch
        scratch = nn.Module()
        for i in range(4):
            setattr(scratch, f"layer{i + 1}_rn", nn.Conv2d(layer_dims[i], feature_dim, 3, 1, 1, bias=False))
        scratch.layer_rn = nn.ModuleList([getattr(scratch, f"layer{i + 1}_rn") for i in range(4)])
        for i in range(4):
            setattr(scratch, f"refinenet{i + 1}", FeatureFusionBlock(feature_dim))
        self.scratch = scratch
        self.head = nn.Sequential(
            nn.Conv2d(feature_dim, feature_dim // 2, 3, 1, 1),
            Interpolate(),
            nn.Conv2d(feature_dim // 2, last_dim, 3, 1, 1),
            nn.ReLU(True),
            nn.Conv2d(last_dim, num_channels, 1, 1, 0),
        )
        ld, dt = layer_dims, dim_tokens
        self.act_postprocess = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(dt[0], ld[0], 1), nn.ConvTranspose2d(ld[0], ld[0], 4, stride=4)),
                nn.Sequential(nn.Conv2d(dt[1], ld[1], 1), nn.ConvTranspose2d(ld[1], ld[1], 2, stride=2)),
                nn.Sequential(nn.Conv2d(dt[2], ld[2], 1)),
                nn.Sequential(nn.Conv2d(dt[3], ld[3], 1), nn.Conv2d(ld[3], ld[3], 3, stride=2, padding=1)),
            ]
        )

    def forward(self, tokens, image_size):
        h, w = image_size
        nh, nw = h // self.patch, w // self.patch
        layers = [t.transpose(1, 2).reshape(t.shape[0], t.shape[2], nh, nw) for t in tokens]
        layers = [self.act_postprocess[i](l) for i, l in enumerate(layers)]
        layers = [self.scratch.layer_rn[i](l) for i, l in enumerate(layers)]
        p4 = self.scratch.refinenet4(layers[3])[:, :, : layers[2].shape[2], : layers[2].shape[3]]
        p3 = self.scratch.refinenet3(p4, layers[2])
        p2 = self.scratch.refinenet2(p3, layers[1])
        p1 = self.scratch.refinenet1(p2, layers[0])
        return self.head(p1)


class ModLN(nn.Module):
    """adaLN: LayerNorm(x)·(1 + scale) + shift, (shift, scale) = Linear(SiLU(mod))."""

    def __init__(self, dim, mod_dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(mod_dim, 2 * dim))

    def forward(self, x, mod):
        shift, scale = self.mlp(mod).chunk(2, dim=-1)
        return self.norm(x) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class ConditionModulationBlock(nn.Module):
    def __init__(self, dim, heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = ModLN(dim, dim)
        self.attn = Attention(dim, heads, True, False)
        self.norm2 = ModLN(dim, dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, mod, xpos):
        x = x + self.attn(self.norm1(x, mod), xpos)
        return x + self.mlp(self.norm2(x, mod))


class PoseDecoder(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.mlp = Mlp(hidden, hidden * 4, 7)

    def forward(self, x):
        return self.mlp(x)


class DownstreamHead(nn.Module):
    def __init__(self, c):
        super().__init__()
        ed, dd = c["enc_embed_dim"], c["dec_embed_dim"]
        dpt = lambda: DPTOutputAdapter(  # noqa: E731
            4, [ed, dd, dd, dd], c["dpt_layer_dims"], c["dpt_feature_dim"], c["dpt_last_dim"], c["patch_size"]
        )
        self.dpt_self = dpt()
        self.final_transform = nn.ModuleList([ConditionModulationBlock(dd, c["dec_num_heads"]) for _ in range(2)])
        self.dpt_cross = dpt()
        self.pose_head = PoseDecoder(dd)


# ----------------------------------------------------------------------------- postprocess
def reg_dense_depth(xyz):
    d = xyz.norm(dim=-1, keepdim=True)
    return xyz / d.clip(min=1e-8) * torch.expm1(d)


def postprocess_pose(out):
    trans, quats = out[..., 0:3], out[..., 3:7]
    d = trans.norm(dim=-1, keepdim=True)
    trans = trans * (torch.expm1(d) / d.clip(min=1e-8))
    quats = F.normalize(quats, p=2, dim=-1)
    quats = torch.where(quats[..., 0:1] < 0, -quats, quats)
    return torch.cat([trans, quats], dim=-1)


# ----------------------------------------------------------------------------- model
class Cut3rTwin(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        e, d = c["enc_embed_dim"], c["dec_embed_dim"]
        self.patch_embed = PatchEmbed(c["patch_size"], e)
        self.enc_blocks = nn.ModuleList([Block(e, c["enc_num_heads"], c["mlp_ratio"]) for _ in range(c["enc_depth"])])
        self.enc_norm = LN(e)
        self.decoder_embed = nn.Linear(e, d)
        self.dec_blocks = nn.ModuleList(
            [DecoderBlock(d, c["dec_num_heads"], c["mlp_ratio"], True) for _ in range(c["dec_depth"])]
        )
        self.dec_norm = LN(d)
        self.decoder_embed_state = nn.Linear(e, d)
        self.dec_blocks_state = nn.ModuleList(
            [DecoderBlock(d, c["state_dec_num_heads"], c["mlp_ratio"], True) for _ in range(c["dec_depth"])]
        )
        self.dec_norm_state = LN(d)
        self.register_tokens = nn.Embedding(c["state_size"], e)
        self.pose_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pose_retriever = LocalMemory(c["local_mem_size"], e, d, c["dec_num_heads"])
        self.downstream_head = DownstreamHead(c)

    def encode(self, img):
        x, pos = self.patch_embed(img)
        for blk in self.enc_blocks:
            x = blk(x, pos)
        return self.enc_norm(x), pos

    def init_state(self, b):
        s = self.c["state_size"]
        width = int(s**0.5)
        width = width + 1 if width % 2 == 1 else width
        pos = torch.tensor([[i // width, i % width] for i in range(s)])[None].expand(b, -1, -1)
        feat = self.register_tokens(torch.arange(s))[None].expand(b, -1, -1)
        return self.decoder_embed_state(feat), pos

    def decoder(self, f_state, pos_state, f_img, pos_img, f_pose, pos_pose):
        out = [(f_state, f_img)]
        f_img = self.decoder_embed(f_img)
        f_img = torch.cat([f_pose, f_img], dim=1)
        pos_img = torch.cat([pos_pose, pos_img], dim=1)
        out.append((f_state, f_img))
        for bs, bi in zip(self.dec_blocks_state, self.dec_blocks):
            fs, _ = bs(*out[-1][::+1], pos_state, pos_img)
            fi, _ = bi(*out[-1][::-1], pos_img, pos_state)
            out.append((fs, fi))
        del out[1]
        out[-1] = (self.dec_norm_state(out[-1][0]), self.dec_norm(out[-1][1]))
        return zip(*out)

    def forward_frames(self, frames):
        b = frames[0].shape[0]
        depth = self.c["dec_depth"]
        state_feat, state_pos = self.init_state(b)
        mem = self.pose_retriever.mem.expand(b, -1, -1)
        results = []
        for i, img in enumerate(frames):
            feat, pos = self.encode(img)
            glob = feat.mean(dim=1, keepdim=True)
            pose_feat = self.pose_token.expand(b, -1, -1) if i == 0 else self.pose_retriever.inquire(glob, mem)
            pose_pos = -torch.ones(b, 1, 2, dtype=pos.dtype)
            states, dec = self.decoder(state_feat, state_pos, feat, pos, pose_feat, pose_pos)
            new_state = states[-1]
            new_mem = self.pose_retriever.update_mem(mem, glob, dec[-1][:, 0:1])
            x = [dec[0], dec[depth * 2 // 4][:, 1:], dec[depth * 3 // 4][:, 1:], dec[depth]]
            pose_token = x[-1][:, 0]
            x = x[:-1] + [x[-1][:, 1:]]
            h, w = img.shape[-2:]
            raw = self.downstream_head.dpt_self(x, (h, w))
            fmap = raw.permute(0, 2, 3, 1)
            pts = reg_dense_depth(fmap[..., 0:3])
            conf = 1.0 + fmap[..., 3].exp()
            pose = postprocess_pose(self.downstream_head.pose_head(pose_token))
            # World frame (the first camera's): tokens modulated by the camera token, dpt_cross.
            cross = x[-1]
            for blk in self.downstream_head.final_transform:
                cross = blk(cross, pose_token, pos)
            raw_w = self.downstream_head.dpt_cross(x[:-1] + [cross], (h, w)).permute(0, 2, 3, 1)
            pts_w = reg_dense_depth(raw_w[..., 0:3])
            conf_w = 1.0 + raw_w[..., 3].exp()
            results.append(
                dict(enc=feat, tokens=dec[-1], pts3d=pts, conf=conf, pose=pose, pts3d_world=pts_w, conf_world=conf_w)
            )
            state_feat, mem = new_state, new_mem  # update = img_mask = True, reset = False
        return results


def randomise(model: nn.Module, gen: torch.Generator):
    """Every parameter random: weights ~ N(0, 1/fan_in), biases and norm shifts small, norm
    scales around 1, tokens/memory O(1)."""
    for name, p in model.named_parameters():
        with torch.no_grad():
            if p.ndim >= 2 and not name.endswith(("mem", "masked_token", "pose_token", "register_tokens.weight")):
                fan_in = p[0].numel() if "act_postprocess.0.1" not in name and "act_postprocess.1.1" not in name else p.shape[0]
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))
            elif ".norm" in name or name.startswith(("enc_norm", "dec_norm")):
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
        # Keep the DPT/pose outputs O(1) so exp/expm1 stay in a well-conditioned range.
    with torch.no_grad():
        model.downstream_head.dpt_self.head[4].weight.mul_(0.2)
        model.downstream_head.dpt_cross.head[4].weight.mul_(0.2)
        model.downstream_head.pose_head.mlp.fc2.weight.mul_(0.3)


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    model = Cut3rTwin(CONFIG).eval()
    randomise(model, gen)
    b, n_frames = 2, 3
    h, w = CONFIG["img_size"]
    frames = [torch.rand(b, 3, h, w, generator=gen) * 2 - 1 for _ in range(n_frames)]
    with torch.no_grad():
        res = model.forward_frames(frames)
        ENC_ROPE_F16[0] = False
        res32 = model.forward_frames(frames)
        ENC_ROPE_F16[0] = True

    OUT.mkdir(parents=True, exist_ok=True)
    # Shared tensors (scratch.layer_rn.N is scratch.layerN_rn) are cloned: safetensors refuses
    # aliases. The official checkpoint has both names too.
    weights = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, OUT / "tiny.safetensors")
    io = {}
    for i, (f, r) in enumerate(zip(frames, res)):
        io[f"frame.{i}"] = f.contiguous()
        for k, v in r.items():
            io[f"{k}.{i}"] = v.detach().contiguous()
        for k, v in res32[i].items():
            io[f"f32.{k}.{i}"] = v.detach().contiguous()
    save_file(io, OUT / "tiny.io.safetensors")
    (OUT / "tiny.config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    n_params = sum(v.numel() for v in weights.values())
    print(f"wrote {OUT}: {len(weights)} tensors, {n_params} values")
    for i, r in enumerate(res):
        print(
            f"frame {i}: tokens {tuple(r['tokens'].shape)} |max| {r['tokens'].abs().max():.3f}, "
            f"pts |max| {r['pts3d'].abs().max():.3f}, conf max {r['conf'].max():.3f}, "
            f"pose {r['pose'][0].tolist()}"
        )


if __name__ == "__main__":
    main()
