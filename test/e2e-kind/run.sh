#!/usr/bin/env bash
# `make e2e-kind`: the Drawbridge flow on a kind cluster with the image built from the Dockerfile.
# Needs docker, kind, kubectl, helm, psql and node/npm. It cannot run on the project's CI machine (no
# Docker engine there); the same flow runs against a real API server in test/integration/cli/.
#
#   make e2e-kind                    build, create cluster "drawbridge-e2e", run, delete the cluster
#   KEEP=1 make e2e-kind             keep the cluster afterwards (kubectl --context kind-drawbridge-e2e)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CLUSTER=${CLUSTER:-drawbridge-e2e}
IMAGE=${IMAGE:-drawbridge:dev}
# A kubeconfig of its own: the run never touches ~/.kube/config.
mkdir -p "$ROOT/.cache"
export KUBECONFIG=$ROOT/.cache/e2e-kind.kubeconfig

for bin in docker kind kubectl helm psql node; do
  command -v "$bin" >/dev/null || { echo "e2e-kind: $bin is not on PATH" >&2; exit 1; }
done

step() { printf '\n==> %s\n' "$*"; }
cleanup() {
  if [[ -n ${KEEP:-} ]]; then echo "cluster kept: export KUBECONFIG=$KUBECONFIG"; return; fi
  kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "image $IMAGE"
docker build -t "$IMAGE" "$ROOT"

step "kind cluster $CLUSTER"
kind get clusters 2>/dev/null | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
kind export kubeconfig --name "$CLUSTER"
kind load docker-image "$IMAGE" --name "$CLUSTER"

step "helm install"
helm upgrade --install drawbridge "$ROOT/charts/drawbridge" --namespace drawbridge --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never \
  --set users.users='{kubernetes-admin}' --set users.portForward=true --wait --timeout 3m

step "sample database and access rules"
kubectl apply -f "$ROOT/test/e2e-kind/sample.yaml"
kubectl -n shop rollout status deployment/postgres --timeout 3m
kubectl -n shop wait database/orders --for=condition=Ready --timeout 3m

step "kubectl db plugin"
make -C "$ROOT" build
PLUGIN_DIR=$(mktemp -d)
ln -s "$ROOT/dist/src/cli/kubectl-db.js" "$PLUGIN_DIR/kubectl-db"
chmod +x "$ROOT/dist/src/cli/kubectl-db.js"
export PATH=$PLUGIN_DIR:$PATH DRAWBRIDGE_HOME=$PLUGIN_DIR/home

kubectl db -n shop ls
kubectl db -n shop login orders --db-user app --ttl 30m
# Through a port-forward: the agent Service is not reachable from the host.
out=$(kubectl db -n shop connect orders -- -Atc 'select current_user')
[[ $out == app ]] || { echo "e2e-kind: expected current_user app, got: $out" >&2; exit 1; }

step "a login the roles do not allow is denied"
if kubectl db -n shop login orders --db-user postgres --timeout 1m; then
  echo "e2e-kind: login as postgres should have been denied" >&2
  exit 1
fi

step "e2e-kind passed"
