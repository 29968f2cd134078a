#!/usr/bin/env bash
# Regenerate Tests/VeilModelsTests/Data/{tokenizer_cases,embedding_cases}.json and README.md.
# Creates the virtual environment .venv-ref at the repository root when missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.venv-ref"
req="$here/requirements.txt"

if [[ ! -x "$venv/bin/python" ]]; then
  echo "creating $venv" >&2
  python3 -m venv "$venv"
fi
stamp="$venv/.requirements-installed"
if [[ ! -f "$stamp" ]] || ! cmp -s "$req" "$stamp"; then
  echo "installing $req" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
  cp "$req" "$stamp"
fi

model_dir="$("$root/scripts/fetch-model.sh" minilm | tail -n 1)"
out="$root/Tests/VeilModelsTests/Data"
mkdir -p "$out"
OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}" \
  RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-1}" TOKENIZERS_PARALLELISM=false \
  "$venv/bin/python" "$here/make_reference.py" --model "$model_dir" --out "$out"
