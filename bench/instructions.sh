#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: a figure that does not
# move with the machine's load, for A/B of changes on a noisy machine (time-based figures
# here move by ±15 % between runs; this one by well under 1 %).
#
#   bench/instructions.sh [GATEWAY_BINARY ...]    # default: target/release/portcullis
#
# For each gateway binary, for the bare proxy (target/release/bare-proxy) and for the floor
# proxy (target/release/floor-proxy: the bare proxy plus the posture's fixed header work, with
# the configuration load.py writes), it starts the target under `valgrind --tool=callgrind`
# with instrumentation off, sends 200 unmeasured requests, turns instrumentation on, sends N requests (N=2000, `REQUESTS=` to change) over
# four keep-alive connections, and prints the instructions counted divided by N: the gateway
# with the access log off (`RUST_LOG=warn`) and on (`info`), on `examples/sdk-api.toml` with an
# API key made in a temporary key store, as `load.py` measures it (`GET /v1/users/42`).
# Instructions are not time: cache misses, system calls and wake-ups do not show here (about
# half of every proxy's CPU on this VM is kernel time), so confirm a gain with ab-gateway.sh.
# `KEEP=DIR` keeps each run's callgrind file in DIR, for `callgrind_annotate` to show where the
# instructions went. Needs valgrind (`apt-get install valgrind`). Loopback only; every run bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
n=${REQUESTS:-2000}
bins=("$@")
[[ ${#bins[@]} -gt 0 ]] || bins=(target/release/portcullis)
for b in "${bins[@]}" target/release/bare-proxy target/release/floor-proxy target/release/bench-upstream; do
  [[ -x $b ]] || { echo "$b is missing: cargo build --release -p portcullis-cli -p portcullis-bench --bins" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
# shellcheck source=bench/lib.sh
source bench/lib.sh

# N GET requests over four keep-alive connections; fails on anything but 200.
cat >"$work/client.py" <<'EOF'
import http.client, sys
port, n, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(4)]
headers = {"Authorization": "Bearer " + key} if key else {}
for i in range(n):
    c = conns[i % 4]
    c.request("GET", "/v1/users/42", headers=headers)
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"answer {r.status} to request {i}: not the proxied path")
EOF

up=$(port)
target/release/bench-upstream --listen "127.0.0.1:$up" >/dev/null 2>&1 &
pids+=($!)

runs=0
# measure NAME KEY COMMAND...: instructions per request of COMMAND, which listens on $listen.
measure() {
  local name=$1 key=$2
  shift 2
  runs=$((runs + 1))
  local out="$work/callgrind.$runs"
  TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$out" "$@" >/dev/null 2>"$work/valgrind.$runs.err" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$listen/" && break
    sleep 0.3
  done
  python3 "$work/client.py" "$listen" 200 "$key"
  callgrind_control -i on "$pid" >/dev/null 2>&1
  python3 "$work/client.py" "$listen" "$n" "$key"
  callgrind_control -i off "$pid" >/dev/null 2>&1
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  # The dump at exit holds everything counted while instrumentation was on.
  if [[ -n ${KEEP:-} ]]; then
    mkdir -p "$KEEP"
    cp "$out" "$KEEP/$runs.$(basename "${name%% *}").callgrind"
  fi
  python3 - "$name" "$n" "$out"* <<'EOF'
import sys
name, n, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
total = sum(int(l.split()[1]) for f in files for l in open(f) if l.startswith("totals:"))
print(f"{name:<44} {total / n:>10,.0f}")
EOF
}

key=$(keyed_policy "${bins[0]}" "$work" bench)
policy="$work/policy.toml"

echo "target                                       instructions/request"
listen=$(port)
measure bare-proxy "" target/release/bare-proxy --listen "127.0.0.1:$listen" --upstream "127.0.0.1:$up"
floor_conf "$policy" "$work/floor.conf"
listen=$(port)
FLOOR_API_KEY=$key measure floor-proxy "$key" target/release/floor-proxy --listen "127.0.0.1:$listen" \
  --upstream "127.0.0.1:$up" --config "$work/floor.conf"
for b in "${bins[@]}"; do
  for log in warn info; do
    listen=$(port)
    RUST_LOG=$log measure "$b (RUST_LOG=$log)" "$key" \
      "$b" serve --config "$policy" --upstream "http://127.0.0.1:$up" --listen "127.0.0.1:$listen"
  done
done
