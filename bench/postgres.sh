#!/usr/bin/env bash
# PostgreSQL benchmark: pgbench direct vs. through the agent vs. through pgbouncer, connect latency,
# and the agent's RSS with 1,000 idle sessions, in one run. Prints each figure and the ratios.
#   BENCH_DURATION=20 (seconds per pgbench -S run)  BENCH_CONNECT_DURATION=10  BENCH_IDLE_SESSIONS=1000
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:/usr/lib/postgresql/15/bin:$PATH"
for bin in pgbench psql pgbouncer; do
  command -v "$bin" >/dev/null || { echo "bench/postgres.sh: $bin not found (run make deps)" >&2; exit 1; }
done
tsc -p tsconfig.build.json
exec node dist/bench/postgres-bench.js
