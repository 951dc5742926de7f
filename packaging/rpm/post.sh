# nodewarden %post ($1: 1 = install, 2 = upgrade). What %systemd_post does,
# plus: enable and start on first install (a node agent is useless disabled),
# restart on upgrade. The ledger directory outlives the package (%postun).
install -d -m 0700 /var/lib/nodewarden
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl enable --now nodewarden.service >/dev/null 2>&1 || :
    else
        systemctl try-restart nodewarden.service >/dev/null 2>&1 || :
    fi
elif [ "$1" -eq 1 ]; then
    # no running systemd (image build, chroot): enable only
    systemctl enable nodewarden.service >/dev/null 2>&1 || :
fi
