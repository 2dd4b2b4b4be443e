#!/usr/bin/env bash
# Make sure the machine that runs the lab has what the tests need: Debian's
# docker.io engine (started here when no daemon answers, never stopped by us),
# debootstrap for the host images. Idempotent; run as root on Debian.
set -euo pipefail

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v docker >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" iptables >/dev/null
fi

if docker info >/dev/null 2>&1; then
  exit 0
fi

if [ -d /run/systemd/system ] && systemctl start docker >/dev/null 2>&1; then
  :
else
  log=${AILAB_CACHE:-/var/cache/ailab}/dockerd.log
  mkdir -p "$(dirname "$log")"
  echo "starting dockerd (log: $log)"
  nohup dockerd >"$log" 2>&1 </dev/null &
fi
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "ensure-host-tools.sh: the Docker daemon did not answer within 60 s" >&2
exit 1
