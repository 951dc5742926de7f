//! systemd over D-Bus (zbus): unit status, verified restarts, signals, reboot.
//!
//! The executor talks to systemd only through the [`Systemd`] trait, so dry-runs and unit
//! tests can substitute a recording fake. [`DbusSystemd`] is the real implementation: one
//! lazily (re)connected system-bus connection; every call has a deadline, and a connection
//! that broke (systemd re-exec, dbus restart, the container rebooted) is dropped and opened
//! again on the next call.
//!
//! A restart follows the only protocol that cannot hang or lie (see docs/platform-facts.md):
//! `Subscribe`, open the `JobRemoved` stream, `RestartUnit(unit, "replace")`, wait for the
//! `JobRemoved` signal of *that* job, map its result, then confirm `ActiveState=active` with a
//! new `InvocationID`, all under one deadline.
//!
//! The trait methods return boxed futures ([`SdFuture`]) rather than using `async fn` in the
//! trait: that keeps the trait dyn-compatible, so the executor can hold a `&dyn Systemd` /
//! `Arc<dyn Systemd>` (one real, one fake, chosen at run time for `dry-run`) as well as be
//! generic over `S: Systemd`. One allocation per D-Bus call is noise.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use nix::sys::signal::Signal;

mod dbus;
mod memo;
pub use dbus::{DbusOptions, DbusSystemd};
pub use memo::{PROBE_ROUND, ReadMemo};

/// The future every [`Systemd`] method returns.
pub type SdFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SystemdError>> + Send + 'a>>;

/// What nodewarden needs from systemd.
pub trait Systemd: Send + Sync {
    /// Load state, activity and identity of `unit`. A unit systemd has no file for is
    /// [`SystemdError::NotFound`].
    fn unit_status<'a>(&'a self, unit: &'a str) -> SdFuture<'a, UnitStatus>;

    /// Restart `unit` and verify it: the job's result is `done` and the unit is then
    /// `active` with a new `InvocationID`. Everything happens within `timeout`; running out
    /// of time is [`SystemdError::Timeout`], never a hang. A job that is still running when
    /// the time is up is left to systemd (a later `replace` job supersedes it).
    fn restart_unit<'a>(&'a self, unit: &'a str, timeout: Duration)
    -> SdFuture<'a, RestartOutcome>;

    /// `org.freedesktop.systemd1.Manager.Version`, e.g. `252.33-1~deb12u1` or `219`.
    fn manager_version(&self) -> SdFuture<'_, String>;

    /// Reboot the machine: login1 `Reboot(false)` (systemd's `reboot.target` when logind is
    /// not running). Returns once the request is accepted.
    fn reboot(&self) -> SdFuture<'_, ()>;

    /// Send `signal` to the main process of `unit` (`KillUnit(unit, "main", signal)`), e.g.
    /// `SIGUSR1` to make dockerd dump its goroutine stacks before a restart.
    fn kill_unit_signal<'a>(&'a self, unit: &'a str, signal: Signal) -> SdFuture<'a, ()>;

    /// Which of `units` exist, in the given order (e.g. the time-sync candidates
    /// `chronyd.service`, `systemd-timesyncd.service`, `ntpd.service`, `ntp.service`).
    /// Works on systemd 219 (no `ListUnitsByNames` needed).
    fn units_present<'a>(&'a self, units: &'a [&'a str]) -> SdFuture<'a, Vec<UnitPresence>>;
}

/// A unit's state as systemd reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitStatus {
    /// The unit's primary name (`Id`).
    pub name: String,
    /// `loaded`, `not-found`, `masked`, `error`, `bad-setting`, ...
    pub load_state: String,
    /// `active`, `reloading`, `inactive`, `failed`, `activating`, `deactivating`, ...
    pub active_state: String,
    /// Type-specific detail: `running`, `auto-restart`, `start`, `dead`, ...
    pub sub_state: String,
    /// 128-bit ID of the current (or last) run, lower-case hex as in the journal's
    /// `_SYSTEMD_INVOCATION_ID`; `None` when the unit never ran or systemd < 232.
    pub invocation_id: Option<String>,
    /// Main process of a service; `None` when it has none.
    pub main_pid: Option<u32>,
    /// When the unit last entered `active`; `None` = never.
    pub active_enter: Option<jiff::Timestamp>,
    /// When the unit last left `inactive` (the start of its current run: the uptime gate);
    /// `None` = never.
    pub inactive_exit: Option<jiff::Timestamp>,
    /// Automatic restarts (`Restart=`) since the last manual start; `None` for non-services
    /// and systemd < 235. Resets on a manual restart.
    pub n_restarts: Option<u32>,
}

impl UnitStatus {
    /// `ActiveState=active`.
    pub fn is_active(&self) -> bool {
        self.active_state == "active"
    }
}

/// Whether a candidate unit exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitPresence {
    /// The name asked for.
    pub name: String,
    /// `loaded`, `not-found`, `masked`, ...
    pub load_state: String,
    /// `active`, `inactive`, ...
    pub active_state: String,
}

impl UnitPresence {
    /// The unit has a unit file that loaded (not `not-found`, not `masked`).
    pub fn exists(&self) -> bool {
        self.load_state == "loaded"
    }
}

/// The result of a systemd job, from the `JobRemoved` signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    /// The job succeeded.
    Done,
    /// The job was canceled (e.g. replaced by another job) before it finished.
    Canceled,
    /// The job's own timeout (`JobTimeoutSec`) hit.
    Timeout,
    /// The unit failed (e.g. start-up failed or `TimeoutStartSec` hit).
    Failed,
    /// A unit this one depends on failed.
    Dependency,
    /// The job was skipped (did not apply to the unit's state).
    Skipped,
    /// A result this version does not know.
    Other(String),
}

impl JobResult {
    /// Parse the `result` argument of `JobRemoved`.
    pub fn parse(s: &str) -> JobResult {
        match s {
            "done" => JobResult::Done,
            "canceled" => JobResult::Canceled,
            "timeout" => JobResult::Timeout,
            "failed" => JobResult::Failed,
            "dependency" => JobResult::Dependency,
            "skipped" => JobResult::Skipped,
            other => JobResult::Other(other.to_string()),
        }
    }

    /// The string systemd uses.
    pub fn as_str(&self) -> &str {
        match self {
            JobResult::Done => "done",
            JobResult::Canceled => "canceled",
            JobResult::Timeout => "timeout",
            JobResult::Failed => "failed",
            JobResult::Dependency => "dependency",
            JobResult::Skipped => "skipped",
            JobResult::Other(s) => s,
        }
    }

    fn hint(&self) -> &'static str {
        match self {
            JobResult::Done => "",
            JobResult::Canceled => {
                "the job was canceled before it finished (another job replaced it?)"
            }
            JobResult::Timeout => "the job hit its JobTimeoutSec",
            JobResult::Failed => {
                "the unit failed to start or stop (exit status, TimeoutStartSec, ...); see its journal"
            }
            JobResult::Dependency => "a unit it requires failed to start",
            JobResult::Skipped => "systemd skipped the job",
            JobResult::Other(_) => "unknown job result",
        }
    }
}

impl fmt::Display for JobResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verified restart.
#[derive(Debug, Clone)]
pub struct RestartOutcome {
    /// The unit restarted.
    pub unit: String,
    /// The job's object path.
    pub job: String,
    /// Always [`JobResult::Done`] (anything else is an error).
    pub result: JobResult,
    /// The unit before the restart.
    pub before: UnitStatus,
    /// The unit after: active, with a new invocation.
    pub after: UnitStatus,
    /// From the first call to the confirmed active state.
    pub elapsed: Duration,
}

/// Errors talking to systemd. Each message names the unit / call and reads on its own in a
/// log line or a Kubernetes Event.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// systemd has no such unit (no unit file, or a typo in the runbook).
    #[error("{unit} not found")]
    NotFound {
        /// The unit asked for.
        unit: String,
    },
    /// A deadline ran out; `what` says which step was pending.
    #[error("timed out after {}: {what}", fmt_dur(*.after))]
    Timeout {
        /// The pending step, e.g. "waiting for the JobRemoved signal of the restart job of kubelet.service".
        what: String,
        /// The time allowed.
        after: Duration,
    },
    /// A job finished with a result other than `done`.
    #[error("restart of {unit} failed: systemd job {job} finished with result '{result}' ({})", result.hint())]
    JobFailed {
        /// The unit.
        unit: String,
        /// The job's object path.
        job: String,
        /// The job result.
        result: JobResult,
    },
    /// The restart job was `done` but the unit did not end up active in a new invocation.
    #[error(
        "{unit} is {state} after its restart job finished ({detail}); expected active with a new InvocationID"
    )]
    NotActiveAfterRestart {
        /// The unit.
        unit: String,
        /// `ActiveState/SubState`, e.g. `activating/auto-restart`.
        state: String,
        /// What was seen.
        detail: String,
    },
    /// systemd (polkit) refused.
    #[error("systemd refused {what}: permission denied ({message}); nodewarden must run as root")]
    PermissionDenied {
        /// The call.
        what: String,
        /// The bus error text.
        message: String,
    },
    /// The system bus could not be reached.
    #[error("cannot connect to the system bus at {address}: {source}")]
    Connect {
        /// The bus address tried.
        address: String,
        /// The cause.
        #[source]
        source: zbus::Error,
    },
    /// Any other bus error.
    #[error("D-Bus call {what} failed: {source}")]
    Bus {
        /// The call, e.g. "RestartUnit(kubelet.service)".
        what: String,
        /// The cause.
        #[source]
        source: zbus::Error,
    },
    /// A reply that does not fit systemd's API.
    #[error("unexpected reply to {what}: {detail}")]
    Protocol {
        /// The call.
        what: String,
        /// What was wrong.
        detail: String,
    },
}

fn fmt_dur(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests;
