#!/usr/bin/env python3
"""Copy the vision tensors of an InternVL checkpoint into one safetensors file.

Optional: `vipa_models::checkpoint::Checkpoint::open` reads the official shards directly (keys
`vision_model.*`, `mlp1.*` are already the ones vipa uses). This script only makes a smaller file
holding just InternViT + the `mlp1` projector, e.g. for a node that never needs the LLM.

    python models/scripts/extract_internvl_vision.py /path/to/InternVL3_5-2B out/internvl_vision.safetensors

Needs `safetensors` and `torch` (keeps the stored dtype, bf16 for the official checkpoint).
"""

from __future__ import annotations

import sys
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

PREFIXES = ("vision_model.", "mlp1.")


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    shards = sorted(src.glob("*.safetensors")) if src.is_dir() else [src]
    if not shards:
        print(f"no .safetensors files in {src}", file=sys.stderr)
        return 1
    out = {}
    for shard in shards:
        with safe_open(str(shard), framework="pt") as f:
            for key in f.keys():
                if key.startswith(PREFIXES):
                    out[key] = f.get_tensor(key).contiguous()
    if not any(k.startswith("vision_model.") for k in out) or not any(k.startswith("mlp1.") for k in out):
        print(f"{src}: no vision_model.* or mlp1.* tensors; is this an InternVL checkpoint?", file=sys.stderr)
        return 1
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(out, str(dst))
    print(f"wrote {len(out)} tensors to {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
