#!/usr/bin/env bash
# Veil demo (README): fetch all-MiniLM-L6-v2, build, embed two sentences on secret shares
# (dealer, P0, P1 and client in one process) and compare them with the Float64 result.
set -euo pipefail
cd "$(dirname "$0")/.."
model="$(bash scripts/fetch-model.sh minilm | tail -n 1)"
swift build -c release --product veil >&2
.build/release/veil embed --model "$model" "A man is eating food." "A man is eating a piece of bread."
