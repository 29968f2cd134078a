#!/usr/bin/env bash
# The whole-model benchmark tables of BENCHMARKS.md (issue 7): every row is one
# `veil bench model` run, all roles in one process, written to benchmarks/results/ and drawn
# into benchmarks/plots/. Takes about twelve minutes on the 2-core machine; needs about 15 GB
# free memory for BERT-large.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product veil
veil=.build/release/veil
out=benchmarks/results
model_dir="$(bash scripts/fetch-model.sh minilm | tail -n 1)"
for seq in 16 128; do
  $veil bench model --model-dir "$model_dir" --seq "$seq" --json "$out/minilm-$seq.json"
done
$veil bench model --model bert-base --seq 128 --json "$out/bert-base-128.json"
for transport in tcp tls; do
  $veil bench model --model bert-base --seq 128 --transport "$transport" --json "$out/bert-base-128-$transport.json"
done
$veil bench model --model bert-large --seq 128 --json "$out/bert-large-128.json"
for seq in 32 64 128 256 512; do
  $veil bench model --model gpt2 --seq "$seq" --json "$out/gpt2-$seq.json"
done
python3 scripts/plot-benchmarks.py "$out"/*.json --out benchmarks/plots
