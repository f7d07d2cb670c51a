#!/usr/bin/env python3
"""Parity fixtures for the Rust InternViT + pixel shuffle + projector and the preprocessing.

Reference implementation: Hugging Face `transformers`' own InternVL port
(`transformers.models.internvl`: `InternVLVisionModel`, `InternVLModel.pixel_shuffle`,
`InternVLMultiModalProjector`), which is an independent re-implementation of upstream
`OpenGVLab/InternVL` (`modeling_intern_vit.py`, `modeling_internvl_chat.py`) with the same math.
Its parameter names differ from the upstream checkpoint, so the weights are saved under the
**upstream** names the Rust code (and the real InternVL3.5 checkpoint) use, converted with the
same mapping as transformers' `convert_internvl_weights_to_hf.py`, reversed:

    vision_tower.embeddings.cls_token                  -> vision_model.embeddings.class_embedding
    vision_tower.embeddings.patch_embeddings.projection -> vision_model.embeddings.patch_embedding
    vision_tower.embeddings.position_embeddings        -> vision_model.embeddings.position_embedding
    ...layer.N.attention.{q,k,v}_proj (concatenated)   -> vision_model.encoder.layers.N.attn.qkv
    ...layer.N.attention.projection_layer              -> ...layers.N.attn.proj
    ...layer.N.attention.{q,k}_norm                    -> ...layers.N.attn.{q,k}_norm
    ...layer.N.layernorm_before / layernorm_after      -> ...layers.N.norm1 / norm2
    ...layer.N.lambda_1 / lambda_2                     -> ...layers.N.ls1 / ls2
    ...layer.N.mlp.fc1 / fc2                           -> ...layers.N.mlp.fc1 / fc2
    multi_modal_projector.layer_norm / linear_1 / linear_2 -> mlp1.0 / mlp1.1 / mlp1.3

Every parameter (including norm weights and layer scales) is drawn at random so that a wrong
mapping cannot hide behind ones/zeros.

Preprocessing reference: Pillow's `Image.resize(..., BICUBIC)` (what upstream's
`torchvision.transforms.Resize` calls on PIL images) + ToTensor + ImageNet Normalize, written out
by hand in numpy (torchvision is not installed here).

Run from the repository root with the torch venv:

    .venv-torch/bin/python models/scripts/make_vision_fixtures.py

Writes `models/fixtures/vision/` (a few hundred KB, committed).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers.models.internvl.configuration_internvl import InternVLConfig, InternVLVisionConfig
from transformers.models.internvl.modeling_internvl import (
    InternVLModel,
    InternVLMultiModalProjector,
    InternVLVisionModel,
)

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "vision"
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def upstream_state_dict(vision: InternVLVisionModel, proj: InternVLMultiModalProjector, layers: int):
    sd = {k: v.detach().clone().contiguous() for k, v in vision.state_dict().items()}
    out = {
        "vision_model.embeddings.class_embedding": sd["embeddings.cls_token"],
        "vision_model.embeddings.patch_embedding.weight": sd["embeddings.patch_embeddings.projection.weight"],
        "vision_model.embeddings.patch_embedding.bias": sd["embeddings.patch_embeddings.projection.bias"],
        "vision_model.embeddings.position_embedding": sd["embeddings.position_embeddings"],
    }
    for i in range(layers):
        src = f"encoder.layer.{i}."
        dst = f"vision_model.encoder.layers.{i}."
        a = src + "attention."
        out[dst + "attn.qkv.weight"] = torch.cat(
            [sd[a + "q_proj.weight"], sd[a + "k_proj.weight"], sd[a + "v_proj.weight"]], 0
        )
        if a + "q_proj.bias" in sd:
            out[dst + "attn.qkv.bias"] = torch.cat(
                [sd[a + "q_proj.bias"], sd[a + "k_proj.bias"], sd[a + "v_proj.bias"]], 0
            )
        out[dst + "attn.proj.weight"] = sd[a + "projection_layer.weight"]
        out[dst + "attn.proj.bias"] = sd[a + "projection_layer.bias"]
        if a + "q_norm.weight" in sd:
            out[dst + "attn.q_norm.weight"] = sd[a + "q_norm.weight"]
            out[dst + "attn.k_norm.weight"] = sd[a + "k_norm.weight"]
        for hf, up in [("layernorm_before", "norm1"), ("layernorm_after", "norm2")]:
            out[dst + up + ".weight"] = sd[src + hf + ".weight"]
            if src + hf + ".bias" in sd:
                out[dst + up + ".bias"] = sd[src + hf + ".bias"]
        out[dst + "ls1"] = sd[src + "lambda_1"]
        out[dst + "ls2"] = sd[src + "lambda_2"]
        for fc in ["fc1", "fc2"]:
            out[dst + f"mlp.{fc}.weight"] = sd[src + f"mlp.{fc}.weight"]
            out[dst + f"mlp.{fc}.bias"] = sd[src + f"mlp.{fc}.bias"]
    p = {k: v.detach().clone().contiguous() for k, v in proj.state_dict().items()}
    for hf, up in [("layer_norm", "0"), ("linear_1", "1"), ("linear_2", "3")]:
        out[f"mlp1.{up}.weight"] = p[f"{hf}.weight"]
        out[f"mlp1.{up}.bias"] = p[f"{hf}.bias"]
    return out


def make_model_fixture(name: str, norm_type: str, qk_norm: bool, seed: int) -> dict:
    torch.manual_seed(seed)
    hidden, layers, llm = 32, 2, 48
    vcfg = InternVLVisionConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        attention_bias=True,
        use_qk_norm=qk_norm,
        norm_type=norm_type,
        layer_norm_eps=1e-6,
        image_size=56,
        patch_size=14,
        use_mean_pooling=True,
    )
    cfg = InternVLConfig(
        vision_config=vcfg.to_dict(),
        text_config={"model_type": "qwen2", "hidden_size": llm},
        downsample_ratio=0.5,
    )
    vision = InternVLVisionModel(cfg.vision_config).eval()
    proj = InternVLMultiModalProjector(cfg).eval()
    with torch.no_grad():
        for p in list(vision.parameters()) + list(proj.parameters()):
            p.copy_(torch.randn_like(p) * 0.5)
    weights = upstream_state_dict(vision, proj, layers)
    save_file(weights, str(OUT / f"{name}.safetensors"))

    tensors = {}
    # 56 px = the preset grid (4×4); 84×56 px = a 6×4 grid, exercising bicubic position
    # interpolation and non-square pixel shuffle.
    for tag, (h, w) in [("square", (56, 56)), ("wide", (56, 84))]:
        pixels = torch.randn(2, 3, h, w)
        with torch.no_grad():
            hidden_states = vision(pixel_values=pixels).last_hidden_state  # select_layer = -1
            feats = hidden_states[:, 1:, :]
            gh, gw = h // 14, w // 14
            # Upstream/HF reshape assumes a square grid; for the non-square case we reshape to
            # (gh, gw) ourselves and call the same pixel_shuffle.
            grid = feats.reshape(2, gh, gw, -1)
            shuffled = InternVLModel.pixel_shuffle(None, grid, scale_factor=0.5)
            shuffled = shuffled.reshape(2, -1, shuffled.shape[-1])
            projected = proj(shuffled)
        tensors[f"{tag}.pixel_values"] = pixels.contiguous()
        tensors[f"{tag}.vit_features"] = feats.contiguous()
        tensors[f"{tag}.shuffled"] = shuffled.contiguous()
        tensors[f"{tag}.projected"] = projected.contiguous()
    save_file(tensors, str(OUT / f"{name}.io.safetensors"))
    return {
        "vision_config": {
            "num_channels": 3,
            "patch_size": 14,
            "image_size": 56,
            "hidden_size": hidden,
            "num_attention_heads": 4,
            "intermediate_size": 64,
            "num_hidden_layers": layers,
            "qkv_bias": True,
            "qk_normalization": qk_norm,
            "norm_type": norm_type,
            "layer_norm_eps": 1e-6,
            "hidden_act": "gelu",
            "initializer_factor": 1.0,
        },
        "llm_config": {"hidden_size": llm},
        "downsample_ratio": 0.5,
        "select_layer": -1,
        "ps_version": "v2",
    }


def make_preprocess_fixture() -> None:
    rng = np.random.default_rng(7)
    cases = {}
    for tag, (h, w, size) in {"down": (37, 53, 28), "up": (9, 13, 28)}.items():
        img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        resized = np.asarray(Image.fromarray(img, "RGB").resize((size, size), Image.BICUBIC))
        norm = (resized.astype(np.float32) / np.float32(255.0) - MEAN) / STD
        cases[f"{tag}.image"] = torch.from_numpy(img.copy())
        cases[f"{tag}.resized"] = torch.from_numpy(resized.copy())
        cases[f"{tag}.pixel_values"] = torch.from_numpy(norm.transpose(2, 0, 1).copy())
    save_file(cases, str(OUT / "preprocess.safetensors"))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    configs = {
        "internvit_ln": make_model_fixture("internvit_ln", "layer_norm", False, seed=0),
        "internvit_rms_qknorm": make_model_fixture("internvit_rms_qknorm", "rms_norm", True, seed=1),
    }
    for name, cfg in configs.items():
        (OUT / f"{name}.config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    make_preprocess_fixture()
    print(f"wrote fixtures to {OUT}")


if __name__ == "__main__":
    main()
