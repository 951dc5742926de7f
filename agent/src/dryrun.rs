//! `nodewarden dry-run`: walk the ladder as the daemon would, in simulated time.
//!
//! It is the daemon's own planner and executor; only the actuators are
//! replaced by `SimActuators`, which record what would be done and move a
//! simulated clock. It assumes the worst case, that every step runs and none
//! fixes the problem, so the whole ladder is shown, and for each step says
//! what happens if it does fix it. It never writes anything.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde::Serialize;

use crate::act::{ActError, Actuators, Clock, Drained, Report};
use crate::domain::{Dur, Problem, Timestamp};
use crate::enact::{Discard, execute};
use crate::health::{Finding, Findings};
use crate::ledger::Ledger;
use crate::plan::{
    Act, ClusterView, CordonPlan, Decision, Inputs, NodeFacts, NodeView, SlotView, plan,
};
use crate::runbook::{Action, Drain, Runbook};

mod assumed;
pub use assumed::{ClusterScenario, assumed_node_facts};

/// A problem assumed to be failing since `ago` before the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assumption {
    pub problem: Problem,
    pub ago: Dur,
}

impl std::str::FromStr for Assumption {
    type Err = String;
    /// `PROBLEM` or `PROBLEM:SINCE`, e.g. `KubeletUnhealthy:5m`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (p, ago) = match s.split_once(':') {
            Some((p, d)) => (
                p,
                d.parse::<Dur>()
                    .map_err(|e| format!("--assume {s:?}: {e}"))?,
            ),
            None => (s, Dur::ZERO),
        };
        let problem = p
            .parse::<Problem>()
            .map_err(|e| format!("--assume {s:?}: {e}"))?;
        Ok(Assumption { problem, ago })
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub at: Timestamp,
    /// Time since the start of the dry-run, e.g. `+6m10s`.
    pub offset: String,
    pub decision: &'static str,
    pub text: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<String>,
    /// What happens if this step fixes the problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub if_fixed: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    pub start: Timestamp,
    pub assumptions: Vec<String>,
    pub entries: Vec<Entry>,
    /// `healthy`, `recovered`, `exhausted`, `held`, `monitoring`, `paused`, `unfinished`.
    pub outcome: &'static str,
    pub summary: String,
}

impl Timeline {
    /// Exit status: 0 when there is nothing to do.
    pub fn clean(&self) -> bool {
        self.outcome == "healthy"
    }

    pub fn render_text(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!("dry-run from {}", self.start));
        if self.assumptions.is_empty() {
            s.push_str(" with no failing problems\n");
        } else {
            s.push_str(&format!(
                ", assuming {} keep failing\n",
                self.assumptions.join(", ")
            ));
        }
        for e in &self.entries {
            s.push_str(&format!("{:>9}  {}\n", e.offset, e.text));
            for g in &e.gates {
                s.push_str(&format!("{:>9}    gate: {g}\n", ""));
            }
            for d in &e.done {
                s.push_str(&format!("{:>9}    would: {d}\n", ""));
            }
            if let Some(f) = &e.if_fixed {
                s.push_str(&format!("{:>9}    if it works: {f}\n", ""));
            }
        }
        s.push_str(&format!("outcome: {} — {}\n", self.outcome, self.summary));
        s
    }
}

struct SimState {
    now: Timestamp,
    cluster: ClusterView,
    boot: u32,
    rebooted: bool,
    /// Pods assumed to stay `Terminating` after their eviction (`--assume-stuck-pods`).
    stuck_pods: u32,
    /// They were already left to the kubelet by an earlier drain: a later
    /// drain (the one right before the reboot) finds them past the timeout.
    stuck_left: bool,
}

/// Records instead of acting, and moves simulated time by what each action would take.
pub struct SimActuators {
    state: Mutex<SimState>,
}

impl SimActuators {
    fn with<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> R {
        // A poisoned lock can only come from a panic in this module's own closures.
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }
    fn advance(&self, d: Dur) {
        self.with(|s| s.now = d.after(s.now));
    }
}

impl Clock for SimActuators {
    fn now(&self) -> Timestamp {
        self.with(|s| s.now)
    }
}

impl Actuators for SimActuators {
    async fn cordon(&self, _reason: &str) -> Result<(), ActError> {
        self.with(|s| {
            s.cluster.node = Some(NodeView {
                unschedulable: true,
                cordon_annotation: true,
            })
        });
        Ok(())
    }
    async fn uncordon(&self) -> Result<(), ActError> {
        self.with(|s| {
            s.cluster.node = Some(NodeView {
                unschedulable: false,
                cordon_annotation: false,
            })
        });
        Ok(())
    }
    async fn disown_cordon(&self) -> Result<(), ActError> {
        self.with(|s| {
            if let Some(n) = s.cluster.node.as_mut() {
                n.cordon_annotation = false;
            }
        });
        Ok(())
    }
    async fn acquire_slot(&self) -> Result<String, ActError> {
        self.with(|s| s.cluster.slot = SlotView::Held);
        Ok("nodewarden-slot-0".into())
    }
    async fn release_slot(&self, _lease: &str) -> Result<(), ActError> {
        self.with(|s| s.cluster.slot = SlotView::Free);
        Ok(())
    }
    async fn restart_unit(
        &self,
        unit: &str,
        _timeout: Dur,
        diagnostics: bool,
    ) -> Result<String, ActError> {
        self.advance(Dur::from_secs(5));
        Ok(format!(
            "RestartUnit {unit} over D-Bus, wait for JobRemoved=done and a new InvocationID{}",
            if diagnostics {
                " (diagnostics captured first)"
            } else {
                ""
            }
        ))
    }
    async fn drain(&self, spec: &Drain, kubelet_down: Option<&str>) -> Result<Drained, ActError> {
        let stuck = self.with(|s| s.stuck_pods);
        if stuck > 0 {
            return self.drain_stuck(spec, stuck, kubelet_down);
        }
        // Assume a drain takes a minute, or its whole deadline if that is shorter.
        self.advance(spec.timeout.min(Dur::from_secs(60)));
        Ok(Drained::done(format!(
            "evict this node's pods through pods/eviction (PDBs respected), deadline {}{}",
            spec.timeout,
            if spec.delete_after_deadline {
                ", then delete what is left"
            } else {
                ""
            }
        )))
    }
    async fn boot_id(&self) -> Result<String, ActError> {
        Ok(self.with(|s| format!("dry-run-boot-{}", s.boot)))
    }
    async fn reboot(&self) -> Result<(), ActError> {
        self.with(|s| s.rebooted = true);
        Ok(())
    }
    async fn exec(&self, argv: &[String], timeout: Dur) -> Result<String, ActError> {
        self.advance(Dur::from_secs(10));
        Ok(format!("run {argv:?} (no shell), deadline {timeout}"))
    }
    async fn report(&self, _report: Report) {}
}

/// Pods evicted and stuck `Terminating` (`--assume-stuck-pods`): assumed to
/// have the default 30 s grace period.
const SIM_GRACE: Dur = Dur::from_secs(30);

impl SimActuators {
    /// A drain whose evicted pods stay `Terminating`: left to the kubelet
    /// after their grace period and `skipWaitForDeleteTimeout` when the
    /// findings say it cannot finish them, else waited for until the deadline.
    fn drain_stuck(
        &self,
        spec: &Drain,
        stuck: u32,
        kubelet_down: Option<&str>,
    ) -> Result<Drained, ActError> {
        let pods: Vec<String> = (1..=stuck).map(|i| format!("assumed/stuck-{i}")).collect();
        let skip = spec.skip_wait_for_delete_timeout;
        match kubelet_down {
            Some(why) if !skip.is_zero() => {
                let took = if self.with(|s| s.stuck_left) {
                    Dur::from_secs(5)
                } else {
                    Dur::from_secs(SIM_GRACE.std().as_secs() + skip.std().as_secs())
                };
                self.advance(took.min(spec.timeout));
                if took > spec.timeout {
                    return Err(ActError::Timeout {
                        what: format!(
                            "drain: {stuck} pod(s) still terminating; grace {SIM_GRACE} + skipWaitForDeleteTimeout {skip} is longer than the drain timeout"
                        ),
                        after: spec.timeout,
                    });
                }
                self.with(|s| s.stuck_left = true);
                Ok(Drained {
                    summary: format!(
                        "evict this node's pods; {stuck} evicted but still terminating because {why}: left to the kubelet after grace {SIM_GRACE} + skipWaitForDeleteTimeout {skip}"
                    ),
                    awaiting_kubelet: pods,
                })
            }
            _ => {
                self.advance(spec.timeout);
                Err(ActError::Timeout {
                    what: format!(
                        "drain: {stuck} pod(s) evicted but still terminating ({}), and {}",
                        pods.join(", "),
                        if skip.is_zero() {
                            "skipWaitForDeleteTimeout is 0 (always wait)"
                        } else {
                            "no finding says this node's kubelet cannot finish them"
                        }
                    ),
                    after: spec.timeout,
                })
            }
        }
    }
}

pub struct DryRun<'a> {
    pub runbook: &'a Runbook,
    /// Pods assumed to stay `Terminating` after eviction (`--assume-stuck-pods`).
    pub stuck_pods: u32,
    pub ledger: Ledger,
    pub assumptions: Vec<Assumption>,
    pub cluster: ClusterView,
    pub node: NodeFacts,
    pub now: Timestamp,
}

const MAX_ENTRIES: usize = 200;
/// How long a simulated reboot takes until the node is back.
const SIM_REBOOT: Dur = Dur::from_secs(120);

fn offset(start: Timestamp, t: Timestamp) -> String {
    format!("+{}", Dur::between(start, t))
}

impl DryRun<'_> {
    fn findings(&self, now: Timestamp) -> Findings {
        let mut f = Findings::default();
        for a in &self.assumptions {
            let since = a.ago.before(self.now);
            let timing = self.runbook.spec.probes.timing(a.problem);
            if !timing.enabled {
                continue;
            }
            f.failing_now.insert(a.problem);
            let confirm = timing.fail_for.after(since);
            if confirm <= now {
                f.active.insert(
                    a.problem,
                    Finding {
                        since,
                        summary: "assumed failing (--assume)".into(),
                    },
                );
            } else {
                f.pending.insert(a.problem, confirm);
            }
        }
        f
    }

    fn gates(&self, a: &Act, cluster: &ClusterView) -> Vec<String> {
        let mut g = Vec::new();
        let safety = &self.runbook.spec.safety;
        if a.disruptive {
            g.push("outside every blackout window: yes".into());
            g.push("API server reachable: yes".into());
            if let Some(f) = cluster.fleet {
                g.push(format!(
                    "storm gate open: {} of {} other nodes unhealthy (limit {}%)",
                    f.other_unhealthy, f.other_nodes, safety.storm_gate.max_unhealthy_percent
                ));
            }
            g.push(if a.acquire_slot {
                format!(
                    "disruption slot: take one of {} (Lease, {} TTL)",
                    safety.max_concurrent_disruptions, safety.disruption_lease_duration
                )
            } else {
                "disruption slot: already held".into()
            });
        }
        match a.cordon {
            CordonPlan::Cordon => {
                g.push("cordon first (with nodewarden's ownership annotation)".into())
            }
            CordonPlan::AlreadyCordoned { by_us: true } => g.push("cordon: already ours".into()),
            CordonPlan::AlreadyCordoned { by_us: false } => g.push(
                "cordon: already cordoned by someone else; nodewarden will never lift it".into(),
            ),
            CordonPlan::NotNeeded => {}
        }
        if let Some((_, step)) = self.runbook.step(&a.step) {
            if let Some(rate) = step.max_per {
                let used = self
                    .ledger
                    .starts_within(&step.name, rate.window, self.now)
                    .len();
                g.push(format!(
                    "rate limit: {used} of {} runs used in the last {}",
                    rate.count, rate.window
                ));
            }
            if !step.cooldown.is_zero() {
                g.push(format!(
                    "cooldown: the unit must have been up for {}",
                    step.cooldown
                ));
            }
            if let Action::Reboot(_) = step.action {
                let cap = safety.reboots;
                let used = self.ledger.reboots_within(cap.window, self.now);
                g.push(format!(
                    "reboot cap: {used} of {} reboots used in the last {}",
                    cap.max, cap.window
                ));
                if let Some(l) = &self.ledger.reboot_history_lost {
                    g.push(format!(
                        "reboot history lost at {}: the cap counts as spent until {}",
                        l.at,
                        cap.window.after(l.at)
                    ));
                }
            }
        }
        g
    }

    pub async fn simulate(mut self) -> Timeline {
        let start = self.now;
        let sim = SimActuators {
            state: Mutex::new(SimState {
                now: self.now,
                cluster: self.cluster.clone(),
                boot: 1,
                rebooted: false,
                stuck_pods: self.stuck_pods,
                stuck_left: false,
            }),
        };
        let mut ledger = std::mem::take(&mut self.ledger);
        let mut entries: Vec<Entry> = Vec::new();
        let mut outcome = "unfinished";
        let mut summary = format!("stopped after {MAX_ENTRIES} decisions");
        for _ in 0..MAX_ENTRIES {
            let now = sim.now();
            let findings = self.findings(now);
            let cluster = sim.with(|s| s.cluster.clone());
            let decision = plan(&Inputs {
                findings: &findings,
                ledger: &ledger,
                runbook: self.runbook,
                cluster: &cluster,
                node: &self.node,
                now,
            });
            let mut entry = Entry {
                at: now,
                offset: offset(start, now),
                decision: decision.name(),
                text: decision.to_string(),
                gates: Vec::new(),
                done: Vec::new(),
                if_fixed: None,
            };
            let active: BTreeSet<Problem> = findings.remediable_set();
            if let Decision::Act(a) = &decision {
                entry.gates = self.gates(a, &cluster);
                if let Some((_, step)) = self.runbook.step(&a.step)
                    && !step.verify.is_zero()
                {
                    let cordoned =
                        ledger.cordon.is_some() || matches!(a.cordon, CordonPlan::Cordon);
                    entry.if_fixed = Some(format!(
                        "{} clear within the verify window ({}) → recovered{}",
                        a.problems
                            .iter()
                            .map(|p| p.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        step.verify,
                        if cordoned {
                            "; nodewarden's own cordon is lifted, the slot released"
                        } else {
                            ""
                        }
                    ));
                }
            }
            let executed = execute(&decision, &active, &mut ledger, &sim, &Discard, &sim).await;
            match executed {
                Ok(x) => {
                    entry.done = x.done;
                    if let Some(e) = x.error {
                        entry.done.push(format!("error: {e}"));
                    }
                }
                Err(e) => entry.done.push(format!("error: {e}")),
            }
            entries.push(entry);

            match &decision {
                Decision::Idle => {
                    outcome = "healthy";
                    summary = "nothing to do".into();
                    break;
                }
                Decision::Pending { .. } | Decision::Verify { .. } | Decision::Wait { .. } => {
                    match decision.next_change() {
                        Some(t) if t > now => sim.with(|s| s.now = t),
                        _ => {
                            outcome = "unfinished";
                            summary = "the plan does not move forward in time".into();
                            break;
                        }
                    }
                }
                Decision::Act(_) => {
                    if sim.with(|s| std::mem::take(&mut s.rebooted)) {
                        sim.advance(SIM_REBOOT);
                        let boot = sim.with(|s| {
                            s.boot += 1;
                            format!("dry-run-boot-{}", s.boot)
                        });
                        ledger.reconcile_boot(&boot, sim.now());
                        let t = sim.now();
                        entries.push(Entry {
                            at: t,
                            offset: offset(start, t),
                            decision: "rebooted",
                            text: format!("node back after the reboot (simulated {SIM_REBOOT}); new boot ID confirms it"),
                            gates: Vec::new(),
                            done: Vec::new(),
                            if_fixed: None,
                        });
                    }
                }
                Decision::Hold { gate, reason, .. } => {
                    outcome = "held";
                    summary = format!("waits until {gate} opens: {reason}");
                    break;
                }
                Decision::Recovered { .. } => {
                    outcome = "recovered";
                    summary = "episode closes".into();
                    break;
                }
                Decision::Monitoring { problems } => {
                    outcome = "monitoring";
                    summary = format!(
                        "{} reported; nothing more to do",
                        problems
                            .iter()
                            .map(|p| match crate::report::reported::advice(self.runbook, *p) {
                                Some(a) if p.report_only() => format!(
                                    "{p} (report-only: no episode, no cordon, not counted by any storm gate; {a})"
                                ),
                                _ => p.to_string(),
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    break;
                }
                Decision::Exhausted { reason, .. } => {
                    outcome = "exhausted";
                    summary = format!("{reason}; a human takes over");
                    break;
                }
                Decision::Paused { reason } => {
                    outcome = "paused";
                    summary = reason.clone();
                    break;
                }
            }
        }
        Timeline {
            start,
            assumptions: self
                .assumptions
                .iter()
                .map(|a| {
                    if a.ago.is_zero() {
                        a.problem.to_string()
                    } else {
                        format!("{} (since {} ago)", a.problem, a.ago)
                    }
                })
                .collect(),
            entries,
            outcome,
            summary,
        }
    }
}
