#!/usr/bin/env bash
# Veil demo (README): fetch all-MiniLM-L6-v2, build, embed two sentences in Float64 and with
# SIGMA's fixed-point recipe (what the secure run computes), and compare.
set -euo pipefail
cd "$(dirname "$0")/.."
model="$(bash scripts/fetch-model.sh minilm | tail -n 1)"
swift build -c release --product veil >&2
.build/release/veil embed --model "$model" --plaintext --fixed-point \
  "A man is eating food." "A man is eating a piece of bread."
