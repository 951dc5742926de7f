//! The gates a chosen step passes before it runs, one function each, in the
//! order they are checked. A gate either lets the step through or stops it
//! with the decision it stands for (a hold, a wait, or the end of the
//! episode); the first that stops it decides.
//!
//! | order | gate | applies to | stops with |
//! |---|---|---|---|
//! | 1 | a drain that finished, node cordoned since | reboot | exhausted, or the drain again |
//! | 2 | the reboot cap | reboot | exhausted |
//! | 3 | blackout windows | disruptive | hold `Blackout` |
//! | 4 | the API reachable | disruptive or cordon | hold `ApiUnreachable` |
//! | 5 | this node's object read | disruptive or cordon | hold `NodeUnknown` |
//! | 6 | the storm gate | disruptive | hold `StormGate` |
//! | 7 | a disruption slot | disruptive | hold `DisruptionSlot` |
//! | 8 | the unit's cooldown | restarts | wait |

use std::collections::BTreeSet;

use super::reboot_gate::{self, RebootGate};
use super::{Act, CordonPlan, Decision, Gate, Inputs, NodeView, Skipped, SlotView};
use super::{exhausted, resolve_unit, then_units};
use crate::domain::{Dur, Problem};
use crate::runbook::{Action, ActionKind, Drain, Step};

/// A gate that stops the step: the decision it stands for (boxed: a
/// `Decision` is large and most gates pass).
type Stop = Box<Decision>;

/// Runs `step` (index `idx` in the runbook) through the gates; `resume`
/// continues an attempt cut off by a stop, which the reboot gates and the
/// cooldown do not stop again.
pub(super) fn gate_and_act(
    i: &Inputs,
    idx: usize,
    step: &Step,
    active: &BTreeSet<Problem>,
    skipped: Vec<Skipped>,
    resume: bool,
) -> Decision {
    match gates(i, idx, step, active, skipped, resume) {
        Ok(d) => d,
        Err(stop) => *stop,
    }
}

fn gates(
    i: &Inputs,
    idx: usize,
    step: &Step,
    active: &BTreeSet<Problem>,
    skipped: Vec<Skipped>,
    resume: bool,
) -> Result<Decision, Stop> {
    let reboot = step.action.kind() == ActionKind::Reboot && !resume;
    let awaiting_kubelet = if reboot {
        drained_before_reboot(i, step, active, &skipped)?
    } else {
        Vec::new()
    };
    if reboot {
        reboot_cap(i, step)?;
    }
    let final_drain = final_drain(i, step);
    if step.disruptive {
        blackout(i, step, final_drain.as_deref())?;
    }
    let mut acquire_slot = false;
    let mut cordon = CordonPlan::NotNeeded;
    if step.disruptive || step.cordon {
        let node = api_and_node(i, step)?;
        if step.disruptive {
            storm_gate(i, step)?;
            acquire_slot = disruption_slot(i, step)?;
        }
        if step.cordon {
            cordon = cordon_plan(i, node);
        }
    }
    // Non-resumed steps were filtered by `skip_reason`, so the unit resolves.
    let unit = resolve_unit(i, step).unwrap_or(None);
    if !resume && let Some(u) = &unit {
        cooldown(i, step, u)?;
    }
    let then_units = then_units(i, step, unit.as_deref());
    Ok(Decision::Act(Act {
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
    }))
}

fn hold(step: &Step, gate: Gate, reason: String) -> Stop {
    Box::new(Decision::Hold {
        step: step.name.clone(),
        gate,
        reason,
    })
}

/// Gate 1: A reboot kills every pod left on the node: only after a drain that
/// finished, with the node cordoned since (`plan/reboot_gate.rs`). Pods may
/// have come back since the drain: then the drain runs again. `Ok`: the pods
/// that drain left to this node's kubelet.
fn drained_before_reboot(
    i: &Inputs,
    step: &Step,
    active: &BTreeSet<Problem>,
    skipped: &[Skipped],
) -> Result<Vec<String>, Stop> {
    let reason = match reboot_gate::reboot_gate(i, &step.name) {
        RebootGate::NoDrain(reason) => return Err(Box::new(exhausted(i, reason))),
        RebootGate::Open { awaiting_kubelet } => return Ok(awaiting_kubelet),
        RebootGate::Redrain(reason) => reason,
    };
    let drain = i
        .runbook
        .spec
        .steps
        .iter()
        .enumerate()
        .rev()
        .find(|(_, s)| {
            s.action.kind() == ActionKind::Drain && s.when.iter().any(|p| step.when.contains(p))
        });
    match drain {
        Some((di, ds)) => {
            let mut skipped = skipped.to_vec();
            skipped.push(Skipped {
                step: step.name.clone(),
                reason,
            });
            Err(Box::new(gate_and_act(i, di, ds, active, skipped, false)))
        }
        None => Ok(Vec::new()),
    }
}

/// Gate 2: The reboot cap is final for the episode, so it is checked before any
/// gate that only waits.
fn reboot_cap(i: &Inputs, step: &Step) -> Result<(), Stop> {
    let reboots = &i.runbook.spec.safety.reboots;
    match i
        .ledger
        .reboot_cap_spent(reboots.max, reboots.window, i.now)
    {
        Some(why) => Err(Box::new(exhausted(
            i,
            format!("{why}; step {:?} will not run", step.name),
        ))),
        None => Ok(()),
    }
}

/// A reboot's last drain: the runbook's last drain step for the same problems.
fn final_drain(i: &Inputs, step: &Step) -> Option<Box<Drain>> {
    if step.action.kind() != ActionKind::Reboot {
        return None;
    }
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
}

/// Gate 3: A disruptive step must be able to finish before a blackout begins.
fn blackout(i: &Inputs, step: &Step, final_drain: Option<&Drain>) -> Result<(), Stop> {
    let now = i.now;
    let span: Dur = step.action.max_duration(final_drain);
    let Some(b) = i.runbook.blackout_during(now, span.after(now)) else {
        return Ok(());
    };
    Err(hold(
        step,
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
    ))
}

/// Gates 4 and 5: A step that cordons or disrupts needs the API and this node's object.
fn api_and_node<'a>(i: &Inputs<'a>, step: &Step) -> Result<&'a NodeView, Stop> {
    if !i.cluster.api_reachable {
        return Err(hold(
            step,
            Gate::ApiUnreachable,
            "the API server is unreachable: cannot cordon or hold a disruption slot".into(),
        ));
    }
    i.cluster.node.as_ref().ok_or_else(|| {
        hold(
            step,
            Gate::NodeUnknown,
            "this node's object has not been read from the API yet".into(),
        )
    })
}

/// Gate 6: Not while too many other nodes are NotReady or being remediated.
fn storm_gate(i: &Inputs, step: &Step) -> Result<(), Stop> {
    let Some(f) = i.cluster.fleet else {
        return Err(hold(
            step,
            Gate::StormGate,
            "the other nodes' health is not known yet".into(),
        ));
    };
    let sg = i.runbook.spec.safety.storm_gate;
    if !sg.is_closed(&f) {
        return Ok(());
    }
    Err(hold(
        step,
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
    ))
}

/// Gate 7: A disruption slot: held already, or free to take (`Ok(true)`: acquire it).
fn disruption_slot(i: &Inputs, step: &Step) -> Result<bool, Stop> {
    match &i.cluster.slot {
        SlotView::Held => Ok(false),
        SlotView::Free => Ok(true),
        SlotView::Busy { holders } => Err(hold(
            step,
            Gate::DisruptionSlot,
            format!(
                "all {} disruption slot(s) are held by {}",
                i.runbook.spec.safety.max_concurrent_disruptions,
                holders.join(", ")
            ),
        )),
        SlotView::Unknown => Err(hold(
            step,
            Gate::DisruptionSlot,
            "the disruption slots could not be read".into(),
        )),
    }
}

/// What the cordon needs before the step: a node cordoned by someone else
/// stays theirs unless our annotation or ledger says it is ours.
fn cordon_plan(i: &Inputs, node: &NodeView) -> CordonPlan {
    if !node.unschedulable {
        return CordonPlan::Cordon;
    }
    CordonPlan::AlreadyCordoned {
        by_us: node.cordon_annotation
            || i.ledger
                .cordon
                .as_ref()
                .is_some_and(|c| c.by_us && !c.handed_over),
    }
}

/// Gate 8: A daemon that just started is not restarted: wait out the step's cooldown.
fn cooldown(i: &Inputs, step: &Step, unit: &str) -> Result<(), Stop> {
    let Some(since) = i.node.unit_active_since(unit) else {
        return Ok(());
    };
    let until = step.cooldown.after(since);
    if i.now >= until {
        return Ok(());
    }
    Err(Box::new(Decision::Wait {
        step: step.name.clone(),
        until,
        reason: format!(
            "{unit} became active at {since}, less than the cooldown {} ago; a daemon that just started is not restarted",
            step.cooldown
        ),
    }))
}
