#!/usr/bin/env bash
# Make sure the machine that runs the VM scenario (molecule/vm) has QEMU and the
# tools around it, from Debian packages. Idempotent; run as root on Debian.
set -euo pipefail

declare -A tool_package=(
  [qemu-system-x86_64]=qemu-system-x86
  [qemu-img]=qemu-utils
  [mkfs.ext4]=e2fsprogs
  [ssh]=openssh-client
  [ssh-keygen]=openssh-client
  [ip]=iproute2
  [nc]=netcat-openbsd
  [debootstrap]=debootstrap
  [dpkg-scanpackages]=dpkg-dev
)
need=()
for tool in "${!tool_package[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || need+=("${tool_package[$tool]}")
done
if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ -c /dev/net/tun ] || { echo "ensure-host-tools.sh: /dev/net/tun is missing (tap devices)" >&2; exit 1; }
