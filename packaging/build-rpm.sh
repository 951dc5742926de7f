#!/usr/bin/env bash
# Build nodewarden's .rpm around the static binary and check what EL7 needs of it:
# gzip payload (rpm 4.11 has no zstd), no GLIBC_* or library requirement, rpmlib
# features no newer than rpm 4.6, scriptlets without systemd 220+ options (--now).
#
#   packaging/build-rpm.sh [PROFILE]   PROFILE of build-static.sh (release default, or dev)
#   needs: cargo-generate-rpm (cargo install --locked cargo-generate-rpm), rpm (Debian's, to inspect)
# Not run by CI (installing cargo-generate-rpm takes ~10 min here); docs/install.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${1:-release}
fail() { echo "[build-rpm] FAIL: $*" >&2; exit 1; }
[ "${NODEWARDEN_RPM_NO_BUILD:-0}" = 1 ] || packaging/build-static.sh "$PROFILE" >/dev/null
mkdir -p target/rpm
OUT=target/rpm/nodewarden.x86_64.rpm
cargo generate-rpm -p agent --target x86_64-unknown-linux-gnu --profile "$PROFILE" \
  --payload-compress gzip -o "$OUT"
echo "[build-rpm] $OUT: $(du -h "$OUT" | cut -f1)"
command -v rpm >/dev/null || { echo "[build-rpm] no rpm here to inspect it (apt-get install rpm)"; exit 0; }
req=$(rpm -qp --requires "$OUT")
echo "$req" | sed 's/^/    requires: /'
! grep -qE 'GLIBC|\.so' <<<"$req" || fail "requires a library"
while read -r l; do
  case "$l" in
    rpmlib\(CompressedFileNames\)*|rpmlib\(FileDigests\)*|rpmlib\(PayloadFilesHavePrefix\)*) ;;
    rpmlib*) fail "an rpmlib feature EL7's rpm 4.11 may lack: $l";;
  esac
done <<<"$req"
[ "$(rpm -qp --qf '%{PAYLOADCOMPRESSOR}' "$OUT")" = gzip ] || fail "payload not gzip"
scripts=$(rpm -qp --scripts "$OUT" | grep -v '^ *#' || true)
! grep -q -- '--now' <<<"$scripts" || fail "a scriptlet uses --now (systemd 220+)"
echo "[build-rpm] ok: gzip payload, no library requirement, EL7-safe scriptlets"
