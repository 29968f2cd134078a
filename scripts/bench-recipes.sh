#!/usr/bin/env bash
# The recipe tables of BENCHMARKS.md (issue 8): per-operation costs and accuracy of each
# recipe at the papers' microbenchmark shapes, and BERT-base at 128 tokens per recipe, all
# roles in one process. About ten minutes on the 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product veil
veil=.build/release/veil
out=benchmarks/results
for recipe in sigma puma secformer; do
  $veil bench ops --recipe "$recipe" --json "$out/ops-$recipe.json"
done
# PUMA's own benchmark setting, exp ≈ (1 + x/32)^32, beside the default (1 + x/256)^256.
$veil bench ops --recipe puma --exp-iterations 5 --op softmax --json "$out/ops-puma-exp5.json"
for recipe in sigma puma secformer; do
  $veil bench model --model bert-base --seq 128 --recipe "$recipe" --json "$out/bert-base-128-$recipe.json"
done
# PUMA's approximations at SIGMA's ring (n = 50, f = 12): the cost of the approximations alone.
$veil bench model --model bert-base --seq 128 --recipe puma --ring-bits 50 --fractional-bits 12 \
  --json "$out/bert-base-128-puma-n50.json"
# SecFormer's GeLU and rsqrt with an exact (SIGMA) softmax: the usable SecFormer.
$veil bench model --model bert-base --seq 128 --recipe secformer --softmax sigma \
  --json "$out/bert-base-128-secformer-sigma-softmax.json"
