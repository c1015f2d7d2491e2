#!/usr/bin/env bash
# Builds the pinned Kubernetes used by the tests — the control plane (kube-apiserver,
# kube-controller-manager, kube-scheduler, etcd), a node (kubelet, kube-proxy), kubectl and helm —
# from source through the Go module proxy,
# because this machine (and CI) has no Docker and no release downloads, only package registries.
#
# Binaries land in ${DRAWBRIDGE_CACHE:-$HOME/.cache/drawbridge}/k8s/<k8s version>/bin, outside the
# repository, so a fresh CI clone on the same machine reuses them. Re-running is a no-op once a
# binary and its version stamp exist.
#
#   test/k8s/build.sh              build whatever is missing
#   test/k8s/build.sh --bin-dir    print the bin directory and exit (controlplane.ts uses this)
set -euo pipefail

K8S_VERSION=v1.34.12
# Kubernetes 1.34 is tested against etcd 3.6; take the newest 3.6 patch for its bug fixes.
ETCD_VERSION=v3.6.16
# Helm 3.19 is the release built against client-go 0.34, i.e. the one whose skew policy covers 1.34.
HELM_VERSION=v3.19.5
# CoreDNS 1.14.0 is the last release built against client-go 0.34 (the 1.34 skew); cluster DNS for `make e2e`.
COREDNS_VERSION=v1.14.0

CACHE_ROOT=${DRAWBRIDGE_CACHE:-$HOME/.cache/drawbridge}
ROOT=$CACHE_ROOT/k8s/$K8S_VERSION
BIN=$ROOT/bin

if [[ ${1:-} == --bin-dir ]]; then
  echo "$BIN"
  exit 0
fi

# The pinned versions are the contract: never let go silently fetch a newer toolchain.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-trimpath
export GOWORK=off
mkdir -p "$BIN"
# Two checkouts (or make -j) building at once would race on the wrapper modules: take turns.
exec 9>"$ROOT/.lock"
flock 9

# fresh NAME VERSION: true when $BIN/NAME was built from VERSION (the stamp survives a bump of
# only one of the pins, so bumping helm does not rebuild the apiserver).
fresh() { [[ -x $BIN/$1 && $(cat "$BIN/.$1.version" 2>/dev/null) == "$2" ]]; }

# shellcheck source=test/support/timed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../support/timed.sh"

# stamp NAME VERSION: marks $BIN/NAME as built from VERSION.
stamp() { echo "$2" >"$BIN/.$1.version"; }

# --- Kubernetes -------------------------------------------------------------------------------
# k8s.io/kubernetes requires every staging module (k8s.io/api, apiserver, client-go, ...) at
# v0.0.0 and replaces it with ./staging/src/...; replace directives of a dependency are ignored,
# so this wrapper module repeats them, pointing each at its published v0.MINOR.PATCH.
build_kubernetes() {
  local src=$ROOT/src/kubernetes staging=v0.${K8S_VERSION#v1.} gomod
  mkdir -p "$src"
  gomod=$(cd "$src" && GOFLAGS= go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
  {
    echo "module drawbridge.dev/k8s-bin"
    echo
    echo "go 1.25.0"
    # Upstream builds with the Go 1.24 runtime defaults; keep them, whatever the local Go is.
    echo "godebug default=go1.24"
    echo
    echo "replace ("
    sed -n "s#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 $staging#p" "$gomod"
    echo ")"
  } >"$src/go.mod"
  (cd "$src" && timed "kubernetes module download" go get -tool \
    "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kube-scheduler@$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kubelet@$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kube-proxy@$K8S_VERSION")

  # Without these the binaries report v0.0.0 and kubectl warns about version skew. Both packages
  # carry version vars, as in upstream's hack/lib/version.sh.
  local minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  local ldflags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean"
  done
  local cmd
  for cmd in "${K8S_CMDS[@]}"; do
    fresh "$cmd" "$K8S_VERSION" && continue
    (cd "$src" && timed "$cmd build" go build -p 2 -ldflags "$ldflags" -o "$BIN/$cmd" \
      "k8s.io/kubernetes/cmd/$cmd")
    stamp "$cmd" "$K8S_VERSION"
  done
}

# --- etcd -------------------------------------------------------------------------------------
# go.etcd.io/etcd/server/v3 is itself the etcd main package, but its go.mod has replace
# directives, so `go install pkg@version` refuses it: build it from a wrapper module instead.
build_etcd() {
  local src=$ROOT/src/etcd
  mkdir -p "$src"
  printf 'module drawbridge.dev/etcd-bin\n\ngo 1.26.0\n' >"$src/go.mod"
  (cd "$src" && timed "etcd module download" go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
  (cd "$src" && timed "etcd build" go build -p 2 -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
  stamp etcd "$ETCD_VERSION"
}

# --- helm -------------------------------------------------------------------------------------
# helm's go.mod has no replace directives, so plain `go install` works.
build_helm() {
  timed "helm download+build" env GOBIN="$BIN" go install -p 2 \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  stamp helm "$HELM_VERSION"
}

# The node (kubelet, kube-proxy) and the scheduler run real pods for `make e2e` (test/e2e).
K8S_CMDS=(kube-apiserver kube-controller-manager kubectl kube-scheduler kubelet kube-proxy)
k8s_fresh() {
  local cmd
  for cmd in "${K8S_CMDS[@]}"; do fresh "$cmd" "$K8S_VERSION" || return 1; done
}
k8s_fresh || build_kubernetes
# --- coredns ----------------------------------------------------------------------------------
# Cluster DNS for the real node (test/e2e). Upstream's main links ~60 plugins (cloud DNS providers,
# dnstap, ...); this main links the four a cluster needs, which halves the build. client-go and its
# siblings are pinned to the control plane's version so Go's build cache shares them with the build above.
build_coredns() {
  local src=$ROOT/src/coredns staging=v0.${K8S_VERSION#v1.} mod
  mkdir -p "$src"
  {
    printf 'module drawbridge.dev/coredns-bin\n\ngo 1.25.0\n\nrequire (\n'
    printf '\tgithub.com/coredns/coredns %s\n' "$COREDNS_VERSION"
    for mod in api apimachinery client-go; do printf '\tk8s.io/%s %s\n' "$mod" "$staging"; done
    printf ')\n'
  } >"$src/go.mod"
  cat >"$src/main.go" <<'GO'
// CoreDNS with only what cluster DNS needs (see build.sh).
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
)

func init() { dnsserver.Directives = []string{"health", "errors", "cache", "kubernetes"} }

func main() { coremain.Run() }
GO
  (cd "$src" && timed "coredns module download" go mod tidy)
  (cd "$src" && timed "coredns build" go build -p 2 -ldflags "-s -w" -o "$BIN/coredns" .)
  stamp coredns "$COREDNS_VERSION"
}

fresh etcd "$ETCD_VERSION" || build_etcd
fresh coredns "$COREDNS_VERSION" || build_coredns
fresh helm "$HELM_VERSION" || build_helm
echo "$BIN"
