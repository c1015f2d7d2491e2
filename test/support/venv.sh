#!/usr/bin/env bash
# Creates a Python venv for tests from a pinned requirements file: test/aws/requirements.txt (the AWS
# emulator, moto server + our extension's dependencies), test/python/requirements.txt (redis-py, the
# second RESP3 client). Each lives outside the repository, keyed by the requirements' folder name and
# a hash of the file, so a fresh CI clone on the same machine reuses it and a pin bump builds a new one.
#
#   test/support/venv.sh REQUIREMENTS            create it if missing
#   test/support/venv.sh REQUIREMENTS --python   print the venv's python path and exit
set -euo pipefail
REQUIREMENTS=$(realpath "${1:?usage: venv.sh REQUIREMENTS [--python]}")
NAME=$(basename "$(dirname "$REQUIREMENTS")")
KEY=$(sha256sum "$REQUIREMENTS" | cut -c1-12)
VENV=${DRAWBRIDGE_CACHE:-$HOME/.cache/drawbridge}/$NAME-venv/$KEY

if [[ ${2:-} == --python ]]; then
  echo "$VENV/bin/python"
  exit 0
fi
if [[ -f $VENV/.complete ]]; then exit 0; fi

PYTHON=${PYTHON:-python3}
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
touch "$VENV/.complete"
