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
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_workdir drawbridge-cluster-bench

# Cluster + agent (one Node process).
start_env redis-cluster-env.js 900 "cluster bench environment"

declare -A ARGS=(
  [direct]="--cluster -p $CLUSTER_PORT --user default -a $CLUSTER_PASSWORD --tls --cacert $CLUSTER_CA"
  [agent]="-p $AGENT_PORT --tls --cacert $CLIENT_CA --cert $CLIENT_CERT --key $CLIENT_KEY"
)
declare -A PROXY_PID=([agent]=$ENV_PID)
EXTRA_ARGS=(-r 100000) # random keys, so every master gets traffic
ERRORS='error|MOVED|ASK'
run_benchmarks direct agent

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
