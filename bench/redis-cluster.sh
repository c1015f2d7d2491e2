#!/usr/bin/env bash
# Redis Cluster benchmark: the 6-node TLS + ACL cluster (3 masters + 3 replicas), in one run
#   direct  redis-benchmark --cluster ═TLS═▶ each master (the client knows the slots)
#   agent   redis-benchmark (plain, non-cluster) ═TLS═▶ agent ═TLS═▶ each master (the agent routes)
# -t get,set, -n REQUESTS, -c CLIENTS, random keys over 100,000 (-r) so every master gets traffic; -P 1
# and -P 16. Prints ops/s, p50/p99, the agent's CPU per request and the agent/direct ratio (target >= 0.7).
# Usage: bash bench/redis-cluster.sh  (after `make build`; `make bench-redis-cluster` does both).
# Env: REQUESTS (200000), CLIENTS (50).
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}
WORK=$(mktemp -d /tmp/drawbridge-cluster-bench.XXXXXX)
ENV_PID=""
cleanup() {
  [ -n "$ENV_PID" ] && kill "$ENV_PID" 2>/dev/null && wait "$ENV_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Cluster + agent (one Node process; its stdin stays open through the fifo until we exit).
mkfifo "$WORK/stdin"
node dist/bench/redis-cluster-env.js <"$WORK/stdin" >"$WORK/env" 2>"$WORK/env.log" &
ENV_PID=$!
exec 3>"$WORK/stdin"
for _ in $(seq 1 900); do grep -q '^# ready' "$WORK/env" 2>/dev/null && break; sleep 0.1; done
grep -q '^# ready' "$WORK/env" || { cat "$WORK/env.log"; echo "cluster bench environment did not start" >&2; exit 1; }
# shellcheck disable=SC1091
source "$WORK/env"

declare -A ARGS=(
  [direct]="--cluster -p $CLUSTER_PORT --user default -a $CLUSTER_PASSWORD --tls --cacert $CLUSTER_CA"
  [agent]="-p $AGENT_PORT --tls --cacert $CLIENT_CA --cert $CLIENT_CERT --key $CLIENT_KEY"
)
declare -A PROXY_PID=([agent]=$ENV_PID)
ticks() { [ -n "${1:-}" ] && awk '{print $14 + $15}' "/proc/$1/stat" || echo 0; }
HZ=$(getconf CLK_TCK)

# CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
for p in 1 16; do
  for t in direct agent; do
    for test in set get; do
      before=$(ticks "${PROXY_PID[$t]:-}")
      # shellcheck disable=SC2086
      line=$(timeout 600 redis-benchmark -h 127.0.0.1 ${ARGS[$t]} -t "$test" -n "$REQUESTS" \
        -c "$CLIENTS" -P "$p" -r 100000 --csv 2>"$WORK/err" | tail -1)
      after=$(ticks "${PROXY_PID[$t]:-}")
      cpu="-"
      [ -n "${PROXY_PID[$t]:-}" ] && cpu=$(awk -v d=$((after - before)) -v hz="$HZ" -v n="$REQUESTS" 'BEGIN {printf "%.1f", d / hz * 1e6 / n}')
      echo "$line" | tr -d '"' | awk -F, -v t="$t" -v p="$p" -v cpu="$cpu" '{print t, p, $1, $2, $5, $7, cpu}' >>"$WORK/results"
      if grep -qiE 'error|MOVED|ASK' "$WORK/err"; then echo "redis-benchmark against $t reported errors:" >&2; cat "$WORK/err" >&2; fi
    done
  done
done

echo "Redis Cluster (3 masters + 3 replicas, TLS): redis-benchmark -t get,set -n $REQUESTS -c $CLIENTS -r 100000"
echo "(machine: $(nproc) cores, shared with the cluster, the agent and the client; numbers are indicative)"
printf '%-7s %3s %-4s %12s %9s %9s %14s\n' target P test ops/s p50_ms p99_ms agent_cpu_us/op
sort -k2,2n -k3,3 -s "$WORK/results" | awk '{printf "%-7s %3s %-4s %12.0f %9.3f %9.3f %14s\n", $1, $2, $3, $4, $5, $6, $7}'
echo
echo "ratio agent / direct redis-benchmark --cluster (target >= 0.70)"
awk '
  { rps[$1" "$2" "$3] = $4 }
  END {
    split("SET GET", tests, " ")
    for (pi = 1; pi <= 2; pi++) {
      p = (pi == 1) ? 1 : 16
      for (ti = 1; ti <= 2; ti++) {
        t = tests[ti]
        r = rps["agent "p" "t] / rps["direct "p" "t]
        printf "-P%-2s %-3s %.2f %s\n", p, t, r, (r >= 0.7 ? "ok" : "BELOW TARGET")
      }
    }
  }' "$WORK/results"
