//! Test doubles for the executor's seams: a clock that only moves when told
//! and actuators that record every call and fail on request. Public so the
//! integration tests and the fleet simulator use the same ones.

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::{ActError, Actuators, Clock, Drained, Report};
use crate::domain::{Dur, Timestamp};
use crate::runbook::Drain;

/// A clock that moves only with `set` / `advance`.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(t: Timestamp) -> Self {
        ManualClock(Mutex::new(t))
    }
    pub fn set(&self, t: Timestamp) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }
    pub fn advance(&self, d: Dur) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *g = d.after(*g);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<C: Clock> Clock for &C {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

/// The kinds of call `RecordingActuators` can be told to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Call {
    Cordon,
    Uncordon,
    Disown,
    AcquireSlot,
    ReleaseSlot,
    Restart,
    Drain,
    BootId,
    Reboot,
    Exec,
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<String>,
    reports: Vec<Report>,
    failing: BTreeSet<Call>,
    boot: u32,
}

/// Records every call (`"restart kubelet.service"`, `"cordon"`, …) and succeeds
/// unless told to fail a kind of call.
#[derive(Debug, Default)]
pub struct RecordingActuators {
    state: Mutex<State>,
}

impl RecordingActuators {
    pub fn new() -> Self {
        Self::default()
    }
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }
    pub fn fail(&self, call: Call, failing: bool) {
        self.with(|s| {
            if failing {
                s.failing.insert(call);
            } else {
                s.failing.remove(&call);
            }
        });
    }
    pub fn calls(&self) -> Vec<String> {
        self.with(|s| s.calls.clone())
    }
    pub fn reports(&self) -> Vec<Report> {
        self.with(|s| s.reports.clone())
    }
    /// Count of calls starting with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.with(|s| s.calls.iter().filter(|c| c.starts_with(prefix)).count())
    }
    /// Pretend the node rebooted: the next `boot_id` differs.
    pub fn next_boot(&self) -> String {
        self.with(|s| {
            s.boot += 1;
            format!("boot-{}", s.boot)
        })
    }
    fn call(&self, kind: Call, what: String) -> Result<(), ActError> {
        self.with(|s| {
            s.calls.push(what.clone());
            if s.failing.contains(&kind) {
                Err(ActError::Failed(format!("{what}: injected failure")))
            } else {
                Ok(())
            }
        })
    }
}

impl Actuators for RecordingActuators {
    async fn cordon(&self, _reason: &str) -> Result<(), ActError> {
        self.call(Call::Cordon, "cordon".into())
    }
    async fn uncordon(&self) -> Result<(), ActError> {
        self.call(Call::Uncordon, "uncordon".into())
    }
    async fn disown_cordon(&self) -> Result<(), ActError> {
        self.call(Call::Disown, "disown-cordon".into())
    }
    async fn acquire_slot(&self) -> Result<String, ActError> {
        self.call(Call::AcquireSlot, "acquire-slot".into())
            .map(|_| "nodewarden-slot-0".into())
    }
    async fn release_slot(&self, lease: &str) -> Result<(), ActError> {
        self.call(Call::ReleaseSlot, format!("release-slot {lease}"))
    }
    async fn restart_unit(
        &self,
        unit: &str,
        _timeout: Dur,
        _diagnostics: bool,
    ) -> Result<String, ActError> {
        self.call(Call::Restart, format!("restart {unit}"))
            .map(|_| format!("{unit} restarted"))
    }
    async fn drain(&self, _spec: &Drain, _: Option<&str>) -> Result<Drained, ActError> {
        self.call(Call::Drain, "drain".into())
            .map(|_| Drained::done("drained"))
    }
    async fn boot_id(&self) -> Result<String, ActError> {
        self.call(Call::BootId, "boot-id".into())?;
        Ok(self.with(|s| format!("boot-{}", s.boot)))
    }
    async fn reboot(&self) -> Result<(), ActError> {
        self.call(Call::Reboot, "reboot".into())
    }
    async fn exec(&self, argv: &[String], _timeout: Dur) -> Result<String, ActError> {
        self.call(Call::Exec, format!("exec {}", argv.join(" ")))
            .map(|_| "exit 0".into())
    }
    async fn report(&self, report: Report) {
        self.with(|s| s.reports.push(report));
    }
}

impl<A: Actuators> Actuators for &A {
    async fn cordon(&self, reason: &str) -> Result<(), ActError> {
        (**self).cordon(reason).await
    }
    async fn uncordon(&self) -> Result<(), ActError> {
        (**self).uncordon().await
    }
    async fn disown_cordon(&self) -> Result<(), ActError> {
        (**self).disown_cordon().await
    }
    async fn acquire_slot(&self) -> Result<String, ActError> {
        (**self).acquire_slot().await
    }
    async fn release_slot(&self, lease: &str) -> Result<(), ActError> {
        (**self).release_slot(lease).await
    }
    async fn restart_unit(
        &self,
        unit: &str,
        timeout: Dur,
        diagnostics: bool,
    ) -> Result<String, ActError> {
        (**self).restart_unit(unit, timeout, diagnostics).await
    }
    async fn restart_time_sync(
        &self,
        planned: &str,
        candidates: &[String],
        timeout: Dur,
    ) -> Result<String, ActError> {
        (**self)
            .restart_time_sync(planned, candidates, timeout)
            .await
    }
    async fn drain(&self, spec: &Drain, kubelet_down: Option<&str>) -> Result<Drained, ActError> {
        (**self).drain(spec, kubelet_down).await
    }
    async fn boot_id(&self) -> Result<String, ActError> {
        (**self).boot_id().await
    }
    async fn reboot(&self) -> Result<(), ActError> {
        (**self).reboot().await
    }
    async fn exec(&self, argv: &[String], timeout: Dur) -> Result<String, ActError> {
        (**self).exec(argv, timeout).await
    }
    async fn report(&self, report: Report) {
        (**self).report(report).await
    }
}
