# Sourced by the Redis bench scripts (bench/redis.sh, bench/redis-cluster.sh) from the repository root:
# a work directory removed on exit, the environment process (a dist/bench/*-env.js script printing
# `export` lines and `# ready`), and the redis-benchmark runs with the proxy CPU each one used.
# Env: REQUESTS (200000), CLIENTS (50), BENCH_ROUNDS (3), BENCH_TARGETS (all), BENCH_PIPELINES ("1 16"),
# BENCH_AGENT_BEFORE (another build's dist: its agent runs in the same rounds as agent-before),
# BENCH_AGENT_NODE_ARGS (node options of the environment process, which runs the agents: e.g.
# "--cpu-prof --cpu-prof-dir=/tmp/prof"; with BENCH_TARGETS=agent it profiles the agent alone),
# BENCH_PIPE_NODE_ARGS (the same for the bare pipe's process).
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

# spawn_env DIST SCRIPT TENTHS WHAT NAME: runs node DIST/bench/SCRIPT, its output in $WORK/NAME (its stdin
# stays open through a fifo until we exit, so it never outlives us), sets SPAWNED_PID and waits up to
# TENTHS × 0.1 s for `# ready`.
spawn_env() {
  local fd
  mkfifo "$WORK/$5.stdin"
  # shellcheck disable=SC2086
  node ${BENCH_AGENT_NODE_ARGS:-} "$1/bench/$2" <"$WORK/$5.stdin" >"$WORK/$5" 2>"$WORK/$5.log" &
  SPAWNED_PID=$!
  exec {fd}>"$WORK/$5.stdin"
  for _ in $(seq 1 "$3"); do grep -q '^# ready' "$WORK/$5" 2>/dev/null && break; sleep 0.1; done
  grep -q '^# ready' "$WORK/$5" || { cat "$WORK/$5.log"; echo "$4 did not start" >&2; exit 1; }
}

# start_env SCRIPT TENTHS WHAT: this build's environment (dist/bench/SCRIPT); sources its exports.
start_env() {
  spawn_env dist "$1" "$2" "$3" env
  ENV_PID=$SPAWNED_PID
  # shellcheck disable=SC1091
  source "$WORK/env"
}

# start_before_env SCRIPT TENTHS: BENCH_AGENT_BEFORE (another build's dist) runs its own environment
# (one process, its own servers and PKI) so its agent joins the rounds: before/after in one run.
# before_var NAME reads one of its exports.
start_before_env() {
  BENCH_WORKERS=1 spawn_env "$BENCH_AGENT_BEFORE" "$1" "$2" "the BENCH_AGENT_BEFORE environment" before
  BEFORE_PID=$SPAWNED_PID
  KILL_ON_EXIT+=("$BEFORE_PID")
}
# shellcheck disable=SC1091
before_var() { (source "$WORK/before" && eval "echo \"\$$1\""); }

# add_agent_rows ENV_SCRIPT TENTHS (Redis benches, after ARGS, PROXY_PID and TARGETS are set): the
# worker row, the agent as the CLI runs it with $AGENT_WORKERS processes (BENCH_WORKERS=1 skips it),
# and with BENCH_AGENT_BEFORE that build's agent, started from its own ENV_SCRIPT.
add_agent_rows() {
  if [ -n "${AGENT_WORKERS_PORT:-}" ]; then
    WORKERS_ROW="agent-${AGENT_WORKERS}w"
    ARGS[$WORKERS_ROW]="-p $AGENT_WORKERS_PORT --tls --cacert $CLIENT_CA --cert $CLIENT_CERT --key $CLIENT_KEY"
    PROXY_PID[$WORKERS_ROW]=$AGENT_WORKERS_PIDS
    TARGETS+=("$WORKERS_ROW")
  fi
  if [ -n "${BENCH_AGENT_BEFORE:-}" ]; then
    start_before_env "$1" "$2"
    ARGS[agent-before]="-p $(before_var AGENT_PORT) --tls --cacert $(before_var CLIENT_CA) --cert $(before_var CLIENT_CERT) --key $(before_var CLIENT_KEY)"
    PROXY_PID[agent-before]=$BEFORE_PID
    TARGETS+=(agent-before)
  fi
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
