# Sourced by the Redis bench scripts (bench/redis.sh, bench/redis-cluster.sh) from the repository root:
# a work directory removed on exit, the environment process (a dist/bench/*-env.js script printing
# `export` lines and `# ready`), and the redis-benchmark runs with the proxy CPU each one used.
# Env: REQUESTS (200000), CLIENTS (50), BENCH_ROUNDS (3), BENCH_TARGETS (all), BENCH_PIPELINES ("1 16"),
# BENCH_AGENT_NODE_ARGS (node options of the environment process, which runs the agents and the bare
# pipe: e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"; with BENCH_TARGETS=agent it profiles the agent alone).
REQUESTS=${REQUESTS:-200000}
ROUNDS=${BENCH_ROUNDS:-3}
CLIENTS=${CLIENTS:-50}
ENV_PID=""
KILL_ON_EXIT=() # further processes the caller starts, ended before the environment
EXTRA_ARGS=()   # redis-benchmark arguments for every run
ERRORS=error    # redis-benchmark stderr matching this (grep -iE) is shown

# bench_workdir PREFIX: a fresh $WORK under /tmp, removed on exit with every process started here.
bench_workdir() {
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for pid in "${KILL_ON_EXIT[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -n "$ENV_PID" ] && kill "$ENV_PID" 2>/dev/null && wait "$ENV_PID" 2>/dev/null || true
  rm -rf "$WORK"
}

# start_env SCRIPT TENTHS WHAT: runs node dist/bench/SCRIPT (its stdin stays open through a fifo until we
# exit, so it never outlives us), waits up to TENTHS × 0.1 s for `# ready` and sources its exports.
start_env() {
  mkfifo "$WORK/stdin"
  # shellcheck disable=SC2086
  node ${BENCH_AGENT_NODE_ARGS:-} "dist/bench/$1" <"$WORK/stdin" >"$WORK/env" 2>"$WORK/env.log" &
  ENV_PID=$!
  exec 3>"$WORK/stdin"
  for _ in $(seq 1 "$2"); do grep -q '^# ready' "$WORK/env" 2>/dev/null && break; sleep 0.1; done
  grep -q '^# ready' "$WORK/env" || { cat "$WORK/env.log"; echo "$3 did not start" >&2; exit 1; }
  # shellcheck disable=SC1091
  source "$WORK/env"
}

# CPU time (user and system, clock ticks) of a process: on a shared machine, proxy CPU per request is
# steadier than throughput, and its user part (the proxy's own code and TLS) steadier still.
HZ=$(getconf CLK_TCK)
# cpu_ticks PIDS: "user sys" summed over the processes listed (an agent's primary and its workers).
cpu_ticks() {
  local pid user=0 sys=0 u s
  for pid in ${1:-}; do
    read -r u s < <(awk '{print $14, $15}' "/proc/$pid/stat")
    user=$((user + u)) sys=$((sys + s))
  done
  echo "$user $sys"
}

# run_benchmarks TARGET...: for -P 1 and -P 16, BENCH_ROUNDS rounds, each running SET then GET against
# every target in turn (so the runs compared sit side by side), one redis-benchmark run each, so the CPU
# used can be attributed to it, with the caller's ARGS[target] and EXTRA_ARGS. BENCH_TARGETS (space
# separated) keeps only those targets. Appends "target P test round ops/s p50_ms p99_ms user_us sys_us"
# to $WORK/results, the CPU per request of PROXY_PID[target] ("-" for targets without a proxy).
run_benchmarks() {
  local p t test round line cpu u0 s0 u1 s1
  local targets=()
  for t in "$@"; do
    if [ -z "${BENCH_TARGETS:-}" ] || [[ " $BENCH_TARGETS " == *" $t "* ]]; then targets+=("$t"); fi
  done
  # CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  for p in ${BENCH_PIPELINES:-1 16}; do
    for round in $(seq 1 "$ROUNDS"); do
      for test in set get; do
        for t in "${targets[@]}"; do
          read -r u0 s0 < <(cpu_ticks "${PROXY_PID[$t]:-}")
          # shellcheck disable=SC2086
          line=$(timeout 600 redis-benchmark -h 127.0.0.1 ${ARGS[$t]} -t "$test" -n "$REQUESTS" \
            -c "$CLIENTS" -P "$p" "${EXTRA_ARGS[@]}" --csv 2>"$WORK/err" | tail -1)
          read -r u1 s1 < <(cpu_ticks "${PROXY_PID[$t]:-}")
          cpu="- -"
          [ -n "${PROXY_PID[$t]:-}" ] && cpu=$(awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$HZ" -v n="$REQUESTS" \
            'BEGIN {printf "%.2f %.2f", u / hz * 1e6 / n, s / hz * 1e6 / n}')
          echo "$line" | tr -d '"' | awk -F, -v t="$t" -v p="$p" -v r="$round" -v cpu="$cpu" \
            '{print t, p, $1, r, $2, $5, $7, cpu}' | tee -a "$WORK/results" | awk '{printf "  %s\n", $0}' >&2
          if grep -qiE "$ERRORS" "$WORK/err"; then echo "redis-benchmark against $t reported errors:" >&2; cat "$WORK/err" >&2; fi
        done
      done
    done
  done
}

# print_results MODE: $WORK/results summarised by bench/redis-results.ts (MODE standalone or cluster):
# proxy CPU per request first, then throughput, latency and the same-round ratios, each as median (min–max).
print_results() {
  node dist/bench/redis-results.js "$1" "$ROUNDS" <"$WORK/results"
}
