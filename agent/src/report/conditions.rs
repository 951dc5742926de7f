//! The NodeConditions nodewarden keeps on its Node: one per enabled problem
//! (report-only ones included), `NodewardenRemediating` (an episode is open)
//! and `NodewardenExhausted`. Which conditions and what they say is decided
//! here from the tick's findings and the ledger; writing them (ownership,
//! heartbeat) is `act::node::NodeConditions`.

use std::time::Duration;

use tokio::sync::watch;

use crate::act::kube::jitter;
use crate::act::node::{
    COND_EXHAUSTED, COND_REMEDIATING, DesiredCondition, NodeConditions, problem_condition,
};
use crate::domain::Problem;
use crate::health::Findings;
use crate::ledger::Ledger;
use crate::plan::Decision;
use crate::runbook::Runbook;

/// The NodeConditions nodewarden keeps: one per enabled problem, plus its own.
pub fn desired_conditions(
    findings: &Findings,
    decision: &Decision,
    ledger: &Ledger,
    runbook: &Runbook,
) -> Vec<DesiredCondition> {
    let mut out = Vec::new();
    let p = &runbook.spec.probes;
    for problem in Problem::ALL {
        if !p.timing(problem).enabled {
            continue;
        }
        let ty = problem_condition(problem);
        out.push(match findings.active.get(&problem) {
            Some(f) => DesiredCondition::new(ty, true, ty, f.summary.clone()),
            None => DesiredCondition::new(ty, false, &format!("No{ty}"), "not detected"),
        });
    }
    let exhausted = ledger.episode.as_ref().and_then(|e| e.exhausted.as_ref());
    let remediating = ledger.episode.is_some() && exhausted.is_none();
    out.push(if remediating {
        DesiredCondition::new(
            COND_REMEDIATING,
            true,
            &reason_word(decision.name()),
            decision.to_string(),
        )
    } else {
        DesiredCondition::new(COND_REMEDIATING, false, "NotRemediating", "no open episode")
    });
    out.push(match exhausted {
        Some(x) => {
            DesiredCondition::new(COND_EXHAUSTED, true, "RunbookExhausted", x.reason.clone())
        }
        None => DesiredCondition::new(
            COND_EXHAUSTED,
            false,
            "NotExhausted",
            "the runbook has steps left",
        ),
    });
    out
}

/// `act` → `Act`: condition reasons are CamelCase words.
fn reason_word(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Writes the latest desired conditions; re-sends them every minute so the
/// heartbeat logic in `NodeConditions` can refresh them, and retries failures.
pub fn spawn_conditions(
    conditions: NodeConditions,
    mut rx: watch::Receiver<Vec<DesiredCondition>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // While the API fails: retry after 5 s, doubling to 60 s, jittered
        // (a fleet cut off from its API server must not hammer it on return).
        let mut retry: Option<Duration> = None;
        loop {
            let wait = match retry {
                Some(d) => jitter(d, 0.5, 1.0),
                None => Duration::from_secs(60),
            };
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(wait) => {}
            }
            let desired = rx.borrow_and_update().clone();
            if desired.is_empty() {
                continue;
            }
            match conditions.set(&desired).await {
                Ok(_) => retry = None,
                Err(e) => {
                    if retry.is_none() {
                        tracing::warn!(error = %e, "could not update the node's conditions (retrying): {e}");
                    }
                    retry = Some(match retry {
                        None => Duration::from_secs(5),
                        Some(d) => (d * 2).min(Duration::from_secs(60)),
                    });
                }
            }
        }
    })
}

#[cfg(test)]
mod tests;
