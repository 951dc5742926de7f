#!/usr/bin/env bash
# Check that a nodewarden binary from packaging/build-static.sh has no libc floor:
#   - `file` says static(-pie) linked, `ldd` finds nothing to load, no DT_NEEDED entry,
#     relative relocations packed (DT_RELR);
#   - `nodewarden --version` and `nodewarden runbook validate` run;
#   - it resolves `localhost` (getaddrinfo through the static glibc's built-in `files`
#     NSS module): a request for http://localhost:PORT reaches a listener on 127.0.0.1;
#   - with OLD_ROOTFS (an older distro's tree, e.g. the Debian 11 testbed rootfs with
#     glibc 2.31): the same, chrooted into that tree, with its nsswitch.conf and with
#     `hosts: hesiod myhostname mdns4_minimal files dns` (modules a static binary cannot
#     load come first: they must be skipped, not crash it; hesiod's .so from glibc 2.31 is
#     on disk there).
#
#   packaging/check-static.sh BINARY [OLD_ROOTFS]
# Called by tests/run. Needs python3 (the listener); the chroot part needs root.
set -euo pipefail
BIN=$(realpath "${1:?usage: check-static.sh BINARY [OLD_ROOTFS]}")
OLD=${2:-}
cd "$(dirname "$0")/.."
ROOT=$(pwd)
say() { echo "[check-static] $*"; }
fail() { echo "[check-static] FAIL: $*" >&2; exit 1; }

need=()
command -v file >/dev/null || need+=(file)
command -v python3 >/dev/null || need+=(python3)
if [ "${#need[@]}" -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
fi
f=$(file -b "$BIN")
say "file: $f"
case "$f" in *"static-pie linked"*|*"statically linked"*) ;; *) fail "not a static executable";; esac
l=$(ldd "$BIN" 2>&1 || true)
say "ldd: $(echo "$l" | tr -s ' \t' ' ')"
case "$l" in *"not a dynamic executable"*|*"statically linked"*) ;; *) fail "ldd finds libraries to load";; esac
# Outputs are captured before they are matched: under pipefail, `cmd | grep -q` (or
# `| head`) fails with 141 whenever grep/head exits before cmd has written everything.
dyn=$(readelf -d "$BIN" 2>/dev/null || true)
if grep -q NEEDED <<<"$dyn"; then fail "DT_NEEDED entries: $(grep NEEDED <<<"$dyn")"; fi
# build-static.sh links with -z pack-relative-relocs (0.5 MB less, issue 15)
if ! grep -q '(RELR)' <<<"$dyn"; then fail "no DT_RELR: relative relocations not packed (build-static.sh's link flags)"; fi
v=$("$BIN" --version) || fail "--version"
grep -q '^nodewarden ' <<<"$v" || fail "--version: $v"
rv=$("$BIN" runbook validate "$ROOT/runbooks/default.yaml") || fail "runbook validate: $rv"
grep -q valid <<<"$rv" || fail "runbook validate: $rv"
say "--version: $("$BIN" --version); runbook validate: ok"

T=$(mktemp -d /tmp/nodewarden-check-static.XXXXXX)
LPID=
cleanup() {
  [ -z "$LPID" ] || kill "$LPID" 2>/dev/null || true
  mountpoint -q "$T/m" 2>/dev/null && umount "$T/m"
  rm -rf "$T"
}
trap cleanup EXIT

# a listener that records every request line; any answer will do (the agent then fails
# its API call, which is fine: the request arriving proves the name resolved)
python3 - "$T/port" "$T/requests" <<'EOF' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(sys.argv[2], "a") as f:
            f.write(self.path + "\n")
        self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.serve_forever()
EOF
LPID=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
PORT=$(cat "$T/port")

# resolve localhost: run CMD... (a maintenance plan against http://localhost:PORT) and
# expect a request at the listener
resolves() {
  local what=$1; shift
  : > "$T/requests"
  local out rc=0
  out=$(timeout 30 "$@" maintenance plan --node-name n1 --api-url "http://localhost:$PORT" 2>&1) || rc=$?
  [ "$rc" -lt 124 ] || fail "$what: exit $rc (crash or hang): $out"
  grep -q '^/api/' "$T/requests" || fail "$what: no request reached 127.0.0.1:$PORT (localhost did not resolve?): $out"
  say "$what: localhost resolved, $(wc -l < "$T/requests") request(s) arrived (exit $rc)"
}
resolves "host ($(ldd --version 2>/dev/null | awk 'NR==1{print $NF}'))" "$BIN"

if [ -n "$OLD" ]; then
  [ "$(id -u)" = 0 ] || fail "OLD_ROOTFS needs root (chroot)"
  [ -d "$OLD/etc" ] || fail "no rootfs at $OLD"
  # an overlay, so the cached rootfs stays pristine
  mkdir -p "$T"/{u,w,m}
  mount -t overlay overlay -o "lowerdir=$OLD,upperdir=$T/u,workdir=$T/w" "$T/m"
  install -m 0755 "$BIN" "$T/m/usr/local/bin/nodewarden"
  # a debootstrap tree has no /etc/hosts (every installed system has one)
  [ -e "$T/m/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n' > "$T/m/etc/hosts"
  glibc=$(chroot "$T/m" /usr/bin/ldd --version 2>/dev/null | awk 'NR==1{print $NF}' || true)
  os=$(. "$T/m/etc/os-release"; echo "$PRETTY_NAME")
  chroot "$T/m" /usr/local/bin/nodewarden --version >/dev/null || fail "--version in $os"
  say "$os (glibc $glibc): $(grep '^hosts:' "$T/m/etc/nsswitch.conf" | tr -s ' \t' ' ')"
  resolves "$os, its nsswitch.conf" chroot "$T/m" /usr/local/bin/nodewarden
  # modules first that a static binary cannot load (hesiod: glibc 2.31's own .so is on
  # disk; myhostname, mdns4_minimal: not installed), then files
  sed -i 's/^hosts:.*/hosts: hesiod myhostname mdns4_minimal files dns/' "$T/m/etc/nsswitch.conf"
  resolves "$os, hosts: hesiod myhostname mdns4_minimal files dns" chroot "$T/m" /usr/local/bin/nodewarden
  umount "$T/m"
fi
say "ok: $BIN is static and runs"
