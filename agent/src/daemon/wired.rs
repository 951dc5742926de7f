//! [`Views`] for the running daemon: what the loop reads each tick (the
//! cluster view from the watches and the refresher, the node's facts) and
//! what it publishes after (metrics, the desired conditions, the refresher's
//! need). It decides nothing.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::Tick;
use super::refresher::{FLEET_READ_WAIT, Need, Refreshed, need_of};
use super::run::Views;
use crate::act::node::{COND_REMEDIATING, DesiredCondition, NodeSnapshot};
use crate::domain::Problem;
use crate::health::Observation;
use crate::host::systemd::Systemd;
use crate::ledger::{Ledger, MaintenanceRecord, Outcome};
use crate::maintenance::procedure::{self, StateFile};
use crate::plan::{ClusterView, Decision, Gate, NodeFacts, SlotView};
use crate::probe::{self, ApiSources, ProbeEnv, ProbeSet, ProbeTasks};
use crate::report::conditions::desired_conditions;
use crate::report::metrics::Metrics;
use crate::runbook::{Runbook, StormGate};

pub struct Wired {
    pub(super) node_rx: Option<watch::Receiver<NodeSnapshot>>,
    pub(super) refreshed: Arc<Mutex<Refreshed>>,
    /// How much the gates' views are needed, and the storm gate in force
    /// (see `spawn_refresher`).
    pub(super) wanted: watch::Sender<(Need, StormGate)>,
    pub(super) env: ProbeEnv,
    /// For the node facts and the probes: the read memo (host/systemd/memo.rs), never
    /// the actuators' client.
    pub(super) systemd: Arc<dyn Systemd>,
    pub(super) conditions_tx: Option<watch::Sender<Vec<DesiredCondition>>>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) counted: Mutex<BTreeSet<(String, usize)>>,
    pub(super) probes: Mutex<Option<ProbeTasks>>,
    /// The runbook's probes run here (not fed from outside): re-timed on reload.
    pub(super) real_probes: bool,
    pub(super) probe_tx: mpsc::Sender<Observation>,
    pub(super) api_sources: ApiSources,
    pub(super) maintenance: StateFile,
}

impl Views for Wired {
    fn cluster(&self) -> ClusterView {
        let Some(rx) = &self.node_rx else {
            return ClusterView {
                api_reachable: false,
                node: None,
                slot: SlotView::Unknown,
                fleet: None,
            };
        };
        let snap = rx.borrow().clone();
        let r = self
            .refreshed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let now = Instant::now();
        let fresh = |until: Option<Instant>| until.is_some_and(|t| now < t);
        ClusterView {
            // The node watch says whether the API answers; the refreshed slot
            // and fleet views are only kept while an episode may need them.
            api_reachable: !snap.stale && snap.obj.is_some(),
            node: snap.view(),
            slot: if fresh(r.slot_until) {
                r.slot
            } else {
                SlotView::Unknown
            },
            fleet: r.fleet.filter(|_| fresh(r.fleet_until)),
        }
    }

    async fn facts(&self, runbook: &Runbook) -> NodeFacts {
        probe::node_facts(
            runbook,
            &self.env,
            self.systemd.clone(),
            Duration::from_secs(5),
        )
        .await
    }

    fn published(&self, tick: &Tick, ledger: &Ledger, runbook: &Runbook) {
        let f = &tick.findings;
        // Report-only findings never need the slots or the fleet view.
        let open =
            ledger.episode.is_some() || !f.remediable_set().is_empty() || f.remediable_pending();
        let wanted = (
            need_of(&tick.decision, ledger, open),
            runbook.spec.safety.storm_gate,
        );
        self.wanted
            .send_if_modified(|w| std::mem::replace(w, wanted) != wanted);
        let m = &self.metrics;
        let active = tick.findings.active_set();
        for p in Problem::ALL {
            m.set_problem_active(p.as_str(), active.contains(&p));
        }
        m.set_phase(tick.decision.name());
        let gate = match &tick.decision {
            Decision::Hold { gate, .. } => Some(*gate),
            Decision::Paused { .. } => Some(Gate::Maintenance),
            _ => None,
        };
        m.set_hold_gate(gate);
        m.set_slot_held(ledger.slot.is_some());
        m.set_last_decision(tick.decision.name(), tick.now);
        if let Some(ep) = &ledger.episode {
            let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
            for (i, a) in ep.attempts.iter().enumerate() {
                let result = match &a.outcome {
                    Outcome::InProgress => continue,
                    Outcome::Succeeded => "succeeded",
                    Outcome::Failed(_) => "failed",
                    Outcome::Interrupted(_) => "interrupted",
                };
                if counted.insert((ep.id.clone(), i)) {
                    m.step(a.action.as_str(), result);
                }
            }
        }
        if let Some(tx) = &self.conditions_tx {
            let desired = desired_conditions(&tick.findings, &tick.decision, ledger, runbook);
            tx.send_if_modified(|cur| {
                if *cur == desired {
                    false
                } else {
                    *cur = desired;
                    true
                }
            });
        }
    }

    fn maintenance(&self) -> Option<MaintenanceRecord> {
        procedure::daemon_view(&self.maintenance)
    }

    fn ledger_unwritable(&self, error: Option<&str>) {
        self.metrics.set_ledger_write_failing(error.is_some());
        // The next published tick rewrites the conditions; until then the
        // Remediating condition says why nothing moves.
        if let (Some(e), Some(tx)) = (error, &self.conditions_tx) {
            let message = format!("every step is held: {e}");
            tx.send_if_modified(|cur| {
                let mut changed = false;
                for c in cur.iter_mut().filter(|c| c.type_ == COND_REMEDIATING) {
                    if c.reason != "LedgerUnwritable" || c.message != message {
                        c.reason = "LedgerUnwritable".into();
                        c.message = message.clone();
                        changed = true;
                    }
                }
                changed
            });
        }
    }

    async fn read_fleet(&self, gate: StormGate) {
        // Wake the refresher for a disruptive step, then wait (bounded) for its view.
        self.wanted
            .send_if_modified(|w| std::mem::replace(w, (Need::Now, gate)) != (Need::Now, gate));
        let until = Instant::now() + FLEET_READ_WAIT;
        while Instant::now() < until {
            if self.cluster().fleet.is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::debug!(
            "the fleet count did not come within {FLEET_READ_WAIT:?}; the storm gate holds"
        );
    }

    fn reloaded(&self, runbook: &Runbook) {
        if !self.real_probes {
            return;
        }
        let set = ProbeSet::new(
            &runbook.spec.probes,
            &self.env,
            self.systemd.clone(),
            self.api_sources.clone(),
        );
        let mut probes = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        // Dropping the old tasks stops them; the new set starts at once.
        *probes = Some(set.spawn(self.probe_tx.clone()));
        tracing::info!(
            probes = set.problems().len(),
            "probes restarted with the reloaded runbook"
        );
    }
}
