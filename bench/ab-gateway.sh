#!/usr/bin/env bash
# A/B of two gateway binaries, interleaved: the same policy, access log on and off.
#
#   bench/ab-gateway.sh OLD_BINARY NEW_BINARY [ROUNDS]
#
# Build the old one from another worktree first, e.g.
#   git worktree add /tmp/old <commit> && (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target cargo build --release -p portcullis-cli)
#   cargo build --release -p portcullis-cli -p portcullis-bench --bins
#   bench/ab-gateway.sh /tmp/old-target/release/portcullis target/release/portcullis
#
# Pinned like load.py (wrk and the upstream on CPU 0, the gateways on CPU 1, one worker each).
# Prints one line per round and target: requests/s and CPU µs per request (utime+stime from
# /proc/PID/stat, in clock ticks, over the measured wrk run), then the user and system parts.
# Loopback only; every run bounded.
set -euo pipefail
old=${1:?old binary}
new=${2:?new binary}
rounds=${3:-5}
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
tick=$(getconf CLK_TCK)
pids=()
# shellcheck source=bench/lib.sh
source bench/lib.sh

# examples/sdk-api.toml requires an API key on the measured path (as load.py does): a copy of
# the policy with its SQLite key store in a temporary directory, one key made there, and every
# request carrying it, so the measured path is the authenticated one, not a 401.
work=$(mktemp -d)
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
key=$(keyed_policy "$new" "$work" bench)
policy="$work/policy.toml"
auth=(-H "Authorization: Bearer $key")

up=$(port)
taskset -c 0 target/release/bench-upstream --listen "127.0.0.1:$up" >/dev/null 2>&1 &
pids+=($!)
declare -A pid_of port_of
for t in old:info new:info old:warn new:warn; do
  bin=$old; [[ $t == new:* ]] && bin=$new
  p=$(port)
  RUST_LOG=${t#*:} TOKIO_WORKER_THREADS=1 taskset -c 1 "$bin" serve --config "$policy" \
    --upstream "http://127.0.0.1:$up" --listen "127.0.0.1:$p" >/dev/null 2>&1 &
  pids+=($!)
  pid_of[$t]=$!
  port_of[$t]=$p
done
sleep 2
# utime and stime of the whole process (every thread), in clock ticks.
cpu() { awk '{print $14, $15}' "/proc/$1/stat"; }
echo "round target log req/s cpu_us_per_req user_us sys_us"
for r in $(seq "$rounds"); do
  for t in old:info new:info old:warn new:warn; do
    url="http://127.0.0.1:${port_of[$t]}/v1/users/42"
    taskset -c 0 wrk -t1 -c32 -d1s "${auth[@]}" "$url" >/dev/null
    read -r u0 s0 < <(cpu "${pid_of[$t]}")
    out=$(taskset -c 0 wrk -t1 -c32 -d4s "${auth[@]}" "$url")
    if grep -q "Non-2xx" <<<"$out"; then echo "round $r $t: non-2xx answers, not the proxied path" >&2; exit 1; fi
    read -r u1 s1 < <(cpu "${pid_of[$t]}")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    per() { python3 -c "print(round(($1) * 1e6 / $tick / $n, 2))"; }
    echo "$r ${t%:*} ${t#*:} $rps $(per "$u1 + $s1 - $u0 - $s0") $(per "$u1 - $u0") $(per "$s1 - $s0")"
  done
done
