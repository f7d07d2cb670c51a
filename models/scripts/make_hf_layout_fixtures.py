#!/usr/bin/env python3
"""The InternViT parity fixtures once more, in transformers' own layout.

`make_vision_fixtures.py` builds tiny `InternVLVisionModel` + `InternVLMultiModalProjector`
models with transformers, runs them, and saves their weights under the upstream OpenGVLab
names. A checkpoint saved by transformers' `InternVLForConditionalGeneration` (the `...-hf`
repositories, transformers >= 4.52) holds the same tensors under its own names instead: the
module paths of that script's `vision.state_dict()` / `proj.state_dict()`, prefixed with
`model.vision_tower.` / `model.multi_modal_projector.`, with q, k and v as three tensors. Its
`config.json` is `InternVLConfig.to_dict()`: `text_config` instead of `llm_config`,
`image_size` / `patch_size` as `[h, w]`, `attention_bias`, `use_qk_norm`, `vision_feature_layer`.

This script writes, next to each fixture, `<name>.hf.safetensors` and `<name>.hf.config.json`
in that layout, from the committed upstream-named files by the inverse of the renaming the
first script applies (so the values are the very tensors transformers produced the reference
outputs `<name>.io.safetensors` with). It needs only numpy and safetensors:

    python3 -m venv /tmp/hfx && /tmp/hfx/bin/pip install numpy safetensors
    /tmp/hfx/bin/python models/scripts/make_hf_layout_fixtures.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

DIR = Path(__file__).resolve().parent.parent / "fixtures" / "vision"
V = "model.vision_tower."
P = "model.multi_modal_projector."


def hf_tensors(up: dict[str, np.ndarray], layers: int) -> dict[str, np.ndarray]:
    out = {
        V + "embeddings.cls_token": up["vision_model.embeddings.class_embedding"],
        V + "embeddings.patch_embeddings.projection.weight": up["vision_model.embeddings.patch_embedding.weight"],
        V + "embeddings.patch_embeddings.projection.bias": up["vision_model.embeddings.patch_embedding.bias"],
        V + "embeddings.position_embeddings": up["vision_model.embeddings.position_embedding"],
    }
    for i in range(layers):
        src = f"vision_model.encoder.layers.{i}."
        dst = f"{V}encoder.layer.{i}."
        for kind in ["weight", "bias"]:
            qkv = up.get(src + f"attn.qkv.{kind}")
            if qkv is not None:
                q, k, v = np.split(qkv, 3, axis=0)
                for name, part in [("q", q), ("k", k), ("v", v)]:
                    out[dst + f"attention.{name}_proj.{kind}"] = np.ascontiguousarray(part)
            for hf, ours in [("projection_layer", "proj"), ("q_norm", "q_norm"), ("k_norm", "k_norm")]:
                t = up.get(src + f"attn.{ours}.{kind}")
                if t is not None:
                    out[dst + f"attention.{hf}.{kind}"] = t
            for hf, ours in [("layernorm_before", "norm1"), ("layernorm_after", "norm2")]:
                t = up.get(src + f"{ours}.{kind}")
                if t is not None:
                    out[dst + f"{hf}.{kind}"] = t
            for fc in ["fc1", "fc2"]:
                out[dst + f"mlp.{fc}.{kind}"] = up[src + f"mlp.{fc}.{kind}"]
        out[dst + "lambda_1"] = up[src + "ls1"]
        out[dst + "lambda_2"] = up[src + "ls2"]
    for hf, ours in [("layer_norm", "0"), ("linear_1", "1"), ("linear_2", "3")]:
        for kind in ["weight", "bias"]:
            out[P + f"{hf}.{kind}"] = up[f"mlp1.{ours}.{kind}"]
    return out


def hf_config(up: dict) -> dict:
    vc = up["vision_config"]
    return {
        "model_type": "internvl",
        "architectures": ["InternVLForConditionalGeneration"],
        "vision_config": {
            "model_type": "internvl_vision",
            "hidden_size": vc["hidden_size"],
            "num_hidden_layers": vc["num_hidden_layers"],
            "num_attention_heads": vc["num_attention_heads"],
            "intermediate_size": vc["intermediate_size"],
            "attention_bias": vc["qkv_bias"],
            "use_qk_norm": vc["qk_normalization"],
            "norm_type": vc["norm_type"],
            "layer_norm_eps": vc["layer_norm_eps"],
            "hidden_act": vc["hidden_act"],
            "image_size": [vc["image_size"], vc["image_size"]],
            "patch_size": [vc["patch_size"], vc["patch_size"]],
            "num_channels": vc["num_channels"],
            "use_mean_pooling": True,
            "layer_scale_init_value": 0.1,
        },
        "text_config": {"model_type": "qwen2", "hidden_size": up["llm_config"]["hidden_size"]},
        "downsample_ratio": up["downsample_ratio"],
        "vision_feature_layer": up["select_layer"],
        "vision_feature_select_strategy": "default",
        "projector_hidden_act": "gelu",
        "image_token_id": 151667,
    }


def main() -> None:
    for name in ["internvit_ln", "internvit_rms_qknorm"]:
        up_cfg = json.loads((DIR / f"{name}.config.json").read_text())
        up = load_file(str(DIR / f"{name}.safetensors"))
        tensors = hf_tensors(up, up_cfg["vision_config"]["num_hidden_layers"])
        save_file(tensors, str(DIR / f"{name}.hf.safetensors"))
        (DIR / f"{name}.hf.config.json").write_text(json.dumps(hf_config(up_cfg), indent=2) + "\n")
        print(f"{name}: {len(up)} upstream tensors -> {len(tensors)} transformers tensors")


if __name__ == "__main__":
    main()
