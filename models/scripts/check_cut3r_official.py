#!/usr/bin/env python3
"""Cross-check the Cut3R fixtures (and so the Rust model) against the **official** CUT3R code.

`make_cut3r_fixtures.py` computes the reference outputs with our own PyTorch twin. This script
builds the official `ARCroco3DStereo` from a checkout of github.com/CUT3R/CUT3R (not vendored:
pass its `src/` folder), loads `fixtures/cut3r/tiny.safetensors` into it, runs the same frames
through upstream's own modules in upstream's recurrent order (`_encode_image`, `_init_state`,
`pose_retriever.inquire`, `_recurrent_rollout`, `pose_retriever.update_mem`, `_downstream_head`,
as `forward_recurrent` / VLM-3R's `Cut3rEncoder.forward` do), and compares with the fixture:
encoder output, last-decoder tokens, `pts3d_in_self_view`, `conf_self`, `camera_pose`,
`pts3d_in_other_view`, `conf` (world frame).

Only test scaffolding is added around the official code:
- `transformers` / `accelerate` are replaced by minimal stand-ins (the model only subclasses
  `PretrainedConfig` / `PreTrainedModel` and asks for a logger), so any version works; `scipy`
  too where it is not installed (only an unused KD-tree import needs it); `einops` is required;
- the DPT heads `downstream_head.dpt_self` / `dpt_cross` are rebuilt with the fixture's small
  widths using the official `DPTOutputAdapter_fix` class (upstream hard-codes 256 /
  [96, 192, 384, 768] / 128);
- RoPE: `--rope curope` (default on CUDA) JIT-compiles the official cuRoPE extension
  (`curope.cpp`, `kernels.cu`, with its `-O3 --use_fast_math` flags; `tokens.type()` →
  `tokens.scalar_type()` for current PyTorch); `--rope twin` (CPU) swaps
  in a Python function with the kernel's semantics (float32 math, result written back in the
  input's dtype), since upstream's pure-PyTorch fallback cannot take the pose token's position -1.
- TF32 is switched off (croco.py switches it on at import).

With `--dump-shapes FILE` it instead writes the name and shape of every tensor of the released
`cut3r_512` model (built on the meta device from the checkpoint's config string), which the Rust
test `cut3r_512_reads_official_keys_and_shapes` checks the loader against
(`fixtures/cut3r/cut3r_512.shapes.json`).

Usage:

    python models/scripts/check_cut3r_official.py --cut3r-src /path/to/CUT3R/src [--rope twin]
    python models/scripts/check_cut3r_official.py --cut3r-src /path/to/CUT3R/src \
        --dump-shapes models/fixtures/cut3r/cut3r_512.shapes.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import types
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "cut3r"


def install_stubs():
    tf = types.ModuleType("transformers")

    class PretrainedConfig:
        def __init__(self, **kw):
            for k, v in kw.items():
                setattr(self, k, v)

    class PreTrainedModel(nn.Module):
        def __init__(self, config, *a, **kw):
            nn.Module.__init__(self)
            self.config = config

    class ModelOutput(dict):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)

    tf.PretrainedConfig = PretrainedConfig
    tf.PreTrainedModel = PreTrainedModel
    mo = types.ModuleType("transformers.modeling_outputs")
    mo.BaseModelOutput = ModelOutput
    fu = types.ModuleType("transformers.file_utils")
    fu.ModelOutput = ModelOutput
    tf.modeling_outputs, tf.file_utils = mo, fu
    sys.modules.update({"transformers": tf, "transformers.modeling_outputs": mo, "transformers.file_utils": fu})
    try:  # dust3r/utils/geometry.py imports scipy's KD-tree, which the model never calls
        import scipy.spatial  # noqa: F401
    except ImportError:
        sp = types.ModuleType("scipy")
        sps = types.ModuleType("scipy.spatial")
        sps.cKDTree = None
        spd = types.ModuleType("scipy.spatial.distance")
        spd.pdist = None
        sp.spatial, sps.distance = sps, spd
        sys.modules.update({"scipy": sp, "scipy.spatial": sps, "scipy.spatial.distance": spd})
    acc = types.ModuleType("accelerate")
    log = types.ModuleType("accelerate.logging")
    import logging

    log.get_logger = lambda name, log_level=None: logging.getLogger(name)
    acc.logging = log
    sys.modules.update({"accelerate": acc, "accelerate.logging": log})


class TwinRope(nn.Module):
    """cuRoPE semantics on any device: f32 math, result in the input dtype."""

    def __init__(self, base=100.0):
        super().__init__()
        self.base = base

    def forward(self, tokens, positions):
        t = tokens.float()
        d = t.shape[-1]
        q = d // 4
        inv = 1.0 / (self.base ** (torch.arange(q, dtype=torch.float32, device=t.device) / q))
        parts = []
        for axis in range(2):
            ang = positions[:, :, axis].float()[:, None, :, None] * inv
            cos, sin = ang.cos(), ang.sin()
            half = t[..., axis * 2 * q : (axis + 1) * 2 * q]
            u, v = half[..., :q], half[..., q:]
            parts += [u * cos - v * sin, v * cos + u * sin]
        return torch.cat(parts, dim=-1).to(tokens.dtype)


def build_curope(src: Path):
    """JIT-builds the official cuRoPE extension. Newer PyTorch rejects the kernel's
    `AT_DISPATCH_...(tokens.type(), ...)`, so a temporary copy says `tokens.scalar_type()`
    (same dispatch, no other change)."""
    import tempfile

    from torch.utils.cpp_extension import load

    d = src / "croco" / "models" / "curope"
    tmp = Path(tempfile.mkdtemp(prefix="curope_"))
    (tmp / "curope.cpp").write_text((d / "curope.cpp").read_text())
    kernels = (d / "kernels.cu").read_text().replace("tokens.type()", "tokens.scalar_type()")
    (tmp / "kernels.cu").write_text(kernels)
    mod = load(
        name="curope",
        sources=[str(tmp / "curope.cpp"), str(tmp / "kernels.cu")],
        extra_cflags=["-O3"],
        extra_cuda_cflags=["-O3", "--use_fast_math"],
        build_directory=str(tmp),
        verbose=False,
    )
    sys.modules["curope"] = mod


def config_string(cfg: dict) -> dict:
    inf = math.inf

    def tup(v, lo_default):
        return (v[0], lo_default if v[1] is None else v[1], inf if v[2] is None else v[2])

    return dict(
        output_mode=cfg["output_mode"],
        head_type=cfg["head_type"],
        depth_mode=tup(cfg["depth_mode"], -inf),
        conf_mode=tup(cfg["conf_mode"], -inf),
        pose_mode=tup(cfg["pose_mode"], -inf),
        state_size=cfg["state_size"],
        local_mem_size=cfg["local_mem_size"],
        state_pe=cfg["state_pe"],
        state_dec_num_heads=cfg["state_dec_num_heads"],
        ray_enc_depth=cfg["ray_enc_depth"],
        rgb_head=cfg["rgb_head"],
        pose_head=cfg["pose_head"],
        patch_embed_cls=cfg["patch_embed_cls"],
        landscape_only=cfg["landscape_only"],
        img_size=tuple(cfg["img_size"]),
        patch_size=cfg["patch_size"],
        enc_embed_dim=cfg["enc_embed_dim"],
        enc_depth=cfg["enc_depth"],
        enc_num_heads=cfg["enc_num_heads"],
        dec_embed_dim=cfg["dec_embed_dim"],
        dec_depth=cfg["dec_depth"],
        dec_num_heads=cfg["dec_num_heads"],
        mlp_ratio=cfg["mlp_ratio"],
        norm_im2_in_dec=cfg["norm_im2_in_dec"],
        pos_embed=cfg["pos_embed"],
    )


def dump_shapes(src: Path, out: Path):
    """Every parameter name and shape of the released model, built from the checkpoint's own
    `args.model` string (`CUT3R_512` in convert_cut3r.py) on PyTorch's meta device (no memory)."""
    install_stubs()
    sys.path.insert(0, str(src))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from convert_cut3r import CUT3R_512, parse_model_args  # noqa: E402
    from dust3r.model import ARCroco3DStereo, ARCroco3DStereoConfig  # noqa: E402

    kw = parse_model_args(CUT3R_512)
    with torch.device("meta"):
        model = ARCroco3DStereo(ARCroco3DStereoConfig(**kw))
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    lines = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(shapes.items())]
    out.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    n = sum(math.prod(s) for s in shapes.values())
    print(f"wrote {out}: {len(shapes)} keys, {n} values (aliases counted twice)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cut3r-src", type=Path, required=True, help="CUT3R checkout's src/ folder")
    ap.add_argument("--rope", choices=["curope", "twin"], default=None)
    # Float16 scale: upstream rounds the encoder's q, k to float16, so an f32 difference of one
    # ulp across a rounding boundary moves an element by a float16 ulp (~5e-4 relative).
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument(
        "--dump-shapes",
        type=Path,
        help="instead: write {key: shape} of the official cut3r_512 model (meta device) to this JSON",
    )
    a = ap.parse_args()
    if a.dump_shapes:
        return dump_shapes(a.cut3r_src, a.dump_shapes)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rope = a.rope or ("curope" if dev.type == "cuda" else "twin")

    install_stubs()
    sys.path.insert(0, str(a.cut3r_src))
    if rope == "curope":
        build_curope(a.cut3r_src)
    from dust3r.model import ARCroco3DStereo, ARCroco3DStereoConfig  # noqa: E402
    from dust3r.heads.dpt_head import DPTOutputAdapter_fix  # noqa: E402

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    cfg = json.loads((FIXTURES / "tiny.config.json").read_text())
    model = ARCroco3DStereo(ARCroco3DStereoConfig(**config_string(cfg)))
    ed, dd = cfg["enc_embed_dim"], cfg["dec_embed_dim"]
    dpt_args = dict(
        num_channels=4,
        feature_dim=cfg["dpt_feature_dim"],
        last_dim=cfg["dpt_last_dim"],
        layer_dims=cfg["dpt_layer_dims"],
        dim_tokens=[ed, dd, dd, dd],
        hooks_idx=[0, 1, 2, 3],
        head_type="regression",
        output_width_ratio=1,
        hooks=[0, 1, 2, 3],
    )
    for name in ("dpt_self", "dpt_cross"):
        dpt = DPTOutputAdapter_fix(**dpt_args)
        dpt.init(dim_tokens_enc=[ed, dd, dd, dd])
        setattr(model.downstream_head, name, dpt)
    if rope == "twin":
        twin = TwinRope(float(cfg["pos_embed"][4:]))
        for m in model.modules():
            if getattr(m, "rope", None) is not None:
                m.rope = twin
    weights = load_file(FIXTURES / "tiny.safetensors")
    missing, unexpected = nn.Module.load_state_dict(model, weights, strict=False)
    print("official keys not in the fixture (not read by the Rust model):")
    print("   ", sorted({k.rsplit(".", 2)[0] if "." in k else k for k in missing})[:40])
    if unexpected:
        raise SystemExit(f"fixture keys unknown to the official model: {unexpected}")
    model = model.to(dev).eval()

    io = load_file(FIXTURES / "tiny.io.safetensors")
    frames = [io[f"frame.{i}"].to(dev) for i in range(3)]
    b = frames[0].shape[0]
    depth = model.dec_depth
    worst = 0.0
    with torch.no_grad():
        for i, img in enumerate(frames):
            shape = torch.tensor(img.shape[-2:], device=dev)[None].repeat(b, 1)
            feat_ls, pos, _ = model._encode_image(img, shape)
            feat = feat_ls[-1]
            if i == 0:
                state_feat, state_pos = model._init_state(feat, pos)
                mem = model.pose_retriever.mem.expand(b, -1, -1)
            glob = model._get_img_level_feat(feat)
            pose_feat = model.pose_token.expand(b, -1, -1) if i == 0 else model.pose_retriever.inquire(glob, mem)
            pose_pos = -torch.ones(b, 1, 2, device=dev, dtype=pos.dtype)
            new_state, dec = model._recurrent_rollout(
                state_feat, state_pos, feat, pos, pose_feat, pose_pos, state_feat
            )
            new_mem = model.pose_retriever.update_mem(mem, glob, dec[-1][:, 0:1])
            head_in = [dec[0].float(), dec[depth * 2 // 4][:, 1:].float(), dec[depth * 3 // 4][:, 1:].float(), dec[depth].float()]
            res = model._downstream_head(head_in, shape, pos=pos)
            got = {
                "enc": feat,
                "tokens": dec[-1],
                "pts3d": res["pts3d_in_self_view"],
                "conf": res["conf_self"],
                "pose": res["camera_pose"],
                "pts3d_world": res["pts3d_in_other_view"],
                "conf_world": res["conf"],
            }
            for k, v in got.items():
                want = io[f"{k}.{i}"]
                d = (v.float().cpu() - want).abs().max().item()
                gap = (io[f"f32.{k}.{i}"] - want).abs().max().item()
                worst = max(worst, d)
                print(f"frame {i} {k:11s} max |official - fixture| = {d:.3g}   (plain-f32 path: {gap:.3g})")
            state_feat, mem = new_state, new_mem
    print(f"rope={rope} device={dev}: worst {worst:.3g} (tolerance {a.tol})")
    if worst > a.tol:
        raise SystemExit("MISMATCH")
    print("OK")


if __name__ == "__main__":
    main()
