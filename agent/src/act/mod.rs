//! Actuators: the side effects the executor performs, each behind a small trait.
//!
//! `Actuators` is the one seam between decisions and the world: the daemon
//! implements it with systemd (D-Bus), the Kubernetes API and login1; dry-run
//! implements it by recording (`crate::dryrun`); tests implement it with fakes.
//! Every implementation must bound every call in time.

pub mod api_side;
pub mod csr;
pub mod drain;
pub mod fleet;
pub mod kube;
pub mod kubeconfig;
pub mod node;
pub mod real;
pub mod seen_date;
pub mod slots;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod timesync;
pub mod versions;
pub mod watch;

use std::future::Future;

use serde::Serialize;

use crate::domain::Dur;
pub use crate::domain::{Clock, SystemClock};
use crate::host::exec::ExecError;
use crate::host::systemd::SystemdError;
use crate::runbook::Drain;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActError {
    #[error("{what} did not finish within {after}")]
    Timeout { what: String, after: Dur },
    #[error("the API server is unreachable: {0}")]
    ApiUnreachable(String),
    #[error("no disruption slot is free (held by {0})")]
    SlotBusy(String),
    #[error("{0}")]
    Failed(String),
}

impl From<SystemdError> for ActError {
    fn from(e: SystemdError) -> Self {
        match e {
            SystemdError::Timeout { what, after } => ActError::Timeout {
                what,
                after: Dur::from_std(after),
            },
            e => ActError::Failed(e.to_string()),
        }
    }
}

impl From<ExecError> for ActError {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Timeout { what, after } => ActError::Timeout { what, after },
            ExecError::Failed(m) => ActError::Failed(m),
        }
    }
}

/// An Event/log record of something the executor did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `StepStarted`, `StepSucceeded`, `StepFailed`, `Cordoned`, `Uncordoned`,
    /// `Held`, `Exhausted`, `Recovered`, …
    pub reason: String,
    pub warning: bool,
    pub message: String,
}

impl Report {
    pub fn normal(reason: &str, message: impl Into<String>) -> Self {
        Report {
            reason: reason.into(),
            warning: false,
            message: message.into(),
        }
    }
    pub fn warning(reason: &str, message: impl Into<String>) -> Self {
        Report {
            reason: reason.into(),
            warning: true,
            message: message.into(),
        }
    }
}

/// A drain that finished: nothing that must leave is left but pods awaiting
/// this node's kubelet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drained {
    /// One line: the drain report's summary.
    pub summary: String,
    /// Pods evicted (or found terminating) that this node's kubelet cannot
    /// finish (`skipWaitForDeleteTimeout`), as `namespace/name`: they go with the reboot.
    pub awaiting_kubelet: Vec<String>,
}

impl Drained {
    pub fn done(summary: impl Into<String>) -> Self {
        Drained {
            summary: summary.into(),
            awaiting_kubelet: Vec::new(),
        }
    }
}

/// Every side effect the executor can cause.
pub trait Actuators {
    /// Set `spec.unschedulable` with nodewarden's ownership annotation.
    fn cordon(&self, reason: &str) -> impl Future<Output = Result<(), ActError>>;
    /// Lift the cordon, only if the node still carries nodewarden's annotation.
    fn uncordon(&self) -> impl Future<Output = Result<(), ActError>>;
    /// Remove nodewarden's annotation but keep the node cordoned: a human owns it now.
    fn disown_cordon(&self) -> impl Future<Output = Result<(), ActError>>;
    /// Take a disruption slot; returns the Lease name held.
    fn acquire_slot(&self) -> impl Future<Output = Result<String, ActError>>;
    fn release_slot(&self, lease: &str) -> impl Future<Output = Result<(), ActError>>;
    /// Restart a unit and confirm it is active again; returns a one-line detail.
    fn restart_unit(
        &self,
        unit: &str,
        timeout: Dur,
        diagnostics: bool,
    ) -> impl Future<Output = Result<String, ActError>>;
    /// `restartTimeSync`: restart the running one of `candidates` (`planned`
    /// first), never start one (see `act::timesync`). Fakes restart `planned`.
    fn restart_time_sync(
        &self,
        planned: &str,
        _candidates: &[String],
        timeout: Dur,
    ) -> impl Future<Output = Result<String, ActError>> {
        self.restart_unit(planned, timeout, false)
    }
    /// Drain the node. `kubelet_down` says why this node's kubelet or runtime
    /// cannot finish terminating pods (the episode's findings; `None` when it
    /// can): only then is `skipWaitForDeleteTimeout` applied.
    fn drain(
        &self,
        spec: &Drain,
        kubelet_down: Option<&str>,
    ) -> impl Future<Output = Result<Drained, ActError>>;
    /// The current boot ID (recorded before a reboot).
    fn boot_id(&self) -> impl Future<Output = Result<String, ActError>>;
    /// Ask login1 to reboot. Returns once the request is accepted.
    fn reboot(&self) -> impl Future<Output = Result<(), ActError>>;
    /// Run a command (no shell) under a deadline; returns its exit summary.
    fn exec(&self, argv: &[String], timeout: Dur)
    -> impl Future<Output = Result<String, ActError>>;
    /// Emit an Event / log line. Best effort: never fails the step.
    fn report(&self, report: Report) -> impl Future<Output = ()>;
}
