#!/usr/bin/env bash
# PostgreSQL benchmark: pgbench through the agent vs. a bare Node TLS pipe vs. pgbouncer vs. direct,
# BENCH_ROUNDS times alternating (each round starting one target further on); connect latency; the
# agent's RSS with 1,000 idle sessions. Prints the proxy CPU per transaction first, then throughput and
# the ratios, each as median (min–max).
#   BENCH_DURATION=20 (seconds per pgbench -S run)  BENCH_ROUNDS=3
#   BENCH_PG_MODES="simple extended prepared" (pgbench -M modes, each measured in turn; default simple;
#   the worker line runs the first)  BENCH_TARGETS="node-pipe" (the pgbench runs' targets beside the
#   agent, of node-pipe pgbouncer direct; default all)  BENCH_PG_SCRIPT=tpcb-like (pgbench's built-in
#   script; default select-only, i.e. -S)
#   BENCH_DURATION=0 skips the throughput and worker parts; BENCH_CONNECT_DURATION=10 (0 skips)
#   BENCH_IDLE_SESSIONS=1000 (0 skips; BENCH_ROUNDS rounds too)
#   BENCH_AGENT_BEFORE=<another build's dist> (that agent joins the rounds: before/after in one run)
#   BENCH_AGENT_VARIANTS="name=<dist> ..." (more builds' agents in the same rounds, each read against the agent)
#   BENCH_AGENT_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" (profiles the agent), BENCH_PIPE_NODE_ARGS (the pipe),
#   BENCH_BEFORE_NODE_ARGS (the before agent's, in place of BENCH_AGENT_NODE_ARGS: BENCH_AGENT_BEFORE=dist
#   runs this build beside itself with other Node options)
#   BENCH_AUDIT=stdout (every agent's audit log on stdout, a pipe drained by a cat; default: a file)
#   BENCH_MALLOC=glibc, BENCH_BEFORE_MALLOC=glibc (every proxy, or the before agent, on glibc's malloc;
#   default: jemalloc preloaded, as the image runs the agent)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:/usr/lib/postgresql/15/bin:$PATH"
for bin in pgbench psql pgbouncer; do
  command -v "$bin" >/dev/null || { echo "bench/postgres.sh: $bin not found (run make deps)" >&2; exit 1; }
done
tsc -p tsconfig.build.json
exec node dist/bench/postgres-bench.js
