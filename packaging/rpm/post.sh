# nodewarden %post ($1: 1 = install, 2 = upgrade). What %systemd_post does,
# plus: enable and start on first install (a node agent is useless disabled),
# restart on upgrade. The ledger directory outlives the package (%postun).
# Only what EL7 has: rpm 4.11 scriptlet arguments, systemd 219's systemctl.
install -d -m 0700 /var/lib/nodewarden
# The hardening drop-ins this node's systemd understands (each names the
# version it needs; the base unit loads on systemd 219), before daemon-reload.
/usr/share/nodewarden/systemd/select-dropins.sh install || :
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        # `enable --now` is systemd 220+: two calls for EL7's 219
        systemctl enable nodewarden.service >/dev/null 2>&1 || :
        systemctl start nodewarden.service >/dev/null 2>&1 || :
    else
        systemctl try-restart nodewarden.service >/dev/null 2>&1 || :
    fi
elif [ "$1" -eq 1 ]; then
    # no running systemd (image build, chroot): enable only
    systemctl enable nodewarden.service >/dev/null 2>&1 || :
fi
