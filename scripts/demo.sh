#!/usr/bin/env bash
# Veil's demo (README): fetch all-MiniLM-L6-v2, build, and embed two sentences.
set -euo pipefail
cd "$(dirname "$0")/.."
model="$(bash scripts/fetch-model.sh minilm | tail -n 1)"
swift build -c release --product veil >&2
.build/release/veil embed --model "$model" --plaintext \
  "A man is eating food." "A man is eating a piece of bread."
