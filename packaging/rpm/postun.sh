# nodewarden %postun ($1: 0 = erase, 1 = upgrade). /var/lib/nodewarden (the
# ledger: reboot cap, cordon ownership) is not owned by the package and is
# left in place on erase; remove it by hand to forget the node's history.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
