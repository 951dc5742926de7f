//! What is said about report-only problems ([`Problem::report_only`]).
//!
//! They never reach the planner's ladder, so their runbook `report` steps
//! never run as episode steps. Instead, when such a finding appears or
//! clears, the agent emits one Event (`ProblemReported` with the report
//! step's message, `ProblemCleared`) and logs one line; the finding itself
//! is a NodeCondition and a line in `check`, `status` and `dry-run`.

use std::collections::BTreeSet;

use crate::act::Report;
use crate::domain::Problem;
use crate::health::Findings;
use crate::runbook::{Action, Runbook};

/// One change of a report-only finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub problem: Problem,
    /// `true` when the finding appeared, `false` when it cleared.
    pub raised: bool,
    pub message: String,
}

impl Notice {
    pub fn report(&self) -> Report {
        if self.raised {
            Report::warning("ProblemReported", self.message.clone())
        } else {
            Report::normal("ProblemCleared", self.message.clone())
        }
    }
}

/// The runbook's word on `problem`: the message of the first `report` step
/// that names it, if any.
pub fn advice(runbook: &Runbook, problem: Problem) -> Option<&str> {
    runbook.spec.steps.iter().find_map(|s| match &s.action {
        Action::Report(r) if s.when.contains(&problem) => r.message.as_deref(),
        _ => None,
    })
}

/// The notices for report-only findings that appeared or cleared since
/// `before` (the report-only problems active at the previous tick).
pub fn changes(before: &BTreeSet<Problem>, findings: &Findings, runbook: &Runbook) -> Vec<Notice> {
    let now = findings.reported_set();
    let mut out = Vec::new();
    for p in now.difference(before) {
        let summary = findings
            .active
            .get(p)
            .map(|f| f.summary.as_str())
            .unwrap_or("detected");
        let message = match advice(runbook, *p) {
            Some(a) => {
                format!("{p}: {summary}; {a} (report-only: nodewarden does not remediate it)")
            }
            None => format!("{p}: {summary} (report-only: nodewarden does not remediate it)"),
        };
        out.push(Notice {
            problem: *p,
            raised: true,
            message,
        });
    }
    for p in before.difference(&now) {
        out.push(Notice {
            problem: *p,
            raised: false,
            message: format!("{p} no longer detected"),
        });
    }
    out
}

#[cfg(test)]
mod tests;
