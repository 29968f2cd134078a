#!/usr/bin/env bash
# The roles apart, measured (BENCHMARKS.md "Deployment"): the dealer, P0 and P1 as separate
# processes on loopback with mutual TLS, the model shared once, then REQUESTS client requests of
# a TOKENS-token text one after another, beside the one-process run of the same text.
#
#   bash scripts/bench-deploy.sh MODEL_DIR [TOKENS=128] [REQUESTS=3] > result.json
#
# Per request: the client's end-to-end latency, and from the servers' and the dealer's logs P0's
# online seconds, P0<->P1 bytes and rounds and the key bytes shipped to P0, P1 and the client.
# Needs a release build (swift build -c release --product veil). All roles share this machine's
# cores, so the dealer's key generation overlaps the parties' online work.
set -euo pipefail
cd "$(dirname "$0")/.."
model="$1"; tokens="${2:-128}"; requests="${3:-3}"
veil="$PWD/.build/release/veil"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
"$veil" certs --out certs >/dev/null 2>&1
port() { for _ in $(seq 600); do l="$(head -n 1 "$1" 2>/dev/null || true)"; [[ -n "$l" ]] && { echo "${l##*:}"; return; }; sleep 0.1; done; echo "no port in $1" >&2; exit 1; }
"$veil" dealer --state dealer --listen 127.0.0.1:0 --certs certs --state-key-file certs/dealer-state.key >dealer.out 2>dealer.log &
dp="$(port dealer.out)"
"$veil" serve --party 1 --state p1 --listen 127.0.0.1:0 --dealer "127.0.0.1:$dp" --certs certs >p1.out 2>p1.log &
p1="$(port p1.out)"
"$veil" serve --party 0 --state p0 --listen 127.0.0.1:0 --peer "127.0.0.1:$p1" --dealer "127.0.0.1:$dp" --certs certs >p0.out 2>p0.log &
p0="$(port p0.out)"
start=$(date +%s.%N)
"$veil" share-model --model "$model" --servers "127.0.0.1:$p0,127.0.0.1:$p1" --dealer "127.0.0.1:$dp" --certs certs >&2
setup=$(echo "$(date +%s.%N) - $start" | bc)
# A text of exactly TOKENS tokens with [CLS] and [SEP] ("word" is one WordPiece token).
text="$(python3 -c "print(' '.join(['word'] * ($tokens - 2)))")"
remote=()
for i in $(seq "$requests"); do
  "$veil" embed --remote "127.0.0.1:$p0,127.0.0.1:$p1" --dealer "127.0.0.1:$dp" --certs certs --state client --json "$text" >"remote-$i.json"
done
"$veil" embed --model "$model" --json "$text" >local.json 2>/dev/null
kill -TERM $(jobs -p); wait || true
python3 - "$requests" "$setup" "$tokens" <<'PY'
import json, re, sys
requests, setup, tokens = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
runs = []
p0 = [l for l in open("p0.log") if "run done" in l]
dealt = [l for l in open("dealer.log") if "dealt" in l]
local = json.load(open("local.json"))
for i in range(requests):
    r = json.load(open(f"remote-{i + 1}.json"))
    m = re.search(r"online ([0-9.]+) s, (\d+) B, (\d+) rounds", p0[i])
    k = re.search(r"dealt \d+ tokens: ([0-9/]+) key bytes", dealt[i])
    keys = [int(x) for x in k.group(1).split("/")]
    runs.append({"latency_seconds": r["latency_seconds"], "online_seconds_p0": float(m.group(1)),
                 "online_bytes": int(m.group(2)), "rounds": int(m.group(3)), "key_bytes": keys,
                 "client_bytes": r["client_bytes"], "same_as_one_process": r["embeddings"] == local["embeddings"]})
print(json.dumps({"schema": "veil.bench-deploy/1", "tokens": tokens, "setup_seconds": setup,
                  "commit": local.get("commit"), "machine": local.get("machine"), "runs": runs,
                  "one_process": {k: local[k] for k in ["online_seconds", "offline_seconds", "online_bytes",
                                                         "rounds", "key_bytes", "client_bytes"]}}, indent=1))
PY
