#!/usr/bin/env python3
"""Parity fixtures for the Rust LLM (models/src/llm): tiny random-weight Hugging Face models.

For each architecture (Qwen3ForCausalLM, LlamaForCausalLM) this builds a tiny model from a
config (no hub access), randomises every weight with a fixed seed, and writes into
models/fixtures/llm/<arch>/:

  config.json          the transformers config (as transformers writes it)
  model.safetensors    weights with the upstream key names (tied lm_head omitted, as upstream)
  model.gguf           the same weights in llama.cpp's GGUF layout and names, f32; for Llama the
                       q/k rows are permuted the way llama.cpp's convert_hf_to_gguf.py does
  reference.safetensors
      input_ids      i64[2, 9]      a batch of two random sequences
      logits         f32[2, 9, V]   LlamaForCausalLM / Qwen3ForCausalLM logits (eager attention)
      hidden         f32[2, 9, H]   final-normed last hidden states
      greedy_prompt  i64[5]
      greedy_tokens  i64[8]         model.generate(greedy, 8 new tokens, no stop token)

Run from the repository root with the torch venv (torch, transformers, safetensors, numpy, gguf):
    .venv-torch/bin/python models/scripts/make_llm_fixtures.py
The output is deterministic for a given torch version (CPU, float32).
"""

import json
import os
import sys

import gguf
import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "llm")

COMMON = dict(
    vocab_size=128,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
    bos_token_id=1,
    eos_token_id=2,
    initializer_range=0.2,
)

ARCHS = {
    # head_dim 16 != hidden / heads = 8, untied head, small rope base so positions matter.
    "qwen3": (
        Qwen3ForCausalLM,
        Qwen3Config(**COMMON, head_dim=16, rms_norm_eps=1e-6, rope_theta=500.0,
                    tie_word_embeddings=False),
    ),
    # Tied embeddings like SmolLM2.
    "llama": (
        LlamaForCausalLM,
        LlamaConfig(**COMMON, rms_norm_eps=1e-5, rope_theta=1000.0, tie_word_embeddings=True),
    ),
}


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute: half-split rows -> interleaved pairs."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


GGUF_NAMES = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def gguf_name(hf: str) -> str:
    fixed = {"model.embed_tokens.weight": "token_embd.weight",
             "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if hf in fixed:
        return fixed[hf]
    _, _, layer, rest = hf.split(".", 3)
    module, suffix = rest.rsplit(".", 1)
    return f"blk.{layer}.{GGUF_NAMES[module]}.{suffix}"


def write_gguf(path: str, arch: str, cfg, state: dict) -> None:
    w = gguf.GGUFWriter(path, arch)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    w.add_vocab_size(cfg.vocab_size)
    head_dim = cfg.head_dim
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_bos_token_id(cfg.bos_token_id)
    w.add_eos_token_id(cfg.eos_token_id)
    for name in sorted(state):
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue  # llama.cpp stores no output.weight for tied heads
        t = state[name].detach().numpy().astype(np.float32)
        if arch == "llama" and name.endswith("q_proj.weight"):
            t = llama_cpp_permute(t, cfg.num_attention_heads)
        elif arch == "llama" and name.endswith("k_proj.weight"):
            t = llama_cpp_permute(t, cfg.num_key_value_heads)
        w.add_tensor(gguf_name(name), np.ascontiguousarray(t))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main() -> None:
    torch.use_deterministic_algorithms(True)
    for seed, (arch, (cls, cfg)) in enumerate(ARCHS.items()):
        torch.manual_seed(1000 + seed)
        cfg._attn_implementation = "eager"
        model = cls(cfg).eval()
        with torch.no_grad():
            # Non-trivial norm scales, so a norm applied with the wrong weight shows up.
            for name, p in model.named_parameters():
                if "norm" in name:
                    p.copy_(1.0 + 0.3 * torch.randn_like(p))
        out = os.path.join(OUT, arch)
        os.makedirs(out, exist_ok=True)
        model.save_pretrained(out, safe_serialization=True)
        for extra in ("generation_config.json",):
            if os.path.exists(os.path.join(out, extra)):
                os.remove(os.path.join(out, extra))
        write_gguf(os.path.join(out, "model.gguf"), arch, cfg, model.state_dict())

        ids = torch.randint(3, cfg.vocab_size, (2, 9))
        with torch.no_grad():
            res = model(input_ids=ids, output_hidden_states=True)
            prompt = torch.randint(3, cfg.vocab_size, (1, 5))
            gen = model.generate(prompt, max_new_tokens=8, do_sample=False, eos_token_id=None,
                                 pad_token_id=0, min_new_tokens=8)
        greedy = gen[0, prompt.shape[1]:]
        save_file({
            "input_ids": ids.contiguous(),
            "logits": res.logits.float().contiguous(),
            "hidden": res.hidden_states[-1].float().contiguous(),
            "greedy_prompt": prompt[0].contiguous(),
            "greedy_tokens": greedy.contiguous(),
        }, os.path.join(out, "reference.safetensors"),
            metadata={"transformers": transformers.__version__, "torch": torch.__version__})
        print(f"{arch}: logits std {res.logits.std():.3f}, greedy {greedy.tolist()}, "
              f"files {sorted(os.listdir(out))}", file=sys.stderr)


if __name__ == "__main__":
    main()
