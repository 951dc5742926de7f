//! Kubelet stall: healthz (timeout vs non-200 vs refused), the unit's state and uptime over
//! D-Bus, and whether the node Lease is renewed while the unit claims to be active.
//!
//! The three looks run concurrently, each under the probe's call budget.

use std::sync::Arc;

use crate::domain::{Dur, Problem, Timestamp};
use crate::health::{Observation, Verdict};
use crate::host::systemd::{Systemd, SystemdError, UnitStatus};
use crate::runbook::KubeletProbe as Settings;

use super::io::{self, CallError};
use super::{ApiFuture, Probe, ProbeFuture, budget, elapsed_since};

/// When the node's Lease (`kube-node-lease/<node>`) was last renewed. The lead implements
/// this with kube; `Ok(None)` = no Lease object.
pub trait LeaseSource: Send + Sync {
    fn lease_renew_time(&self) -> ApiFuture<'_, Option<Timestamp>>;
}

/// What healthz said.
#[derive(Debug)]
pub enum Healthz {
    Ok { took: Dur },
    Status { code: u16, body: String },
    Failed(CallError),
}

/// The kubelet probe.
pub struct KubeletCheck {
    pub settings: Settings,
    pub systemd: Arc<dyn Systemd>,
    pub lease: Arc<dyn LeaseSource>,
}

impl KubeletCheck {
    async fn healthz(&self, deadline: std::time::Duration) -> Healthz {
        let t0 = tokio::time::Instant::now();
        match io::http_get(&self.settings.healthz_url, deadline).await {
            Ok(r) if r.status.as_u16() == 200 => Healthz::Ok {
                took: elapsed_since(t0),
            },
            Ok(r) => Healthz::Status {
                code: r.status.as_u16(),
                body: r.body_excerpt(),
            },
            Err(e) => Healthz::Failed(e),
        }
    }

    async fn run_inner(&self, now: Timestamp) -> Observation {
        let started = tokio::time::Instant::now();
        let deadline = budget(self.settings.timing.timeout);
        let unit = self.settings.unit.as_str();
        let status = async {
            match tokio::time::timeout(deadline, self.systemd.unit_status(unit)).await {
                Ok(r) => r,
                Err(_) => Err(SystemdError::Timeout {
                    what: format!("no answer about {unit}"),
                    after: deadline,
                }),
            }
        };
        let lease = async {
            match tokio::time::timeout(deadline, self.lease.lease_renew_time()).await {
                Ok(r) => r,
                Err(_) => Err(format!("timed out after {}", io::fmt_secs(deadline))),
            }
        };
        let (hz, st, lease) = tokio::join!(self.healthz(deadline), status, lease);
        let o = judge(&self.settings, now, &hz, &st, &lease);
        o.took(elapsed_since(started))
    }
}

/// The verdict from the three looks (pure, for tests).
pub fn judge(
    s: &Settings,
    now: Timestamp,
    hz: &Healthz,
    st: &Result<UnitStatus, SystemdError>,
    lease: &Result<Option<Timestamp>, String>,
) -> Observation {
    let unit = s.unit.as_str();
    let mut o = Observation::new(Problem::KubeletUnhealthy, now, Verdict::Healthy, "");
    o = o.with(
        "healthz",
        match hz {
            Healthz::Ok { took } => format!("200 in {took}"),
            Healthz::Status { code, body } => format!("HTTP {code}: {body}"),
            Healthz::Failed(e) => e.to_string(),
        },
    );
    let unit_active = match st {
        Ok(u) => {
            o = o.with("unit", format!("{}/{}", u.active_state, u.sub_state));
            if let Some(t) = u.inactive_exit
                && u.is_active()
            {
                o = o.with("uptime", Dur::between(t, now));
            }
            if let Some(n) = u.n_restarts {
                o = o.with("restarts", n);
            }
            Some(u.is_active())
        }
        Err(SystemdError::NotFound { .. }) => {
            o = o.with("unit", format!("{unit} not found"));
            o.verdict = Verdict::Unknown;
            o.summary = format!("{unit} not found");
            if let Healthz::Ok { .. } = hz {
                o.summary
                    .push_str(" (though healthz answers: kubelet runs outside systemd?)");
            }
            return o;
        }
        Err(e) => {
            o = o.with("unit", format!("unknown: {e}"));
            None
        }
    };
    match lease {
        Ok(Some(t)) => {
            o = o.with("leaseAge", Dur::between(*t, now));
        }
        Ok(None) => o = o.with("lease", "no Lease for this node"),
        Err(e) => o = o.with("lease", format!("unknown: {e}")),
    }

    // A probe that cannot run as configured knows nothing about the kubelet:
    // Unknown, which never escalates.
    if let Healthz::Failed(e @ CallError::Config(_)) = hz {
        o.verdict = Verdict::Unknown;
        o.summary = format!("kubelet healthz: {e}");
        return o;
    }
    let mut failing: Vec<String> = Vec::new();
    if unit_active == Some(false)
        && let Ok(u) = st
    {
        failing.push(format!("{unit} is {}/{}", u.active_state, u.sub_state));
    }
    match hz {
        Healthz::Ok { .. } => {}
        Healthz::Status { code, body } => {
            failing.push(format!("healthz answered HTTP {code}: {body}"))
        }
        Healthz::Failed(e @ CallError::Refused) if unit_active.is_none() => {
            // without systemd we cannot tell a crashed kubelet from a machine without one
            o.verdict = Verdict::Unknown;
            o.summary =
                format!("kubelet healthz: {e}, and systemd could not be asked about {unit}");
            return o;
        }
        Healthz::Failed(e) if e.is_timeout() => failing.push(format!("healthz hangs: {e}")),
        Healthz::Failed(e) => failing.push(format!("healthz: {e}")),
    }
    if unit_active == Some(true)
        && let Ok(Some(t)) = lease
    {
        let age = Dur::between(*t, now);
        if age > s.lease_stale_after {
            failing.push(format!(
                "node Lease not renewed for {age} (more than {}) while {unit} is active",
                s.lease_stale_after
            ));
        }
    }
    if failing.is_empty() {
        o.summary = match st {
            Ok(u) => format!("healthz ok, {unit} {}/{}", u.active_state, u.sub_state),
            Err(_) => "healthz ok (unit state unknown)".into(),
        };
    } else {
        o.verdict = Verdict::Failing;
        o.summary = failing.join("; ");
    }
    o
}

impl Probe for KubeletCheck {
    fn problem(&self) -> Problem {
        Problem::KubeletUnhealthy
    }
    fn run(&self, now: Timestamp) -> ProbeFuture<'_> {
        Box::pin(self.run_inner(now))
    }
}

#[cfg(test)]
mod tests;
