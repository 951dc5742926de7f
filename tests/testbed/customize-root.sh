#!/bin/bash
# Install the fake kubelet / docker / chronyd units and the testbed plumbing into a root
# tree (the cached rootfs, or the overlay that boot.sh boots).  Idempotent.
#   Usage: customize-root.sh ROOT
set -euo pipefail
R=${1:?usage: customize-root.sh ROOT}
HERE=$(cd "$(dirname "$0")" && pwd)
F=$HERE/rootfs-files
E=$R/etc/systemd/system
echo testbed > "$R/etc/hostname"
install -D -m 0755 "$F/fake-svc.py"        "$R/usr/local/bin/fake-svc.py"
for u in kubelet.service docker.service chronyd.service; do
  install -D -m 0644 "$F/$u" "$E/$u"
done
install -D -m 0644 "$F/dbus-hostsock.conf" "$E/dbus.socket.d/hostsock.conf"
install -D -m 0644 "$F/tmpfiles-testbed.conf" "$R/etc/tmpfiles.d/testbed.conf"
mkdir -p "$R/srv/testctl" "$R/opt/agent" "$R/run/host-bus" "$R/run/nodewarden-test" \
         "$E/multi-user.target.wants"
# only what a test needs: drop every other enabled unit
rm -f "$E"/multi-user.target.wants/* "$E"/timers.target.wants/* "$E"/getty.target.wants/* \
      "$E"/sysinit.target.wants/systemd-pstore.service "$E"/sysinit.target.wants/systemd-timesyncd.service
ln -sf /dev/null "$E/console-getty.service"
for u in kubelet.service docker.service chronyd.service; do
  ln -sf "/etc/systemd/system/$u" "$E/multi-user.target.wants/$u"
done
# persistent journal (readable from the host: journalctl -D ROOT/var/log/journal)
mkdir -p "$R/var/log/journal"
install -D -m 0644 /dev/stdin "$R/etc/systemd/journald.conf.d/testbed.conf" <<'EOT'
[Journal]
Storage=persistent
SystemMaxUse=64M
RateLimitBurst=0
EOT
