# vipa — the two commands in README.md (`make pretrain`, `make test`) and their helpers.
# Every target installs what it needs; nothing has to be installed by hand (except Rust).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ROOT := $(CURDIR)

# Cargo's target directory lives outside the clone so that fresh clones (CI) reuse earlier
# builds; `target/` in the repo is a symlink to it, which the dataflows' `path:` entries use.
VIPA_TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),$(HOME)/.cache/vipa/target)
export CARGO_TARGET_DIR := $(ROOT)/target
export PATH := $(ROOT)/.venv/bin:$(PATH)
export CARGO_TERM_COLOR ?= never

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := libopencv-dev clang libclang-dev pkg-config
DORA_VERSION := 1.1.0

DATA := data
SYNTH := $(DATA)/synth
SYNTH_ARGS ?= --clips 24 --seed 0

.PHONY: help setup apt rust venv target-dir data pretrain ingest test unit e2e lint fmt bench clean-data

help:
	@echo "make pretrain   run the main job on the embedded synthetic sample"
	@echo "make test       run all tests (format, lints, unit, end-to-end dataflows)"
	@echo "make bench      print benchmark tables"

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

$(SYNTH)/manifest.json: | setup
	cargo run -q -p vipa-synth -- --out $(SYNTH) $(SYNTH_ARGS)

data: $(SYNTH)/manifest.json

ingest: data
	dora run dataflows/ingest.yml --stop-after 300s

pretrain: data
	@echo "==> ingest: decode the synthetic sample through dora"
	dora run dataflows/ingest.yml --stop-after 300s
	@cat out/ingest/summary.json 2>/dev/null || true

## ---- tests -------------------------------------------------------------------------------

test: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo build --workspace --bins
	cargo test --workspace

lint: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

## ---- benchmarks --------------------------------------------------------------------------

bench: setup
	@echo "(benchmarks are wired up per crate; see README)"

clean-data:
	rm -rf $(DATA) out
