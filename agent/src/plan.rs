//! The pure planner: (findings, ledger, runbook, cluster view, node facts, now) → one decision.
//!
//! No I/O and no clock of its own. The daemon, `dry-run` and the tests all
//! call this one function; every safety invariant (README.md, "Safety rules") is
//! enforced here and tested in `plan/tests.rs` and `plan/props.rs`.

use std::collections::{BTreeMap, BTreeSet};

pub use crate::domain::Gate;
use crate::domain::{Dur, Problem, Timestamp};
use crate::health::Findings;
use crate::ledger::{Ledger, Outcome};
use crate::runbook::{Action, ActionKind, Runbook, Step};
pub use crate::view::{ClusterView, FleetView, NodeFacts, NodeView, SlotView};

pub struct Inputs<'a> {
    pub findings: &'a Findings,
    pub ledger: &'a Ledger,
    pub runbook: &'a Runbook,
    pub cluster: &'a ClusterView,
    pub node: &'a NodeFacts,
    pub now: Timestamp,
}

mod decision;
pub use decision::{Act, CordonPlan, Decision, Skipped, awaiting_message};

fn join(ps: &BTreeSet<Problem>) -> String {
    crate::domain::join_problems(ps, ", ")
}

/// Whether [`plan`] would decide without reading the node's facts, now and until an
/// observation arrives: nothing of ours is open (no episode, no cordon, no slot) and no
/// problem nodewarden remediates is active or pending (a pending one may become active by
/// time alone), so the decision is Idle, Monitoring or Paused. The run loop then reuses
/// facts read a little earlier instead of asking systemd on every iteration (issue 15: on
/// a node each read is a dozen D-Bus messages). `plan/tests.rs` holds it to that.
pub fn reads_no_facts(findings: &Findings, ledger: &Ledger) -> bool {
    ledger.episode.is_none()
        && ledger.cordon.is_none()
        && ledger.slot.is_none()
        && findings.remediable_set().is_empty()
        && !findings.remediable_pending()
}

/// Decide. Pure: the same inputs always give the same decision.
pub fn plan(i: &Inputs) -> Decision {
    let rb = i.runbook;
    let ledger = i.ledger;
    let now = i.now;

    if let Some(m) = &ledger.maintenance {
        return Decision::Paused {
            reason: format!(
                "maintenance by {} since {}: {}; automatic remediation is paused",
                m.by, m.since, m.reason
            ),
        };
    }

    // Report-only problems never open an episode (see `Problem::report_only`):
    // the ladder only ever sees the problems nodewarden remediates.
    let active = i.findings.remediable_set();
    if active.is_empty() {
        return plan_recovery(i);
    }

    let episode = ledger.episode.as_ref();
    if let Some(ex) = episode.and_then(|e| e.exhausted.as_ref()) {
        return Decision::Exhausted {
            reason: ex.reason.clone(),
            newly: false,
            uncordon: false,
            release_slot: ledger.slot.is_some(),
            hand_over_cordon: false,
        };
    }

    // The newest attempt decides whether we are mid-step.
    let attempts = episode.map(|e| e.attempts.as_slice()).unwrap_or(&[]);
    if let Some(last) = attempts.last()
        && let Some((idx, step)) = rb.step(&last.step)
    {
        let verify_from = match &last.outcome {
            Outcome::InProgress => match last.action {
                ActionKind::Reboot => {
                    let timeout = match &step.action {
                        Action::Reboot(r) => r.timeout,
                        _ => Dur::from_secs(900),
                    };
                    let until = timeout.after(last.started_at);
                    if now < until {
                        return Decision::Wait {
                            step: step.name.clone(),
                            until,
                            reason: format!(
                                "reboot requested at {}; waiting for the node to come back with a new boot ID",
                                last.started_at
                            ),
                        };
                    }
                    // The node never went down: the attempt failed; move up.
                    None
                }
                ActionKind::Drain => {
                    // The agent stopped mid-drain: carry on with the same attempt.
                    return gate_and_act(i, idx, step, &active, Vec::new(), true);
                }
                ActionKind::Exec => {
                    // A command cut off by an agent restart is not re-run blindly.
                    None
                }
                _ => Some(last.started_at),
            },
            Outcome::Succeeded => Some(last.finished_at.unwrap_or(last.started_at)),
            Outcome::Failed(_) => None,
            // Closed at start-up, read as the in-progress attempt was.
            Outcome::Interrupted(_) => match last.action {
                ActionKind::Exec => None,
                _ => Some(last.started_at),
            },
        };
        if let Some(from) = verify_from {
            let until = step.verify.after(from);
            let watched: BTreeSet<Problem> = step.when.intersection(&active).copied().collect();
            if now < until && !watched.is_empty() {
                return Decision::Verify {
                    step: step.name.clone(),
                    until,
                    problems: watched,
                };
            }
        }
    }

    // Per problem, the next rung is after the highest step already tried for it.
    let steps = &rb.spec.steps;
    let mut rung: BTreeMap<Problem, usize> = active.iter().map(|p| (*p, 0)).collect();
    for a in attempts {
        if let Some((idx, step)) = rb.step(&a.step) {
            for p in &step.when {
                if let Some(r) = rung.get_mut(p) {
                    *r = (*r).max(idx + 1);
                }
            }
        }
    }

    let mut skipped: Vec<Skipped> = Vec::new();
    let mut chosen: Option<usize> = None;
    for (idx, step) in steps.iter().enumerate() {
        let wanted = step
            .when
            .iter()
            .any(|p| rung.get(p).is_some_and(|r| idx >= *r));
        if !wanted {
            continue;
        }
        if let Some(reason) = skip_reason(i, step) {
            skipped.push(Skipped {
                step: step.name.clone(),
                reason,
            });
            continue;
        }
        chosen = Some(idx);
        break;
    }

    let Some(idx) = chosen else {
        // Nothing left to try. Problems that only ever had report steps are monitored, not exhausted.
        let fixable: BTreeSet<Problem> = active
            .iter()
            .copied()
            .filter(|p| {
                steps
                    .iter()
                    .any(|s| s.when.contains(p) && s.action.kind() != ActionKind::Report)
            })
            .collect();
        if fixable.is_empty() {
            return Decision::Monitoring { problems: active };
        }
        let tried: Vec<&str> = attempts.iter().map(|a| a.step.as_str()).collect();
        let mut reason = format!(
            "no step left for {} after {}",
            join(&fixable),
            if tried.is_empty() {
                "none could run".to_string()
            } else {
                tried.join(" → ")
            }
        );
        for s in &skipped {
            reason.push_str(&format!("; {:?} skipped: {}", s.step, s.reason));
        }
        return exhausted(i, reason);
    };
    gate_and_act(i, idx, &steps[idx], &active, skipped, false)
}

fn exhausted(i: &Inputs, reason: String) -> Decision {
    let ox = i.runbook.spec.safety.on_exhausted;
    let ours = i
        .ledger
        .cordon
        .as_ref()
        .is_some_and(|c| c.by_us && !c.handed_over);
    let node_ours = i
        .cluster
        .node
        .is_some_and(|n| n.unschedulable && n.cordon_annotation);
    Decision::Exhausted {
        reason,
        newly: true,
        uncordon: !ox.stay_cordoned && ours && node_ours && i.cluster.api_reachable,
        release_slot: i.ledger.slot.is_some(),
        hand_over_cordon: ox.stay_cordoned && !ox.uncordon_on_recovery && ours,
    }
}

/// Why `step` cannot run now and is passed over (not a gate: it does not wait).
fn skip_reason(i: &Inputs, step: &Step) -> Option<String> {
    let failing: Vec<&str> = step
        .skip_when
        .iter()
        .filter(|p| i.findings.failing_now.contains(p) || i.findings.active.contains_key(p))
        .map(|p| p.as_str())
        .collect();
    if !failing.is_empty() {
        return Some(format!("{} is failing (skipWhen)", failing.join(", ")));
    }
    if let Some(rate) = step.max_per {
        let n = i.ledger.starts_within(&step.name, rate.window, i.now).len();
        if n >= rate.count as usize {
            return Some(format!(
                "ran {n} time(s) in the last {} (maxPer {} per {})",
                rate.window, rate.count, rate.window
            ));
        }
    }
    resolve_unit(i, step).err()
}

/// The unit a restart step acts on, or why there is none.
fn resolve_unit(i: &Inputs, step: &Step) -> Result<Option<String>, String> {
    let candidates: &[String] = match &step.action {
        Action::RestartUnit(r) => std::slice::from_ref(&r.unit),
        Action::RestartContainerRuntime(r) => {
            if let Some(u) = &i.node.runtime_unit
                && r.units.contains(u)
            {
                return Ok(Some(u.clone()));
            }
            &r.units
        }
        Action::RestartTimeSync(r) => {
            // Restart the daemon that runs; never start one (act::timesync).
            if let Some(units) = &i.node.units {
                let present: Vec<&String> =
                    r.units.iter().filter(|u| units.contains_key(*u)).collect();
                if let Some(u) = present.iter().find(|u| !i.node.inactive.contains(**u)) {
                    return Ok(Some((*u).clone()));
                }
                if !present.is_empty() {
                    return Err(format!(
                        "no time-sync daemon is running ({} present, none active); nodewarden starts none",
                        present
                            .iter()
                            .map(|u| u.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            &r.units
        }
        _ => return Ok(None),
    };
    match i.node.units {
        // systemd could not be asked: the restart itself will tell.
        None => Ok(candidates.first().cloned()),
        Some(_) => candidates
            .iter()
            .find(|u| i.node.unit_exists(u) == Some(true))
            .cloned()
            .map(Some)
            .ok_or_else(|| format!("{} not found on this node", candidates.join(" / "))),
    }
}

/// The units a container-runtime restart takes after `unit`: the rest of the
/// detected layout, each one the step allows and the node has.
fn then_units(i: &Inputs, step: &Step, unit: Option<&str>) -> Vec<String> {
    let Action::RestartContainerRuntime(r) = &step.action else {
        return Vec::new();
    };
    if unit.is_none() || unit != i.node.runtime_unit.as_deref() {
        return Vec::new();
    }
    i.node
        .runtime_then
        .iter()
        .filter(|u| r.units.contains(u) && i.node.unit_exists(u) != Some(false))
        .cloned()
        .collect()
}

/// No active findings: close what is open, lifting only our own cordon.
fn plan_recovery(i: &Inputs) -> Decision {
    let ledger = i.ledger;
    let cordon_ours = ledger
        .cordon
        .as_ref()
        .is_some_and(|c| c.by_us && !c.handed_over);
    if ledger.episode.is_none() && !cordon_ours && ledger.slot.is_none() {
        let reported = i.findings.reported_set();
        if !i.findings.remediable_pending() && !reported.is_empty() {
            return Decision::Monitoring { problems: reported };
        }
        if i.findings.pending.is_empty() {
            return Decision::Idle;
        }
        return Decision::Pending {
            confirm_at: i.findings.pending.clone(),
        };
    }
    let node_ours = i
        .cluster
        .node
        .is_some_and(|n| n.unschedulable && n.cordon_annotation);
    let uncordon = cordon_ours && node_ours;
    if (cordon_ours || ledger.slot.is_some()) && !i.cluster.api_reachable {
        return Decision::Hold {
            step: "uncordon".into(),
            gate: Gate::ApiUnreachable,
            reason: format!(
                "the node is healthy again; waiting for the API server to {}",
                match (cordon_ours, ledger.slot.is_some()) {
                    (true, true) => "lift nodewarden's cordon and release the disruption slot",
                    (true, false) => "lift nodewarden's cordon",
                    _ => "release the disruption slot",
                }
            ),
        };
    }
    let reason = match ledger.episode.as_ref() {
        Some(ep) if ep.exhausted.is_some() => {
            format!(
                "{} cleared after the episode was exhausted",
                join(&ep.problems)
            )
        }
        Some(ep) => format!(
            "{} cleared{}",
            join(&ep.problems),
            ep.attempts
                .last()
                .map(|a| format!(" after step {:?}", a.step))
                .unwrap_or_default()
        ),
        None => "no problems; cleaning up state left from an earlier episode".into(),
    };
    let reason = if cordon_ours && !node_ours {
        format!(
            "{reason}; the node is no longer cordoned with nodewarden's annotation, so its cordon is left alone"
        )
    } else {
        reason
    };
    Decision::Recovered {
        uncordon,
        release_slot: ledger.slot.is_some(),
        reason,
    }
}

mod gates;
mod reboot_gate;
use gates::gate_and_act;
pub use reboot_gate::kubelet_down;

#[cfg(test)]
#[path = "plan/tests/props.rs"]
mod props;
#[cfg(test)]
mod tests;
