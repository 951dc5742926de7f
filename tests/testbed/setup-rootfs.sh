#!/bin/bash
# Build (or re-check) the cached testbed rootfs: a minimal Debian tree (12 bookworm by
# default) that boots a real systemd under systemd-nspawn.  Idempotent: an existing rootfs
# of the same suite is kept, only the host tools are checked and the customisation is
# re-applied.
#   Usage: setup-rootfs.sh ROOTFS [SUITE]   e.g. tests/testbed/setup-rootfs.sh .testbed/rootfs
#          SUITE: bookworm (default; systemd 252, glibc 2.36) or bullseye (Debian 11:
#                 systemd 247, glibc 2.31; the unit's second systemd, packaging/test-deb.sh)
#   env:   MIRROR (default http://deb.debian.org/debian)
# Needs root, a Debian 12 host and the apt archive.  boot.sh re-applies customize-root.sh on
# every boot (on the overlay), so changes to rootfs-files/ never need a rebuild.
set -euo pipefail
ROOTFS=${1:?usage: setup-rootfs.sh ROOTFS [SUITE]}
SUITE=${2:-bookworm}
case "$SUITE" in bookworm|bullseye) ;; *) echo "setup-rootfs.sh: unsupported suite $SUITE" >&2; exit 2;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
t0=$(date +%s.%N)
el() { awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}"; }

# 1. host tools.  Installing systemd-container upgrades the host's systemd packages to the
#    matching version; harmless on a host whose PID 1 is not systemd.
#    busctl/journalctl (systemd) and curl are used by the tests and smoke.sh.
if ! command -v systemd-nspawn >/dev/null || ! command -v debootstrap >/dev/null \
   || ! command -v busctl >/dev/null || ! command -v curl >/dev/null; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    systemd-container debootstrap systemd curl ca-certificates
fi
echo "[setup] host packages ok after $(el)s"

# 2. rootfs (debootstrap into a temp dir, renamed when complete: a killed run never leaves
#    a half-built tree that looks finished)
have_suite() { grep -q "^VERSION_CODENAME=$SUITE\$" "$ROOTFS/etc/os-release" 2>/dev/null; }
if [ ! -x "$ROOTFS/lib/systemd/systemd" ] || [ ! -x "$ROOTFS/usr/bin/python3" ] || ! have_suite; then
  mkdir -p "$(dirname "$ROOTFS")"
  tmp=$ROOTFS.tmp
  rm -rf "$tmp" "$ROOTFS"
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,python3,procps,iproute2 \
    "$SUITE" "$tmp" "$MIRROR" > "$ROOTFS.debootstrap.log" 2>&1 \
    || { tail -30 "$ROOTFS.debootstrap.log"; exit 1; }
  mv "$tmp" "$ROOTFS"
  echo "[setup] debootstrap $SUITE done after $(el)s"
else
  echo "[setup] rootfs already present: $ROOTFS"
fi

# 3. customise (idempotent); start from an empty journal so boot 0 is the first test boot
"$HERE/customize-root.sh" "$ROOTFS"
rm -rf "$ROOTFS"/var/log/journal/*
echo "[setup] done after $(el)s; rootfs size: $(du -sh "$ROOTFS" | cut -f1)"
