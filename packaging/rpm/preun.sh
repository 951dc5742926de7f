# nodewarden %preun ($1: 0 = erase, 1 = upgrade). As %systemd_preun: on erase,
# stop and disable the unit; on upgrade leave it running (%post restarts it).
# `disable --now` is systemd 220+: two calls for EL7's 219.
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable nodewarden.service >/dev/null 2>&1 || :
    systemctl stop nodewarden.service >/dev/null 2>&1 || :
    # unlink the hardening drop-ins while the selector is still installed
    /usr/share/nodewarden/systemd/select-dropins.sh remove || :
fi
