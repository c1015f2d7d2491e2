#!/usr/bin/env bash
# `make e2e-kind`: the e2e scenario (test/e2e/scenario.sh, the one `make e2e` runs on its own real
# node) on a kind cluster, with the image built by Docker from the Dockerfile. Needs docker, kind,
# kubectl, helm, psql, redis-cli, openssl and node on PATH. The databases run on this machine and the
# pods reach them through the kind network's gateway.
#
#   make e2e-kind                    build, create cluster "drawbridge-e2e", run, delete the cluster
#   KEEP=1 make e2e-kind             keep the cluster afterwards (kubectl --context kind-drawbridge-e2e)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CLUSTER=${CLUSTER:-drawbridge-e2e}
IMAGE=${IMAGE:-drawbridge:e2e}
# A kubeconfig of its own: the run never touches ~/.kube/config.
mkdir -p "$ROOT/.cache"
export KUBECONFIG=$ROOT/.cache/e2e-kind.kubeconfig

for bin in docker kind kubectl helm psql redis-cli openssl node; do
  command -v "$bin" >/dev/null || { echo "e2e-kind: $bin is not on PATH" >&2; exit 1; }
done

cleanup() {
  if [[ -n ${KEEP:-} ]]; then echo "cluster kept: export KUBECONFIG=$KUBECONFIG"; return; fi
  kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
}
trap cleanup EXIT

docker build -t "$IMAGE" "$ROOT"
# The scenario's `helm upgrade` moves to a second tag to roll the agents.
docker tag "$IMAGE" "$IMAGE-next"
kind get clusters 2>/dev/null | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
kind export kubeconfig --name "$CLUSTER"
kind load docker-image "$IMAGE" "$IMAGE-next" --name "$CLUSTER"
make -C "$ROOT" build

# Pods reach this machine at the kind network's gateway; their traffic arrives from the node containers.
ipv4='{{range .IPAM.Config}}{{if not (eq (len (split .Subnet ":")) 1)}}{{else}}{{.Gateway}} {{.Subnet}}{{end}}{{end}}'
read -r gateway subnet < <(docker network inspect kind -f "$ipv4")
E2E_IMAGE=$IMAGE E2E_IMAGE_NEXT=$IMAGE-next E2E_PULL_POLICY=Never \
  E2E_BACKENDS_HOST=$gateway E2E_BACKENDS_CLIENTS=$subnet bash "$ROOT/test/e2e/scenario.sh"
