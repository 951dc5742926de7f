#!/bin/sh
# Link the nodewarden.service drop-ins that the node's systemd understands, and
# only those. Called by the .deb postinst/postrm and the .rpm %post/%postun
# (packaging, not the product: maintainer scripts may run systemctl).
#
#   select-dropins.sh install    link each drop-in whose header line
#                                "# nodewarden-requires-systemd: N" has N <= the
#                                version `systemctl --version` reports; unlink the rest
#   select-dropins.sh remove     unlink them all (package removal)
#
# Plain POSIX sh, no bashisms, nothing newer than EL7's coreutils/grep/sed.
# A systemd whose version cannot be read gets the base unit alone (safe: the
# base unit uses only what systemd 219 understands).
# env (tests): NODEWARDEN_DROPIN_SRC, NODEWARDEN_DROPIN_DST, NODEWARDEN_SYSTEMCTL
set -e
SRC=${NODEWARDEN_DROPIN_SRC:-/usr/share/nodewarden/systemd}
DST=${NODEWARDEN_DROPIN_DST:-/usr/lib/systemd/system/nodewarden.service.d}
SYSTEMCTL=${NODEWARDEN_SYSTEMCTL:-systemctl}

systemd_version() {
    # "systemd 219", "systemd 239 (239-78.el8)", "systemd 252 (252.30-1~deb12u2)"
    v=$("$SYSTEMCTL" --version 2>/dev/null | sed -n '1s/^systemd \([0-9][0-9]*\).*/\1/p') || v=
    echo "$v"
}

# unlink our links: those in DST that point into SRC (the sources may already be gone:
# dpkg and rpm delete the package's files before postrm/%postun run)
unlink_ours() {
    for l in "$DST"/*.conf; do
        [ -L "$l" ] || continue
        case "$(readlink "$l")" in
        "$SRC"/*) [ "${1:-}" = stale ] && [ -e "$l" ] && continue; rm -f "$l" ;;
        esac
    done
}

case "${1:-}" in
install)
    have=$(systemd_version)
    unlink_ours stale
    for f in "$SRC"/*.conf; do
        [ -f "$f" ] || continue
        name=${f##*/}
        need=$(sed -n 's/^# nodewarden-requires-systemd: *\([0-9][0-9]*\) *$/\1/p' "$f" | head -n 1)
        if [ -n "$need" ] && [ -n "$have" ] && [ "$have" -ge "$need" ]; then
            mkdir -p "$DST"
            ln -sfn "$f" "$DST/$name"
            echo "nodewarden: systemd ${have}: drop-in $name (needs $need) installed"
        else
            rm -f "$DST/$name"
            echo "nodewarden: systemd ${have:-unknown}: drop-in $name needs ${need:-?}, not installed"
        fi
    done
    ;;
remove)
    unlink_ours
    rmdir "$DST" 2>/dev/null || :
    ;;
*)
    echo "usage: $0 install|remove" >&2
    exit 2
    ;;
esac
exit 0
