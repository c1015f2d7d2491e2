#!/usr/bin/env bash
# Redis standalone benchmark, in one run: redis-benchmark -t get,set -n 200000 -c 50 with -P 1 and -P 16
# against the same Redis 7
#   direct-plain   redis-benchmark → Redis (plaintext)
#   direct-tls     redis-benchmark → Redis (TLS)
#   nutcracker     redis-benchmark → twemproxy → Redis (plaintext both hops: nutcracker has no TLS)
#   agent          redis-benchmark ═TLS═▶ agent ═TLS═▶ Redis   (production setting: audit on, rules checked)
#   agent-plainbe  redis-benchmark ═TLS═▶ agent ──plain──▶ Redis (same backend hop as nutcracker)
#   node-tls-pipe  redis-benchmark ═TLS═▶ bare Node byte pipe ═TLS═▶ Redis (no parsing, rules or audit):
#                  the floor of any Node proxy with both hops encrypted, to read the agent's numbers against
#   direct-tls-resp3, agent-resp3   the direct-tls and agent runs again with redis-benchmark -3 (HELLO 3 on
#                  every connection, RESP3 replies); agent-resp3 is skipped while the agent lacks RESP3
# The agent always requires TLS from clients, so its fair baselines are direct-tls (same client hop) and
# nutcracker (a proxy hop); both are printed. Then bench/redis-cluster.sh, when present, runs the
# Redis Cluster part. Usage: bash bench/redis.sh  (after `make build`; `make bench-redis` does both).
# Each comparison runs BENCH_ROUNDS (3) times, the targets alternating within a round; the summary
# prints the proxy CPU per request first, then throughput and the same-round ratios, median (min–max).
# Each proxy runs in its own process, started the same way, and is charged that process's CPU alone.
# Env: REQUESTS (200000), CLIENTS (50), BENCH_ROUNDS, BENCH_TARGETS, BENCH_PIPELINES, BENCH_AGENT_BEFORE,
# BENCH_WORKERS, BENCH_AGENT_NODE_ARGS, BENCH_PIPE_NODE_ARGS, BENCH_BEFORE_NODE_ARGS (bench/lib.sh);
# BENCH_CLUSTER=0 skips the Redis Cluster part; BENCH_IDLE_SESSIONS (1000; 0 skips) idle sessions through
# the agent and the bare pipe, and where their bytes are (bench/redis-idle.ts); BENCH_CONNECT=N (0: skipped,
# the default) then measures new sessions: N GETs with redis-benchmark -k 0 (a connection each: two TLS
# handshakes, the agent's login and audit) against the agent, the bare pipe and agent-before, and prints
# the proxy CPU per connection (2000: 10–40 s per target and round on this 2-core machine).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_workdir drawbridge-redis-bench

# Redis, and every proxy below in a process of its own (bench/redis-bench-env.ts).
start_env redis-bench-env.js 300 "bench environment"

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
NUT_PORT=$(free_port)
cat >"$WORK/nutcracker.yml" <<YAML
bench:
  listen: 127.0.0.1:${NUT_PORT}
  hash: fnv1a_64
  distribution: ketama
  redis: true
  redis_auth: ${REDIS_PASSWORD}
  server_connections: 1
  servers:
    - 127.0.0.1:${REDIS_PLAIN_PORT}:1
YAML
nutcracker -c "$WORK/nutcracker.yml" -a 127.0.0.1 -s "$(free_port)" -p "$WORK/nutcracker.pid" -o "$WORK/nutcracker.log" &
NUT_PID=$!
KILL_ON_EXIT+=("$NUT_PID")
for _ in $(seq 1 50); do
  [ "$(redis-cli -p "$NUT_PORT" -a "$REDIS_PASSWORD" --no-auth-warning PING 2>/dev/null)" = PONG ] && break
  kill -0 "$NUT_PID" 2>/dev/null || { cat "$WORK/nutcracker.log" >&2; echo "nutcracker did not start" >&2; exit 1; }
  sleep 0.1
done

AGENT_TLS=(--tls --cacert "$CLIENT_CA" --cert "$CLIENT_CERT" --key "$CLIENT_KEY")
declare -A ARGS=(
  [direct-plain]="-p $REDIS_PLAIN_PORT -a $REDIS_PASSWORD"
  [direct-tls]="-p $REDIS_TLS_PORT -a $REDIS_PASSWORD --tls --cacert $REDIS_CA"
  [nutcracker]="-p $NUT_PORT -a $REDIS_PASSWORD"
  [agent]="-p $AGENT_PORT ${AGENT_TLS[*]}"
  [agent-plainbe]="-p $AGENT_PLAIN_BACKEND_PORT ${AGENT_TLS[*]}"
  [node-tls-pipe]="-p $PIPE_PORT -a $REDIS_PASSWORD ${AGENT_TLS[*]}"
)
TARGETS=(direct-plain direct-tls nutcracker node-tls-pipe agent agent-plainbe direct-tls-resp3)
ARGS[direct-tls-resp3]="${ARGS[direct-tls]} -3"
ARGS[agent-resp3]="-p $AGENT_RESP3_PORT ${AGENT_TLS[*]} -3" # the agent again, in a process of its own
if redis-cli -h 127.0.0.1 -p "$AGENT_RESP3_PORT" "${AGENT_TLS[@]}" HELLO 3 2>&1 | grep -qx 'proto 3'; then
  TARGETS+=(agent-resp3)
  RESP3_ROW=""
else
  RESP3_ROW="agent-resp3: skipped: agent lacks RESP3 (HELLO 3 not answered with proto 3)"
fi

# The proxy process whose CPU (with its children's) each target's run is charged (direct targets have none).
declare -A PROXY_PID=([nutcracker]=$NUT_PID [node-tls-pipe]=$PIPE_PID [agent]=$AGENT_PID
  [agent-plainbe]=$AGENT_PLAIN_BACKEND_PID [agent-resp3]=$AGENT_RESP3_PID)
add_agent_rows
run_benchmarks "${TARGETS[@]}"

echo
echo "redis-benchmark -t get,set -n $REQUESTS -c $CLIENTS (machine: $(nproc) cores, shared; numbers are indicative)"
echo "agent = TLS client hop + TLS backend hop, audit on; node-tls-pipe = the same hops with no parsing, rules or audit"
print_results standalone # with the worker line: agent-Nw against the one-process agent
if [ -n "$RESP3_ROW" ]; then echo "$RESP3_ROW"; fi
if [ "${BENCH_CONNECT:-0}" != 0 ]; then
  echo
  echo "new sessions: redis-benchmark -k 0 -t get -n $BENCH_CONNECT -c $CLIENTS (a connection per request: CPU per connection)"
  : >"$WORK/results"
  connect_targets=(node-tls-pipe agent)
  [ -n "${PROXY_PID[agent-before]:-}" ] && connect_targets+=(agent-before)
  EXTRA_ARGS=(-k 0)
  REQUESTS=$BENCH_CONNECT BENCH_PIPELINES=1 BENCH_TESTS=get BENCH_TARGETS= run_benchmarks "${connect_targets[@]}"
  print_results standalone
fi
if [ "${BENCH_IDLE_SESSIONS:-1000}" != 0 ]; then
  echo
  node dist/bench/redis-idle.js
fi

# ---- Redis Cluster part: bench/redis-cluster.sh (owned by the cluster engine) runs here when present.
if [ -f bench/redis-cluster.sh ] && [ "${BENCH_CLUSTER:-1}" != 0 ]; then
  echo
  bash bench/redis-cluster.sh
fi
