#!/usr/bin/env bash
# Builds kubectl-db.tar.gz for krew (krew/drawbridge-db.yaml): the npm package (npm pack), its
# production dependencies, and launchers named as krew and kubectl expect them. Prints the sha256.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-kubectl-db.tar.gz}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tarball=$(npm pack --silent --pack-destination "$work")
tar -xzf "$work/$tarball" -C "$work"
(cd "$work/package" && npm install --omit=dev --ignore-scripts --no-audit --no-fund --silent)
for pair in "kubectl-drawbridge_db:kubectl-db.js" "kubectl_complete-drawbridge_db:kubectl-complete-db.js"; do
  cat > "$work/package/${pair%%:*}" <<SH
#!/bin/sh
exec node "\$(dirname "\$(readlink -f "\$0")")/dist/src/cli/${pair##*:}" "\$@"
SH
  chmod 755 "$work/package/${pair%%:*}"
done
tar -czf "$out" -C "$work/package" .
sha256sum "$out"
