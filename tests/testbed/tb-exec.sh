#!/bin/bash
# Run a command inside the running testbed container (all namespaces of its PID 1), with a
# clean environment (nsenter would otherwise leak the caller's env, e.g. a host-side
# DBUS_SYSTEM_BUS_ADDRESS).  Pass variables with: tb-exec.sh env RUST_LOG=debug CMD...
# For a process that systemd inside should manage (own cgroup, journald logging), wrap it:
#   tb-exec.sh systemd-run --wait --pipe --collect --unit=agent /opt/agent/nodewarden ARGS
#   env: TB_DIR (the testbed folder)
TB_DIR=${TB_DIR:?set TB_DIR to the testbed folder}
L=$(cat "$TB_DIR/state/leader.pid" 2>/dev/null) || { echo "container not running" >&2; exit 1; }
cd / && exec nsenter --target "$L" --all -- /usr/bin/env -i \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TERM=dumb "$@"
