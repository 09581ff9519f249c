#!/usr/bin/env bash
# Rate-limit decisions through the gateway: no limit, the in-memory store and the Redis store,
# interleaved under the same load (issue 5: "Redis-backed decisions per second through the
# gateway, with the ratio to in-memory").
#
#   bench/ratelimit-ab.sh [ROUNDS]          # default 5 rounds, about 17 s per round
#
# Needs target/release/portcullis and target/release/bench-upstream; when one is missing the
# script builds both first with
#   cargo build --release -p portcullis-cli -p portcullis-bench --bins
# Needs wrk, curl, python3, redis-cli and a Redis on loopback: REDIS_URL (default
# redis://127.0.0.1:6379), checked with `redis-cli -u "$REDIS_URL" ping`.
#
# Three policies (written into a temporary directory), one gateway each, same route `/v1/*`,
# access log off, every request `GET /v1/users/42` with `x-client-id: bench-PID`:
#   none    no [rate-limit]
#   memory  one quota keyed by the `x-client-id` header, limit 1000000 per 1s, the most the
#           counters allow (1 µs apart) and far above what one gateway core serves: never refuses
#   redis   the same quota with store = { env = "REDIS_URL" } (one EVALSHA per decision)
# One client id means one hot bucket: the realistic hot path for one busy client (and, in
# Redis, one key); spreading the load over many buckets is not measured here.
#
# Pinned like load.py and ab-gateway.sh: wrk and the upstream on CPU 0, the gateways on CPU 1,
# TOKIO_WORKER_THREADS=1. redis-server is not ours and is not pinned: it runs wherever the
# scheduler puts it, taking CPU from the gateway or from wrk. Per round and target, in the order
# none, memory, redis: a 1 s unmeasured wrk run, then `wrk -t1 -c32 -d4s`; requests/s, the
# gateway's CPU µs per request (utime+stime from /proc/PID/stat over the measured run), and for
# redis the EVAL/EVALSHA calls per request (from INFO commandstats: must be about 1, else the
# gateway fell back to memory) and redis-server's CPU µs per decision when its /proc entry is
# visible. The summary gives medians over rounds and medians of same-round ratios.
# Loopback only; every run is bounded. Exits 1 on any failure.
set -euo pipefail
rounds=${1:-5}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [ROUNDS]" >&2; exit 1; }
cd "$(dirname "$0")/.."
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}

fail() { echo "ratelimit-ab: $*" >&2; exit 1; }
for tool in wrk curl python3 redis-cli taskset; do
  command -v "$tool" >/dev/null || fail "$tool is missing (wrk: apt-get install wrk; redis-cli: apt-get install redis-tools)"
done
# Loopback only: the Redis host must be 127.0.0.1, localhost or [::1].
[[ $REDIS_URL =~ ^rediss?://([^@/]*@)?(127\.0\.0\.1|localhost|\[::1\])(:[0-9]+)?(/[0-9]*)?$ ]] \
  || fail "REDIS_URL must point at a Redis on loopback (redis://127.0.0.1:PORT), got a different host"
rcli() { timeout 5 redis-cli -u "$REDIS_URL" "$@" 2>/dev/null | tr -d '\r'; }
[[ $(rcli ping || true) == PONG ]] \
  || fail "Redis is not reachable at REDIS_URL ($REDIS_URL): start one (redis-server) or set REDIS_URL"

if [[ ! -x target/release/portcullis || ! -x target/release/bench-upstream ]]; then
  echo "building target/release/portcullis and bench-upstream" >&2
  cargo build --release -p portcullis-cli -p portcullis-bench --bins >&2
fi

tick=$(getconf CLK_TCK)
dir=$(mktemp -d)
pids=()
cleanup() {
  if ((${#pids[@]})); then kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
# shellcheck source=bench/lib.sh
source bench/lib.sh
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
client="bench-$$"

# The policies.
for t in none memory redis; do
  {
    echo 'environment = "development"'
    echo
    echo '[logging]'
    echo 'access-log = false'
    echo
    case $t in
      memory|redis)
        echo '[rate-limit]'
        [[ $t == redis ]] && echo 'store = { env = "REDIS_URL" }'
        echo
        echo '[rate-limit.quotas.per-client]'
        echo 'key = "header"'
        echo 'header = "x-client-id"'
        echo 'limit = 1000000'
        echo 'per = "1s"'
        echo 'reason = "Benchmark: high enough never to refuse, so every request is an admitted decision."'
        echo
        ;;
    esac
    echo '[[route]]'
    echo 'name = "api"'
    echo 'paths = ["/v1/*"]'
    echo 'cache-control = "no-store"'
    echo 'reason = "Benchmark route."'
    [[ $t == none ]] || echo 'rate-limit = ["per-client"]'
  } >"$dir/$t.toml"
done

# The upstream and the gateways.
up=$(port)
taskset -c 0 target/release/bench-upstream --listen "127.0.0.1:$up" >"$dir/upstream.log" 2>&1 &
pids+=($!)
declare -A pid_of port_of
for t in none memory redis; do
  p=$(port)
  TOKIO_WORKER_THREADS=1 taskset -c 1 target/release/portcullis serve --config "$dir/$t.toml" \
    --upstream "http://127.0.0.1:$up" --listen "127.0.0.1:$p" >"$dir/$t.log" 2>&1 &
  pids+=($!)
  pid_of[$t]=$!
  port_of[$t]=$p
done

head_of() { curl -s --max-time 2 -o /dev/null -D - -H "x-client-id: $client" "http://127.0.0.1:${port_of[$1]}/v1/users/42" | tr -d '\r'; }
evals() { rcli info commandstats | awk -F'[:=,]' '/^cmdstat_eval(sha)?:/ {n += $3} END {print n + 0}'; }
for t in none memory redis; do
  ok=
  for _ in $(seq 100); do
    kill -0 "${pid_of[$t]}" 2>/dev/null || break
    h=$(head_of "$t" || true)
    if [[ $h == "HTTP/1.1 200"* ]]; then ok=1; break; fi
    sleep 0.1
  done
  [[ $ok ]] || { cat "$dir/$t.log" >&2; fail "the $t gateway did not answer 200 (it exited, or 10 s passed)"; }
  h=$(head_of "$t" || true)
  has=$(grep -ci '^x-ratelimit-remaining:' <<<"$h" || true)
  if [[ $t == none ]]; then
    ((has == 0)) || fail "the none gateway sends x-ratelimit-remaining: its policy has a rate limit"
  else
    ((has == 1)) || { cat "$dir/$t.log" >&2; fail "the $t gateway does not send x-ratelimit-remaining"; }
  fi
done
# The redis gateway must really ask Redis (with fail-open it would count in memory otherwise).
e0=$(evals)
for _ in 1 2 3 4 5; do head_of redis >/dev/null; done
e1=$(evals)
((e1 - e0 >= 5)) || { cat "$dir/redis.log" >&2; fail "the redis gateway made $((e1 - e0)) EVAL/EVALSHA calls for 5 requests: is it using Redis?"; }

# redis-server's own CPU, if its process is visible here.
rpid=$(rcli info server | awk -F: '/^process_id:/ {print $2}')
if [[ -n $rpid && -r /proc/$rpid/stat && $(cat "/proc/$rpid/comm" 2>/dev/null) == redis-server* ]]; then
  :
else
  echo "redis-server's process is not visible here: its CPU per decision is skipped" >&2
  rpid=
fi

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews the figures)"
echo "rounds=$rounds wrk -t1 -c32 -d4s (after 1 s unmeasured), GET /v1/users/42, x-client-id: $client"
printf '%-5s %-7s %10s %8s %12s %10s %14s\n' round target req/s errors cpu_us/req evals/req redis_us/dec
rows=$dir/rows
for r in $(seq "$rounds"); do
  for t in none memory redis; do
    url="http://127.0.0.1:${port_of[$t]}/v1/users/42"
    timeout 10 taskset -c 0 wrk -t1 -c32 -d1s -H "x-client-id: $client" "$url" >/dev/null
    [[ $t == redis ]] && e0=$(evals)
    [[ -n $rpid ]] && r0=$(cpu "$rpid")
    c0=$(cpu "${pid_of[$t]}")
    out=$(timeout 15 taskset -c 0 wrk -t1 -c32 -d4s -H "x-client-id: $client" "$url")
    c1=$(cpu "${pid_of[$t]}")
    [[ -n $rpid ]] && r1=$(cpu "$rpid")
    [[ $t == redis ]] && e1=$(evals)
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    errs=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/[^0-9 ]/, " "); for (i = 1; i <= NF; i++) n += $i} END {print n + 0}' <<<"$out")
    [[ -n $n && $n -gt 0 ]] || fail "wrk completed no requests against $t: $out"
    us=$(python3 -c "print(round(($c1 - $c0) * 1e6 / $tick / $n, 2))")
    ev=- rus=-
    if [[ $t == redis ]]; then
      ev=$(python3 -c "print(round(($e1 - $e0) / $n, 3))")
      [[ -n $rpid ]] && rus=$(python3 -c "print(round(($r1 - $r0) * 1e6 / $tick / $n, 2))")
    fi
    printf '%-5s %-7s %10s %8s %12s %10s %14s\n' "$r" "$t" "$rps" "$errs" "$us" "$ev" "$rus"
    echo "$r $t $rps $errs $us $ev $rus" >>"$rows"
  done
done

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$rows" <<'EOF'
import sys
from statistics import median
rows = [l.split() for l in open(sys.argv[1])]
d = {}
for r, t, rps, errs, us, ev, rus in rows:
    d.setdefault(t, {})[r] = dict(rps=float(rps), errs=int(errs), us=float(us), ev=ev, rus=rus)
rounds = sorted(d["none"], key=int)
print("\nmedians over %d rounds" % len(rounds))
for t in ("none", "memory", "redis"):
    x = d[t]
    print("  %-7s %10.0f req/s  %7.2f cpu_us/req  %d errors" % (
        t, median(x[r]["rps"] for r in rounds), median(x[r]["us"] for r in rounds),
        sum(x[r]["errs"] for r in rounds)))
def ratio(a, b):
    return median(d[a][r]["rps"] / d[b][r]["rps"] for r in rounds)
def added(a, b):
    return median(d[a][r]["us"] - d[b][r]["us"] for r in rounds)
print("medians of same-round ratios, req/s:")
print("  memory/none %.3f   redis/none %.3f   redis/memory %.3f" % (
    ratio("memory", "none"), ratio("redis", "none"), ratio("redis", "memory")))
print("gateway CPU added per request (median of same-round differences):")
print("  memory %+.2f us   redis %+.2f us   redis over memory %+.2f us" % (
    added("memory", "none"), added("redis", "none"), added("redis", "memory")))
ev = [float(d["redis"][r]["ev"]) for r in rounds]
print("redis: EVAL/EVALSHA per request, median %.3f (min %.3f)" % (median(ev), min(ev)))
rus = [d["redis"][r]["rus"] for r in rounds]
if "-" not in rus:
    print("redis-server CPU per decision: median %.2f us (rounds: %s)" % (
        median(float(v) for v in rus), ", ".join(rus)))
if any(d[t][r]["errs"] for t in d for r in rounds):
    print("errors: some requests were not 2xx or failed (see the errors column)")
    sys.exit(1)
EOF
