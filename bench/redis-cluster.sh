#!/usr/bin/env bash
# Redis Cluster benchmark: the 6-node TLS + ACL cluster (3 masters + 3 replicas), in one run
#   direct  redis-benchmark --cluster ═TLS═▶ each master (the client knows the slots)
#   agent   redis-benchmark (plain, non-cluster) ═TLS═▶ agent ═TLS═▶ each master (the agent routes)
#   direct-resp3, agent-resp3   the same with redis-benchmark -3 (HELLO 3 on every connection, RESP3
#           replies; through the agent, node connections of RESP3 sessions speak RESP3 too)
# -t get,set, -n REQUESTS, -c CLIENTS, random keys over 100,000 (-r) so every master gets traffic; -P 1
# and -P 16. Prints ops/s, p50/p99, the agent's CPU per request and the agent/direct ratio (target >= 0.7),
# for RESP2 and RESP3.
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
ARGS[direct-resp3]="${ARGS[direct]} -3"
ARGS[agent-resp3]="${ARGS[agent]} -3"
declare -A PROXY_PID=([agent]=$ENV_PID [agent-resp3]=$ENV_PID)
EXTRA_ARGS=(-r 100000) # random keys, so every master gets traffic
ERRORS='error|MOVED|ASK'
run_benchmarks direct agent direct-resp3 agent-resp3

echo "Redis Cluster (3 masters + 3 replicas, TLS): redis-benchmark -t get,set -n $REQUESTS -c $CLIENTS -r 100000"
echo "(machine: $(nproc) cores, shared with the cluster, the agent and the client; numbers are indicative)"
print_results 12 agent_cpu_us/op
echo
echo "ratio agent / direct redis-benchmark --cluster (target >= 0.70), RESP2 and RESP3"
print_ratios '
  function row(p, t,  r, r3) {
    r = rps["agent "p" "t] / rps["direct "p" "t]
    r3 = rps["agent-resp3 "p" "t] / rps["direct-resp3 "p" "t]
    printf "-P%-2s %-3s RESP2 %.2f %s; RESP3 %.2f %s (agent RESP3 / RESP2 %.2f)\n", p, t,
      r, (r >= 0.7 ? "ok" : "BELOW TARGET"), r3, (r3 >= 0.7 ? "ok" : "BELOW TARGET"),
      rps["agent-resp3 "p" "t] / rps["agent "p" "t]
  }'
