//! What the planner decides: one [`Decision`], and for a step that runs, the
//! [`Act`] with everything the executor needs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::join;
use crate::domain::{Gate, Problem, Timestamp};
use crate::runbook::Action;

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
