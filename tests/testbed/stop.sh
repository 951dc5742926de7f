#!/bin/bash
# Power off the testbed container, stop the reboot loop, unmount the overlay and remove the
# cgroups.  Safe to call twice or when nothing runs.
#   Usage: stop.sh TB_DIR      env: TB_KEEP_OVERLAY=1 keeps ov/upper (the journal etc.)
TB_DIR=${1:-${TB_DIR:?usage: stop.sh TB_DIR}}
S=$TB_DIR/state
[ -d "$S" ] || exit 0
touch "$S/stop"
alive() { [ -e "$S/$1" ] && kill -0 "$(cat "$S/$1")" 2>/dev/null; }
if alive nspawn.pid; then
  kill -TERM "$(cat "$S/nspawn.pid")"          # nspawn: SIGTERM => clean container poweroff
  for _ in $(seq 150); do alive nspawn.pid || break; sleep 0.1; done
  alive nspawn.pid && kill -TERM "$(cat "$S/nspawn.pid")"   # 2nd TERM = immediate
  sleep 0.5; alive nspawn.pid && kill -KILL "$(cat "$S/nspawn.pid")"
fi
if [ -e "$S/loop.pid" ]; then
  for _ in $(seq 50); do alive loop.pid || break; sleep 0.1; done
  alive loop.pid && kill "$(cat "$S/loop.pid")"
fi
mountpoint -q "$TB_DIR/ov/merged" && umount "$TB_DIR/ov/merged"
[ "${TB_KEEP_OVERLAY:-0}" = 1 ] || rm -rf "$TB_DIR/ov"
rm -f "$TB_DIR/run/docker.sock" "$TB_DIR/bus/system_bus_socket"
CG=$(cat "$S/cgroup" 2>/dev/null || true)
if [ -n "$CG" ]; then
  for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
    [ -d "$h/$CG" ] && find "$h/$CG" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
fi
tail -2 "$S/boots.log" 2>/dev/null
exit 0
