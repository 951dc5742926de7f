//! Which units an action may restart: the container runtime only through
//! `restartContainerRuntime` (disruptive, behind cordon and slot), a time-sync
//! daemon only through `restartTimeSync`, everything else through
//! `restartUnit`, and only services.

use super::validate::{DEFAULT_RUNTIME_UNITS, DEFAULT_TIME_SYNC_UNITS};

/// Container runtime units: restarting one kills every container's I/O, so it
/// goes through `restartContainerRuntime` (disruptive: cordon, slot, gates).
pub(super) const RUNTIME_UNITS: [&str; 5] = [
    "containerd.service",
    "docker.service",
    "dockerd.service",
    "crio.service",
    "cri-docker.service",
];

/// Time-sync daemons `restartTimeSync` may restart.
pub(super) const TIME_SYNC_UNITS: [&str; 8] = [
    "chronyd.service",
    "chrony.service",
    "systemd-timesyncd.service",
    "ntpd.service",
    "ntp.service",
    "ntpsec.service",
    "openntpd.service",
    "timesyncd.service",
];

pub(super) fn is_runtime_unit(u: &str) -> bool {
    RUNTIME_UNITS.contains(&u) || DEFAULT_RUNTIME_UNITS.contains(&u)
}

pub(super) fn is_time_sync_unit(u: &str) -> bool {
    TIME_SYNC_UNITS.contains(&u) || DEFAULT_TIME_SYNC_UNITS.contains(&u)
}
