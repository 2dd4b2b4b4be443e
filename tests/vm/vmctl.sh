#!/usr/bin/env bash
# Run the VM scenario's machines: a network namespace holding a bridge, one tap
# device per VM and QEMU itself (software emulation), so the guests' network
# exists only inside that namespace. Nothing is routed anywhere else.
#
# Usage: tests/vm/vmctl.sh COMMAND [ARGS]
#   net-up BRIDGE_CIDR            namespace + bridge br0 holding BRIDGE_CIDR (e.g. 10.231.0.1/24)
#   net-down                      stop everything in the namespace and delete it
#   serve DIR ADDR PORT           serve DIR over HTTP on ADDR:PORT inside the namespace
#   start NAME CIDR MAC MEM CPUS  boot NAME (overlay on the base disk, created if missing)
#   stop NAME                     power NAME off (QEMU exits; the overlay stays)
#   fresh NAME                    delete NAME's overlay: the next start is a fresh OS
#   wait-ssh ADDR TIMEOUT         wait until root@ADDR answers over ssh
#   known-hosts ADDR...           write known_hosts for the guests' host key
#   ssh ADDR [COMMAND...]         run a command in a guest (debugging)
#
# Environment:
#   AILAB_VM_IMAGE  image directory printed by tests/vm/build-image.sh; net-up
#                   records it in AILAB_VM_RUN for later commands
#   AILAB_VM_RUN    where overlays, pid files, console logs and known_hosts live
#   AILAB_VM_NS     namespace name (default ailab-vm)
#   AILAB_VM_ACCEL  QEMU accelerator (default tcg,thread=multi: KVM hangs guests here)
set -euo pipefail

ns=${AILAB_VM_NS:-ailab-vm}
run=${AILAB_VM_RUN:?set AILAB_VM_RUN}
accel=${AILAB_VM_ACCEL:-tcg,thread=multi}

die() { echo "vmctl.sh: $*" >&2; exit 1; }
image() {
  if [[ -n "${AILAB_VM_IMAGE:-}" ]]; then
    echo "$AILAB_VM_IMAGE"
  elif [[ -f "${run}/image" ]]; then
    cat "${run}/image"
  else
    die "set AILAB_VM_IMAGE (the directory tests/vm/build-image.sh printed)"
  fi
}
in_ns() { ip netns exec "$ns" "$@"; }
alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

ssh_opts() {
  local img
  img=$(image)
  printf '%s\n' -i "${img}/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=${run}/known_hosts" \
    -o ConnectTimeout=5 -o "ProxyCommand=ip netns exec ${ns} nc %h %p"
}

stop_pidfile() {
  local pidfile=$1 pid
  alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
    sleep 0.5
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

netmask() {
  local prefix=$1 mask="" i bits
  for i in 0 1 2 3; do
    bits=$(( prefix > 8 ? 8 : (prefix < 0 ? 0 : prefix) ))
    mask+=$(( 256 - (1 << (8 - bits)) ))
    [[ $i -lt 3 ]] && mask+=.
    prefix=$(( prefix - 8 ))
  done
  echo "$mask"
}

cmd=${1:-}
[[ -n "$cmd" ]] || die "no command (see the header of $0)"
shift
mkdir -p "$run"

case "$cmd" in
  net-up)
    cidr=${1:?bridge address, e.g. 10.231.0.1/24}
    ip netns list | grep -qw "^${ns}" || ip netns add "$ns"
    in_ns ip link set lo up
    in_ns ip link show br0 >/dev/null 2>&1 || in_ns ip link add br0 type bridge
    in_ns ip addr replace "$cidr" dev br0
    in_ns ip link set br0 up
    image >"${run}/image"
    ;;
  net-down)
    for pidfile in "$run"/*.pid; do
      [[ -e "$pidfile" ]] && stop_pidfile "$pidfile"
    done
    if ip netns list | grep -qw "^${ns}"; then
      ip netns delete "$ns"
    fi
    ;;
  serve)
    dir=${1:?directory} addr=${2:?address} port=${3:?port}
    pidfile="${run}/serve-${port}.pid"
    alive "$pidfile" && exit 0
    # Not through in_ns: a function in the background is a subshell, whose pid would go to
    # the pid file while python, its child, outlived net-down. ip execs python in place.
    ip netns exec "$ns" python3 -m http.server --bind "$addr" --directory "$dir" "$port" \
      >"${run}/serve-${port}.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    for _ in $(seq 1 50); do
      in_ns nc -z "$addr" "$port" 2>/dev/null && exit 0
      sleep 0.2
    done
    die "the HTTP server on ${addr}:${port} did not start (see ${run}/serve-${port}.log)"
    ;;
  start)
    name=${1:?name} cidr=${2:?address/prefix} mac=${3:?mac} mem=${4:-2048} cpus=${5:-2}
    img=$(image)
    pidfile="${run}/${name}.pid"
    alive "$pidfile" && exit 0
    overlay="${run}/${name}.qcow2"
    [[ -f "$overlay" ]] || qemu-img create -q -f qcow2 -F qcow2 -b "${img}/base.qcow2" "$overlay"
    tap="tap-${name}"
    [[ ${#tap} -le 15 ]] || die "VM name ${name} is too long for a tap device name"
    in_ns ip link show "$tap" >/dev/null 2>&1 || in_ns ip tuntap add "$tap" mode tap
    in_ns ip link set "$tap" master br0 up
    addr=${cidr%/*}
    mask=$(netmask "${cidr#*/}")
    append="root=/dev/vda rw console=ttyS0 net.ifnames=0 mitigations=off"
    append+=" ip=${addr}:::${mask}:${name}:eth0:off systemd.hostname=${name}"
    echo "=== $(date -Is) start ${name}" >>"${run}/${name}.console.log"
    in_ns qemu-system-x86_64 -name "$name" -machine pc -accel "$accel" -cpu max \
      -smp "$cpus" -m "$mem" -nodefaults -display none \
      -kernel "${img}/vmlinuz" -initrd "${img}/initrd.img" -append "$append" \
      -drive "file=${overlay},if=virtio,format=qcow2,discard=unmap" \
      -netdev "tap,id=net0,ifname=${tap},script=no,downscript=no" \
      -device "virtio-net-pci,netdev=net0,mac=${mac}" \
      -device virtio-rng-pci \
      -chardev "file,id=console,path=${run}/${name}.console.log,append=on" -serial chardev:console \
      -pidfile "$pidfile" -daemonize
    ;;
  stop)
    stop_pidfile "${run}/${1:?name}.pid"
    ;;
  fresh)
    name=${1:?name}
    alive "${run}/${name}.pid" && die "${name} is running; stop it first"
    rm -f "${run}/${name}.qcow2"
    ;;
  wait-ssh)
    addr=${1:?address} timeout=${2:-300}
    mapfile -t opts < <(ssh_opts)
    deadline=$(( $(date +%s) + timeout ))
    until ssh "${opts[@]}" "root@${addr}" true 2>/dev/null; do
      [[ $(date +%s) -lt $deadline ]] || die "root@${addr} did not answer over ssh within ${timeout} s"
      sleep 3
    done
    ;;
  known-hosts)
    img=$(image)
    key=$(cut -d' ' -f1,2 "${img}/ssh_host_ed25519_key.pub")
    : >"${run}/known_hosts"
    for addr in "$@"; do
      echo "${addr} ${key}" >>"${run}/known_hosts"
    done
    ;;
  ssh)
    addr=${1:?address}
    shift
    mapfile -t opts < <(ssh_opts)
    exec ssh "${opts[@]}" "root@${addr}" "$@"
    ;;
  *)
    die "unknown command ${cmd} (see the header of $0)"
    ;;
esac
