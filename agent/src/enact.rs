//! Carries one decision out through the actuators and records it in the ledger.
//!
//! Ordering rules that make crashes safe:
//! - the cordon is recorded as ours *before* the patch, and forgotten if the
//!   patch fails, so a crash in between never loses ownership;
//! - a step's start is saved before the action runs and its result after, so a
//!   restarted agent sees an in-progress attempt and the planner resumes or
//!   moves on instead of repeating it;
//! - a reboot's boot ID is saved before login1 is asked.

use std::collections::BTreeSet;

use crate::act::{ActError, Actuators, Clock, Drained, Report};
use crate::domain::{Dur, Gate, Problem, join_problems};
use crate::ledger::{CordonRecord, Ledger, Outcome, SlotRecord};
use crate::plan::{Act, CordonPlan, Decision};
use crate::runbook::Action;

/// Persists the ledger after each change. The daemon writes the file; dry-run discards.
pub trait LedgerSink {
    fn save(&self, ledger: &Ledger) -> Result<(), String>;
}

/// Never writes (dry-run, tests).
pub struct Discard;
impl LedgerSink for Discard {
    fn save(&self, _: &Ledger) -> Result<(), String> {
        Ok(())
    }
}

impl LedgerSink for crate::ledger::LedgerFile {
    fn save(&self, ledger: &Ledger) -> Result<(), String> {
        crate::ledger::LedgerFile::save(self, ledger).map_err(|e| e.to_string())
    }
}

/// What carrying out a decision did.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Executed {
    /// One line per side effect, in order.
    pub done: Vec<String>,
    /// Set when the step could not start or failed.
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write the ledger: {0}")]
pub struct LedgerWriteError(pub String);

fn save<L: LedgerSink>(store: &L, ledger: &Ledger) -> Result<(), LedgerWriteError> {
    store.save(ledger).map_err(LedgerWriteError)
}

/// Save a record that must be on disk before the action it announces. If the
/// write fails the action does not run, so the record is taken back: the
/// ledger in memory (written later, once the disk allows) must never claim a
/// cordon, a step start or a reboot that did not happen.
fn save_or_undo<L: LedgerSink>(
    store: &L,
    ledger: &mut Ledger,
    undo: impl FnOnce(&mut Ledger),
) -> Result<(), LedgerWriteError> {
    save(store, ledger).inspect_err(|_| undo(ledger))
}

/// Carry out `decision`. Only a ledger write failure is an error: failures of
/// actions are recorded in the ledger and reported, and the planner moves on.
pub async fn execute<A: Actuators, L: LedgerSink, C: Clock>(
    decision: &Decision,
    active: &BTreeSet<Problem>,
    ledger: &mut Ledger,
    act: &A,
    store: &L,
    clock: &C,
) -> Result<Executed, LedgerWriteError> {
    let mut out = Executed::default();
    // An episode is never about a report-only problem, whatever the caller passed.
    let remediable: BTreeSet<Problem> = active
        .iter()
        .copied()
        .filter(|p| !p.report_only())
        .collect();
    let active = &remediable;
    match decision {
        Decision::Act(a) => {
            ledger.ensure_episode(active, clock.now());
            save(store, ledger)?;
            run_step(a, ledger, act, store, clock, &mut out).await?;
        }
        Decision::Hold { step, gate, reason } => {
            if ledger.episode.is_some() || !active.is_empty() {
                ledger.ensure_episode(active, clock.now());
                let before = ledger.episode.as_ref().and_then(|e| e.hold.clone());
                ledger.set_hold(step, &gate.to_string(), reason, clock.now());
                if ledger.episode.as_ref().and_then(|e| e.hold.clone()) != before {
                    save(store, ledger)?;
                    act.report(Report::warning(
                        "Held",
                        format!("step {step:?} held by {gate}: {reason}"),
                    ))
                    .await;
                    out.done.push(format!("held by {gate}"));
                }
            }
        }
        Decision::Recovered {
            uncordon,
            release_slot,
            reason,
        } => {
            if *uncordon {
                match act.uncordon().await {
                    Ok(()) => {
                        out.done.push("uncordoned".into());
                        act.report(Report::normal(
                            "Uncordoned",
                            "nodewarden lifted its own cordon",
                        ))
                        .await;
                    }
                    Err(e) => {
                        // Keep everything: the next round tries again.
                        out.error = Some(format!("uncordon failed: {e}"));
                        return Ok(out);
                    }
                }
            }
            ledger.cordon = None;
            if *release_slot {
                release(ledger, act, &mut out).await;
            }
            ledger.close_episode("recovered", clock.now());
            save(store, ledger)?;
            act.report(Report::normal("Recovered", reason.clone()))
                .await;
            out.done.push("episode closed: recovered".into());
        }
        Decision::Exhausted {
            reason,
            newly,
            uncordon,
            release_slot,
            hand_over_cordon,
        } => {
            if *newly {
                ledger.ensure_episode(active, clock.now());
                ledger.mark_exhausted(reason, clock.now());
                if *hand_over_cordon {
                    match act.disown_cordon().await {
                        Ok(()) => {
                            if let Some(c) = ledger.cordon.as_mut() {
                                c.handed_over = true;
                            }
                            out.done.push("cordon handed over to a human".into());
                        }
                        Err(e) => out.error = Some(format!("could not hand the cordon over: {e}")),
                    }
                }
                if *uncordon {
                    match act.uncordon().await {
                        Ok(()) => {
                            ledger.cordon = None;
                            out.done.push("uncordoned".into());
                        }
                        Err(e) => out.error = Some(format!("uncordon failed: {e}")),
                    }
                }
                save(store, ledger)?;
                act.report(Report::warning("Exhausted", reason.clone()))
                    .await;
            }
            if *release_slot {
                release(ledger, act, &mut out).await;
                save(store, ledger)?;
            }
        }
        Decision::Idle
        | Decision::Pending { .. }
        | Decision::Verify { .. }
        | Decision::Wait { .. }
        | Decision::Monitoring { .. }
        | Decision::Paused { .. } => {}
    }
    Ok(out)
}

async fn release<A: Actuators>(ledger: &mut Ledger, act: &A, out: &mut Executed) {
    if let Some(slot) = ledger.slot.clone() {
        match act.release_slot(&slot.lease).await {
            Ok(()) => {
                ledger.slot = None;
                out.done
                    .push(format!("released disruption slot {}", slot.lease));
            }
            // The Lease expires on its own; forget it so we do not block others by mistake.
            Err(e) => {
                ledger.slot = None;
                out.error = Some(format!(
                    "releasing slot {} failed (it will expire): {e}",
                    slot.lease
                ));
            }
        }
    }
}

async fn run_step<A: Actuators, L: LedgerSink, C: Clock>(
    a: &Act,
    ledger: &mut Ledger,
    act: &A,
    store: &L,
    clock: &C,
    out: &mut Executed,
) -> Result<(), LedgerWriteError> {
    let gate_fail = |ledger: &mut Ledger, gate: Gate, e: &ActError, now| {
        ledger.set_hold(&a.step, gate.as_str(), &e.to_string(), now);
    };

    // 1. A disruption slot.
    if a.acquire_slot && ledger.slot.is_none() {
        match act.acquire_slot().await {
            Ok(lease) => {
                ledger.slot = Some(SlotRecord {
                    lease: lease.clone(),
                    acquired_at: clock.now(),
                });
                save(store, ledger)?;
                out.done.push(format!("took disruption slot {lease}"));
            }
            Err(e) => {
                gate_fail(ledger, Gate::DisruptionSlot, &e, clock.now());
                save(store, ledger)?;
                out.error = Some(format!("could not take a disruption slot: {e}"));
                return Ok(());
            }
        }
    }

    // 2. The cordon, recorded as ours before the patch.
    match a.cordon {
        CordonPlan::Cordon => {
            let reason = format!("nodewarden step {:?} for {}", a.step, problems(&a.problems));
            let before = ledger.cordon.take();
            ledger.cordon = Some(CordonRecord {
                by_us: true,
                was_cordoned_before: false,
                at: clock.now(),
                reason: reason.clone(),
                handed_over: false,
            });
            save_or_undo(store, ledger, |l| l.cordon = before)?;
            if let Err(e) = act.cordon(&reason).await {
                ledger.cordon = None;
                gate_fail(ledger, Gate::ApiUnreachable, &e, clock.now());
                save(store, ledger)?;
                out.error = Some(format!("cordon failed: {e}"));
                return Ok(());
            }
            out.done.push("cordoned".into());
            act.report(Report::normal("Cordoned", reason)).await;
        }
        CordonPlan::AlreadyCordoned { by_us } => {
            if ledger.cordon.is_none() {
                ledger.cordon = Some(CordonRecord {
                    by_us,
                    was_cordoned_before: !by_us,
                    at: clock.now(),
                    reason: if by_us {
                        "adopted nodewarden's own cordon from the node annotation".into()
                    } else {
                        "the node was already cordoned by someone else".into()
                    },
                    handed_over: false,
                });
                save(store, ledger)?;
            }
        }
        CordonPlan::NotNeeded => {}
    }

    // 3. The step itself: start recorded before it runs.
    let kind = a.action.kind();
    if !a.resume {
        let before = (
            ledger.history.clone(),
            ledger
                .episode
                .as_ref()
                .map(|e| (e.attempts.clone(), e.hold.clone())),
        );
        ledger.begin_attempt(&a.step, kind, clock.now(), a.unit.clone());
        save_or_undo(store, ledger, |l| {
            l.history = before.0;
            if let (Some(ep), Some((attempts, hold))) = (l.episode.as_mut(), before.1) {
                ep.attempts = attempts;
                ep.hold = hold;
            }
        })?;
    }
    let what = match &a.unit {
        Some(u) => format!("{kind} {u}"),
        None => kind.to_string(),
    };
    act.report(Report::normal(
        "StepStarted",
        format!(
            "{}step {:?}: {what} for {}",
            if a.resume { "resuming " } else { "" },
            a.step,
            problems(&a.problems)
        ),
    ))
    .await;

    // Pods a drain (or a reboot's final drain) left to this node's kubelet.
    let mut awaiting: Vec<String> = Vec::new();
    let result: Result<Option<String>, ActError> = match &a.action {
        Action::RestartUnit(r) => act
            .restart_unit(a.unit.as_deref().unwrap_or(&r.unit), r.timeout, false)
            .await
            .map(Some),
        Action::RestartContainerRuntime(r) => match &a.unit {
            Some(u) => restart_in_order(act, u, &a.then_units, r.timeout, r.diagnostics)
                .await
                .map(Some),
            None => Err(ActError::Failed("no container runtime unit found".into())),
        },
        Action::RestartTimeSync(r) => match &a.unit {
            Some(u) => act
                .restart_time_sync(u, &r.units, r.timeout)
                .await
                .map(Some),
            None => Err(ActError::Failed("no time-sync unit found".into())),
        },
        Action::Drain(d) => act.drain(d, a.kubelet_down.as_deref()).await.map(|r| {
            awaiting = r.awaiting_kubelet;
            Some(r.summary)
        }),
        Action::Exec(e) => act.exec(&e.argv, e.timeout).await.map(Some),
        Action::Report(r) => {
            let msg = r
                .message
                .clone()
                .unwrap_or_else(|| format!("{} detected", problems(&a.problems)));
            act.report(Report::warning("ProblemReported", msg.clone()))
                .await;
            Ok(Some(msg))
        }
        Action::Reboot(_) => match final_drain(a, act).await {
            Err(e) => Err(e),
            Ok(last) => match act.boot_id().await {
                Err(e) => Err(e),
                Ok(boot) => {
                    // Every pod still here awaits this node's kubelet: say so, by name.
                    let pods =
                        last.map_or_else(|| a.awaiting_kubelet.clone(), |d| d.awaiting_kubelet);
                    if !pods.is_empty() {
                        let msg = crate::plan::awaiting_message(&pods, a.kubelet_down.as_deref());
                        tracing::warn!(step = %a.step, pods = pods.len(), "{msg}");
                        act.report(Report::warning("RebootingWithTerminatingPods", msg.clone()))
                            .await;
                        out.done.push(msg);
                        set_awaiting(ledger, pods);
                    }
                    ledger.record_reboot(&boot, clock.now());
                    save_or_undo(store, ledger, |l| {
                        l.reboots.pop();
                    })?;
                    match act.reboot().await {
                        // Stays in progress: confirmed by a new boot ID after start-up.
                        Ok(()) => {
                            out.done
                                .push(format!("reboot requested (boot ID before: {boot})"));
                            return Ok(());
                        }
                        Err(e) => {
                            // login1 refused: this reboot never happened, so it does not count.
                            ledger.reboots.pop();
                            Err(e)
                        }
                    }
                }
            },
        },
    };
    match result {
        Ok(detail) => {
            ledger.finish_attempt(Outcome::Succeeded, detail.clone(), clock.now());
            if !awaiting.is_empty() {
                set_awaiting(ledger, awaiting);
            }
            save(store, ledger)?;
            out.done
                .push(format!("{what}: {}", detail.as_deref().unwrap_or("done")));
            act.report(Report::normal(
                "StepSucceeded",
                format!("step {:?}: {}", a.step, detail.unwrap_or_default()),
            ))
            .await;
        }
        Err(e) => {
            ledger.finish_attempt(Outcome::Failed(e.to_string()), None, clock.now());
            save(store, ledger)?;
            out.error = Some(format!("{what} failed: {e}"));
            act.report(Report::warning(
                "StepFailed",
                format!("step {:?}: {e}", a.step),
            ))
            .await;
        }
    }
    Ok(())
}

/// Records on the newest attempt the pods left to this node's kubelet.
fn set_awaiting(ledger: &mut Ledger, pods: Vec<String>) {
    if let Some(at) = ledger.episode.as_mut().and_then(|e| e.attempts.last_mut()) {
        at.awaiting_kubelet = pods;
    }
}

/// The last drain pass right before a reboot: pods may have come back since the drain step.
async fn final_drain<A: Actuators>(a: &Act, act: &A) -> Result<Option<Drained>, ActError> {
    match &a.final_drain {
        None => Ok(None),
        Some(d) => act
            .drain(d, a.kubelet_down.as_deref())
            .await
            .map(Some)
            .map_err(|e| {
                ActError::Failed(format!(
                    "final drain before the reboot failed, not rebooting: {e}"
                ))
            }),
    }
}

fn problems(ps: &BTreeSet<Problem>) -> String {
    join_problems(ps, ", ")
}

/// Restart `first`, then each of `then`, stopping at the first failure: a
/// layout's units in the order the layout needs (cri-dockerd, then dockerd).
async fn restart_in_order<A: Actuators>(
    act: &A,
    first: &str,
    then: &[String],
    timeout: Dur,
    diagnostics: bool,
) -> Result<String, ActError> {
    let mut done = vec![act.restart_unit(first, timeout, diagnostics).await?];
    for u in then {
        done.push(act.restart_unit(u, timeout, diagnostics).await?);
    }
    Ok(done.join("; then "))
}

#[cfg(test)]
mod tests;
