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
print_results 7 agent_cpu_us/op
echo
echo "ratio agent / direct redis-benchmark --cluster (target >= 0.70)"
print_ratios '
  function row(p, t,  r) {
    r = rps["agent "p" "t] / rps["direct "p" "t]
    printf "-P%-2s %-3s %.2f %s\n", p, t, r, (r >= 0.7 ? "ok" : "BELOW TARGET")
  }'
