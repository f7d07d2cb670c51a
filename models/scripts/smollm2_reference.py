#!/usr/bin/env python3
"""Reference greedy generation of SmolLM2-135M-Instruct for the Rust parity test.

Loads data/weights/SmolLM2-135M-Instruct.Q4_1.gguf (models/scripts/fetch_smollm2.sh) with
transformers' own GGUF support: it dequantises every tensor to float32, undoes llama.cpp's
Q/K permutation and builds an HF LlamaForCausalLM; the tokenizer is rebuilt from the GGUF
metadata as well. Nothing here shares code with the Rust loader. Then it greedily generates a
few tokens for a fixed ChatML prompt and writes models/fixtures/llm/smollm2_reference.json:
prompt ids, generated ids, and the top logits of the first generated position.

Run from the repository root with the torch venv (torch, transformers, numpy, gguf):
    .venv-torch/bin/python models/scripts/smollm2_reference.py
"""

import hashlib
import json
import os

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
WEIGHTS = os.path.join(ROOT, "data", "weights")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = os.path.join(ROOT, "models", "fixtures", "llm", "smollm2_reference.json")

PROMPT = ("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
          "<|im_start|>assistant\n")
MAX_NEW_TOKENS = 12
EOS = 2  # <|im_end|>
TOP_K = 5
# Tokenizer checks beyond the prompt: digits, spaces, tabs, newlines, special tokens.
EXTRA_TEXTS = [
    "Pick up the red mug with the right hand, then move it 12.5 cm to the left.",
    "  leading spaces and\ttabs\n\nnew lines in 2026!",
    "<|im_start|>system\nYou are a robot.<|im_end|>\n",
]


def main() -> None:
    torch.manual_seed(0)
    with open(os.path.join(WEIGHTS, GGUF), "rb") as f:
        sha256 = hashlib.sha256(f.read()).hexdigest()
    tok = AutoTokenizer.from_pretrained(WEIGHTS, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(
        WEIGHTS, gguf_file=GGUF, dtype=torch.float32, attn_implementation="eager").eval()
    assert model.config.model_type == "llama", model.config.model_type

    prompt_ids = tok(PROMPT, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        last = model(input_ids=ids).logits[0, -1]
        out = model.generate(ids, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                             eos_token_id=EOS, pad_token_id=EOS)
    generated = out[0, len(prompt_ids):].tolist()
    top = torch.topk(last, TOP_K)
    result = {
        "gguf": GGUF,
        "gguf_sha256": sha256,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "prompt": PROMPT,
        "prompt_ids": prompt_ids,
        "max_new_tokens": MAX_NEW_TOKENS,
        "eos_token_id": EOS,
        "generated_ids": generated,
        "generated_text": tok.decode(generated),
        "first_step_top_ids": top.indices.tolist(),
        "first_step_top_logits": [round(v, 5) for v in top.values.tolist()],
        "extra_texts": [{"text": t, "ids": tok(t, add_special_tokens=False)["input_ids"]}
                        for t in EXTRA_TEXTS],
    }
    with open(OUT, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
