#!/usr/bin/env bash
# Build the lab host images (Debian 12 "bookworm" and Debian 13 "trixie") with
# debootstrap from this machine's configured Debian mirror, then `docker import`.
# Nothing is pulled from a registry. An image is rebuilt only when it is missing
# or when this recipe changed: the tag carries a hash of this file.
#
# Usage: tests/images/build.sh [--check] [12|13 ...]   (default: both)
#   --check   build nothing; exit 0 when every image of this recipe exists, else 1
# Each image is tagged ailab/debian<N>:<hash> and ailab/debian<N>:current.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/debian-mirror.sh
. "$(dirname "$0")/../lib/debian-mirror.sh"
recipe_hash=$(cat "$0" "$(dirname "$0")/../lib/debian-mirror.sh" | sha256sum | cut -c1-12)
cache_dir=${AILAB_CACHE:-/var/cache/ailab}
packages=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,procps,ca-certificates,curl,gnupg,kmod,udev

declare -A suites=([12]=bookworm [13]=trixie)
root="" tarball=""
cleanup() {
  [ -z "$root" ] || rm -rf "$root" "$tarball" "${root}.log"
  root="" tarball=""
}
trap cleanup EXIT

build() {
  local version=$1 suite=${suites[$1]}
  local repo=ailab/debian${version}
  local tag=${repo}:${recipe_hash}
  if docker image inspect "$tag" >/dev/null 2>&1; then
    docker tag "$tag" "${repo}:current"
    echo "image ${tag} is up to date"
    return
  fi
  local url
  url=$(debian_mirror)
  mkdir -p "$cache_dir"
  rm -rf "${cache_dir}/rootfs-${suite}".*  # left by an interrupted build
  root=$(mktemp -d "${cache_dir}/rootfs-${suite}.XXXXXX")
  tarball="${root}.tar"
  echo "building ${tag} from ${url} (${suite})"
  debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$url" >"${root}.log" 2>&1 || {
    tail -n 30 "${root}.log" >&2
    return 1
  }
  # A container, not a machine: no getty, no udev triggers, no kernel-only units.
  chroot "$root" systemctl mask getty.target console-getty.service systemd-udev-trigger.service \
    systemd-udevd.service systemd-firstboot.service systemd-remount-fs.service sys-kernel-debug.mount \
    sys-kernel-tracing.mount dev-hugepages.mount >/dev/null 2>&1 || true
  echo "deb ${url} ${suite} main" >"${root}/etc/apt/sources.list"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"${root}/etc/apt/apt.conf.d/90ailab-no-recommends"
  : >"${root}/etc/machine-id"
  rm -rf "${root}"/var/cache/apt/archives/*.deb "${root}"/var/lib/apt/lists/*
  # An empty package list must look old, or apt's cache_valid_time never refreshes it.
  touch -d @0 "${root}/var/lib/apt/lists"
  tar -C "$root" -cf "$tarball" .
  docker import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    --change 'ENV container=docker' \
    --message "ailab lab host, Debian ${version} (${suite}), recipe ${recipe_hash}" \
    "$tarball" "$tag" >/dev/null
  docker tag "$tag" "${repo}:current"
  cleanup
  echo "built ${tag}"
}

check=false
if [[ ${1:-} == --check ]]; then
  check=true
  shift
fi
if $check; then
  for v in "${@:-12 13}"; do
    for w in $v; do docker image inspect "ailab/debian${w}:${recipe_hash}" >/dev/null 2>&1 || exit 1; done
  done
  exit 0
fi
command -v debootstrap >/dev/null || { echo "build.sh: debootstrap is not installed" >&2; exit 1; }
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(12 13)
for v in "${versions[@]}"; do
  [ -n "${suites[$v]:-}" ] || { echo "build.sh: unknown Debian version '$v' (12 or 13)" >&2; exit 2; }
  build "$v"
done
: "${here}"
