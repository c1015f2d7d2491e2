# Sourced by the Redis bench scripts (bench/redis.sh, bench/redis-cluster.sh) from the repository root:
# a work directory removed on exit, the environment process (a dist/bench/*-env.js script that starts
# the servers and every proxy under test, each proxy in a process of its own started the same way
# (bench/proxy-process.ts), and prints `export` lines and `# ready`), and the redis-benchmark runs with
# the CPU each one cost its proxy: that proxy's process and its children (an agent's workers), nothing else.
# Env: REQUESTS (200000), CLIENTS (50), BENCH_ROUNDS (3), BENCH_TARGETS (all), BENCH_PIPELINES ("1 16"),
# BENCH_AGENT_BEFORE (another build's dist: its agent, in its own process in front of the same servers,
# runs in the same rounds as agent-before), BENCH_WORKERS (2: the agent-Nw row; 1 skips it),
# BENCH_AGENT_NODE_ARGS (Node options of every agent process: e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
# writes one profile per agent process, named by its pid; the pids are printed as the bench starts),
# BENCH_PIPE_NODE_ARGS (the same for the bare pipe's process), BENCH_BEFORE_NODE_ARGS (the before agent's,
# in place of BENCH_AGENT_NODE_ARGS: with BENCH_AGENT_BEFORE=dist, this build beside itself with other
# options, e.g. BENCH_AGENT_NODE_ARGS=--a-v8-flag BENCH_BEFORE_NODE_ARGS=""), BENCH_AGENT_VARIANTS="NAME=DIST[:AUDIT] ..."
# (more agents in the same rounds, rows NAME: bench/redis-bench-setup.ts), BENCH_AUDIT=stdout (every agent's audit log
# on stdout, a pipe drained by a cat as a container runtime would; default: a file), BENCH_MALLOC=glibc and
# BENCH_BEFORE_MALLOC=glibc (every proxy, or the before agent, on glibc's malloc; default: jemalloc preloaded,
# as the image runs the agent).
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

# start_env SCRIPT TENTHS WHAT: runs node dist/bench/SCRIPT, its output in $WORK/env (its stdin stays
# open through a fifo until we exit, so it never outlives us), waits up to TENTHS × 0.1 s for `# ready`
# and sources its exports.
start_env() {
  local fd
  mkfifo "$WORK/env.stdin"
  node "dist/bench/$1" <"$WORK/env.stdin" >"$WORK/env" 2>"$WORK/env.log" &
  ENV_PID=$!
  exec {fd}>"$WORK/env.stdin"
  for _ in $(seq 1 "$2"); do grep -q '^# ready' "$WORK/env" 2>/dev/null && break; sleep 0.1; done
  grep -q '^# ready' "$WORK/env" || { cat "$WORK/env.log"; echo "$3 did not start" >&2; exit 1; }
  # shellcheck disable=SC1091
  source "$WORK/env"
}

# add_agent_rows (Redis benches, after ARGS, PROXY_PID and TARGETS are set): the worker row, the agent
# as the CLI runs it with $AGENT_WORKERS processes (BENCH_WORKERS=1 skips it), and with
# BENCH_AGENT_BEFORE that build's agent, alone and with $AGENT_WORKERS processes (the environment
# started them); then prints each target's pid.
add_agent_rows() {
  local tls="--tls --cacert $CLIENT_CA --cert $CLIENT_CERT --key $CLIENT_KEY" t
  if [ -n "${AGENT_WORKERS_PORT:-}" ]; then
    WORKERS_ROW="agent-${AGENT_WORKERS}w"
    ARGS[$WORKERS_ROW]="-p $AGENT_WORKERS_PORT $tls"
    PROXY_PID[$WORKERS_ROW]=$AGENT_WORKERS_PID
    TARGETS+=("$WORKERS_ROW")
  fi
  if [ -n "${AGENT_BEFORE_PORT:-}" ]; then
    ARGS[agent-before]="-p $AGENT_BEFORE_PORT $tls"
    PROXY_PID[agent-before]=$AGENT_BEFORE_PID
    TARGETS+=(agent-before)
  fi
  if [ -n "${AGENT_BEFORE_WORKERS_PORT:-}" ]; then
    ARGS[agent-before-${AGENT_WORKERS}w]="-p $AGENT_BEFORE_WORKERS_PORT $tls"
    PROXY_PID[agent-before-${AGENT_WORKERS}w]=$AGENT_BEFORE_WORKERS_PID
    TARGETS+=("agent-before-${AGENT_WORKERS}w")
  fi
  local v name port pid
  for v in ${AGENT_VARIANTS//,/ }; do # BENCH_AGENT_VARIANTS: NAME:PORT:PID each
    IFS=: read -r name port pid <<<"$v"
    ARGS[$name]="-p $port $tls"
    PROXY_PID[$name]=$pid
    TARGETS+=("$name")
  done
  for t in "${TARGETS[@]}"; do [ -n "${PROXY_PID[$t]:-}" ] && echo "  $t: pid ${PROXY_PID[$t]}" >&2; done
  return 0
}

# CPU time (user and system, clock ticks) of a process: on a shared machine, proxy CPU per request is
# steadier than throughput, and its user part (the proxy's own code and TLS) steadier still.
HZ=$(getconf CLK_TCK)
# cpu_ticks PID: "user sys" of the process and its live descendants (an agent's primary and workers).
cpu_ticks() {
  local pid user=0 sys=0 u s
  for pid in $(proc_tree "${1:-}"); do
    read -r u s < <(awk '{sub(/^.*\) /, ""); print $12, $13}' "/proc/$pid/stat")
    user=$((user + u)) sys=$((sys + s))
  done
  echo "$user $sys"
}
# proc_tree PID: the process and its descendants, read when asked (a restarted worker counts too).
proc_tree() {
  local pid
  [ -n "$1" ] || return 0
  echo "$1"
  for pid in $(cat /proc/"$1"/task/*/children 2>/dev/null); do proc_tree "$pid"; done
}

# run_benchmarks TARGET...: for -P 1 and -P 16, BENCH_ROUNDS rounds, each running SET then GET against
# every target in turn (so the runs compared sit side by side; every other round starts one target
# further on and every second round runs backwards, so no target always runs first or right after the
# same one), one redis-benchmark run each, so the CPU
# used can be attributed to it, with the caller's ARGS[target] and EXTRA_ARGS. BENCH_TARGETS (space
# separated) keeps only those targets. Appends "target P test round ops/s p50_ms p99_ms user_us sys_us"
# to $WORK/results, the CPU per request of PROXY_PID[target] ("-" for targets without a proxy).
run_benchmarks() {
  local p t test round line cpu u0 s0 u1 s1 shift i
  local targets=() order reversed=()
  for t in "$@"; do
    if [ -z "${BENCH_TARGETS:-}" ] || [[ " $BENCH_TARGETS " == *" $t "* ]]; then targets+=("$t"); fi
  done
  # CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  for p in ${BENCH_PIPELINES:-1 16}; do
    for round in $(seq 1 "$ROUNDS"); do
      shift=$(((round - 1) / 2 % ${#targets[@]}))
      order=("${targets[@]:shift}" "${targets[@]:0:shift}")
      if ((round % 2 == 0)); then
        for ((i = 0; i < ${#order[@]}; i++)); do reversed[i]=${order[${#order[@]} - 1 - i]}; done
        order=("${reversed[@]}")
      fi
      for test in ${BENCH_TESTS:-set get}; do
        for t in "${order[@]}"; do
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
