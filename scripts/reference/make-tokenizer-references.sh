#!/usr/bin/env bash
# Regenerate Tests/VeilModelsTests/Data/tokenizers/ (GPT-2, SmolLM2, LLaMA-2 and LLaMA-3 token ids, llama.cpp's
# tokenizer vectors) with scripts/reference/make-tokenizer-references.py.
#
#   scripts/reference/make-tokenizer-references.sh
#
# Fetches what is missing: the gpt2-tiny, smollm2, llama2-tokenizer and llama3-tokenizer folders,
# the converters' venv and the llama-cpp-python 0.3.36 sdist (scripts/fetch-model.sh; only its small
# models/ggml-vocab-*.gguf.inp/.out files are read), kept at
# ${VEIL_CACHE:-$HOME/.cache/veil}/downloads/. Nothing is written outside the cache and the data
# folder.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

py="$("$root/scripts/fetch-model.sh" --python | tail -n 1)"
gpt2="$("$root/scripts/fetch-model.sh" gpt2-tiny | tail -n 1)"
smollm2="$("$root/scripts/fetch-model.sh" smollm2 | tail -n 1)"

sdist="$("$root/scripts/fetch-model.sh" --llamacpp-sdist | tail -n 1)"
llama2="$("$root/scripts/fetch-model.sh" llama2-tokenizer | tail -n 1)"
llama3="$("$root/scripts/fetch-model.sh" llama3-tokenizer | tail -n 1)"

out="$root/Tests/VeilModelsTests/Data/tokenizers"
mkdir -p "$out"
TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-1}" \
  "$py" "$here/make-tokenizer-references.py" \
  --gpt2 "$gpt2" --smollm2 "$smollm2" --llama2 "$llama2" --llama3 "$llama3" \
  --llamacpp-sdist "$sdist" --out "$out"
