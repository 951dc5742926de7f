//! The agent: observations in, one decision per tick out, carried out and logged.
//!
//! `Agent` holds the state that lives across ticks (runbook, ledger, health)
//! and has no loop of its own: `observe`, `tick` and `reload` are called by
//! the run loop (`run_loop`), by the end-to-end tests and by the fleet
//! simulator alike. Everything time-dependent takes the clock it is given.

use std::collections::BTreeSet;
use std::path::Path;

use crate::act::{Actuators, Clock};
use crate::domain::{Problem, Timestamp};
use crate::enact::{Executed, LedgerSink, LedgerWriteError, execute};
use crate::health::{Findings, Health, Observation};
use crate::ledger::Ledger;
use crate::plan::{ClusterView, Decision, Inputs, NodeFacts, plan};
use crate::runbook::{Loaded, RunbookError};

/// The result of one tick.
#[derive(Debug, Clone)]
pub struct Tick {
    pub now: Timestamp,
    pub findings: Findings,
    pub decision: Decision,
    pub executed: Executed,
    /// The decision differs from the previous tick's (it was logged).
    pub changed: bool,
}

pub struct Agent<A, C, L> {
    runbook: Loaded,
    ledger: Ledger,
    health: Health,
    act: A,
    clock: C,
    store: L,
    last: Option<String>,
    /// The last ledger write failed with this error: the in-memory ledger is
    /// ahead of the file, and nothing is planned or done until a write succeeds.
    unsaved: Option<String>,
    /// Report-only problems active at the previous tick (their Events are sent on change).
    reported: BTreeSet<Problem>,
    /// Since when the API server has been unreachable (one log line per change).
    api_down_since: Option<crate::domain::Timestamp>,
    /// The API server has answered since this agent started: until then "not reachable"
    /// is the start-up wait, not an outage worth a warning.
    api_answered: bool,
}

impl<A: Actuators, C: Clock, L: LedgerSink> Agent<A, C, L> {
    /// Start from a loaded ledger. A reboot we requested is confirmed by a
    /// changed boot ID, and the open episode's problems start as findings that
    /// must be seen healthy for `okFor` before recovery is declared.
    pub fn new(
        runbook: Loaded,
        mut ledger: Ledger,
        boot_id: Option<&str>,
        act: A,
        clock: C,
        store: L,
    ) -> Result<Self, LedgerWriteError> {
        let now = clock.now();
        let mut health = Health::new();
        let mut changed = false;
        if let Some(boot) = boot_id
            && ledger.reconcile_boot(boot, now)
        {
            tracing::info!(
                boot_id = boot,
                "reboot confirmed: the node came back with a new boot ID"
            );
            changed = true;
        }
        let closed = ledger.close_interrupted(now);
        if closed > 0 {
            tracing::warn!(
                steps = closed,
                "{closed} step(s) were cut off when the agent last stopped; closed as interrupted"
            );
            changed = true;
        }
        // A failed write here is not fatal: the agent runs and holds every step
        // until the ledger can be written (a full disk must not crash-loop it).
        let unsaved = if changed {
            store.save(&ledger).err().inspect(|e| {
                tracing::error!(error = %e, "cannot write the ledger; every step is held until it can: {e}");
            })
        } else {
            None
        };
        if let Some(ep) = &ledger.episode {
            tracing::info!(
                episode = %ep.id,
                problems = %join(&ep.problems),
                attempts = ep.attempts.len(),
                "resuming the open episode from the ledger"
            );
            health.seed_active(ep.problems.iter().copied(), ep.started_at);
        }
        Ok(Agent {
            runbook,
            ledger,
            health,
            act,
            clock,
            store,
            last: None,
            unsaved,
            reported: BTreeSet::new(),
            api_down_since: None,
            api_answered: false,
        })
    }

    /// Why the ledger cannot be written, while it cannot.
    pub fn ledger_write_error(&self) -> Option<&str> {
        self.unsaved.as_deref()
    }

    /// Write the ledger if the last write failed. On failure nothing may be
    /// planned or done: a step must be recorded before it starts.
    fn flush(&mut self) -> Result<(), LedgerWriteError> {
        if self.unsaved.is_some() {
            match self.store.save(&self.ledger) {
                Ok(()) => {
                    tracing::info!("the ledger can be written again; steps resume");
                    self.unsaved = None;
                    self.last = None;
                }
                Err(e) => {
                    self.unsaved = Some(e.clone());
                    return Err(LedgerWriteError(e));
                }
            }
        }
        Ok(())
    }

    fn failed_write(&mut self, e: LedgerWriteError) -> LedgerWriteError {
        self.unsaved = Some(e.0.clone());
        e
    }

    pub fn runbook(&self) -> &Loaded {
        &self.runbook
    }
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
    pub fn health(&self) -> &Health {
        &self.health
    }
    pub fn actuators(&self) -> &A {
        &self.act
    }

    pub fn observe(&mut self, obs: Observation) {
        tracing::debug!(
            problem = %obs.problem,
            verdict = ?obs.verdict,
            took_ms = obs.took.std().as_millis() as u64,
            summary = %obs.summary,
            "observed {}: {:?}, {}",
            obs.problem,
            obs.verdict,
            obs.summary
        );
        self.health.observe(obs);
    }

    /// Replace the runbook from `path`. On any error the current runbook stays in force.
    pub fn reload(&mut self, path: &Path) -> Result<(), RunbookError> {
        match crate::runbook::load_file(path) {
            Ok(l) => {
                for w in &l.warnings {
                    tracing::warn!(runbook = %l.source, "{}", w.render(&l.source));
                }
                tracing::info!(
                    runbook = %l.source,
                    steps = l.runbook.spec.steps.len(),
                    "runbook reloaded from {} ({} steps)",
                    l.source,
                    l.runbook.spec.steps.len()
                );
                self.runbook = l;
                self.last = None;
                Ok(())
            }
            Err(e) => {
                tracing::error!(
                    runbook = %path.display(),
                    error = %e,
                    kept = %self.runbook.source,
                    "new runbook rejected; the last good runbook ({}) stays in force: {e}",
                    self.runbook.source
                );
                Err(e)
            }
        }
    }

    /// Mirror the maintenance in force (from `nodewarden maintenance start`)
    /// into the ledger; while it is set the planner pauses.
    pub fn set_maintenance(
        &mut self,
        m: Option<crate::ledger::MaintenanceRecord>,
    ) -> Result<(), LedgerWriteError> {
        if self.ledger.maintenance == m {
            return Ok(());
        }
        match &m {
            Some(r) => tracing::warn!(
                by = %r.by,
                since = %r.since,
                reason = %r.reason,
                "maintenance in force by {}: {}; automatic remediation paused",
                r.by,
                r.reason
            ),
            None => tracing::info!("maintenance ended; automatic remediation resumes"),
        }
        self.ledger.maintenance = m;
        self.last = None;
        self.store
            .save(&self.ledger)
            .map_err(|e| self.failed_write(LedgerWriteError(e)))?;
        Ok(())
    }

    /// What the planner would decide now, without carrying it out (the run
    /// loop reads the fleet first when the answer is a storm gate that only
    /// lacks the fleet count).
    pub fn peek(&mut self, cluster: &ClusterView, facts: &NodeFacts) -> Decision {
        let now = self.clock.now();
        self.decide(cluster, facts, now).1
    }

    /// Whether the planner would decide now without the node's facts
    /// ([`crate::plan::reads_no_facts`]): the run loop may then reuse facts it read
    /// a little earlier.
    pub fn reads_no_facts(&mut self) -> bool {
        let now = self.clock.now();
        let findings = self.health.evaluate(&self.runbook.runbook.spec.probes, now);
        crate::plan::reads_no_facts(&findings, &self.ledger)
    }

    /// The findings at `now` and the planner's decision on them: what `peek`
    /// shows and `tick` carries out.
    fn decide(
        &mut self,
        cluster: &ClusterView,
        facts: &NodeFacts,
        now: Timestamp,
    ) -> (Findings, Decision) {
        let findings = self.health.evaluate(&self.runbook.runbook.spec.probes, now);
        let decision = plan(&Inputs {
            findings: &findings,
            ledger: &self.ledger,
            runbook: &self.runbook.runbook,
            cluster,
            node: facts,
            now,
        });
        (findings, decision)
    }

    /// Evaluate health, plan, carry the decision out. Logs one line when the decision changes.
    pub async fn tick(
        &mut self,
        cluster: &ClusterView,
        facts: &NodeFacts,
    ) -> Result<Tick, LedgerWriteError> {
        self.flush()?;
        let now = self.clock.now();
        self.note_api(cluster.api_reachable, now);
        let (findings, decision) = self.decide(cluster, facts, now);
        let text = decision.to_string();
        let changed = self.last.as_deref() != Some(text.as_str());
        if changed {
            log_decision(&decision, &findings);
            self.last = Some(text);
        }
        let active: BTreeSet<Problem> = findings.remediable_set();
        let executed = execute(
            &decision,
            &active,
            &mut self.ledger,
            &self.act,
            &self.store,
            &self.clock,
        )
        .await
        .map_err(|e| self.failed_write(e))?;
        for d in &executed.done {
            tracing::info!(decision = decision.name(), done = %d, "carried out: {d}");
        }
        if let Some(e) = &executed.error {
            tracing::warn!(decision = decision.name(), error = %e, "step did not complete: {e}");
            // Re-log the next decision even if it reads the same.
            self.last = None;
        }
        let notices =
            crate::report::reported::changes(&self.reported, &findings, &self.runbook.runbook);
        if !notices.is_empty() {
            // Kept in the ledger for `status` only: it opens nothing.
            self.ledger.reported = findings
                .active
                .iter()
                .filter(|(p, _)| p.report_only())
                .map(|(p, f)| {
                    (
                        *p,
                        crate::ledger::ReportedRecord {
                            since: f.since,
                            summary: crate::ledger::bounded(&f.summary),
                        },
                    )
                })
                .collect();
            self.store
                .save(&self.ledger)
                .map_err(|e| self.failed_write(LedgerWriteError(e)))?;
        }
        for n in notices {
            tracing::info!(
                problem = %n.problem,
                raised = n.raised,
                report_only = true,
                "{}",
                n.message
            );
            self.act.report(n.report()).await;
        }
        self.reported = findings.reported_set();
        Ok(Tick {
            now,
            findings,
            decision,
            executed,
            changed,
        })
    }
}

impl<A, C, L> Agent<A, C, L> {
    /// One line when the API server stops or starts answering (the client's
    /// own per-request errors are kept out of the log: `logging.rs`).
    fn note_api(&mut self, reachable: bool, now: crate::domain::Timestamp) {
        match (reachable, self.api_down_since) {
            (false, None) if !self.api_answered => {
                self.api_down_since = Some(now);
                tracing::info!(
                    since = %now,
                    "waiting for the API server's first answer: disruptive steps held until then"
                );
            }
            (false, None) => {
                self.api_down_since = Some(now);
                tracing::warn!(since = %now, "API server unreachable since {now}: disruptive steps held");
            }
            (true, Some(since)) if !self.api_answered => {
                self.api_down_since = None;
                tracing::info!(
                    since = %since,
                    "API server answers (first answer after {})",
                    crate::domain::Dur::between(since, now)
                );
            }
            (true, Some(since)) => {
                self.api_down_since = None;
                tracing::info!(
                    since = %since,
                    "API server answers again (unreachable for {})",
                    crate::domain::Dur::between(since, now)
                );
            }
            _ => {}
        }
        self.api_answered |= reachable;
    }
}

fn join(ps: &BTreeSet<Problem>) -> String {
    crate::domain::join_problems(ps, ",")
}

fn log_decision(d: &Decision, f: &Findings) {
    let active = join(&f.active_set());
    match d {
        Decision::Act(a) => tracing::info!(
            decision = "act",
            step = %a.step,
            action = %a.action.kind(),
            unit = a.unit.as_deref().unwrap_or(""),
            disruptive = a.disruptive,
            problems = %active,
            reason = %d,
            "decision: {d}"
        ),
        Decision::Hold { step, gate, reason } => tracing::warn!(
            decision = "hold",
            step = %step,
            gate = %gate,
            problems = %active,
            reason = %reason,
            "decision: {d}"
        ),
        Decision::Exhausted { reason, .. } => tracing::error!(
            decision = "exhausted",
            problems = %active,
            reason = %reason,
            "decision: {d}"
        ),
        _ => tracing::info!(decision = d.name(), problems = %active, reason = %d, "decision: {d}"),
    }
}

mod refresher;
pub mod run;
pub mod serve;
mod wired;

#[cfg(test)]
mod tests;
