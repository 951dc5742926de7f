//! Observations → findings, with hysteresis.
//!
//! A failure becomes a *finding* only after it has lasted `failFor`; a
//! finding clears only after health has lasted `okFor`. An `Unknown`
//! observation (the probe could not tell, e.g. the API is unreachable for the
//! Lease check) changes nothing. Pure: time comes in as an argument.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::domain::{Dur, Problem, Timestamp};
use crate::runbook::Probes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Healthy,
    Failing,
    /// The probe could not tell (not applicable, or a dependency is down).
    Unknown,
}

/// One probe result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    pub problem: Problem,
    pub at: Timestamp,
    pub verdict: Verdict,
    /// One line for a person: what was seen.
    pub summary: String,
    /// Facts behind the verdict (`healthz=timeout after 10s`, `unit=active`, …).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub evidence: BTreeMap<String, String>,
    /// How long the probe took.
    pub took: Dur,
}

impl Observation {
    pub fn new(
        problem: Problem,
        at: Timestamp,
        verdict: Verdict,
        summary: impl Into<String>,
    ) -> Self {
        Observation {
            problem,
            at,
            verdict,
            summary: summary.into(),
            evidence: BTreeMap::new(),
            took: Dur::ZERO,
        }
    }
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.evidence.insert(key.to_string(), value.to_string());
        self
    }
    pub fn took(mut self, d: Dur) -> Self {
        self.took = d;
        self
    }
}

/// A confirmed problem.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// When the failure was first seen (not when it was confirmed).
    pub since: Timestamp,
    pub summary: String,
}

/// What the planner sees of the node's health at one instant.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Findings {
    /// Confirmed problems.
    pub active: BTreeMap<Problem, Finding>,
    /// Problems whose latest observation failed (confirmed or not).
    pub failing_now: BTreeSet<Problem>,
    /// Failing but not yet confirmed: when they will be, if they keep failing.
    pub pending: BTreeMap<Problem, Timestamp>,
    /// Active and currently healthy: when they will clear, if they stay healthy.
    pub clearing: BTreeMap<Problem, Timestamp>,
}

impl Findings {
    pub fn active_set(&self) -> BTreeSet<Problem> {
        self.active.keys().copied().collect()
    }

    /// Active problems nodewarden remediates: the ones an episode is about.
    pub fn remediable_set(&self) -> BTreeSet<Problem> {
        self.active
            .keys()
            .copied()
            .filter(|p| !p.report_only())
            .collect()
    }

    /// Active report-only problems (see [`Problem::report_only`]).
    pub fn reported_set(&self) -> BTreeSet<Problem> {
        self.active
            .keys()
            .copied()
            .filter(|p| p.report_only())
            .collect()
    }

    /// Whether a remediable problem is failing but not yet confirmed.
    pub fn remediable_pending(&self) -> bool {
        self.pending.keys().any(|p| !p.report_only())
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
struct State {
    failing_since: Option<Timestamp>,
    ok_since: Option<Timestamp>,
    active: Option<Finding>,
    last: Option<Observation>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    states: BTreeMap<Problem, State>,
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    /// Start with `problems` already confirmed (an open episode from the
    /// ledger): they must be seen healthy for `okFor` before they clear, so a
    /// restarted agent never declares recovery on its first good probe.
    pub fn seed_active(&mut self, problems: impl IntoIterator<Item = Problem>, since: Timestamp) {
        for p in problems {
            let s = self.states.entry(p).or_default();
            s.active = Some(Finding {
                since,
                summary: "carried over from the ledger's open episode".into(),
            });
            s.failing_since = Some(since);
        }
    }

    pub fn observe(&mut self, obs: Observation) {
        let s = self.states.entry(obs.problem).or_default();
        match obs.verdict {
            Verdict::Failing => {
                s.ok_since = None;
                if s.failing_since.is_none() {
                    s.failing_since = Some(obs.at);
                }
                if let Some(f) = s.active.as_mut() {
                    f.summary = obs.summary.clone();
                }
            }
            Verdict::Healthy => {
                s.failing_since = None;
                if s.ok_since.is_none() {
                    s.ok_since = Some(obs.at);
                }
            }
            Verdict::Unknown => {}
        }
        s.last = Some(obs);
    }

    /// The latest observation of each problem.
    pub fn last(&self) -> impl Iterator<Item = &Observation> {
        self.states.values().filter_map(|s| s.last.as_ref())
    }

    /// Apply the time-based transitions at `now` and return the findings.
    pub fn evaluate(&mut self, probes: &Probes, now: Timestamp) -> Findings {
        let mut out = Findings::default();
        for (p, s) in self.states.iter_mut() {
            let t = probes.timing(*p);
            if !t.enabled {
                s.active = None;
                continue;
            }
            let failing = s
                .last
                .as_ref()
                .is_some_and(|o| o.verdict == Verdict::Failing)
                || (s.last.is_none() && s.failing_since.is_some());
            if failing {
                out.failing_now.insert(*p);
            }
            match (&s.active, s.failing_since, s.ok_since) {
                (None, Some(since), _) => {
                    let confirm_at = t.fail_for.after(since);
                    if confirm_at <= now {
                        let summary = s
                            .last
                            .as_ref()
                            .map(|o| o.summary.clone())
                            .unwrap_or_default();
                        s.active = Some(Finding { since, summary });
                    } else {
                        out.pending.insert(*p, confirm_at);
                    }
                }
                (Some(_), None, Some(ok)) => {
                    let clear_at = t.ok_for.after(ok);
                    if clear_at <= now {
                        s.active = None;
                    } else {
                        out.clearing.insert(*p, clear_at);
                    }
                }
                _ => {}
            }
            if let Some(f) = &s.active {
                out.active.insert(*p, f.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
