# shellcheck shell=bash
# timed LABEL CMD...: runs CMD and reports its wall time on stderr as "<script>: LABEL took Ns" (the numbers
# README.md quotes). Sourced by the scripts that build the test binaries and the image.
timed() {
  local label=$1 start
  shift
  start=$(date +%s)
  "$@"
  echo "$(basename "$0"): $label took $(($(date +%s) - start))s" >&2
}
