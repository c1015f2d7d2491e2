#!/usr/bin/env bash
# Redis Cluster benchmark: the 6-node TLS + ACL cluster (3 masters + 3 replicas), in one run
#   direct  redis-benchmark --cluster ═TLS═▶ each master (the client knows the slots)
#   agent   redis-benchmark (plain, non-cluster) ═TLS═▶ agent ═TLS═▶ each master (the agent routes)
#   direct-resp3, agent-resp3   the same with redis-benchmark -3 (HELLO 3 on every connection, RESP3
#           replies; through the agent, node connections of RESP3 sessions speak RESP3 too)
#   agent-Nw    the agent as the CLI runs it with BENCH_WORKERS (2) worker processes (1 skips it):
#           the worker line, against the one-process agent (CPU counts the primary and its workers)
# -t get,set, -n REQUESTS, -c CLIENTS, random keys over 100,000 (-r) so every master gets traffic; -P 1
# and -P 16, BENCH_ROUNDS times alternating. Prints the agent's CPU per request, ops/s, p99 and the
# agent/direct ratio (target >= 0.7), each as median (min–max), for RESP2 and RESP3.
# Usage: bash bench/redis-cluster.sh  (after `make build`; `make bench-redis-cluster` does both).
# Env: REQUESTS (200000), CLIENTS (50), BENCH_ROUNDS, BENCH_TARGETS, BENCH_AGENT_NODE_ARGS, BENCH_PIPELINES
# (bench/lib.sh), BENCH_WORKERS; BENCH_AGENT_BEFORE (another build's dist): its agent, in its own process
# in front of the same cluster, runs in the same rounds as agent-before, for before/after CPU and ops/s.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_workdir drawbridge-cluster-bench

# The cluster, and each agent in a process of its own (bench/redis-cluster-env.ts).
start_env redis-cluster-env.js 900 "cluster bench environment"

declare -A ARGS=(
  [direct]="--cluster -p $CLUSTER_PORT --user default -a $CLUSTER_PASSWORD --tls --cacert $CLUSTER_CA"
  [agent]="-p $AGENT_PORT --tls --cacert $CLIENT_CA --cert $CLIENT_CERT --key $CLIENT_KEY"
)
ARGS[direct-resp3]="${ARGS[direct]} -3"
ARGS[agent-resp3]="-p $AGENT_RESP3_PORT --tls --cacert $CLIENT_CA --cert $CLIENT_CERT --key $CLIENT_KEY -3"
declare -A PROXY_PID=([agent]=$AGENT_PID [agent-resp3]=$AGENT_RESP3_PID)
EXTRA_ARGS=(-r 100000) # random keys, so every master gets traffic
TARGETS=(direct agent direct-resp3 agent-resp3)
add_agent_rows
ERRORS='error|MOVED|ASK'
run_benchmarks "${TARGETS[@]}"

echo "Redis Cluster (3 masters + 3 replicas, TLS): redis-benchmark -t get,set -n $REQUESTS -c $CLIENTS -r 100000"
echo "(machine: $(nproc) cores, shared with the cluster, the agent and the client; numbers are indicative)"
print_results cluster
