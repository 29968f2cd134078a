#!/usr/bin/env bash
# Veil's test command (README, CI): fetch the reference model, check the CLI's behaviour on good
# and bad input, then run every Swift test in release mode (the secure path is 10–50x slower in
# debug). The Swift test summary is the last line printed.
set -euo pipefail
cd "$(dirname "$0")/.."
VEIL_MODEL_DIR="$(bash scripts/fetch-model.sh minilm | tail -n 1)"
export VEIL_MODEL_DIR
export VEIL_REQUIRE_MODEL=1
swift build -c release --product veil
swift build -c release --product veil-example
bash scripts/cli-checks.sh .build/release/veil "$VEIL_MODEL_DIR"
# Serially: the transport fault tests measure time-outs, and must not share the 2 cores with
# the heavy model tests.
swift test -c release --no-parallel
