#!/usr/bin/env bash
# Build the Debian 12 base disk for the VM scenario (molecule/vm): the same
# debootstrap recipe as the container lab images (tests/images/build.sh) plus a
# kernel, an initramfs, openssh-server and systemd-networkd, written into an ext4
# image with `mkfs.ext4 -d` (no loop mount) and converted to qcow2. VMs boot it
# through per-VM qcow2 overlays, so a "fresh OS" is a new overlay.
#
# Beside the disk, the build leaves in the same cache directory:
#   vmlinuz, initrd.img      booted with -kernel/-initrd (root=/dev/vda)
#   id_ed25519[.pub]         the client key root accepts; generated per build
#   ssh_host_ed25519_key.pub the guests' host key, for a real known_hosts file
#   repo/                    a flat apt repository with the packages the roles
#                            install (NFS, llama-server's libgomp, ...); the VMs have
#                            no route to any mirror, so the scenario serves this to them
#
# Those packages are also installed in the base disk: under software emulation dpkg
# costs minutes per guest, and installing them is proven where it is cheap (the
# container tiers install nfs-kernel-server, nfs-common, libgomp1, acl and rsync with
# the same roles). The roles still ask apt for them, so a package a role names that
# the repository lacks fails the VM tier. nfs-server.service is installed disabled: only
# the nfs_server role enables it, on the store server.
#
# Everything is keyed by a hash of this file: a changed recipe builds a new
# directory. Prints that directory on its last line.
#
# Environment: AILAB_CACHE (default /var/cache/ailab)
set -euo pipefail

# shellcheck source=tests/lib/debian-mirror.sh
. "$(dirname "$0")/../lib/debian-mirror.sh"
recipe_hash=$(cat "$0" "$(dirname "$0")/../lib/debian-mirror.sh" | sha256sum | cut -c1-12)
cache_dir=${AILAB_CACHE:-/var/cache/ailab}
suite=bookworm
out="${cache_dir}/vm/debian12-${recipe_hash}"

# The container recipe, plus what a booted machine needs.
packages=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,procps,ca-certificates,curl,gnupg,kmod,udev
packages+=,linux-image-amd64,initramfs-tools,zstd,openssh-server
# Served to the guests from repo/ (with their dependencies) and installed in the disk.
repo_packages=(nfs-kernel-server nfs-common libgomp1 acl rsync)

# --check: build nothing; exit 0 when the base disk of this recipe exists, else 1.
if [[ ${1:-} == --check ]]; then
  [[ -f "${out}/.complete" ]]
  exit
fi
if [[ -f "${out}/.complete" ]]; then
  echo "VM base image is up to date" >&2
  echo "$out"
  exit 0
fi

for tool in debootstrap mkfs.ext4 qemu-img ssh-keygen dpkg-scanpackages; do
  command -v "$tool" >/dev/null || {
    echo "build-image.sh: $tool is missing; run tests/vm/ensure-host-tools.sh" >&2
    exit 1
  }
done

url=$(debian_mirror)
mkdir -p "${cache_dir}/vm"
work=$(mktemp -d "${cache_dir}/vm/build-${recipe_hash}.XXXXXX")
root="${work}/root"
cleanup() {
  umount "${root}/proc" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "building the VM base image ${recipe_hash} from ${url} (${suite})" >&2
start=$(date +%s)
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$url" >"${work}/debootstrap.log" 2>&1 || {
  tail -n 30 "${work}/debootstrap.log" >&2
  exit 1
}
echo "debootstrap done in $(( $(date +%s) - start )) s" >&2

in_root() { chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }

# The repository the guests install from: the requested packages and every
# dependency the base system lacks, downloaded in the image's own chroot so the
# set matches what the guest will resolve.
echo "deb ${url} ${suite} main" >"${root}/etc/apt/sources.list"
mount -t proc proc "${root}/proc"
in_root apt-get update -qq
in_root apt-get install -qq --download-only --no-install-recommends -y "${repo_packages[@]}" >/dev/null
# Installed from those same files; no service starts in the chroot.
printf '#!/bin/sh\nexit 101\n' >"${root}/usr/sbin/policy-rc.d"
chmod 0755 "${root}/usr/sbin/policy-rc.d"
in_root apt-get install -qq --no-install-recommends -y "${repo_packages[@]}" >/dev/null
rm -f "${root}/usr/sbin/policy-rc.d"
in_root systemctl disable nfs-server.service >/dev/null 2>&1
umount "${root}/proc"
mkdir -p "${work}/repo"
mv "${root}"/var/cache/apt/archives/*.deb "${work}/repo/"
(cd "${work}/repo" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null >Packages && gzip -9k Packages)

# Keys: one client key root accepts, one host key both guests present.
ssh-keygen -q -t ed25519 -N '' -C "ailab-vm-${recipe_hash}" -f "${work}/id_ed25519"
rm -f "${root}"/etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -C "ailab-vm-host-${recipe_hash}" -f "${root}/etc/ssh/ssh_host_ed25519_key"
cp "${root}/etc/ssh/ssh_host_ed25519_key.pub" "${work}/"
install -d -m 0700 "${root}/root/.ssh"
install -m 0600 "${work}/id_ed25519.pub" "${root}/root/.ssh/authorized_keys"
cat >"${root}/etc/ssh/sshd_config.d/ailab.conf" <<'EOF'
# Written by tests/vm/build-image.sh: key-only root login, one host key.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
EOF

# Machine identity and network come from the kernel command line, so one base
# disk serves every VM: systemd.hostname= and ip= (systemd-network-generator
# turns ip= into a systemd-networkd unit).
cat >"${root}/etc/fstab" <<'EOF'
/dev/vda / ext4 rw,errors=remount-ro 0 1
EOF
echo ailab-vm >"${root}/etc/hostname"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"${root}/etc/hosts"
: >"${root}/etc/machine-id"
rm -f "${root}/var/lib/dbus/machine-id"
in_root systemctl enable systemd-networkd.service systemd-network-generator.service >/dev/null 2>&1
# Nothing that waits for a network this machine will never have, or burns
# emulated CPU at boot.
in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
  fstrim.timer systemd-networkd-wait-online.service getty@tty1.service >/dev/null 2>&1

# apt: no recommends (like the container images); the scenario writes the
# sources (its own repository) during prepare.
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
  >"${root}/etc/apt/apt.conf.d/90ailab-no-recommends"
echo "# The VM scenario's prepare step points apt at its local repository." >"${root}/etc/apt/sources.list"
rm -rf "${root}"/var/cache/apt/archives/*.deb "${root}"/var/lib/apt/lists/*

kernels=("${root}"/boot/vmlinuz-*)
version=${kernels[-1]##*/vmlinuz-}
cp "${root}/boot/vmlinuz-${version}" "${work}/vmlinuz"
cp "${root}/boot/initrd.img-${version}" "${work}/initrd.img"
chmod 0644 "${work}/vmlinuz" "${work}/initrd.img"

mkfs.ext4 -q -F -L ailab-root -d "$root" "${work}/base.raw" 6G >/dev/null
qemu-img convert -O qcow2 "${work}/base.raw" "${work}/base.qcow2"
rm -f "${work}/base.raw"
rm -rf "$root" "${work}/debootstrap.log"

# Publish atomically: a half build never looks complete.
touch "${work}/.complete"
rm -rf "$out"
mv "$work" "$out"
trap - EXIT
echo "built the VM base image in $(( $(date +%s) - start )) s" >&2
echo "$out"
