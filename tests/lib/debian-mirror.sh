# shellcheck shell=bash
# debian_mirror: print the first Debian archive URI configured in this machine's
# apt sources (deb822 .sources first, then one-line .list files), never a
# hard-coded host. Sourced by the lab image recipes (containers and VMs).
debian_mirror() {
  local uri
  uri=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | grep -v -- '-security' | grep -E '/debian/?$' | head -n1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
          | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) {print $i; exit}}' \
          | grep -v -- '-security' | head -n1 || true)
  fi
  if [ -z "$uri" ]; then
    echo "no Debian mirror found in /etc/apt/sources.list(.d)" >&2
    return 1
  fi
  echo "${uri%/}"
}
