#!/usr/bin/env bash
# make demo: runs the compiled demo driver (scripts/demo.ts) with the machine's Node.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/lib/postgresql/15/bin:$PATH"
exec node dist/scripts/demo.js
