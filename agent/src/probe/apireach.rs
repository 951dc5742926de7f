//! The API server unreachable from this node (report-only; issue 16, seed 004: "check
//! port 6443"), its own problem, distinct from `KubeletUnhealthy`.
//!
//! **Which signal, and why.** The agent already holds two standing lines to the API
//! server: the watch on its Node and the watch on its node Lease (`act/kube.rs`
//! `watch_one`: a request per ~50 s each, a liveness timeout for a hung server, backoff
//! while it fails). Their state is the reachability signal: it costs no request at all,
//! it is at most one liveness period (60 s) old, and it tells *how* a call failed —
//! no answer (refused, reset, TLS, DNS, a timeout: [`Failure::no_answer`]) versus an
//! answer with an error status (401/403: reachable, but refused; that is not this
//! problem). A 502/503/504 counts as no answer: a load balancer in front of a dead
//! server answers that way. The API clock source (`GET /version`, at most once per
//! 5 minutes) is not used: it is staler, and a probe that forced it would add requests
//! from every node exactly while the server struggles.
//!
//! The kubelet's own health is not an input: when both are broken both problems are
//! shown. What keeps this apart from `KubeletUnhealthy` is the other way round: while
//! the Lease watch is not current the kubelet probe cannot judge the heartbeat and says
//! Unknown for that part (`probe/kubelet.rs`), so an unreachable API server never reads
//! as a stalled kubelet.
//!
//! In a DaemonSet the agent reaches the API server through the `kubernetes` Service
//! (kube-proxy), the kubelet through the address in its kubeconfig: a broken
//! kube-proxy shows here while the kubelet still reaches the server. The evidence says
//! which line failed; the summary names the usual checks.

use std::time::Duration;

use super::{NotConfigured, Probe, ProbeFuture};
use crate::act::kube::Watched;
use crate::domain::{Problem, Timestamp};
use crate::health::{Observation, Verdict};

/// The agent's standing watches on the API server, as they stand now (no request).
pub trait ReachSource: Send + Sync {
    /// `Err`: the agent has no API client (a reason for a person).
    fn watches(&self) -> Result<Vec<WatchHealth>, String>;
}

impl ReachSource for NotConfigured {
    fn watches(&self) -> Result<Vec<WatchHealth>, String> {
        Err(self.0.clone())
    }
}

/// The probe: reads the watches' state, judges, never calls out.
pub struct ApiReachCheck {
    pub reach: std::sync::Arc<dyn ReachSource>,
}

impl Probe for ApiReachCheck {
    fn problem(&self) -> Problem {
        Problem::ApiServerUnreachable
    }
    fn run(&self, now: Timestamp) -> ProbeFuture<'_> {
        let o = match self.reach.watches() {
            Ok(w) => {
                let j = judge(&w);
                let mut o =
                    Observation::new(Problem::ApiServerUnreachable, now, j.verdict, j.summary);
                for (k, v) in j.evidence {
                    o = o.with(&k, v);
                }
                o
            }
            Err(why) => Observation::new(
                Problem::ApiServerUnreachable,
                now,
                Verdict::Unknown,
                format!("cannot tell: {why}"),
            ),
        };
        Box::pin(async move { o })
    }
    fn timeout_verdict(&self) -> Verdict {
        Verdict::Unknown
    }
}

/// Why a watch last failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The server did not answer (or a gateway said it is down: 502/503/504).
    pub no_answer: bool,
    pub detail: String,
}

/// One of the agent's standing watches, as this probe sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchHealth {
    /// `node watch`, `Lease watch`.
    pub what: &'static str,
    /// The server answered this watch within its liveness period.
    pub current: bool,
    pub failure: Option<Failure>,
    /// Since the server last answered it (`None`: never, since the agent started).
    pub answered_ago: Option<Duration>,
}

impl WatchHealth {
    /// The state of one of `act::kube::watch_one`'s watches.
    pub fn of<K>(what: &'static str, w: &Watched<K>) -> WatchHealth {
        WatchHealth {
            what,
            current: !w.stale && w.answered.is_some(),
            failure: w.failure.as_ref().map(|e| Failure {
                no_answer: e.is_unreachable() || matches!(e.code(), Some(502..=504)),
                detail: e.to_string(),
            }),
            answered_ago: w.answered.map(|t| t.elapsed()),
        }
    }
}

/// The verdict with its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub summary: String,
    pub evidence: Vec<(String, String)>,
}

fn ago(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!(
            "last answered {} ago",
            super::certs::fmt_span(d.as_secs() as i64)
        ),
        None => "never answered since the agent started".into(),
    }
}

/// Reachability from the watches' state (pure).
pub fn judge(watches: &[WatchHealth]) -> Judgement {
    let evidence: Vec<(String, String)> = watches
        .iter()
        .map(|w| {
            let v = if w.current {
                "current".to_string()
            } else {
                match &w.failure {
                    Some(f) => format!(
                        "{}: {} ({})",
                        if f.no_answer {
                            "no answer"
                        } else {
                            "answered with an error"
                        },
                        f.detail,
                        ago(w.answered_ago)
                    ),
                    None => format!("not current ({})", ago(w.answered_ago)),
                }
            };
            (w.what.replace(' ', "_"), v)
        })
        .collect();
    let j = |verdict, summary: String| Judgement {
        verdict,
        summary,
        evidence: evidence.clone(),
    };
    if watches.is_empty() {
        return j(
            Verdict::Unknown,
            "no watch on the API server to judge by".into(),
        );
    }
    if let Some(w) = watches.iter().find(|w| w.current) {
        return j(
            Verdict::Healthy,
            format!(
                "the API server answers this node (the {} is current)",
                w.what
            ),
        );
    }
    let silent: Vec<&WatchHealth> = watches
        .iter()
        .filter(|w| w.failure.as_ref().is_some_and(|f| f.no_answer))
        .collect();
    if let Some(w) = silent.first() {
        let detail = w
            .failure
            .as_ref()
            .map(|f| f.detail.as_str())
            .unwrap_or_default();
        return j(
            Verdict::Failing,
            format!(
                "the API server does not answer this node ({detail}; {}): check the path to it — its address and port (6443 by default) from this node, a firewall, the load balancer, kube-proxy for a pod",
                ago(w.answered_ago)
            ),
        );
    }
    if let Some(f) = watches.iter().find_map(|w| w.failure.as_ref()) {
        return j(
            Verdict::Healthy,
            format!(
                "the API server answers this node, with an error ({})",
                f.detail
            ),
        );
    }
    j(
        Verdict::Unknown,
        "the watches on the API server are not current yet".into(),
    )
}

#[cfg(test)]
mod tests;
