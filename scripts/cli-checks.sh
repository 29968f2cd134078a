#!/usr/bin/env bash
# End-to-end checks of the `veil` binary: real output on good input, and on each bad input a
# one-line error naming the problem with a non-zero exit code (never a crash or a hang).
#   scripts/cli-checks.sh VEIL_BINARY MODEL_DIR
set -uo pipefail
veil="$1"
model="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

# expect_failure NAME PATTERN -- COMMAND...: the command must exit non-zero (not by a signal),
# print exactly one line on stderr, and that line must match PATTERN.
expect_failure() {
  local name="$1" pattern="$2"
  shift 3
  local status
  timeout 60 "$@" >"$work/out" 2>"$work/err"
  status=$?
  local lines
  lines=$(grep -c . "$work/err")
  if [[ $status -ne 0 && $status -lt 128 && $lines -eq 1 ]] && grep -qE "$pattern" "$work/err"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL $name: exit $status, stderr:" >&2
    cat "$work/err" >&2
  fi
}

check() {
  local name="$1"
  shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $name" >&2; fi
}

# A good run: JSON with one 384-float embedding per text.
"$veil" embed --model "$model" --plaintext --json "Veil keeps text private." "Another sentence." >"$work/good.json" 2>"$work/err"
check "embed --json" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["model"] == "all-MiniLM-L6-v2", r["model"]
assert len(r["embeddings"]) == 2 and all(len(e) == 384 for e in r["embeddings"])
assert all(k in r for k in ("schema", "commit", "date", "machine", "params"))
' "$work/good.json"

# SIGMA's fixed-point recipe in the clear stays within cosine 0.999 of Float64, without range violations.
"$veil" embed --model "$model" --fixed-point --json "Secret shares hide the text." "Ünïcödé, numbers 3.14 and emoji 🎉!" >"$work/fixed.json" 2>"$work/err"
check "embed --fixed-point --json" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert len(r["cosine"]) == 2 and min(r["cosine"]) >= 0.999, r["cosine"]
assert r["range_violations"] == 0 and r["params"]["ring_bits"] == 50
assert all(len(e) == 384 for e in r["embeddings"] + r["plaintext"])
' "$work/fixed.json"

# The secure default: the issue's JSON fields, cosine ≥ 0.999 to Float64, real traffic and keys.
"$veil" embed --model "$model" --json "Secret shares hide the text." "Hi" >"$work/secure.json" 2>"$work/err"
check "embed (secure) --json" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
for k in ("embeddings", "plaintext", "cosine", "online_seconds", "offline_seconds", "online_bytes", "rounds", "key_bytes_per_party"):
    assert k in r, k
assert r["params"]["engine"] == "secure-sigma"
assert len(r["embeddings"]) == 2 and all(len(e) == 384 for e in r["embeddings"] + r["plaintext"])
assert min(r["cosine"]) >= 0.999, r["cosine"]
assert r["online_bytes"] > 0 and r["rounds"] > 100 and r["key_bytes_per_party"] > 0 and r["online_seconds"] > 0
' "$work/secure.json"

# A whole-model bench over loopback TLS (a GPT-2-shaped model, 2 blocks, 8 tokens): the issue's
# fields, the transport named, the extrapolation labelled; a bad transport is refused.
"$veil" bench model --model gpt2 --seq 8 --layers 2 --transport tls --json "$work/bench.json" >/dev/null 2>"$work/err"
check "bench model --transport tls" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
for k in ("online_seconds", "offline_seconds", "online_bytes", "rounds", "key_bytes_per_party", "peak_rss_bytes", "per_layer_type"):
    assert k in r, k
assert r["params"]["transport"] == "tls" and r["model"] == "gpt2" and r["layers"] == 2
assert "extrapolated_full_model" in r and r["online_bytes"] > 0 and r["rounds"] > 100
' "$work/bench.json"
expect_failure "bad transport" "transport" -- "$veil" bench model --model bert-tiny --transport carrier-pigeon

# PUMA's recipe securely on MiniLM (its published ring, 64/18) meets the 0.999 bar; the per-op
# bench reports every operation's costs and accuracy; a recipe that does not fit its ring is
# refused with the reason.
"$veil" embed --model "$model" --recipe puma --json "Secret shares hide the text." >"$work/puma.json" 2>"$work/err"
check "embed --recipe puma --json" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["params"]["engine"] == "secure-puma" and r["params"]["ring_bits"] == 64, r["params"]
assert min(r["cosine"]) >= 0.999, r["cosine"]
' "$work/puma.json"
"$veil" bench ops --recipe secformer --op layernorm --json "$work/ops.json" >/dev/null 2>"$work/err"
check "bench ops --recipe secformer" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["recipe"] == "secformer" and [o["op"] for o in r["ops"]] == ["layernorm"], r["ops"]
assert r["ops"][0]["rounds"] > 0 and r["ops"][0]["key_bytes_per_party"] > 0
assert {a["op"] for a in r["accuracy"]} >= {"gelu", "softmax", "layerNorm"}
' "$work/ops.json"
expect_failure "recipe too wide for the ring" "need n ≥ 2f \+ 16" -- "$veil" bench ops --recipe puma --ring-bits 37 --fractional-bits 12
expect_failure "GeLU ring narrower than its table" "reduced ring \(4 bits\)" -- "$veil" bench ops --gelu-ring-bits 4

# A long text is truncated with a warning; with --no-truncate it is refused.
long="$(python3 -c 'print(" ".join(["word"] * 400))')"
"$veil" embed --model "$model" --plaintext --json "$long" >"$work/long.json" 2>"$work/err"
check "truncation warns" grep -q "truncated to 256" "$work/err"
expect_failure "no-truncate" "402 tokens.*256" -- "$veil" embed --model "$model" --plaintext --no-truncate "$long"

expect_failure "empty text" "empty" -- "$veil" embed --model "$model" --plaintext ""
expect_failure "missing folder" "/nonexistent/model.*no such file" -- "$veil" embed --model /nonexistent/model --plaintext "hi"

# Corrupt copies of the model folder. rewrite_header TENSOR FIELD JSON_VALUE copies the real
# weights with one header field of one tensor replaced.
rewrite_header() {
  python3 - "$model/model.safetensors" "$bad/model.safetensors" "$1" "$2" "$3" <<'PY'
import json, struct, sys
src, dst, tensor, field, value = sys.argv[1:6]
data = open(src, "rb").read()
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
header[tensor][field] = json.loads(value)
h = json.dumps(header).encode()
open(dst, "wb").write(struct.pack("<Q", len(h)) + h + data[8 + n:])
PY
}

bad="$work/bad"
mkdir -p "$bad"
cp "$model"/config.json "$model"/tokenizer.json "$model"/vocab.txt "$bad"/
printf 'garbage' >"$bad/model.safetensors"
expect_failure "corrupt safetensors" "model.safetensors.*malformed" -- "$veil" embed --model "$bad" --plaintext "hi"
rewrite_header embeddings.LayerNorm.bias dtype '"Q4"'
expect_failure "unknown dtype" "model.safetensors.*unknown dtype 'Q4'" -- "$veil" embed --model "$bad" --plaintext "hi"
rewrite_header encoder.layer.0.output.dense.weight shape '[1536, 384]'
expect_failure "wrong shape" "encoder.layer.0.output.dense.weight.*\[1536, 384\].*expected \[384, 1536\]" -- "$veil" embed --model "$bad" --plaintext "hi"
head -c 1000000 "$model/model.safetensors" >"$bad/model.safetensors"
expect_failure "truncated safetensors" "model.safetensors.*truncated" -- "$veil" embed --model "$bad" --plaintext "hi"

# veil tokenize: WordPiece ids without [CLS]/[SEP], the tokens beside them; a folder with no
# tokenizer is one clear line.
printf 'Hello world\r\n[MASK] again\n' >"$work/lines.txt"
"$veil" tokenize --model "$model" --json --input "$work/lines.txt" "Veil" >"$work/tok.json" 2>"$work/err"
check "tokenize --json" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ids"] == [[15562], [7592, 2088], [103, 2153]], r["ids"]
assert r["tokens"][1] == ["hello", "world"] and r["tokens"][2][0] == "[MASK]", r["tokens"]
' "$work/tok.json"
# LLaMA-2 (SentencePiece-style, byte fallback) and LLaMA-3 (byte-level) folders, when test.sh
# fetched them: the ids llama.cpp's test vectors give " Hello world!" and an emoji.
if [[ -n "${VEIL_LLAMA2_TOKENIZER_DIR:-}" && -n "${VEIL_LLAMA3_TOKENIZER_DIR:-}" ]]; then
  "$veil" tokenize --model "$VEIL_LLAMA2_TOKENIZER_DIR" --json " Hello World!" " this is 🦙.cpp" >"$work/tok2.json" 2>"$work/err"
  "$veil" tokenize --model "$VEIL_LLAMA3_TOKENIZER_DIR" --json " Hello World!" " this is 🦙.cpp" >"$work/tok3.json" 2>>"$work/err"
  check "tokenize llama2/llama3 --json" python3 -c '
import json, sys
l2, l3 = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert l2["ids"] == [[29871, 15043, 2787, 29991], [29871, 445, 338, 29871, 243, 162, 169, 156, 29889, 8223]], l2["ids"]
assert l2["tokens"][0] == ["\u2581", "\u2581Hello", "\u2581World", "!"], l2["tokens"]
assert l3["ids"] == [[22691, 4435, 0], [420, 374, 11410, 99, 247, 13, 11055]], l3["ids"]
' "$work/tok2.json" "$work/tok3.json"
fi
mkdir -p "$work/empty"
expect_failure "tokenize without tokenizer files" "no such file" -- "$veil" tokenize --model "$work/empty" "x"

# veil generate on a tiny seeded LLaMA (VEIL_LLAMA_TINY_DIR, which test.sh fetches): the secure
# tokens equal the fixed-point ones, a JSON report per the README; bad requests are one line.
if [[ -n "${VEIL_LLAMA_TINY_DIR:-}" ]]; then
  tiny="$VEIL_LLAMA_TINY_DIR"
  "$veil" generate --model "$tiny" --prompt "The capital of France is" --tokens 4 --json >"$work/gen.json" 2>"$work/err"
  "$veil" generate --model "$tiny" --prompt "The capital of France is" --tokens 4 --fixed-point --json >"$work/genfp.json" 2>>"$work/err"
  check "generate --json" python3 -c '
import json, sys
s, f = (json.load(open(p)) for p in sys.argv[1:3])
assert len(s["tokens"]) == 4 and s["tokens"] == f["tokens"], (s["tokens"], f["tokens"])
assert s["params"]["ring_bits"] == 60 and len(s["per_token"]) == 4, s["params"]
assert s["online_seconds"] > 0 and s["rounds"] > 0 and s["key_bytes_per_party"] > 0
assert len(s["plaintext_margins"]) == 4 and s["prompt_tokens"] == f["prompt_tokens"]
' "$work/gen.json" "$work/genfp.json" || cat "$work/err" >&2
  expect_failure "generate a BERT model" "decoder" -- "$veil" generate --model "$model" --prompt "hi" --plaintext
  expect_failure "generate past the positions" "exceed.*128 positions" -- "$veil" generate --model "$tiny" --prompt "hi" --tokens 500 --plaintext
fi
if [[ -n "${VEIL_GPT2_TINY_DIR:-}" ]]; then
  expect_failure "generate --chat without a template" "no chat template" -- "$veil" generate --model "$VEIL_GPT2_TINY_DIR" --prompt "hi" --chat --plaintext
fi

# Key-pool options are checked before anything starts.
expect_failure "dealer --pool malformed" "not SHAPE:COUNT" -- "$veil" dealer --state "$work/dealer" --pool 16x:2
expect_failure "serve --key-pool-gb 0" "must be a positive number" -- "$veil" serve --party 1 --state "$work/p1" --dealer 127.0.0.1:1 --key-pool "$work/pool" --key-pool-gb 0

echo "cli: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
