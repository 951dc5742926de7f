//! The reboot gate: a reboot kills every pod left on the node, so it runs only
//! after the most recent drain of this episode left nothing on the node but
//! pods awaiting this node's kubelet, with the node cordoned ever since.
//!
//! A pod refused by a PodDisruptionBudget, or never evicted, fails the drain
//! (`Outcome::Failed`) and so keeps the gate shut. Pods evicted but still
//! terminating because the kubelet or runtime is the failure
//! (`skipWaitForDeleteTimeout`, `act/drain/skip.rs`) are recorded on the drain
//! attempt (`Attempt::awaiting_kubelet`) and named when the reboot runs.

use std::collections::BTreeSet;

use super::Inputs;
use crate::domain::Problem;
use crate::ledger::Outcome;
use crate::runbook::ActionKind;

/// What the gate says about a reboot now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RebootGate {
    /// The most recent drain finished and the node stayed cordoned since;
    /// the pods it left to this node's kubelet.
    Open { awaiting_kubelet: Vec<String> },
    /// No drain finished in this episode: the reason (names what blocked it).
    NoDrain(String),
    /// The drain finished but the node did not stay cordoned since: drain again.
    Redrain(String),
}

/// Why this node's kubelet cannot finish terminating pods, from the active
/// findings; `None` when nothing says so (a drain then waits for every pod).
pub fn kubelet_down(active: &BTreeSet<Problem>) -> Option<String> {
    let kubelet: Vec<&str> = [Problem::KubeletUnhealthy, Problem::PlegUnhealthy]
        .into_iter()
        .filter(|p| active.contains(p))
        .map(Problem::as_str)
        .collect();
    let runtime = active.contains(&Problem::ContainerRuntimeUnresponsive);
    match (kubelet.is_empty(), runtime) {
        (true, false) => None,
        (false, false) => Some(format!("the kubelet is down ({})", kubelet.join(", "))),
        (true, true) => Some("the container runtime is hung (ContainerRuntimeUnresponsive)".into()),
        (false, true) => Some(format!(
            "the kubelet is down ({}, ContainerRuntimeUnresponsive)",
            kubelet.join(", ")
        )),
    }
}

pub(super) fn reboot_gate(i: &Inputs, step: &str) -> RebootGate {
    let Some(ep) = i.ledger.episode.as_ref() else {
        return RebootGate::NoDrain(format!(
            "step {step:?} needs a completed drain in this episode and no episode is open"
        ));
    };
    // The most recent drain decides: an older success does not cover a failed re-drain.
    let Some(drain) = ep
        .attempts
        .iter()
        .rev()
        .find(|a| a.action == ActionKind::Drain)
    else {
        return RebootGate::NoDrain(format!(
            "step {step:?} needs a completed drain in this episode and none ran: rebooting would kill pods without eviction"
        ));
    };
    match &drain.outcome {
        Outcome::Succeeded => {}
        Outcome::Failed(why) | Outcome::Interrupted(why) => {
            return RebootGate::NoDrain(format!(
                "step {step:?} needs a completed drain and the most recent one (step {:?}) left pods that must leave, so rebooting would kill them without eviction: {why}",
                drain.step
            ));
        }
        Outcome::InProgress => {
            return RebootGate::NoDrain(format!(
                "step {step:?} needs a completed drain and step {:?} has not finished",
                drain.step
            ));
        }
    }
    // The node stayed cordoned since the drain started: the cordon nodewarden
    // recorded is at least as old as the drain, and the node is still cordoned.
    let cordoned_before = i
        .ledger
        .cordon
        .as_ref()
        .is_some_and(|c| c.at <= drain.started_at);
    let uncordoned_now = i.cluster.node.is_some_and(|n| !n.unschedulable);
    if uncordoned_now {
        return RebootGate::Redrain(
            "the node was uncordoned after the drain, so pods may be back: draining again first"
                .into(),
        );
    }
    if !cordoned_before {
        return RebootGate::Redrain(
            "the node was cordoned again after the drain, so pods may have come back in between: draining again first"
                .into(),
        );
    }
    RebootGate::Open {
        awaiting_kubelet: drain.awaiting_kubelet.clone(),
    }
}
