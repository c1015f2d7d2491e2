#!/usr/bin/env bash
# Operator scale: apply N Databases (default 1,000) to a real API server and time until every agent
# Deployment exists and every Database has a status written by the controller; then report the
# controller's CPU time and memory. Target: <= 60 s for 1,000.
#
#   bash bench/operator-scale.sh [N] [WORKERS]      (after `make build` and `make k8s-bin`)
#
# The API server gets a /16 service range (the test default /24 holds 254 Services; each agent has one).
# Backends point at a closed loopback port, so probes fail fast (BackendUnreachable) and every
# status is still fully written; no agent processes run (there is no kubelet here), so the numbers
# are the controller's own work: informers, reconciles, server-side applies, status, events.
set -euo pipefail
N=${1:-1000}
WORKERS=${2:-16}
NAMESPACES=10
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ -f dist/src/cli/drawbridge.js ] || { echo "run make build first" >&2; exit 1; }
export PATH="$(bash test/k8s/build.sh --bin-dir):$PATH"
WORK=$(mktemp -d)
PLANE_PID= CONTROLLER_PID=
cleanup() {
  [ -n "$CONTROLLER_PID" ] && kill "$CONTROLLER_PID" 2>/dev/null && wait "$CONTROLLER_PID" 2>/dev/null || true
  [ -n "$PLANE_PID" ] && kill -INT "$PLANE_PID" 2>/dev/null && wait "$PLANE_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

node dist/test/k8s/controlplane-cli.js --no-controller-manager \
  --apiserver-arg=--service-cluster-ip-range=10.96.0.0/16 >"$WORK/plane.log" 2>&1 &
PLANE_PID=$!
for _ in $(seq 1 180); do grep -q 'export KUBECONFIG=' "$WORK/plane.log" && break; sleep 1; done
export KUBECONFIG=$(sed -n 's/.*export KUBECONFIG=//p' "$WORK/plane.log")
[ -n "$KUBECONFIG" ] || { cat "$WORK/plane.log" >&2; exit 1; }

kubectl apply -f crds >/dev/null
kubectl create namespace drawbridge-system >/dev/null
for i in $(seq 1 $NAMESPACES); do kubectl create namespace "scale-$i" >/dev/null; done
for i in $(seq 1 "$N"); do
  cat <<YAML >>"$WORK/databases-$(((i % NAMESPACES) + 1)).yaml"
---
apiVersion: drawbridge.dev/v1alpha1
kind: Database
metadata: {name: db-$i, namespace: scale-$(((i % NAMESPACES) + 1)), labels: {env: bench}}
spec:
  protocol: $([ $((i % 2)) -eq 0 ] && echo postgres || echo redis)
  uri: $([ $((i % 2)) -eq 0 ] && echo postgres || echo redis)://127.0.0.1:1
  tls: {mode: disabled}
  auth: {type: passthrough}
YAML
done

DRAWBRIDGE_LOG_LEVEL=${LOG_LEVEL:-warn} node dist/src/cli/drawbridge.js controller --namespace drawbridge-system \
  --no-leader-elect --workers "$WORKERS" --agent-image drawbridge:bench >"$WORK/controller.log" 2>&1 &
CONTROLLER_PID=$!
until kubectl get configmap drawbridge-ca -n drawbridge-system >/dev/null 2>&1; do sleep 0.2; done

count_deployments() { kubectl get deployments -A -l app.kubernetes.io/managed-by=drawbridge -o name | wc -l; }
count_status() {
  kubectl get databases -A -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="BackendReachable")].reason}{"\n"}{end}' |
    grep -c BackendUnreachable || true
}
cpu_seconds() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"; }

APISERVER_PID=$(pgrep -P "$PLANE_PID" -f kube-apiserver)
ETCD_PID=$(pgrep -P "$PLANE_PID" -f bin/etcd)
CPU0=$(cpu_seconds "$CONTROLLER_PID")
API0=$(cpu_seconds "$APISERVER_PID")
ETCD0=$(cpu_seconds "$ETCD_PID")
START=$(date +%s.%N)
# One kubectl per namespace, concurrently, as a GitOps tool syncing several apps would.
APPLIERS=()
for f in "$WORK"/databases-*.yaml; do
  kubectl apply --server-side -f "$f" >/dev/null &
  APPLIERS+=($!)
done
wait "${APPLIERS[@]}"
APPLIED=$(date +%s.%N)
DEPLOYED=
while :; do
  now=$(date +%s.%N)
  deployments=$(count_deployments)
  [ -n "${VERBOSE:-}" ] && echo "$(awk -v s="$START" -v n="$now" 'BEGIN{printf "%.0f", n-s}')s: $deployments deployments, $(count_status) statuses" >&2
  if [ -z "$DEPLOYED" ] && [ "$deployments" -ge "$N" ]; then DEPLOYED=$now; fi
  if [ -n "$DEPLOYED" ] && [ "$(count_status)" -ge "$N" ]; then DONE=$now; break; fi
  if awk -v s="$START" -v n="$now" 'BEGIN { exit !(n - s > 600) }'; then
    echo "not done after 600 s; controller log tail:" >&2
    tail -20 "$WORK/controller.log" >&2
    exit 1
  fi
  sleep 1
done
CPU1=$(cpu_seconds "$CONTROLLER_PID")
API1=$(cpu_seconds "$APISERVER_PID")
ETCD1=$(cpu_seconds "$ETCD_PID")
RSS=$(awk '/VmRSS/ {print $2 / 1024}' "/proc/$CONTROLLER_PID/status")
sleep 10 # steady state: nothing should be written once everything matches
CPU2=$(cpu_seconds "$CONTROLLER_PID")

# Requests the API server served, by verb and resource (all clients; the controller is most of them).
kubectl get --raw /metrics | awk -F'[{}]' '/^apiserver_request_total/ {
    split($2, kv, ","); verb = ""; res = ""
    for (i in kv) { split(kv[i], p, "="); gsub(/"/, "", p[2]); if (p[1] == "verb") verb = p[2]; if (p[1] == "resource") res = p[2] }
    split($3, v, " "); n[verb " " res] += v[1]
  } END { for (k in n) if (n[k] >= 100) printf "  %-40s %6d\n", k, n[k] }' | sort -k3 -nr >"$WORK/requests.txt"

awk -v n="$N" -v w="$WORKERS" -v s="$START" -v a="$APPLIED" -v d="$DEPLOYED" -v e="$DONE" \
  -v c0="$CPU0" -v c1="$CPU1" -v c2="$CPU2" -v rss="$RSS" -v a0="$API0" -v a1="$API1" -v e0="$ETCD0" -v e1="$ETCD1" \
  -v load="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
  printf "operator-scale: %d Databases, %d workers, %d cores (load average %s)\n", n, w, '"$(nproc)"', load
  printf "  kubectl apply (server-side)         %6.1f s\n", a - s
  printf "  every agent Deployment exists       %6.1f s after apply started\n", d - s
  printf "  every Database status written       %6.1f s after apply started   (target <= 60 s)\n", e - s
  printf "  controller CPU during the run       %6.1f s\n", c1 - c0
  printf "  controller CPU, 10 s steady state   %6.2f s\n", c2 - c1
  printf "  controller RSS after                %6.0f MiB\n", rss
  printf "  kube-apiserver / etcd CPU, run      %6.1f s / %.1f s\n", a1 - a0, e1 - e0
}'
echo "  API requests served (>= 100, all clients):"
cat "$WORK/requests.txt"
