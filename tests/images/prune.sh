#!/usr/bin/env bash
# Untag lab host images of older recipes: every ailab/debian<N>:<hash> that is not
# the image ailab/debian<N>:current points at. An image a container still uses keeps
# its tag (docker refuses without --force, and this never forces); run it again after
# `make lab-down`.
#
# Usage: tests/images/prune.sh [12|13 ...]   (default: both)
set -euo pipefail

versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(12 13)
for v in "${versions[@]}"; do
  repo=ailab/debian${v}
  current=$(docker image inspect --format '{{.Id}}' "${repo}:current" 2>/dev/null) || continue
  docker image ls "$repo" --format '{{.Tag}} {{.ID}}' | while read -r tag id; do
    [ "$tag" != current ] || continue
    case "$current" in *"$id"*) continue ;; esac
    if docker image rm "${repo}:${tag}" >/dev/null 2>&1; then
      echo "removed ${repo}:${tag}"
    else
      echo "kept ${repo}:${tag} (a container uses it)"
    fi
  done
done
