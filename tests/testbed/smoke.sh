#!/bin/bash
# Smoke test of the project testbed: boot, D-Bus from the host, fake kubelet / docker (unix
# socket Engine API, all fault modes) / chronyd, PLEG journal lines, extra units + /opt/agent,
# journal from the host, reboot via login1.  Prints PASS lines; exits non-zero on the first
# failure; always stops the container.
#   Usage: smoke.sh [ROOTFS]        (default: <repo>/.testbed/rootfs, or $NODEWARDEN_TESTBED_ROOTFS)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOTFS=${1:-${NODEWARDEN_TESTBED_ROOTFS:-$HERE/../../.testbed/rootfs}}
[ -x "$ROOTFS/lib/systemd/systemd" ] || { echo "no rootfs at $ROOTFS: run $HERE/setup-rootfs.sh $ROOTFS" >&2; exit 2; }
TB_DIR=$(mktemp -d /tmp/nodewarden-tb-smoke.XXXXXX); export TB_DIR
A=unix:path=$TB_DIR/bus/system_bus_socket
B="busctl --address=$A --timeout=5"
SOCK=$TB_DIR/run/docker.sock
X() { "$HERE/tb-exec.sh" "$@"; }
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
t0=$(date +%s.%N)
el() { awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $1}"; }
cleanup() { "$HERE/stop.sh" "$TB_DIR" >/dev/null 2>&1 || true; rm -rf "$TB_DIR"; }
trap cleanup EXIT

# one testbed per host at a time (same lock as the Rust harness)
exec 9>/tmp/nodewarden-testbed.lock
flock -w 900 9 || fail "could not get /tmp/nodewarden-testbed.lock"

# --- boot with an extra unit, a drop-in and an agent dir -------------------------------
mkdir -p "$TB_DIR/extra/kubelet.service.d" "$TB_DIR/agent"
cat > "$TB_DIR/extra/nodewarden.service" <<'EOT'
[Unit]
Description=agent slot (smoke test stand-in)
[Service]
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
EOT
printf '[Service]\nTimeoutStartSec=7\n' > "$TB_DIR/extra/kubelet.service.d/50-smoke.conf"
echo marker > "$TB_DIR/agent/marker"
tb=$(date +%s.%N)
TB_ROOTFS=$ROOTFS TB_EXTRA_UNITS=$TB_DIR/extra AGENT_DIR=$TB_DIR/agent "$HERE/boot.sh" "$TB_DIR"
pass "boot in $(el "$tb")s"

# --- D-Bus from the host ----------------------------------------------------------------
U=/org/freedesktop/systemd1/unit/kubelet_2eservice
v=$($B get-property org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager Version)
pass "Manager.Version from the host: $v"
inv0=$($B get-property org.freedesktop.systemd1 $U org.freedesktop.systemd1.Unit InvocationID)
tr=$(date +%s.%N)
X systemctl restart kubelet.service
inv1=$($B get-property org.freedesktop.systemd1 $U org.freedesktop.systemd1.Unit InvocationID)
check "restart kubelet ($(el "$tr")s): InvocationID changed" [ "$inv0" != "$inv1" ]
check "kubelet /healthz 200 from the host" curl -fsS -m 3 -o /dev/null http://127.0.0.1:10248/healthz
check "extra unit nodewarden.service enabled and active" [ "$(X systemctl is-active nodewarden.service)" = active ]
check "drop-in applied (kubelet TimeoutStartSec=7s)" [ "$(X systemctl show -P TimeoutStartUSec kubelet.service)" = 7s ]
check "/opt/agent bound read-only" sh -c "[ \"\$('$HERE/tb-exec.sh' cat /opt/agent/marker)\" = marker ] && ! '$HERE/tb-exec.sh' touch /opt/agent/x 2>/dev/null"

# --- fake docker: Engine API on a unix socket ------------------------------------------
code() { curl -s -o /dev/null -w '%{http_code}' -m "${2:-3}" --unix-socket "$SOCK" "http://docker$1" || true; }
check "docker socket at $SOCK (host side)" [ -S "$SOCK" ]
check "GET /_ping -> OK" [ "$(curl -fsS -m 3 --unix-socket "$SOCK" http://docker/_ping)" = OK ]
check "GET /containers/json?limit=1 -> []" [ "$(curl -fsS -m 3 --unix-socket "$SOCK" 'http://docker/containers/json?limit=1')" = "[]" ]
check "GET /v1.43/version -> ApiVersion" sh -c "curl -fsS -m 3 --unix-socket '$SOCK' http://docker/v1.43/version | grep -q '\"ApiVersion\": \"1.43\"'"
inside=$(X python3 -c '
import socket; s = socket.socket(socket.AF_UNIX); s.settimeout(3); s.connect("/run/docker.sock")
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n"); print(s.recv(4096).decode().split("\r\n")[0])')
check "/run/docker.sock inside the container answers ($inside)" [ "$inside" = "HTTP/1.1 200 OK" ]
echo fail > "$TB_DIR/ctl/docker.mode"
check "docker mode=fail -> 500" [ "$(code /_ping)" = 500 ]
echo hang > "$TB_DIR/ctl/docker.mode"
th=$(date +%s.%N); c=$(code /_ping 2)
check "docker mode=hang -> no answer (client gave up after $(el "$th")s)" [ "$c" = 000 ]
echo hang-accept > "$TB_DIR/ctl/docker.mode"; sleep 0.7
for _ in 1 2 3 4 5 6; do code /_ping 1 >/dev/null & done; wait
th=$(date +%s.%N); c=$(code /_ping 2)
check "docker mode=hang-accept -> connection never served ($(el "$th")s)" [ "$c" = 000 ]
echo ok > "$TB_DIR/ctl/docker.mode"; sleep 0.7
check "docker mode=ok -> 200 again" [ "$(code /_ping)" = 200 ]
echo start-fail > "$TB_DIR/ctl/docker.mode"
check "docker mode=start-fail -> restart job fails" sh -c "! '$HERE/tb-exec.sh' systemctl restart docker.service 2>/dev/null"
echo start-hang > "$TB_DIR/ctl/docker.mode"
X systemctl restart --no-block docker.service; sleep 1
st=$(X systemctl show -P ActiveState,SubState docker.service | tr '\n' /)
check "docker mode=start-hang -> stuck in $st, socket gone" sh -c "[ '$st' = activating/start/ ] && [ \"\$(curl -s -o /dev/null -w '%{http_code}' -m 2 --unix-socket '$SOCK' http://docker/_ping)\" = 000 ]"
echo ok > "$TB_DIR/ctl/docker.mode"
X systemctl restart docker.service
check "docker back after mode=ok" [ "$(code /_ping)" = 200 ]
X systemctl kill -s USR1 --kill-whom=main docker.service; sleep 0.5
check "docker SIGUSR1 -> goroutine dump, still active" sh -c "journalctl -D \"\$(cat '$TB_DIR/state/root')/var/log/journal\" -u docker.service -o cat | grep -q 'goroutine stacks written to' && [ \"\$('$HERE/tb-exec.sh' systemctl is-active docker.service)\" = active ]"

# --- fake kubelet: PLEG lines in its journal -------------------------------------------
J="journalctl -D $(cat "$TB_DIR/state/root")/var/log/journal --no-pager -q -o cat"
echo on > "$TB_DIR/ctl/kubelet.pleg"; sleep 4.5; echo off > "$TB_DIR/ctl/kubelet.pleg"
pleg=$($J -u kubelet.service | grep 'PLEG is not healthy' || true)
echo "$pleg" | tail -2
check "PLEG klog 'Skipping pod synchronization' line" sh -c "echo '$pleg' | grep -Eq '^E[0-9]{4} [0-9:.]{15} +[0-9]+ kubelet.go:[0-9]+\] \"Skipping pod synchronization\" err=\"PLEG is not healthy: pleg was last seen active 3m[0-9.]+s ago; threshold is 3m0s\"'"
check "PLEG klog 'Node became not ready' line" sh -c "echo '$pleg' | grep -Eq '^I[0-9]{4} [0-9:.]{15} +[0-9]+ [a-z_]+.go:[0-9]+\] \"Node became not ready\" node=\"testbed\" condition=\{\"type\":\"Ready\",\"status\":\"False\".*\"reason\":\"KubeletNotReady\",\"message\":\"PLEG is not healthy: pleg was last seen active 3m'"
secs=$(echo "$pleg" | sed -nE 's/.*last seen active 3m([0-9.]+)s ago.*/\1/p' | tr '\n' ' ')
check "PLEG 'last seen' grows ($secs)" awk -v s="$secs" 'BEGIN{n=split(s,a," "); exit !(n>=4 && a[n]-a[1] >= 2.5)}'

# --- fake time sync ---------------------------------------------------------------------
C=/org/freedesktop/systemd1/unit/chronyd_2eservice
c0=$($B get-property org.freedesktop.systemd1 $C org.freedesktop.systemd1.Unit InvocationID)
$B call org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager RestartUnit ss chronyd.service replace >/dev/null
sleep 0.3
c1=$($B get-property org.freedesktop.systemd1 $C org.freedesktop.systemd1.Unit InvocationID)
check "chronyd.service restarted over D-Bus (InvocationID changed)" [ "$c0" != "$c1" ]
check "chronyd journal from the host" sh -c "$J -u chronyd.service | grep -c 'chronyd version' | grep -q '^[2-9]'"

# --- reboot via login1 -------------------------------------------------------------------
boot0=$(X cat /proc/sys/kernel/random/boot_id); leader0=$(cat "$TB_DIR/state/leader.pid")
trb=$(date +%s.%N)
$B call org.freedesktop.login1 /org/freedesktop/login1 org.freedesktop.login1.Manager Reboot b false
for _ in $(seq 300); do
  grep -q 'exit rc=133' "$TB_DIR/state/boots.log" && [ -e "$TB_DIR/state/leader.pid" ] \
    && [ "$(cat "$TB_DIR/state/leader.pid")" != "$leader0" ] \
    && $B get-property org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager SystemState 2>/dev/null | grep -q running \
    && break
  sleep 0.1
done
boot1=$(X cat /proc/sys/kernel/random/boot_id)
check "login1 Reboot: back in $(el "$trb")s with a new boot_id" [ -n "$boot1" ] && [ "$boot0" != "$boot1" ]
check "journal keeps both boots" [ "$(X journalctl --list-boots --no-pager -q | wc -l)" = 2 ]
check "kubelet active after the reboot" [ "$(X systemctl is-active kubelet.service)" = active ]
echo "ALL PASS in $(el "$t0")s"
