#!/usr/bin/env bash
# Run one step of `make test` and record how long it took, for the summary that
# tests/lib/test_times.py prints at the end.
#
# Usage: tests/lib/timed.sh NAME PROBE -- COMMAND [ARG...]
#   NAME   the step, e.g. "tier: unit" or "artifact: llama-server"
#   PROBE  a shell command run before COMMAND: exit 0 means the step's cache is warm
#          (its artifact already exists); "-" for a step that has no cache
# Appends "NAME<TAB>warm|cold|-<TAB>seconds<TAB>exit status<TAB>start (epoch s)" to
# $AILAB_TEST_TIMES (default .cache/test-times.tsv) and exits with COMMAND's status.
# Steps may run side by side (the artifact builds do); the summary's total is the wall
# time from the first start to the last end.
set -uo pipefail
times=${AILAB_TEST_TIMES:-.cache/test-times.tsv}
name=$1 probe=$2
shift 2
[[ ${1:-} == -- ]] && shift
cache=-
if [[ $probe != - ]]; then
  if bash -c "$probe" >/dev/null 2>&1; then cache=warm; else cache=cold; fi
fi
start=$(date +%s)
"$@"
rc=$?
mkdir -p "$(dirname "$times")"
printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$cache" "$(($(date +%s) - start))" "$rc" "$start" >>"$times"
exit "$rc"
