#!/usr/bin/env bash
# Regenerate Tests/VeilModelsTests/Data/tokenizers/ (GPT-2 and SmolLM2 token ids, llama.cpp's
# tokenizer vectors) with scripts/reference/make-tokenizer-references.py.
#
#   scripts/reference/make-tokenizer-references.sh
#
# Fetches what is missing: the gpt2-tiny and smollm2 folders and the converters' venv
# (scripts/fetch-model.sh), and the llama-cpp-python 0.3.36 sdist (only its small
# models/ggml-vocab-*.gguf.inp/.out files are read), kept at
# ${VEIL_CACHE:-$HOME/.cache/veil}/downloads/. Nothing is written outside the cache and the data
# folder.
set -euo pipefail

log() { printf '%s\n' "$*" >&2; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${VEIL_CACHE:-$HOME/.cache/veil}"
python="${PYTHON:-python3}"

py="$("$root/scripts/fetch-model.sh" --python | tail -n 1)"
gpt2="$("$root/scripts/fetch-model.sh" gpt2-tiny | tail -n 1)"
smollm2="$("$root/scripts/fetch-model.sh" smollm2 | tail -n 1)"

sdist_pkg="llama-cpp-python==0.3.36"
sdist="$cache/downloads/llama_cpp_python-0.3.36.tar.gz"
sdist_sha256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
if [[ ! -f "$sdist" ]]; then
  # pip prepares the sdist's metadata (scikit-build-core) without build isolation; nothing is
  # compiled, but the backend and cmake must be importable.
  venv="$cache/venvs/sdist"
  if ! "$venv/bin/python" -c "import scikit_build_core" 2>/dev/null; then
    log "creating venv $venv (cmake, scikit-build-core) ..."
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      cmake==4.4.5 scikit-build-core==1.1.2 >&2
  fi
  log "downloading $sdist_pkg (sdist, ~77 MB) ..."
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
    --no-build-isolation --no-binary :all: -d "$tmp" "$sdist_pkg" >&2
  mkdir -p "$(dirname "$sdist")"
  mv "$tmp/$(basename "$sdist")" "$sdist"
fi
got="$(sha256sum "$sdist" | cut -d' ' -f1)"
if [[ "$got" != "$sdist_sha256" ]]; then
  log "error: $(basename "$sdist") sha256 $got, expected $sdist_sha256"
  exit 1
fi

out="$root/Tests/VeilModelsTests/Data/tokenizers"
mkdir -p "$out"
TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-1}" \
  "$py" "$here/make-tokenizer-references.py" \
  --gpt2 "$gpt2" --smollm2 "$smollm2" --llamacpp-sdist "$sdist" --out "$out"
