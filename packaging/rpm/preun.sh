# nodewarden %preun ($1: 0 = erase, 1 = upgrade). As %systemd_preun: on erase,
# stop and disable the unit; on upgrade leave it running (%post restarts it).
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable --now nodewarden.service >/dev/null 2>&1 || :
fi
