//! One answer per unit per probe round: [`ReadMemo`] keeps a unit's status for a
//! moment, so the probes that ask about the same unit in the same round (the kubelet
//! probe, the PLEG probe and the kubelet-invocation reader of the drift probes all ask
//! for `kubelet.service`) cost one set of D-Bus calls, not three.
//!
//! Why: on a node the agent's idle CPU is mostly D-Bus round trips (each status was
//! `LoadUnit`, `GetAll(Unit)` and `GetAll(Service)`, now one `GetAll("")`; every message
//! wakes a runtime thread); the issue-15 measurement on the real-systemd testbed counted 21 status
//! reads of `kubelet.service` a minute with 10 s probes (docs/benchmarks.md).
//!
//! Only the probes and the planner's node facts read through it. The executor keeps the
//! plain client: a restart is verified against a fresh `InvocationID`, never a
//! remembered one. A restart or a signal sent through the memo forgets the unit. Errors
//! are never kept: the next read asks again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::time::Instant;

use super::{RestartOutcome, SdFuture, Systemd, UnitPresence, UnitStatus};

/// How long a status is kept: longer than the spread of one probe round (the probes of
/// one interval tick together), far shorter than any probe's interval or `failFor`.
pub const PROBE_ROUND: Duration = Duration::from_secs(2);

/// A [`Systemd`] that remembers each unit's status for `ttl`.
pub struct ReadMemo {
    inner: Arc<dyn Systemd>,
    ttl: Duration,
    kept: Mutex<HashMap<String, (Instant, UnitStatus)>>,
    /// One read of a unit at a time: the probes of a round tick at the same instant, so
    /// without this all of them would miss and ask together (seen on the testbed).
    reading: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ReadMemo {
    pub fn new(inner: Arc<dyn Systemd>, ttl: Duration) -> Self {
        ReadMemo {
            inner,
            ttl,
            kept: Mutex::new(HashMap::new()),
            reading: Mutex::new(HashMap::new()),
        }
    }

    fn reading(&self, unit: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut reading = self.reading.lock().unwrap_or_else(|e| e.into_inner());
        reading.entry(unit.to_string()).or_default().clone()
    }

    fn kept(&self, unit: &str, now: Instant) -> Option<UnitStatus> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.get(unit)
            .filter(|(at, _)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(_, st)| st.clone())
    }

    fn keep(&self, unit: &str, at: Instant, st: &UnitStatus) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        // Entries of units no longer asked about go once they are stale.
        let ttl = self.ttl;
        kept.retain(|_, (t, _)| at.saturating_duration_since(*t) < ttl);
        kept.insert(unit.to_string(), (at, st.clone()));
    }

    fn forget(&self, unit: &str) {
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(unit);
    }
}

impl Systemd for ReadMemo {
    fn unit_status<'a>(&'a self, unit: &'a str) -> SdFuture<'a, UnitStatus> {
        Box::pin(async move {
            if let Some(st) = self.kept(unit, Instant::now()) {
                return Ok(st);
            }
            // A caller that gives up (its own deadline) drops its turn; a hung read holds
            // the others only until their deadlines, as it would without the memo.
            let turn = self.reading(unit);
            let _turn = turn.lock().await;
            let asked = Instant::now();
            if let Some(st) = self.kept(unit, asked) {
                return Ok(st);
            }
            let st = self.inner.unit_status(unit).await?;
            // Kept from when it was asked, so a slow answer is not kept longer.
            self.keep(unit, asked, &st);
            Ok(st)
        })
    }

    fn restart_unit<'a>(
        &'a self,
        unit: &'a str,
        timeout: Duration,
    ) -> SdFuture<'a, RestartOutcome> {
        Box::pin(async move {
            self.forget(unit);
            let r = self.inner.restart_unit(unit, timeout).await;
            self.forget(unit);
            r
        })
    }

    fn manager_version(&self) -> SdFuture<'_, String> {
        self.inner.manager_version()
    }

    fn reboot(&self) -> SdFuture<'_, ()> {
        self.inner.reboot()
    }

    fn kill_unit_signal<'a>(&'a self, unit: &'a str, signal: Signal) -> SdFuture<'a, ()> {
        self.forget(unit);
        self.inner.kill_unit_signal(unit, signal)
    }

    fn units_present<'a>(&'a self, units: &'a [&'a str]) -> SdFuture<'a, Vec<UnitPresence>> {
        self.inner.units_present(units)
    }
}

#[cfg(test)]
mod tests;
