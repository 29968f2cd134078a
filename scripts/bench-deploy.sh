#!/usr/bin/env bash
# The roles apart, measured (BENCHMARKS.md "Deployment"): the dealer, P0 and P1 as separate
# processes on loopback with mutual TLS, the model shared once, then REQUESTS client requests of
# a TOKENS-token text one after another, beside the one-process run of the same text. A BERT
# folder is asked for embeddings (`veil embed --remote`); a decoder (GPT-2, LLaMA) for one
# greedy token after a TOKENS-token prompt (`veil generate --remote --tokens 1`).
#
#   bash scripts/bench-deploy.sh MODEL_DIR [TOKENS=128] [REQUESTS=3] > result.json
#   VEIL_NETEM=lan|wan|sigma bash scripts/bench-deploy.sh ...   (as root)
#   VEIL_POOL=1 bash scripts/bench-deploy.sh ...                  (keys pooled ahead)
#
# With VEIL_POOL=1 the dealer pools one stream of the request's shape (`--pool TOKENS:1`, or
# TOKENS+1 for a decoder) and both servers keep key pools: each request waits until P0 has
# filled the pool (recorded as "pool_fill_seconds"), so it starts on a warm pool and no fill
# shares the cores with it; the requests then take no key from the dealer but the client's.
#
# With VEIL_NETEM each role runs in its own network namespace behind links shaped to that
# setting (scripts/netem.sh up SETTING, validated first; its measurements go into the JSON as
# "network"), and the namespaces are removed at the end.
#
# Per request: the client's end-to-end latency, and from the servers' and the dealer's logs P0's
# online seconds, P0<->P1 bytes and rounds and the key bytes shipped to P0, P1 and the client.
# Needs a release build (swift build -c release --product veil). All roles share this machine's
# cores, so the dealer's key generation overlaps the parties' online work.
set -euo pipefail
cd "$(dirname "$0")/.."
model="$1"; tokens="${2:-128}"; requests="${3:-3}"
veil="$PWD/.build/release/veil"
netem="$PWD/scripts/netem.sh"
work="$(mktemp -d)"
setting="${VEIL_NETEM:-}"
pooled="${VEIL_POOL:-}"
trap 'kill $(jobs -p) 2>/dev/null || true; [[ -n "$setting" ]] && "$netem" down >/dev/null 2>&1; rm -rf "$work"' EXIT
cd "$work"
"$veil" certs --out certs >/dev/null 2>&1
# Each role's address, and how a program runs as that role: `as` in the foreground, `start` as
# a background job whose PID is the program's own (so that SIGTERM reaches the service, not a
# wrapper shell that would leave it running).
declare -A host=([dealer]=127.0.0.1 [p0]=127.0.0.1 [p1]=127.0.0.1 [client]=127.0.0.1)
as() { shift; "$@"; }
start() { shift; "$@" & }
echo null >network.json
if [[ -n "$setting" ]]; then
  "$netem" up "$setting" >&2
  "$netem" validate --json network.json >&2 || echo "bench-deploy: the emulated link is off its target (see network.json)" >&2
  host=([dealer]=10.77.0.1 [p0]=10.77.0.2 [p1]=10.77.0.3 [client]=10.77.0.4)
  as() { "$netem" exec "$@"; }
  start() { "$netem" exec "$@" & }
fi
port() { for _ in $(seq 600); do l="$(head -n 1 "$1" 2>/dev/null || true)"; [[ -n "$l" ]] && { echo "${l##*:}"; return; }; sleep 0.1; done; echo "no port in $1" >&2; exit 1; }
if grep -q '"model_type": *"bert"' "$model/config.json"; then shape="$tokens"; else shape="$tokens+1"; fi
dealer_pool=(); p0_pool=(); p1_pool=()
if [[ -n "$pooled" ]]; then
  dealer_pool=(--pool "$shape:1")
  p0_pool=(--key-pool p0pool --key-pool-gb 40)
  p1_pool=(--key-pool p1pool --key-pool-gb 40)
fi
start dealer "$veil" dealer --state dealer --listen "${host[dealer]}:0" --certs certs --state-key-file certs/dealer-state.key "${dealer_pool[@]}" >dealer.out 2>dealer.log
dealer="${host[dealer]}:$(port dealer.out)"
start p1 "$veil" serve --party 1 --state p1 --listen "${host[p1]}:0" --dealer "$dealer" --certs certs "${p1_pool[@]}" >p1.out 2>p1.log
p1="${host[p1]}:$(port p1.out)"
start p0 "$veil" serve --party 0 --state p0 --listen "${host[p0]}:0" --peer "$p1" --dealer "$dealer" --certs certs "${p0_pool[@]}" >p0.out 2>p0.log
p0="${host[p0]}:$(port p0.out)"
start=$(date +%s.%N)
# The owner uploads from the client's host (any host outside the three services would do).
as client "$veil" share-model --model "$model" --servers "$p0,$p1" --dealer "$dealer" --certs certs >&2
setup=$(echo "$(date +%s.%N) - $start" | bc)
if grep -q '"model_type": *"bert"' "$model/config.json"; then
  # A text of exactly TOKENS tokens with [CLS] and [SEP] ("word" is one WordPiece token).
  text="$(python3 -c "print(' '.join(['word'] * ($tokens - 2)))")"
  request=(embed --json)
  local_run=(embed --model "$model" --json)
else
  # A prompt of exactly TOKENS tokens ("word" and " word" are one byte-level BPE token each).
  text="$(python3 -c "print(' '.join(['word'] * $tokens))")"
  request=(generate --tokens 1 --json --prompt)
  local_run=(generate --model "$model" --tokens 1 --json --prompt)
fi
for i in $(seq "$requests"); do
  if [[ -n "$pooled" ]]; then
    # A warm pool: P0 has stored its i-th stream (the one before was used by request i-1).
    until [[ $(grep -c "key pool: stored" p0.log || true) -ge $i ]]; do sleep 0.5; done
  fi
  as client "$veil" "${request[0]}" --remote "$p0,$p1" --dealer "$dealer" --certs certs --state client "${request[@]:1}" "$text" >"remote-$i.json"
done
# The services stop first: an idle P0 would be refilling its pool beside the one-process run.
kill -TERM $(jobs -p); wait || true
pgrep -f "$veil (dealer|serve)" >/dev/null && echo "bench-deploy: a service outlived SIGTERM" >&2
# Nor should a killed fill's unwritten pages be flushed beside it: drop the pools first.
rm -rf p0pool p1pool dealer/pool; sync
"$veil" "${local_run[@]}" "$text" >local.json 2>/dev/null
python3 - "$requests" "$setup" "$tokens" "$setting" "$pooled" <<'PY'
import json, re, sys
requests, setup, tokens, setting, pooled = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], bool(sys.argv[5])
runs = []
p0 = [l for l in open("p0.log") if "run done" in l]
dealt = [l for l in open("dealer.log") if "dealt" in l]
fills = [float(m.group(1)) for m in (re.search(r"key pool: stored .* in ([0-9.]+) s", l) for l in open("p0.log")) if m]
local = json.load(open("local.json"))
for i in range(requests):
    r = json.load(open(f"remote-{i + 1}.json"))
    m = re.search(r"online ([0-9.]+) s, (\d+) B, (\d+) rounds", p0[i])
    k = re.search(r"dealt .*?: ([0-9/]+) key bytes", dealt[i])
    keys = [int(x) for x in k.group(1).split("/")]
    runs.append({"latency_seconds": r["latency_seconds"], "online_seconds_p0": float(m.group(1)),
                 "online_bytes": int(m.group(2)), "rounds": int(m.group(3)), "key_bytes": keys,
                 "client_bytes": r["client_bytes"], "client_key_bytes": r.get("client_key_bytes"),
                 "keys": "pooled" if "keys pooled" in p0[i] else "on demand",
                 **({"pool_fill_seconds": fills[i]} if pooled else {}),
                 "same_as_one_process": r.get("embeddings", r.get("tokens")) == local.get("embeddings", local.get("tokens"))})
print(json.dumps({"schema": "veil.bench-deploy/1", "tokens": tokens, "setup_seconds": setup, "pooled": pooled,
                  "network": {"setting": setting or "loopback", "validation": json.load(open("network.json"))},
                  "commit": local.get("commit"), "machine": local.get("machine"), "runs": runs,
                  "one_process": {k: local[k] for k in ["online_seconds", "offline_seconds", "online_bytes",
                                                         "rounds", "key_bytes", "key_bytes_per_party",
                                                         "client_bytes"] if k in local}}, indent=1))
PY
