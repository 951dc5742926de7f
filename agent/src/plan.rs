//! The pure planner: (findings, ledger, runbook, cluster view, node facts, now) → one decision.
//!
//! No I/O and no clock of its own. The daemon, `dry-run` and the tests all
//! call this one function; every safety invariant (README.md, "Safety rules") is
//! enforced here and tested in `plan/tests.rs` and `plan/props.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::health::Findings;
use crate::ledger::{Ledger, Outcome};
pub use crate::model::Gate;
use crate::model::{Dur, Problem, Timestamp};
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

/// What must happen about the cordon before a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CordonPlan {
    /// The step does not need the node cordoned.
    NotNeeded,
    /// Cordon now (with the ownership annotation).
    Cordon,
    /// Already cordoned: by us (`true`, our annotation) or by someone else.
    AlreadyCordoned { by_us: bool },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub step: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Act {
    pub step: String,
    pub index: usize,
    pub action: Action,
    /// The unit acted on, for restarts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Restarted after `unit`, in order, by the same step (the rest of the
    /// container runtime's layout: cri-dockerd, then dockerd).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub then_units: Vec<String>,
    pub disruptive: bool,
    pub cordon: CordonPlan,
    pub acquire_slot: bool,
    /// Continue an attempt the agent was carrying out when it stopped (a drain).
    pub resume: bool,
    /// For a reboot: drain once more right before it. Pods may have come back
    /// since the drain step (an uncordon and re-cordon no snapshot can see);
    /// on an empty node this is one pod list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_drain: Option<Box<crate::runbook::Drain>>,
    /// For a drain (and a reboot's final drain): why this node's kubelet
    /// cannot finish terminating pods, from the findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubelet_down: Option<String>,
    /// For a reboot: pods the most recent drain left to this node's kubelet.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub awaiting_kubelet: Vec<String>,
    pub problems: BTreeSet<Problem>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "decision")]
pub enum Decision {
    /// Healthy and nothing open.
    Idle,
    /// Failing, not yet for `failFor`.
    Pending {
        confirm_at: BTreeMap<Problem, Timestamp>,
    },
    Act(Act),
    /// A step ran; waiting to see whether the findings clear.
    Verify {
        step: String,
        until: Timestamp,
        problems: BTreeSet<Problem>,
    },
    /// Nothing to do until `until` (a cooldown, a reboot taking effect).
    Wait {
        step: String,
        until: Timestamp,
        reason: String,
    },
    /// A safety gate is closed; the step waits for it to open.
    Hold {
        step: String,
        gate: Gate,
        reason: String,
    },
    /// The findings cleared: end the episode.
    Recovered {
        uncordon: bool,
        release_slot: bool,
        reason: String,
    },
    /// Only problems the runbook reports (no fix) remain; nothing more to do.
    /// Report-only problems (`Problem::report_only`) always end here, with no episode.
    Monitoring {
        problems: BTreeSet<Problem>,
    },
    /// The ladder ran out (or the reboot cap was reached): a human takes over.
    Exhausted {
        reason: String,
        /// First time this episode is found exhausted.
        newly: bool,
        uncordon: bool,
        release_slot: bool,
        /// Leave the cordon to a human: never lifted by nodewarden.
        hand_over_cordon: bool,
    },
    /// Maintenance is in force: automatic remediation is paused.
    Paused {
        reason: String,
    },
}

impl Decision {
    pub fn name(&self) -> &'static str {
        match self {
            Decision::Idle => "idle",
            Decision::Pending { .. } => "pending",
            Decision::Act(_) => "act",
            Decision::Verify { .. } => "verify",
            Decision::Wait { .. } => "wait",
            Decision::Hold { .. } => "hold",
            Decision::Recovered { .. } => "recovered",
            Decision::Monitoring { .. } => "monitoring",
            Decision::Exhausted { .. } => "exhausted",
            Decision::Paused { .. } => "paused",
        }
    }

    /// The earliest time at which re-planning can give a different answer
    /// without new observations (the executor's next wake-up).
    pub fn next_change(&self) -> Option<Timestamp> {
        match self {
            Decision::Pending { confirm_at } => confirm_at.values().min().copied(),
            Decision::Verify { until, .. } | Decision::Wait { until, .. } => Some(*until),
            _ => None,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Idle => write!(f, "idle: no problems"),
            Decision::Pending { confirm_at } => {
                let parts: Vec<String> = confirm_at
                    .iter()
                    .map(|(p, t)| format!("{p} (confirmed at {t} if it persists)"))
                    .collect();
                write!(
                    f,
                    "pending: failing, not yet for failFor: {}",
                    parts.join(", ")
                )
            }
            Decision::Act(a) => {
                write!(f, "act: step {:?} ({}", a.step, a.action.kind())?;
                if let Some(u) = &a.unit {
                    write!(f, " {u}")?;
                }
                for u in &a.then_units {
                    write!(f, ", then {u}")?;
                }
                write!(f, ") for {}", join(&a.problems))?;
                if a.resume {
                    write!(f, ", resuming")?;
                }
                match a.cordon {
                    CordonPlan::Cordon => write!(f, "; cordon first")?,
                    CordonPlan::AlreadyCordoned { by_us: false } => write!(
                        f,
                        "; node already cordoned by someone else (never lifted by nodewarden)"
                    )?,
                    _ => {}
                }
                if a.acquire_slot {
                    write!(f, "; take a disruption slot first")?;
                }
                if !a.awaiting_kubelet.is_empty() {
                    write!(f, "; {}", a.awaiting_message())?;
                }
                for s in &a.skipped {
                    write!(f, "; skipped {:?}: {}", s.step, s.reason)?;
                }
                Ok(())
            }
            Decision::Verify {
                step,
                until,
                problems,
            } => {
                write!(
                    f,
                    "verify: step {step:?} ran; waiting until {until} for {} to clear",
                    join(problems)
                )
            }
            Decision::Wait {
                step,
                until,
                reason,
            } => write!(f, "wait: step {step:?} until {until}: {reason}"),
            Decision::Hold { step, gate, reason } => {
                write!(f, "hold: step {step:?} held by {gate}: {reason}")
            }
            Decision::Recovered {
                uncordon,
                release_slot,
                reason,
            } => {
                write!(f, "recovered: {reason}")?;
                if *uncordon {
                    write!(f, "; uncordon (nodewarden's own cordon)")?;
                }
                if *release_slot {
                    write!(f, "; release the disruption slot")?;
                }
                Ok(())
            }
            Decision::Monitoring { problems } if problems.iter().all(|p| p.report_only()) => {
                write!(
                    f,
                    "monitoring: {} reported; report-only: no remediation episode, not counted by any storm gate; a person schedules the fix",
                    join(problems)
                )
            }
            Decision::Monitoring { problems } => {
                write!(
                    f,
                    "monitoring: {} reported; the runbook has no fix for it",
                    join(problems)
                )
            }
            Decision::Exhausted {
                reason,
                hand_over_cordon,
                ..
            } => {
                write!(f, "exhausted: {reason}")?;
                if *hand_over_cordon {
                    write!(f, "; the node stays cordoned for a human")?;
                }
                Ok(())
            }
            Decision::Paused { reason } => write!(f, "paused: {reason}"),
        }
    }
}

impl Act {
    /// "rebooting with 1 pod evicted but still terminating because the kubelet is down (…): ns/name"
    pub fn awaiting_message(&self) -> String {
        awaiting_message(&self.awaiting_kubelet, self.kubelet_down.as_deref())
    }
}

/// The one sentence about pods left to this node's kubelet at a reboot.
pub fn awaiting_message(pods: &[String], because: Option<&str>) -> String {
    let n = pods.len();
    let mut names: Vec<&str> = pods.iter().take(10).map(String::as_str).collect();
    let more = n.saturating_sub(names.len());
    let more = (more > 0).then(|| format!("+{more} more"));
    if let Some(m) = &more {
        names.push(m);
    }
    format!(
        "rebooting with {n} pod{} evicted but still terminating because {}: {}",
        if n == 1 { "" } else { "s" },
        because.unwrap_or("this node's kubelet cannot finish them"),
        names.join(", ")
    )
}

fn join(ps: &BTreeSet<Problem>) -> String {
    crate::model::join_problems(ps, ", ")
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

fn gate_and_act(
    i: &Inputs,
    idx: usize,
    step: &Step,
    active: &BTreeSet<Problem>,
    skipped: Vec<Skipped>,
    resume: bool,
) -> Decision {
    let safety = &i.runbook.spec.safety;
    let now = i.now;
    let hold = |gate: Gate, reason: String| Decision::Hold {
        step: step.name.clone(),
        gate,
        reason,
    };

    // A reboot kills every pod left on the node: only after a drain that
    // finished, with the node cordoned since (`plan/reboot_gate.rs`).
    let mut awaiting_kubelet = Vec::new();
    if step.action.kind() == ActionKind::Reboot && !resume {
        let redrain = match reboot_gate::reboot_gate(i, &step.name) {
            RebootGate::NoDrain(reason) => return exhausted(i, reason),
            RebootGate::Open {
                awaiting_kubelet: a,
            } => {
                awaiting_kubelet = a;
                None
            }
            RebootGate::Redrain(reason) => Some(reason),
        };
        // Pods may have come back since the drain. Drain again.
        if let Some(reason) = redrain
            && let Some((di, ds)) = i
                .runbook
                .spec
                .steps
                .iter()
                .enumerate()
                .rev()
                .find(|(_, s)| {
                    s.action.kind() == ActionKind::Drain
                        && s.when.iter().any(|p| step.when.contains(p))
                })
        {
            let mut skipped = skipped;
            skipped.push(Skipped {
                step: step.name.clone(),
                reason,
            });
            return gate_and_act(i, di, ds, active, skipped, false);
        }
    }
    // The reboot cap is final for the episode, so it is checked before any gate.
    if step.action.kind() == ActionKind::Reboot
        && !resume
        && let Some(why) = i
            .ledger
            .reboot_cap_spent(safety.reboots.max, safety.reboots.window, now)
    {
        return exhausted(i, format!("{why}; step {:?} will not run", step.name));
    }

    let needs_api = step.disruptive || step.cordon;
    let mut acquire_slot = false;
    let mut cordon = CordonPlan::NotNeeded;
    let final_drain = if step.action.kind() == ActionKind::Reboot {
        i.runbook
            .spec
            .steps
            .iter()
            .rev()
            .find_map(|s| match &s.action {
                Action::Drain(d) if s.when.iter().any(|p| step.when.contains(p)) => {
                    Some(Box::new(d.clone()))
                }
                _ => None,
            })
    } else {
        None
    };
    // A disruptive step must be able to finish before a blackout begins.
    let span = step.action.max_duration(final_drain.as_deref());
    if step.disruptive
        && let Some(b) = i.runbook.blackout_during(now, span.after(now))
    {
        return hold(
            Gate::Blackout,
            format!(
                "blackout window {}{:?} {:02}:{:02}-{:02}:{:02} {} is in force or begins within {span}, before this step could finish",
                b.name
                    .as_deref()
                    .map(|n| format!("{n} "))
                    .unwrap_or_default(),
                b.days,
                b.from / 60,
                b.from % 60,
                b.to / 60,
                b.to % 60,
                b.time_zone
            ),
        );
    }
    if needs_api {
        if !i.cluster.api_reachable {
            return hold(
                Gate::ApiUnreachable,
                "the API server is unreachable: cannot cordon or hold a disruption slot".into(),
            );
        }
        let Some(node) = i.cluster.node else {
            return hold(
                Gate::NodeUnknown,
                "this node's object has not been read from the API yet".into(),
            );
        };
        if step.disruptive {
            match i.cluster.fleet {
                None => {
                    return hold(
                        Gate::StormGate,
                        "the other nodes' health is not known yet".into(),
                    );
                }
                Some(f) => {
                    let sg = safety.storm_gate;
                    if sg.is_closed(&f) {
                        return hold(
                            Gate::StormGate,
                            format!(
                                "{} of {} other nodes are NotReady or remediating (limit {}%{})",
                                f.other_unhealthy,
                                f.other_nodes,
                                sg.max_unhealthy_percent,
                                sg.max_unhealthy_nodes
                                    .map(|m| format!(" or {m} nodes"))
                                    .unwrap_or_default()
                            ),
                        );
                    }
                }
            }
            let held_in_ledger = i.ledger.slot.is_some();
            match (&i.cluster.slot, held_in_ledger) {
                (SlotView::Held, _) => {}
                (SlotView::Free, _) => acquire_slot = true,
                (SlotView::Busy { holders }, _) => {
                    return hold(
                        Gate::DisruptionSlot,
                        format!(
                            "all {} disruption slot(s) are held by {}",
                            safety.max_concurrent_disruptions,
                            holders.join(", ")
                        ),
                    );
                }
                (SlotView::Unknown, _) => {
                    return hold(
                        Gate::DisruptionSlot,
                        "the disruption slots could not be read".into(),
                    );
                }
            }
        }
        if step.cordon {
            cordon = if node.unschedulable {
                CordonPlan::AlreadyCordoned {
                    by_us: node.cordon_annotation
                        || i.ledger
                            .cordon
                            .as_ref()
                            .is_some_and(|c| c.by_us && !c.handed_over),
                }
            } else {
                CordonPlan::Cordon
            };
        }
    }

    // Non-resumed steps were filtered by `skip_reason`, so the unit resolves.
    let unit = resolve_unit(i, step).unwrap_or(None);
    if !resume
        && let Some(u) = &unit
        && let Some(since) = i.node.unit_active_since(u)
    {
        let until = step.cooldown.after(since);
        if now < until {
            return Decision::Wait {
                step: step.name.clone(),
                until,
                reason: format!(
                    "{u} became active at {since}, less than the cooldown {} ago; a daemon that just started is not restarted",
                    step.cooldown
                ),
            };
        }
    }

    let then_units = then_units(i, step, unit.as_deref());
    Decision::Act(Act {
        step: step.name.clone(),
        index: idx,
        action: step.action.clone(),
        unit,
        then_units,
        disruptive: step.disruptive,
        cordon,
        acquire_slot,
        resume,
        kubelet_down: (matches!(step.action.kind(), ActionKind::Drain | ActionKind::Reboot))
            .then(|| reboot_gate::kubelet_down(active))
            .flatten(),
        awaiting_kubelet,
        final_drain,
        problems: step.when.intersection(active).copied().collect(),
        skipped,
    })
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

mod reboot_gate;
use reboot_gate::RebootGate;
pub use reboot_gate::kubelet_down;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
