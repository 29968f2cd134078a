#!/usr/bin/env bash
# netem.sh - emulate the papers' network settings between Veil's four roles
# (dealer, p0, p1, client) on one Linux host, with network namespaces.
# Issue 18.  Run `scripts/netem.sh --help` for usage.
#
# Topology: one namespace per role (veil-dealer, veil-p0, veil-p1,
# veil-client) plus a switch namespace (veil-switch) holding a bridge.  Each
# role has a veth link "eth0" to the bridge.  Every link is shaped with tbf
# at the setting's rate in both directions (the role's egress and the
# switch's egress towards the role), like a full-duplex access link.  Every
# packet that crosses the switch is held there for half the setting's RTT by
# nfnetlink_queue plus scripts/netem/delayline.c, so data and ACKs (and
# pings) alike see the full RTT between any two roles.
#
# Why not netem or EDT: this kernel has no sch_netem, and no qdisc that
# honours skb->tstamp (sch_fq, sch_etf and BPF qdiscs are not built in, and
# it has no module support), so an eBPF clsact program that sets earliest
# departure times loads but delays nothing.  See delayline.c's header.
set -euo pipefail

ROLES=(dealer p0 p1 client)
declare -A ADDR=([dealer]=10.77.0.1 [p0]=10.77.0.2 [p1]=10.77.0.3 [client]=10.77.0.4)
NS_PREFIX=veil-
SWITCH=${NS_PREFIX}switch
RAW_NS=("${NS_PREFIX}raw0" "${NS_PREFIX}raw1")
STATE=${VEIL_NETEM_STATE:-/run/veil-netem}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
QUEUE=0

# Settings: goodput target (Mbit/s of TCP payload) and round-trip time (ms).
declare -A RATE_MBIT=([lan]=8000 [wan]=3200 [sigma]=9400)
declare -A RTT_MS=([lan]=0.5 [wan]=4 [sigma]=0.05)
declare -A LABEL=(
  [lan]="1 GB/s (8 Gbit/s), 0.5 ms RTT"
  [wan]="400 MB/s (3.2 Gbit/s), 4 ms RTT"
  [sigma]="9.4 Gbit/s, 0.05 ms RTT"
)
MTU=1500
# Bytes on the wire per full TCP segment vs its payload, at MTU 1500 with
# timestamps: 14 Ethernet + 20 IPv4 + 32 TCP = 66 bytes of headers per
# 1448 payload bytes.  tbf counts the whole frame, so the link is shaped at
# target * 1514/1448 to make the payload rate equal the setting's rate.
WIRE_PER_PAYLOAD_NUM=1514
WIRE_PER_PAYLOAD_DEN=1448
TOLERANCE_PCT=5

usage() {
  cat <<'EOF'
Usage: scripts/netem.sh COMMAND [ARGS]   (as root, Linux)

Puts Veil's four roles in their own network namespaces, joined through a
switch namespace by veth links shaped to one of the papers' settings.

Commands:
  up SETTING           Create namespaces veil-{dealer,p0,p1,client,switch},
                       links and shaping for SETTING, then print the
                       role -> address map.  Replaces a setting already up.
  down                 Remove everything `up` created (safe to repeat).
  exec ROLE CMD...     Run CMD inside ROLE's namespace (ROLE: dealer, p0,
                       p1, client), e.g.
                         scripts/netem.sh exec p0 veil-server --party 0 ...
  validate [--json FILE]
                       Measure RTT (median of 40 pings) and TCP throughput
                       (iperf3, 3 s after a 1 s warm-up; once more if
                       off, keeping the closer) for p0->p1,
                       dealer->p0 and client->p0, plus an unshaped veth pair
                       for the host's ceiling; print them beside the
                       targets; exit 1 if any RTT or throughput is more than
                       5 % off its target.  --json writes the results.
  status               Print the setting that is up and its parameters.
  -h, --help           This text.

Settings (throughput = TCP payload rate between any two roles):
  lan     1 GB/s (8 Gbit/s), 0.5 ms RTT
  wan     400 MB/s (3.2 Gbit/s), 4 ms RTT
  sigma   9.4 Gbit/s, 0.05 ms RTT

Addresses (10.77.0.0/24 inside the namespaces only; no route out, the
host's interfaces are not touched):
  dealer 10.77.0.1   p0 10.77.0.2   p1 10.77.0.3   client 10.77.0.4

How: each link is shaped with tbf at the setting's rate in both directions
(scaled by 1514/1448 so the TCP payload rate, not the frame rate, hits the
target; a role's bucket is 96 KiB, so at most that much leaves faster than
the rate after an idle period).  The delay is added in the switch
namespace: iptables sends every bridged IPv4 packet to nfnetlink_queue, and
scripts/netem/delayline.c (compiled at `up` into /run/veil-netem) accepts
each one half the RTT after it arrived, so data and ACKs are both delayed.
At `up` the delay is calibrated with pings so that the measured RTT matches
the target (the host's own path time, ~0.05-0.1 ms, is subtracted).  If the
host's path alone is already at or above the target RTT (sigma on a slow
host), no delay is added and `validate` shows the host's floor.  This kernel
has no netem and no fq qdisc (so no EDT either), hence this design.  The
role namespaces get tcp_rmem/tcp_wmem maxima of 64 MiB and no IPv6.
Throughput is CPU-bound: on a 2-vCPU VM the emulated path carries about
5-8 Gbit/s, so lan and sigma can fail validate there (the unshaped veth
figure it prints tells you the host's ceiling).

Needs: iproute2, iptables, iputils-ping, iperf3 (validate), a C compiler;
missing ones are installed with apt-get.
Environment: VEIL_NETEM_STATE (default /run/veil-netem), CC.
EOF
}

die() { echo "netem.sh: $*" >&2; exit 1; }
note() { echo "netem.sh: $*" >&2; }

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, tc, iptables)"; }

# Install what is missing, quietly (CI machines start fresh).
ensure_tools() {
  local missing=() want
  command -v ip >/dev/null || missing+=(iproute2)
  command -v tc >/dev/null || missing+=(iproute2)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v ping >/dev/null || missing+=(iputils-ping)
  for want in "$@"; do
    case $want in
      iperf3) command -v iperf3 >/dev/null || missing+=(iperf3) ;;
      cc) if [[ -z ${CC:-} ]] && ! command -v cc >/dev/null && ! command -v gcc >/dev/null \
             && ! command -v clang >/dev/null; then missing+=(gcc libc6-dev); fi
          [[ -e /usr/include/linux/netfilter/nfnetlink_queue.h ]] || missing+=(linux-libc-dev) ;;
    esac
  done
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null || die "missing packages: ${missing[*]} (and no apt-get)"
  note "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

iptables_cmd() {
  # The legacy backend talks xtables directly; the nft backend needs
  # nft_compat for NFQUEUE.  Either works on this kernel.
  if command -v iptables-legacy >/dev/null; then echo iptables-legacy; else echo iptables; fi
}

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

build_delayline() {
  mkdir -p "$STATE"
  local cc=${CC:-}
  if [[ -z $cc ]]; then
    for cc in cc gcc clang; do command -v $cc >/dev/null && break; done
  fi
  "$cc" -O2 -Wall -o "$STATE/delayline" "$HERE/netem/delayline.c" \
    || die "cannot compile $HERE/netem/delayline.c with $cc"
}

# --- delay line ------------------------------------------------------------

delayline_running() {
  [[ -f $STATE/delayline.pid ]] || return 1
  local pid; pid=$(<"$STATE/delayline.pid")
  [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' </proc/"$pid"/cmdline | grep -q "$STATE/delayline"
}

stop_delayline() {
  if delayline_running; then
    local pid; pid=$(<"$STATE/delayline.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.02; done
  fi
  rm -f "$STATE/delayline.pid"
}

# start_delayline ONE_WAY_US
start_delayline() {
  stop_delayline
  # setsid: its own session, so it outlives this script and ^C in the caller.
  # It writes its pid file once the queue is bound.
  ip netns exec "$SWITCH" setsid "$STATE/delayline" -q "$QUEUE" -d "$1" -R \
    -p "$STATE/delayline.pid" </dev/null >>"$STATE/delayline.log" 2>&1 &
  local launcher=$!
  for _ in $(seq 250); do
    delayline_running && return 0
    if ! kill -0 "$launcher" 2>/dev/null && [[ ! -f $STATE/delayline.pid ]]; then
      die "delayline failed to start; see $STATE/delayline.log"
    fi
    sleep 0.02
  done
  die "delayline did not come up; see $STATE/delayline.log"
}

# --- measurements ------------------------------------------------------------

# median_rtt_ms SRC_ROLE DST_ADDR [COUNT] -> median of ping RTTs in ms
median_rtt_ms() {
  local n=${3:-40}
  in_ns "$NS_PREFIX$1" ping -n -q -c 2 -i 0.01 -W 1 "$2" >/dev/null 2>&1 || true  # ARP, caches
  in_ns "$NS_PREFIX$1" ping -n -c "$n" -i 0.01 -W 1 "$2" 2>/dev/null \
    | sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' | sort -g \
    | awk '{v[NR]=$1} END {if (NR==0) {print "nan"; exit}
             if (NR%2) m=v[(NR+1)/2]; else m=(v[NR/2]+v[NR/2+1])/2; printf "%.4f\n", m}'
}

# tput_mbit SRC_NS DST_NS DST_ADDR SECONDS -> receiver-side payload Mbit/s
tput_mbit() {
  local src=$1 dst=$2 addr=$3 secs=${4:-3} port=5299 spid out
  in_ns "$dst" iperf3 -s -1 -p $port >/dev/null 2>&1 &
  spid=$!
  for _ in $(seq 50); do
    in_ns "$dst" ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && break; sleep 0.05
  done
  out=$(in_ns "$src" iperf3 -c "$addr" -p $port -t "$secs" -O 1 -f m 2>&1) || true
  kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true
  awk '/receiver/ {for (i=1;i<=NF;i++) if ($i=="Mbits/sec") v=$(i-1)} END {print (v==""?"nan":v)}' <<<"$out"
}

# --- up / down ---------------------------------------------------------------

setup_role_sysctls() {
  local ns=$1
  in_ns "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  # Room for the bandwidth-delay product (3.2 Gbit/s * 4 ms = 1.6 MB) and more.
  in_ns "$ns" sysctl -q -w net.ipv4.tcp_rmem="4096 131072 67108864" \
    net.ipv4.tcp_wmem="4096 65536 67108864"
}

# shape DEV_NS DEV RATE_BIT BURST_BYTES
shape() {
  # limit: 4 MiB of queue, more than 2x the largest BDP (wan, 1.6 MB).
  in_ns "$1" tc qdisc replace dev "$2" root tbf rate "${3}bit" burst "$4" limit 4194304
}
# Bucket sizes.  A role's egress is where the rate is set: its bucket must
# hold one full 64 KiB GSO packet with its per-segment headers (~68 KB as
# tbf counts it, or tbf splits packets), plus slack for the sender's own
# wake-up latency; at 72 KiB a bulk transfer lost ~5 %, at 96 KiB < 0.5 %.
# The bucket is also the most that can leave faster than the link rate after
# an idle period: 96 KiB = 94 us at lan, 235 us at wan, 80 us at sigma
# rates.  The switch's egress (towards a role) only matters when several
# senders converge on one role; its packets arrive already shaped but
# bunched by the delay line's wake-ups, so it gets a bigger bucket, which
# lets no single flow go faster than its sender's bucket allowed.
ROLE_BURST=98304
SWITCH_BURST=262144

cmd_up() {
  local setting=${1:-}
  [[ -n $setting && -n ${RATE_MBIT[$setting]:-} ]] || die "up needs a SETTING: lan, wan or sigma (see --help)"
  need_root
  ensure_tools cc
  cmd_down quiet
  # A failure half-way leaves nothing behind.
  trap 'rc=$?; if ((rc)); then note "up failed; removing what it created"; cmd_down quiet; fi' EXIT
  mkdir -p "$STATE"
  : >"$STATE/delayline.log"
  build_delayline

  local rate_mbit=${RATE_MBIT[$setting]} rtt_ms=${RTT_MS[$setting]}
  local wire_bit=$(( rate_mbit * 1000000 * WIRE_PER_PAYLOAD_NUM / WIRE_PER_PAYLOAD_DEN ))

  ip netns add "$SWITCH"
  in_ns "$SWITCH" ip link set lo up
  in_ns "$SWITCH" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  in_ns "$SWITCH" ip link add name br0 type bridge stp_state 0 forward_delay 0
  in_ns "$SWITCH" ip link set br0 up
  # Bridged IPv4 skips the iptables hooks until the delay line needs them.
  in_ns "$SWITCH" sysctl -q -w net.bridge.bridge-nf-call-iptables=0 \
    net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0 \
    || die "br_netfilter sysctls missing in $SWITCH (kernel lacks CONFIG_BRIDGE_NETFILTER?)"
  local r ns
  for r in "${ROLES[@]}"; do
    ns=$NS_PREFIX$r
    ip netns add "$ns"
    in_ns "$ns" ip link set lo up
    setup_role_sysctls "$ns"
    in_ns "$SWITCH" ip link add name "$r" mtu $MTU type veth peer name eth0 netns "$ns"
    in_ns "$SWITCH" ip link set "$r" master br0 up
    in_ns "$ns" ip addr add "${ADDR[$r]}/24" dev eth0
    in_ns "$ns" ip link set eth0 up
    shape "$ns" eth0 "$wire_bit" $ROLE_BURST
    shape "$SWITCH" "$r" "$wire_bit" $SWITCH_BURST
  done
  # Static neighbours: no ARP round trips on first contact.
  local a b
  for a in "${ROLES[@]}"; do
    for b in "${ROLES[@]}"; do
      [[ $a == "$b" ]] && continue
      in_ns "$NS_PREFIX$a" ip neigh replace "${ADDR[$b]}" dev eth0 nud permanent \
        lladdr "$(in_ns "$NS_PREFIX$b" cat /sys/class/net/eth0/address)"
    done
  done

  # Host path RTT without any added delay.
  local base one_way=0 measured use_delay=0
  base=$(median_rtt_ms p0 "${ADDR[p1]}" 40)
  measured=$base
  if awk -v b="$base" -v t="$rtt_ms" -v tol=$TOLERANCE_PCT 'BEGIN {exit !(t - b > t * tol / 200)}'; then
    use_delay=1
    # Bridged IPv4 through the iptables hooks (br_netfilter), all of it to
    # the queue that the delay line serves.
    in_ns "$SWITCH" sysctl -q -w net.bridge.bridge-nf-call-iptables=1
    in_ns "$SWITCH" "$(iptables_cmd)" -w -A FORWARD -j NFQUEUE --queue-num $QUEUE
    # First guess: half of what is missing; then correct for what the
    # delay line itself costs (wake-ups), measured, a few times.
    one_way=$(awk -v b="$base" -v t="$rtt_ms" 'BEGIN {printf "%.1f", (t - b) * 500}')
    local i
    for i in 1 2 3 4 5; do
      start_delayline "$one_way"
      measured=$(median_rtt_ms p0 "${ADDR[p1]}" 40)
      # Stop within 1 % of the target, or when the delay cannot shrink further.
      awk -v m="$measured" -v t="$rtt_ms" -v d="$one_way" \
        'BEGIN {exit !((m - t) ^ 2 <= (t * 0.01) ^ 2 || (d == 0 && m > t))}' && break
      ((i < 5)) || break
      one_way=$(awk -v d="$one_way" -v m="$measured" -v t="$rtt_ms" \
        'BEGIN {d += (t - m) * 500; if (d < 0) d = 0; printf "%.1f", d}')
    done
    # The delay line's own cost can overshoot a tiny target: keep whichever
    # of "with" and "without" is closer.
    if awk -v m="$measured" -v b="$base" -v t="$rtt_ms" \
         'BEGIN {exit !((m - t) ^ 2 > (b - t) ^ 2)}'; then
      stop_delayline
      in_ns "$SWITCH" "$(iptables_cmd)" -w -D FORWARD -j NFQUEUE --queue-num $QUEUE
      in_ns "$SWITCH" sysctl -q -w net.bridge.bridge-nf-call-iptables=0
      use_delay=0 measured=$base
    fi
  fi

  cat >"$STATE/state" <<EOF
SETTING=$setting
TARGET_MBIT=$rate_mbit
TARGET_RTT_MS=$rtt_ms
WIRE_BIT=$wire_bit
BASE_RTT_MS=$base
DELAY_ONE_WAY_US=$( ((use_delay)) && echo "$one_way" || echo 0 )
CALIBRATED_RTT_MS=$measured
EOF
  echo "veil netem: $setting (${LABEL[$setting]})"
  echo "  links: tbf $(awk -v w="$wire_bit" 'BEGIN {printf "%.0f", w / 1e6}') Mbit/s on the wire each way" \
       "(= $rate_mbit Mbit/s TCP payload)"
  if ((use_delay)); then
    echo "  delay: $one_way us each way in $SWITCH (host path ${base} ms; calibrated RTT ${measured} ms)"
  else
    echo "  delay: none added; the host path alone takes ${base} ms RTT (target ${rtt_ms} ms)"
  fi
  echo "  role     namespace     address"
  for r in "${ROLES[@]}"; do printf '  %-8s %-13s %s\n' "$r" "$NS_PREFIX$r" "${ADDR[$r]}"; done
  echo "  run a command in a role: scripts/netem.sh exec ROLE CMD..."
  trap - EXIT
}

cmd_down() {
  local quiet=${1:-}
  need_root
  stop_delayline
  local ns pids=()
  for ns in "${RAW_NS[@]}" "$SWITCH" "${ROLES[@]/#/$NS_PREFIX}"; do
    ns_exists "$ns" || continue
    # Processes still inside (started with `exec`) lose their network anyway.
    mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null)
    if ((${#pids[@]})); then
      [[ -n $quiet ]] || note "stopping processes left in $ns: ${pids[*]}"
      kill -TERM "${pids[@]}" 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -f "$STATE/state" "$STATE/delayline" "$STATE/delayline.log" "$STATE/delayline.pid.tmp"
  rmdir "$STATE" 2>/dev/null || true
  [[ -n $quiet ]] || echo "veil netem: down"
}

# --- validate ----------------------------------------------------------------

raw_veth_mbit() {
  local a=${RAW_NS[0]} b=${RAW_NS[1]} v
  for ns in "$a" "$b"; do ns_exists "$ns" && ip netns del "$ns"; ip netns add "$ns"
    in_ns "$ns" ip link set lo up; setup_role_sysctls "$ns"; done
  in_ns "$a" ip link add name eth0 mtu $MTU type veth peer name eth0 netns "$b"
  in_ns "$a" ip addr add 10.78.0.1/24 dev eth0; in_ns "$b" ip addr add 10.78.0.2/24 dev eth0
  in_ns "$a" ip link set eth0 up; in_ns "$b" ip link set eth0 up
  v=$(tput_mbit "$a" "$b" 10.78.0.2 3)
  ip netns del "$a"; ip netns del "$b"
  echo "$v"
}

# jnum VALUE: a JSON number, or null when the measurement failed.
jnum() { [[ $1 =~ ^[+-]?[0-9]+(\.[0-9]+)?$ ]] && echo "${1#+}" || echo null; }

cmd_validate() {
  local json=""
  while (($#)); do
    case $1 in
      --json) json=${2:?--json needs a FILE}; shift 2 ;;
      *) die "validate: unknown argument $1" ;;
    esac
  done
  need_root
  [[ -f $STATE/state ]] || die "nothing is up; run: scripts/netem.sh up SETTING"
  ensure_tools iperf3
  local SETTING TARGET_MBIT TARGET_RTT_MS WIRE_BIT BASE_RTT_MS DELAY_ONE_WAY_US CALIBRATED_RTT_MS
  # shellcheck disable=SC1091
  source "$STATE/state"
  if [[ $DELAY_ONE_WAY_US != 0 ]] && ! delayline_running; then
    die "the delay line is not running (see $STATE/delayline.log); run: scripts/netem.sh up $SETTING"
  fi
  local pairs=("p0 p1" "dealer p0" "client p0") p src dst rtt tp ok=1 rows=() fail=()
  echo "veil netem validate: $SETTING (${LABEL[$SETTING]}), tolerance ${TOLERANCE_PCT}%"
  printf '  %-12s %10s %10s %7s   %12s %12s %7s\n' pair "RTT ms" target "off%" "Mbit/s" target "off%"
  for p in "${pairs[@]}"; do
    read -r src dst <<<"$p"
    rtt=$(median_rtt_ms "$src" "${ADDR[$dst]}" 40)
    tp=$(tput_mbit "$NS_PREFIX$src" "$NS_PREFIX$dst" "${ADDR[$dst]}" 3)
    # A busy host (compilers) can starve one transfer: measure a second time
    # when the first is off, and keep the closer of the two.
    if ! awk -v m="$tp" -v t="$TARGET_MBIT" -v l=$TOLERANCE_PCT 'BEGIN {exit !((m - t) ^ 2 <= (t * l / 100) ^ 2)}'; then
      local tp2; tp2=$(tput_mbit "$NS_PREFIX$src" "$NS_PREFIX$dst" "${ADDR[$dst]}" 3)
      tp=$(awk -v a="$tp" -v b="$tp2" -v t="$TARGET_MBIT" 'BEGIN {
        if (a == "nan") print b; else if (b == "nan") print a;
        else print ((a - t) ^ 2 <= (b - t) ^ 2 ? a : b)}')
    fi
    local roff toff
    roff=$(awk -v m="$rtt" -v t="$TARGET_RTT_MS" 'BEGIN {printf "%+.1f", (m - t) / t * 100}')
    toff=$(awk -v m="$tp" -v t="$TARGET_MBIT" 'BEGIN {printf "%+.1f", (m - t) / t * 100}')
    printf '  %-12s %10s %10s %7s   %12s %12s %7s\n' "$src->$dst" "$rtt" "$TARGET_RTT_MS" "$roff" "$tp" "$TARGET_MBIT" "$toff"
    awk -v o="$roff" -v l=$TOLERANCE_PCT 'BEGIN {exit !(o <= l && o >= -l)}' || { ok=0; fail+=("$src->$dst RTT $roff%"); }
    awk -v o="$toff" -v l=$TOLERANCE_PCT 'BEGIN {exit !(o <= l && o >= -l)}' || { ok=0; fail+=("$src->$dst throughput $toff%"); }
    rows+=("$(printf '{"pair": "%s", "rtt_ms": %s, "rtt_off_pct": %s, "throughput_mbit_s": %s, "throughput_off_pct": %s}' \
      "$src->$dst" "$(jnum "$rtt")" "$(jnum "$roff")" "$(jnum "$tp")" "$(jnum "$toff")")")
  done
  local raw; raw=$(raw_veth_mbit)
  echo "  unshaped veth pair (host ceiling): $raw Mbit/s; host path RTT with no delay: $BASE_RTT_MS ms"
  echo "  delay added: $DELAY_ONE_WAY_US us each way; shaper: $WIRE_BIT bit/s on the wire"
  if [[ -n $json ]]; then
    local sep=$',\n    ' joined
    joined=$(printf '%s\x1f' "${rows[@]}"); joined=${joined%$'\x1f'}; joined=${joined//$'\x1f'/$sep}
    cat >"$json" <<EOF
{
  "setting": "$SETTING",
  "description": "${LABEL[$SETTING]}",
  "targets": {"rtt_ms": $TARGET_RTT_MS, "throughput_mbit_s": $TARGET_MBIT, "tolerance_pct": $TOLERANCE_PCT},
  "measured": [
    $joined
  ],
  "raw_veth_mbit_s": $(jnum "$raw"),
  "config": {"delay_one_way_us": $DELAY_ONE_WAY_US, "host_path_rtt_ms": $(jnum "$BASE_RTT_MS"),
             "rtt_at_calibration_ms": $(jnum "$CALIBRATED_RTT_MS"),
             "tbf_rate_bit_s": $WIRE_BIT, "tbf_burst_role_egress_bytes": $ROLE_BURST,
             "tbf_burst_switch_egress_bytes": $SWITCH_BURST, "mtu": $MTU,
             "rtt_method": "median of 40 pings, 10 ms apart",
             "throughput_method": "iperf3 TCP, 3 s after 1 s omitted, receiver payload rate; repeated once if off, closer kept"},
  "pass": $( ((ok)) && echo true || echo false ),
  "kernel": "$(uname -r)",
  "cpus": $(nproc),
  "loadavg_1m": $(cut -d' ' -f1 /proc/loadavg),
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
EOF
    echo "  wrote $json"
  fi
  if ((ok)); then echo "  PASS"; else
    echo "  FAIL: ${fail[*]}"
    awk -v r="$raw" -v t="$TARGET_MBIT" 'BEGIN {exit !(r < t * 0.95)}' \
      && echo "  (the unshaped veth reaches only $raw Mbit/s here: this host cannot carry $TARGET_MBIT Mbit/s)"
    exit 1
  fi
}

cmd_status() {
  [[ -f $STATE/state ]] || { echo "veil netem: down"; return 0; }
  cat "$STATE/state"
  delayline_running && echo "DELAYLINE_PID=$(<"$STATE/delayline.pid")" || echo "DELAYLINE_PID="
}

cmd_exec() {
  local role=${1:-}
  [[ -n ${ADDR[$role]:-} ]] || die "exec needs a ROLE: ${ROLES[*]}"
  shift
  (($#)) || die "exec $role needs a command"
  ns_exists "$NS_PREFIX$role" || die "namespace $NS_PREFIX$role does not exist; run: scripts/netem.sh up SETTING"
  exec ip netns exec "$NS_PREFIX$role" "$@"
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  exec) shift; cmd_exec "$@" ;;
  validate) shift; cmd_validate "$@" ;;
  status) shift; cmd_status ;;
  -h|--help|help) usage ;;
  "") usage >&2; exit 2 ;;
  *) die "unknown command: $1 (see --help)" ;;
esac
