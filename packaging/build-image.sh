#!/usr/bin/env bash
# Build the DaemonSet image from packaging/Containerfile with podman, FROM scratch
# around the static binary, and check that it runs.
#
#   packaging/build-image.sh [PROFILE]    PROFILE of build-static.sh: release (default) or dev
#   env: NODEWARDEN_IMAGE     tag (default localhost/nodewarden:dev)
#        NODEWARDEN_STATIC_BIN  use this static binary instead of building one
#
# podman settings this machine needs (Debian 12's podman 4.3; see shared TESTBED notes):
# storage driver vfs, `build --isolation chroot`, `run --runtime runc --cgroup-manager
# cgroupfs` (crun refuses the hybrid cgroup hierarchy), and a containers.conf with
# `default_ulimits = []` (the default ulimits are not permitted here).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PROFILE=${1:-release}
TAG=${NODEWARDEN_IMAGE:-localhost/nodewarden:dev}
say() { echo "[build-image] $*"; }
fail() { echo "[build-image] FAIL: $*" >&2; exit 1; }

if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
  [ "$(id -u)" = 0 ] || fail "podman and runc are not installed (apt-get install podman runc)"
  say "apt-get install podman runc"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends podman runc ca-certificates >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends podman runc ca-certificates >/dev/null; }
fi
BIN=${NODEWARDEN_STATIC_BIN:-$(packaging/build-static.sh "$PROFILE" | tail -n 1)}
grep -qE 'static-pie linked|statically linked' <<<"$(file -b "$BIN")" || fail "$BIN is not static"

CTX=$ROOT/target/image-context
rm -rf "$CTX"; mkdir -p "$CTX/usr/bin" "$CTX/etc/nodewarden" "$CTX/etc/ssl/certs" "$CTX/var/lib/nodewarden"
# no debug info in the image (the dev profile keeps it: ~130 MB)
objcopy --strip-debug "$BIN" "$CTX/usr/bin/nodewarden"
install -m 0644 runbooks/default.yaml "$CTX/etc/nodewarden/runbook.yaml"
[ -s /etc/ssl/certs/ca-certificates.crt ] || fail "no CA bundle at /etc/ssl/certs/ca-certificates.crt (apt-get install ca-certificates)"
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$CTX/etc/ssl/certs/ca-certificates.crt"

T=$(mktemp -d /tmp/nodewarden-image.XXXXXX)
trap 'rm -rf "$T"' EXIT
printf '[containers]\ndefault_ulimits = []\n' > "$T/containers.conf"
export CONTAINERS_CONF=$T/containers.conf
P=(podman --storage-driver vfs)
say "podman build -f packaging/Containerfile -t $TAG (context: target/image-context)"
"${P[@]}" build --isolation chroot -q -t "$TAG" -f packaging/Containerfile "$CTX" >/dev/null
size=$("${P[@]}" image inspect "$TAG" --format '{{.Size}}')
say "built $TAG: $((size / 1024 / 1024)) MiB"
R=("${P[@]}" --runtime runc --cgroup-manager cgroupfs run --rm --network host)
v=$("${R[@]}" "$TAG" --version) || fail "the image does not run --version"
say "podman run $TAG --version: $v"
grep -q '^nodewarden ' <<<"$v" || fail "unexpected --version output: $v"
"${R[@]}" "$TAG" runbook validate >/dev/null || fail "the image's runbook does not validate"
say "podman run $TAG runbook validate: ok"
