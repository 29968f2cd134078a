#!/usr/bin/env bash
# Veil's test command (README, CI): fetch the reference model, check the CLI's behaviour on good
# and bad input, then run every Swift test in release mode (the secure path is 10–50x slower in
# debug). The Swift test summary is the last line printed.
set -euo pipefail
cd "$(dirname "$0")/.."
VEIL_MODEL_DIR="$(bash scripts/fetch-model.sh minilm | tail -n 1)"
export VEIL_MODEL_DIR
# The decoders: GPT-2's and SmolLM2's tokenizers and checkpoints, and tiny seeded LLaMAs (tied
# and untied LM heads) with SmolLM2's tokenizer.
VEIL_GPT2_TINY_DIR="$(bash scripts/fetch-model.sh gpt2-tiny | tail -n 1)"
VEIL_GPT2_124M_SEEDED_DIR="$(bash scripts/fetch-model.sh gpt2-124m-seeded | tail -n 1)"
VEIL_SMOLLM2_DIR="$(bash scripts/fetch-model.sh smollm2 | tail -n 1)"
VEIL_LLAMA_TINY_DIR="$(bash scripts/fetch-model.sh llama-tiny | tail -n 1)"
VEIL_LLAMA_TINY_UNTIED_DIR="$(bash scripts/fetch-model.sh llama-tiny-untied | tail -n 1)"
# LLaMA-2's and LLaMA-3's tokenizers, rebuilt from llama.cpp's vocab-only GGUFs.
VEIL_LLAMA2_TOKENIZER_DIR="$(bash scripts/fetch-model.sh llama2-tokenizer | tail -n 1)"
VEIL_LLAMA3_TOKENIZER_DIR="$(bash scripts/fetch-model.sh llama3-tokenizer | tail -n 1)"
export VEIL_GPT2_TINY_DIR VEIL_GPT2_124M_SEEDED_DIR VEIL_SMOLLM2_DIR VEIL_LLAMA_TINY_DIR VEIL_LLAMA_TINY_UNTIED_DIR
export VEIL_LLAMA2_TOKENIZER_DIR VEIL_LLAMA3_TOKENIZER_DIR
export VEIL_REQUIRE_MODEL=1
# OpenAI's Python SDK, the real client the gateway test runs.
VEIL_OPENAI_PYTHON="$(bash scripts/openai-venv.sh | tail -n 1)"
export VEIL_OPENAI_PYTHON
# One build of everything, tests included: the `veil` and `veil-example` binaries the CLI and
# deployment tests start come from it (a separate `--product veil` build would compile every
# module twice, with and without testability).
swift build -c release --build-tests -Xswiftc -enable-testing
bash scripts/cli-checks.sh .build/release/veil "$VEIL_MODEL_DIR"
# Serially: the transport fault tests measure time-outs, and must not share the 2 cores with
# the heavy model tests.
swift test -c release --skip-build --no-parallel
