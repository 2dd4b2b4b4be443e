#!/bin/sh
# Print "PORT UNIT" for every listening TCP socket on the host (UNIT is the systemd
# service holding it, "-" when unknown). Read-only: ss and /proc only.
set -eu
ss -Htlnp | while read -r _state _recvq _sendq local _peer rest; do
  port=${local##*:}
  unit=-
  pid=$(printf '%s\n' "$rest" | sed -n 's/.*pid=\([0-9][0-9]*\).*/\1/p')
  if [ -n "$pid" ] && [ -r "/proc/$pid/cgroup" ]; then
    found=$(sed -n 's#.*/\([^/]*\.service\)$#\1#p' "/proc/$pid/cgroup" | tail -n 1)
    [ -n "$found" ] && unit=$found
  fi
  echo "$port $unit"
done | sort -u
