#!/bin/bash
# Boot the testbed: a real systemd as PID 1 of a systemd-nspawn container, on an overlay
# over the cached rootfs (the rootfs itself stays pristine), in the background.  Whenever
# the container reboots (nspawn exit status 133) it is booted again, with a new boot_id.
#   Usage: boot.sh TB_DIR
#   env:   TB_ROOTFS       cached rootfs from setup-rootfs.sh   (default TB_DIR/rootfs)
#          AGENT_DIR       host dir bound read-only at /opt/agent (default TB_DIR/agent)
#          TB_EXTRA_UNITS  host dir whose content is copied into /etc/systemd/system before
#                          the first boot; its top-level unit files (*.service, *.socket,
#                          *.timer, *.path) are enabled; drop-in dirs (kubelet.service.d/)
#                          are copied as they are.  E.g. the agent's nodewarden.service.
#          TB_NAME         machine name (default testbed)
#          TB_BOOT_TIMEOUT seconds to wait for systemd to finish booting (default 60)
# Host-side handles under TB_DIR:
#   bus/system_bus_socket  the container's system bus: DBUS_SYSTEM_BUS_ADDRESS=unix:path=...
#   run/docker.sock        the fake docker's Engine API  (= /run/docker.sock inside;
#                          TB_DIR/run is /run/nodewarden-test inside)
#   ctl/<svc>.mode         fake service behaviour, ctl/kubelet.pleg (= /srv/testctl inside)
#   state/root             the booted root (journal: $(cat state/root)/var/log/journal)
#   state/boots.log        one line per boot start / exit (rc=133 == reboot)
#   state/leader.pid       host PID of the container's systemd (PID 1 inside)
#   state/console.log      container console
# Only one testbed may run at a time on a host (the fakes' TCP ports are host-wide);
# callers serialise with flock on /tmp/nodewarden-testbed.lock.
set -euo pipefail
TB_DIR=${1:-${TB_DIR:?usage: boot.sh TB_DIR}}
mkdir -p "$TB_DIR"; TB_DIR=$(cd "$TB_DIR" && pwd)
TB_NAME=${TB_NAME:-testbed}
TB_ROOTFS=${TB_ROOTFS:-$TB_DIR/rootfs}
AGENT_DIR=${AGENT_DIR:-$TB_DIR/agent}
HERE=$(cd "$(dirname "$0")" && pwd)
S=$TB_DIR/state
t0=$(date +%s.%N)
el() { awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $t0}"; }

[ -x "$TB_ROOTFS/lib/systemd/systemd" ] || { echo "boot.sh: no rootfs at $TB_ROOTFS (run setup-rootfs.sh)" >&2; exit 2; }
mkdir -p "$TB_DIR"/{bus,ctl,run} "$AGENT_DIR" "$S"
if [ -e "$S/loop.pid" ] && kill -0 "$(cat "$S/loop.pid")" 2>/dev/null; then
  echo "boot.sh: testbed in $TB_DIR already running" >&2; exit 1
fi
if (exec 3<>/dev/tcp/127.0.0.1/10248) 2>/dev/null; then
  echo "boot.sh: 127.0.0.1:10248 is in use: another testbed (or a kubelet) is running" >&2; exit 1
fi
rm -f "$S"/{leader.pid,nspawn.pid,stop,loop.pid} "$TB_DIR"/bus/system_bus_socket "$TB_DIR"/run/docker.sock
: > "$S/boots.log"

# overlay over the pristine rootfs; the fakes are (re)installed on every boot.sh run
mkdir -p "$TB_DIR"/ov/{upper,work,merged}
mountpoint -q "$TB_DIR/ov/merged" || mount -t overlay overlay \
  -o "lowerdir=$TB_ROOTFS,upperdir=$TB_DIR/ov/upper,workdir=$TB_DIR/ov/work" "$TB_DIR/ov/merged"
ROOT=$TB_DIR/ov/merged
"$HERE/customize-root.sh" "$ROOT"
if [ -n "${TB_EXTRA_UNITS:-}" ]; then
  E=$ROOT/etc/systemd/system
  cp -rT "$TB_EXTRA_UNITS" "$E"
  for f in "$TB_EXTRA_UNITS"/*; do
    [ -f "$f" ] || continue
    u=$(basename "$f")
    case "$u" in
      *.service|*.path) mkdir -p "$E/multi-user.target.wants"; ln -sf "/etc/systemd/system/$u" "$E/multi-user.target.wants/$u";;
      *.socket) mkdir -p "$E/sockets.target.wants"; ln -sf "/etc/systemd/system/$u" "$E/sockets.target.wants/$u";;
      *.timer) mkdir -p "$E/timers.target.wants"; ln -sf "/etc/systemd/system/$u" "$E/timers.target.wants/$u";;
    esac
  done
fi
echo "$ROOT" > "$S/root"

# Host PID 1 is not systemd and there is no host system bus, so nspawn must not try to
# register with machined or create a scope: --register=no --keep-unit.  With --keep-unit
# nspawn nests its cgroups ("payload"/"supervisor") below its *own* cgroup, so first move
# the launcher into a private cgroup in every hierarchy nspawn touches (name=systemd v1 +
# unified v2 on a hybrid host; /sys/fs/cgroup itself on a pure-v2 host).
CG=tb-$TB_NAME
for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
  [ -e "$h/cgroup.procs" ] && mkdir -p "$h/$CG" && echo $$ > "$h/$CG/cgroup.procs"
done
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
  mkdir -p "/sys/fs/cgroup/$CG" && echo $$ > "/sys/fs/cgroup/$CG/cgroup.procs"
fi
echo "$CG" > "$S/cgroup"

loop() {
  local n=0 rc
  while :; do
    n=$((n+1))
    echo "$(date +%s.%N) boot=$n start" >> "$S/boots.log"
    systemd-nspawn --quiet --register=no --keep-unit --boot \
      --machine="$TB_NAME" --directory="$ROOT" --console=read-only \
      --bind="$TB_DIR/bus:/run/host-bus" \
      --bind="$TB_DIR/run:/run/nodewarden-test" \
      --bind="$TB_DIR/ctl:/srv/testctl" \
      --bind-ro="$AGENT_DIR:/opt/agent" \
      --setenv=TESTBED=1 \
      >> "$S/console.log" 2>&1 < /dev/null &
    echo $! > "$S/nspawn.pid"
    # the container's PID 1 is a child of nspawn; nspawn first forks a short-lived helper
    # (also its child), so pick the child that is PID 1 in its own PID namespace
    for _ in $(seq 200); do
      for c in $(cat /proc/$!/task/*/children 2>/dev/null); do
        if awk '/^NSpid:/ { exit !(NF == 3 && $NF == 1) }' "/proc/$c/status" 2>/dev/null; then
          echo "$c" > "$S/leader.pid"; break 2
        fi
      done
      sleep 0.05
    done
    set +e; wait $!; rc=$?; set -e
    rm -f "$S/leader.pid"
    echo "$(date +%s.%N) boot=$n exit rc=$rc" >> "$S/boots.log"
    [ "$rc" -eq 133 ] && [ ! -e "$S/stop" ] || break
  done
}
loop </dev/null >/dev/null 2>&1 9>&- &
echo $! > "$S/loop.pid"

# wait for the container's systemd to finish booting (host side, via the exposed bus)
A=unix:path=$TB_DIR/bus/system_bus_socket
st=
for _ in $(seq $(( ${TB_BOOT_TIMEOUT:-60} * 10 ))); do
  st=$(busctl --address="$A" get-property org.freedesktop.systemd1 \
       /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager SystemState 2>/dev/null || true)
  case "$st" in *running*|*degraded*) break;; esac
  kill -0 "$(cat "$S/loop.pid")" 2>/dev/null || break
  sleep 0.1
done
case "$st" in
  *running*|*degraded*) echo "container up: state=${st#s } leader=$(cat "$S/leader.pid" 2>/dev/null) after $(el)s";;
  *) echo "boot.sh: container did not come up (state=${st:-none}) after $(el)s; console:" >&2
     tail -20 "$S/console.log" >&2; exit 1;;
esac
