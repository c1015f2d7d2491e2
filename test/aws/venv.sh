#!/usr/bin/env bash
# Creates the Python venv holding the AWS emulator (moto server + our extension's dependencies).
# It lives outside the repository, keyed by a hash of requirements.txt, so a fresh CI clone on the
# same machine reuses it and a pin bump builds a new one.
#
#   test/aws/venv.sh            create it if missing
#   test/aws/venv.sh --python   print the venv's python path and exit (test/aws/moto.ts uses this)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KEY=$(sha256sum "$HERE/requirements.txt" | cut -c1-12)
VENV=${DRAWBRIDGE_CACHE:-$HOME/.cache/drawbridge}/aws-venv/$KEY

if [[ ${1:-} == --python ]]; then
  echo "$VENV/bin/python"
  exit 0
fi
if [[ -f $VENV/.complete ]]; then exit 0; fi

PYTHON=${PYTHON:-python3}
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
touch "$VENV/.complete"
