#!/usr/bin/env python3
"""Convert the official CUT3R checkpoint (e.g. `cut3r_512_dpt_4_64.pth` from
github.com/CUT3R/CUT3R, downloaded by the user) into safetensors + a config JSON that
`vipa_models::vision::cut3r::Cut3r::load` reads.

Key map: **identity**. The Rust model reads the official `state_dict` names unchanged
(`patch_embed.proj.*`, `enc_blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*`,
`enc_norm.*`, `decoder_embed.*`, `dec_blocks.N.*`, `dec_norm.*`, `decoder_embed_state.*`,
`dec_blocks_state.N.*`, `dec_norm_state.*`, `register_tokens.weight`, `pose_token`,
`pose_retriever.{proj_q,masked_token,mem,write_blocks.N,read_blocks.N}.*`,
`downstream_head.dpt_self.*`, `downstream_head.pose_head.mlp.{fc1,fc2}.*`). The only edits are
the ones upstream's own `ARCroco3DStereo.load_state_dict` makes:

- a leading `module.` (DDP) is stripped from every key;
- a checkpoint without `dec_blocks_state.*` gets copies of `dec_blocks.*` under that name.

Keys the Rust model does not read are kept anyway (the file stays a faithful copy):
`patch_embed_ray_map.*`, `enc_blocks_ray_map.*`, `enc_norm_ray_map.*`, `masked_img_token`,
`masked_ray_map_token`, `downstream_head.{final_transform,dpt_cross,dpt_rgb}.*`, and
`downstream_head.dpt_self.scratch.layer_rn.N.*` (an alias of `scratch.layer{N+1}_rn.*`; aliases are
stored as separate copies because safetensors has no shared tensors).

Tensors are stored as float32 (`--dtype keep` keeps the checkpoint's dtype).

The config JSON comes from the checkpoint's `args.model` string,
`ARCroco3DStereo(ARCroco3DStereoConfig(state_size=768, ..., dec_num_heads=12, ...))`, parsed with
`ast` (nothing is executed); `±inf` bounds become `null`. Its field names are those of
`Cut3rConfig` (unknown ones such as `freeze` are ignored on the Rust side). Without `args`, the
released `cut3r_512` values are written.

Usage (torch only; the checkpoint is a pickle, so only convert files you trust):

    .venv-torch/bin/python models/scripts/convert_cut3r.py cut3r_512_dpt_4_64.pth \
        --out weights/cut3r_512.safetensors --config-out weights/cut3r_512.config.json
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import pickle
import types
from pathlib import Path

import torch
from safetensors.torch import save_file

# Released model (`config/dpt_512_vary_4_64.yaml`), used when the checkpoint has no `args`.
CUT3R_512 = (
    "ARCroco3DStereo(ARCroco3DStereoConfig(freeze='encoder', state_size=768, state_pe='2d', "
    "pos_embed='RoPE100', rgb_head=True, pose_head=True, patch_embed_cls='ManyAR_PatchEmbed', "
    "img_size=(512, 512), head_type='dpt', output_mode='pts3d+pose', depth_mode=('exp', -inf, inf), "
    "conf_mode=('exp', 1, inf), pose_mode=('exp', -inf, inf), enc_embed_dim=1024, enc_depth=24, "
    "enc_num_heads=16, dec_embed_dim=768, dec_depth=12, dec_num_heads=12, landscape_only=False))"
)


class _Inf(ast.NodeTransformer):
    def visit_Name(self, node: ast.Name):  # noqa: N802 (ast API)
        if node.id == "inf":
            return ast.copy_location(ast.Constant(math.inf), node)
        return node


def parse_model_args(model: str) -> dict:
    """`ARCroco3DStereo(ARCroco3DStereoConfig(k=v, ...))` → `{k: v}` (literals only)."""
    tree = ast.parse(model.strip(), mode="eval").body
    call = tree
    while isinstance(call, ast.Call) and not call.keywords and call.args:
        call = call.args[0]
    if not isinstance(call, ast.Call):
        raise SystemExit(f"cannot parse args.model: {model!r}")
    out = {}
    for kw in call.keywords:
        value = ast.literal_eval(_Inf().visit(kw.value))
        out[kw.arg] = value
    return out


def to_json_value(v):
    if isinstance(v, float) and math.isinf(v):
        return None
    if isinstance(v, (tuple, list)):
        return [to_json_value(x) for x in v]
    return v


class _Stub:
    """Stands in for a pickled class whose module is not installed (e.g. OmegaConf's
    `DictConfig` holding the training args): keeps its state so the model string can be found."""

    def __init__(self, *args, **kwargs):
        self.__dict__.update(kwargs)
        self._args = args

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self._state = state


class _LenientUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ModuleNotFoundError, AttributeError):
            return type(name, (_Stub,), {"__module__": module})


LENIENT_PICKLE = types.SimpleNamespace(
    __name__="lenient_pickle", Unpickler=_LenientUnpickler, load=pickle.load, loads=pickle.loads
)


def find_model_string(obj, depth=0):
    """The `ARCroco3DStereo(...)` string anywhere inside the checkpoint's `args`."""
    if depth > 8:
        return None
    if isinstance(obj, str):
        return obj if obj.lstrip().startswith("ARCroco3DStereo(") else None
    if isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        children = list(obj)
    elif hasattr(obj, "__dict__"):
        children = list(vars(obj).values())
    else:
        return None
    for child in children:
        found = find_model_string(child, depth + 1)
        if found:
            return found
    return None


def model_args_string(ckpt) -> str:
    args = ckpt.get("args") if isinstance(ckpt, dict) else None
    model = getattr(args, "model", None) if args is not None else None
    if not isinstance(model, str):
        model = find_model_string(args)
    if not isinstance(model, str):
        print("checkpoint has no `args.model` string: writing the released cut3r_512 config")
        return CUT3R_512
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path, help="official .pth (e.g. cut3r_512_dpt_4_64.pth)")
    ap.add_argument("--out", type=Path, required=True, help="output .safetensors")
    ap.add_argument("--config-out", type=Path, required=True, help="output config .json")
    ap.add_argument("--dtype", choices=["float32", "keep"], default="float32")
    a = ap.parse_args()

    # The training args may be objects of packages not installed here (OmegaConf): those are
    # unpickled as plain stand-ins, only the model string is read from them.
    ckpt = torch.load(a.checkpoint, map_location="cpu", weights_only=False, pickle_module=LENIENT_PICKLE)
    sd = ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt
    sd = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in sd.items()}
    if not any(k.startswith("dec_blocks_state") for k in sd):
        print("no dec_blocks_state.* keys: copying dec_blocks.* (as upstream load_state_dict)")
        for k in [k for k in sd if k.startswith("dec_blocks.")]:
            sd[k.replace("dec_blocks", "dec_blocks_state", 1)] = sd[k]
    tensors = {}
    for k, v in sd.items():
        if not torch.is_tensor(v):
            continue
        v = v.detach()
        if a.dtype == "float32" and v.is_floating_point():
            v = v.float()
        tensors[k] = v.clone().contiguous()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, a.out)

    cfg = {k: to_json_value(v) for k, v in parse_model_args(model_args_string(ckpt)).items()}
    a.config_out.parent.mkdir(parents=True, exist_ok=True)
    a.config_out.write_text(json.dumps(cfg, indent=2) + "\n")

    n = sum(t.numel() for t in tensors.values())
    print(f"wrote {a.out} ({len(tensors)} tensors, {n / 1e6:.1f} M values) and {a.config_out}")
    unused = ("patch_embed_ray_map", "enc_blocks_ray_map", "enc_norm_ray_map", "masked_",
              "downstream_head.final_transform", "downstream_head.dpt_cross", "downstream_head.dpt_rgb")
    skipped = sorted({k.split(".")[0] if not k.startswith("downstream_head") else ".".join(k.split(".")[:2])
                      for k in tensors if k.startswith(unused)})
    if skipped:
        print("kept but not read by the Rust model:", ", ".join(skipped))


if __name__ == "__main__":
    main()
