#!/usr/bin/env bash
# `make e2e`: Drawbridge as users run it — the image built from our Dockerfile, installed by Helm on a
# real single-node Kubernetes (test/e2e/node.sh), against real PostgreSQL and Redis Cluster servers —
# through the scenario shared with `make e2e-kind` (test/e2e/scenario.sh).
#
#   make e2e                 build what is missing (cached), run, remove everything
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
start=$(date +%s)
bash "$ROOT/test/k8s/build.sh" >/dev/null
bash "$ROOT/test/e2e/image.sh" >/dev/null
echo "e2e: binaries and image ready after $(($(date +%s) - start))s" >&2

DIR=$(mktemp -d /tmp/drawbridge-e2e.XXXXXX)
# A run holds a lock on a file under its DIR while alive, so a concurrent run does not sweep it.
exec 8>"$DIR/.running"
flock 8
id=${DIR##*.}
export E2E_CGROUP_ROOT=/drawbridge-e2e-$id

# Cgroups outlive their processes: make ours in every hierarchy, remove them (and any a killed run
# left behind) afterwards. Emptied by the PID namespace's end, they only need a moment to be removable.
cgroup_dirs() { find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d -name "${1:-drawbridge-e2e-*}"; }
remove_cgroups() {
  local dir tries
  for dir in $(cgroup_dirs "$@"); do
    for tries in 1 2 3 4 5 6 7 8 9 10; do
      find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null && break
      sleep 1
    done
  done
}
for stale in /tmp/drawbridge-e2e.*; do
  [[ -d $stale && $stale != "$DIR" ]] || continue
  # A live run holds the lock on its .running file (above).
  flock -n "$stale/.running" true 2>/dev/null || [[ ! -e $stale/.running ]] || continue
  remove_cgroups "drawbridge-e2e-${stale##*.}"
  rm -rf "$stale"
done
cleanup() {
  remove_cgroups "drawbridge-e2e-$id"
  rm -rf "$DIR"
}
trap cleanup EXIT
for hierarchy in /sys/fs/cgroup/*/; do mkdir -p "$hierarchy${E2E_CGROUP_ROOT#/}"; done

unshare --net --mount --pid --fork --kill-child --mount-proc --propagation private \
  bash "$ROOT/test/e2e/node.sh" "$DIR" -- bash "$ROOT/test/e2e/scenario.sh"
