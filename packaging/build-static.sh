#!/usr/bin/env bash
# Build nodewarden as ONE fully static executable (static-pie, glibc linked in) that runs
# on any x86_64 Linux kernel >= 3.2 whatever its libc: EL7 (glibc 2.17), EL8 (2.28),
# Debian 11 / Ubuntu 20.04 (2.31). The .deb, the .rpm and the container image carry it.
#
#   packaging/build-static.sh [PROFILE]     PROFILE: release (default; what ships) or dev
#                                           (CI: same link flags, no optimisation, faster)
#   prints the path of the binary on its last line:
#     target/x86_64-unknown-linux-gnu/{release,debug}/nodewarden
#
# Why not musl (x86_64-unknown-linux-musl): its std is a rustup component that must be
# downloaded from the Rust project's servers, which CI cannot reach (only crates.io and
# the Debian archive), and `-Z build-std` needs rust-src (not installed, same reason).
# Debian ships no musl std for Rust. A static glibc is built from what Debian 12 has
# (libc6-dev's libc.a, glibc 2.36).
#
# What static glibc costs, and why it does not matter here:
# - NSS: since glibc 2.34 the `files` and `dns` NSS modules are part of libc itself, so
#   getaddrinfo() (the only NSS user: kube's HTTP connector resolves the API server's
#   host name) works without dlopen for `hosts: files dns`. A module the host's
#   nsswitch.conf names beyond those (myhostname, mdns, sss) would be dlopen'ed from the
#   host's own glibc: a static binary cannot load it and skips it (no crash: checked in
#   packaging/check-static.sh on Debian 11's glibc 2.31 with `hosts: files myhostname
#   dns`). The agent never looks up users or groups.
# - iconv/locale: not used (Rust does its own UTF-8).
# - dlopen: not used.
#
# The cargo profile stays the ordinary one; only this script adds crt-static, through
# the target-scoped CARGO_TARGET_<triple>_RUSTFLAGS with an explicit --target, so build
# scripts and proc-macros stay dynamic host binaries and `cargo build` elsewhere is
# unaffected (separate directory target/x86_64-unknown-linux-gnu/).
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${1:-release}
TRIPLE=x86_64-unknown-linux-gnu
case "$PROFILE" in
  release) dir=release;;
  dev) dir=debug;;
  *) dir=$PROFILE;;
esac
# -z pack-relative-relocs (DT_RELR): a static-pie carries one relocation per pointer in
# its data (vtables, string tables), 24 bytes each as RELA: 0.5 MB of the 11.4 MB binary.
# RELR packs them into bitmaps (6 KB). The binary relocates itself with its own glibc
# (2.36 reads RELR), so the host's glibc and kernel play no part: checked on Debian 11 by
# check-static.sh, which also fails if RELR goes missing (docs/benchmarks.md).
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs ${NODEWARDEN_STATIC_EXTRA_RUSTFLAGS:-}"
cargo build --locked -p nodewarden --bin nodewarden --profile "$PROFILE" --target "$TRIPLE" >&2
echo "target/$TRIPLE/$dir/nodewarden"
