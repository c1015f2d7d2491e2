# Sourced by the Redis bench scripts (bench/redis.sh, bench/redis-cluster.sh) from the repository root:
# a work directory removed on exit, the environment process (a dist/bench/*-env.js script printing
# `export` lines and `# ready`), and the redis-benchmark runs with the proxy CPU each one used.
# Env: REQUESTS (200000), CLIENTS (50).
REQUESTS=${REQUESTS:-200000}
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
  node "dist/bench/$1" <"$WORK/stdin" >"$WORK/env" 2>"$WORK/env.log" &
  ENV_PID=$!
  exec 3>"$WORK/stdin"
  for _ in $(seq 1 "$2"); do grep -q '^# ready' "$WORK/env" 2>/dev/null && break; sleep 0.1; done
  grep -q '^# ready' "$WORK/env" || { cat "$WORK/env.log"; echo "$3 did not start" >&2; exit 1; }
  # shellcheck disable=SC1091
  source "$WORK/env"
}

# CPU time (user+sys, clock ticks) of the processes listed in $1 (an agent's primary and workers): on a
# shared machine, proxy CPU per request is steadier than throughput.
ticks() {
  local pid sum=0
  for pid in ${1:-}; do sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
  echo "$sum"
}
HZ=$(getconf CLK_TCK)

# run_benchmarks TARGET...: for -P 1 and -P 16, each target, SET then GET, one redis-benchmark run each
# (so the CPU used can be attributed to it) with the caller's ARGS[target] and EXTRA_ARGS; appends
# "target P test ops/s p50_ms p99_ms cpu_us/op" to $WORK/results, the CPU of PROXY_PID[target] ("-" for
# targets without a proxy).
run_benchmarks() {
  local p t test before after line cpu
  # CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  for p in 1 16; do
    for t in "$@"; do
      for test in set get; do
        before=$(ticks "${PROXY_PID[$t]:-}")
        # shellcheck disable=SC2086
        line=$(timeout 600 redis-benchmark -h 127.0.0.1 ${ARGS[$t]} -t "$test" -n "$REQUESTS" \
          -c "$CLIENTS" -P "$p" "${EXTRA_ARGS[@]}" --csv 2>"$WORK/err" | tail -1)
        after=$(ticks "${PROXY_PID[$t]:-}")
        cpu="-"
        [ -n "${PROXY_PID[$t]:-}" ] && cpu=$(awk -v d=$((after - before)) -v hz="$HZ" -v n="$REQUESTS" 'BEGIN {printf "%.1f", d / hz * 1e6 / n}')
        echo "$line" | tr -d '"' | awk -F, -v t="$t" -v p="$p" -v cpu="$cpu" '{print t, p, $1, $2, $5, $7, cpu}' >>"$WORK/results"
        if grep -qiE "$ERRORS" "$WORK/err"; then echo "redis-benchmark against $t reported errors:" >&2; cat "$WORK/err" >&2; fi
      done
    done
  done
}

# print_results WIDTH CPU_LABEL: $WORK/results as a table, by -P then test, targets in run order.
print_results() {
  printf "%-$1s %3s %-4s %12s %9s %9s %14s\n" target P test ops/s p50_ms p99_ms "$2"
  sort -k2,2n -k3,3 -s "$WORK/results" |
    awk -v w="$1" '{printf "%-" w "s %3s %-4s %12.0f %9.3f %9.3f %14s\n", $1, $2, $3, $4, $5, $6, $7}'
}

# print_ratios AWK_ROW: AWK_ROW defines the awk function row(p, t), called for -P 1 and 16 × SET, GET
# with rps[key] and p99[key] (key "target P TEST") read from $WORK/results; it prints that line's ratios.
print_ratios() {
  awk "$1"'
    { rps[$1" "$2" "$3] = $4; p99[$1" "$2" "$3] = $6 }
    END {
      split("SET GET", tests, " ")
      for (pi = 1; pi <= 2; pi++)
        for (ti = 1; ti <= 2; ti++) row(pi == 1 ? 1 : 16, tests[ti])
    }' "$WORK/results"
}
