//! `nodewarden run`: the agent wired to the real node and cluster.
//!
//! This module only connects parts that are tested on their own: the probes
//! (`crate::probe`), systemd over D-Bus, the Kubernetes side (`crate::act::{node,
//! guard, drain}`), Events and metrics (`crate::report`), the ledger, and the
//! run loop. Nothing here decides anything.
//!
//! Every path out of the process is bounded: API calls by the client's call
//! deadline, the node watch by a liveness timeout, D-Bus by `DbusOptions`.
//! Slow publishing (conditions, Events) runs in its own tasks fed through
//! channels, so a hung API server never stalls the loop; it only closes the
//! gates that need the API.
//!
//! Without any API (no kubeconfig, or the server unreachable) the agent still
//! starts, probes, reports READY to systemd and restarts units; every step that
//! needs the API is held by the planner's `ApiUnreachable` / `NodeUnknown` gates.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::Agent;
use super::Tick;
use super::run::{self, Control, Liveness, LoopConfig, Views};
use crate::act::drain::Drainer;
use crate::act::guard::{
    FLEET_SHARED_MAX_AGE, FleetCounter, Renewal, SlotConfig, Slots, fleet_lease, shared_fleet,
};
use crate::act::kube::{Kube, KubeError, KubeOptions, Watched, jitter, watch_one};
use crate::act::node::{
    COND_EXHAUSTED, COND_REMEDIATING, CordonOutcome, DesiredCondition, NodeClient, NodeConditions,
    NodeSnapshot, problem_condition,
};
use crate::act::real::{KubeSide, RealActuators};
use crate::act::{ActError, Actuators, Clock, Drained, Report, SystemClock};
use crate::execute::LedgerWriteError;
use crate::health::Observation;
use crate::host::notify::{self, Notifier};
use crate::host::systemd::{DbusOptions, DbusSystemd, Systemd};
use crate::ledger::{Ledger, LedgerError, LedgerFile, MaintenanceRecord, OpenReport, Outcome};
use crate::maintenance::procedure::{self, StateFile};
use crate::model::{Dur, Problem, Timestamp};
use crate::plan::{ClusterView, Decision, FleetView, Gate, NodeFacts, SlotView};
use crate::probe::{self, ApiFuture, ApiSources, LeaseSource, ProbeEnv, ProbeSet, ProbeTasks};
use crate::probe::{ReadyConditionSource, ServerClock};
use crate::report::events::EventSink;
use crate::report::metrics::{self, Metrics};
use crate::runbook::StormGate;
use crate::runbook::{Drain, Loaded, Runbook};

/// How the agent reaches the API server.
#[derive(Debug, Clone)]
pub enum ApiConfig {
    /// No API: run node-local only (every disruptive step is held).
    None,
    Kube(KubeOptions),
}

/// Everything `run` needs, validated by the CLI.
#[derive(Clone)]
pub struct ServeConfig {
    pub node_name: String,
    /// The runbook in force at start.
    pub runbook: Loaded,
    /// Where SIGHUP re-reads it from; `None` = built-in (reload refused).
    pub runbook_path: Option<PathBuf>,
    pub ledger_path: PathBuf,
    /// `nodewarden maintenance`'s state file, read every tick.
    pub maintenance_path: PathBuf,
    pub api: ApiConfig,
    /// The agent's namespace (disruption-slot Leases).
    pub namespace: String,
    /// Loopback address for `/metrics`; `None` = no metrics endpoint.
    pub metrics_addr: Option<SocketAddr>,
    /// Re-plan at least this often.
    pub tick_every: Duration,
    /// Re-read the runbook when its file changes, checked this often (a
    /// DaemonSet's ConfigMap is updated in place); `None`: on SIGHUP only.
    pub runbook_poll: Option<Duration>,
    /// How often the slot Leases and the fleet are re-read for the gates.
    pub cluster_refresh: Duration,
    pub probe_env: ProbeEnv,
    pub dbus: DbusOptions,
    pub boot_id_path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    LedgerWrite(#[from] LedgerWriteError),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// A setting that can never work (a bad node name, an API URL without a scheme).
    #[error("{0}")]
    Config(String),
}

// ----- the Kubernetes side of the actuators ----------------------------------

/// The API-backed parts, present when a client could be configured.
struct Connected {
    kube: Kube,
    node: NodeClient,
    slots: Slots,
    drainer: Drainer,
    events: mpsc::Sender<Report>,
}

/// `KubeSide` for the daemon: the node's cordon, slots, drain and Events.
struct ApiSide {
    conn: Option<Connected>,
    /// Why there is no API, for errors.
    no_api: String,
    /// Renews the held slot in the background.
    renewal: Mutex<Option<Renewal>>,
}

impl ApiSide {
    fn conn(&self) -> Result<&Connected, ActError> {
        self.conn
            .as_ref()
            .ok_or_else(|| ActError::ApiUnreachable(self.no_api.clone()))
    }
    fn set_renewal(&self, r: Option<Renewal>) {
        *self.renewal.lock().unwrap_or_else(|e| e.into_inner()) = r;
    }
}

impl KubeSide for ApiSide {
    async fn cordon(&self, reason: &str) -> Result<(), ActError> {
        let c = self.conn()?;
        match c.node.cordon(reason).await? {
            CordonOutcome::Cordoned | CordonOutcome::AlreadyOurs => Ok(()),
            // Someone cordoned between our look and our patch: it is theirs, so
            // the step must not claim it. The next plan sees their cordon.
            CordonOutcome::AlreadyCordonedByOther => Err(ActError::Failed(
                "the node was cordoned by someone else meanwhile; their cordon is used as is"
                    .into(),
            )),
        }
    }
    async fn uncordon(&self) -> Result<(), ActError> {
        let c = self.conn()?;
        c.node.uncordon().await?;
        // A drain in request mode left a taint/annotation asking the platform to drain.
        if let Err(e) = c.drainer.clear_drain_request().await {
            tracing::warn!(error = %e, "could not clear the drain request after uncordon: {e}");
        }
        Ok(())
    }
    async fn disown_cordon(&self) -> Result<(), ActError> {
        self.conn()?.node.disown_cordon().await?;
        Ok(())
    }
    async fn acquire_slot(&self) -> Result<String, ActError> {
        let c = self.conn()?;
        let lease = c.slots.acquire().await?;
        self.set_renewal(Some(c.slots.keep_renewed(&lease)));
        Ok(lease)
    }
    async fn release_slot(&self, lease: &str) -> Result<(), ActError> {
        self.set_renewal(None);
        self.conn()?.slots.release(lease).await?;
        Ok(())
    }
    async fn drain(&self, spec: &Drain, kubelet_down: Option<&str>) -> Result<Drained, ActError> {
        let report = self.conn()?.drainer.drain_stuck(spec, kubelet_down).await?;
        Ok(Drained {
            summary: report.summary(),
            awaiting_kubelet: report
                .awaiting_kubelet
                .iter()
                .map(ToString::to_string)
                .collect(),
        })
    }
    async fn report(&self, report: &Report) {
        if let Some(c) = &self.conn
            && c.events.try_send(report.clone()).is_err()
        {
            tracing::warn!(reason = %report.reason, "event queue full; event dropped (it is in the log)");
        }
    }
}

/// Publishes Events in order, each under the client's deadline.
fn spawn_events(sink: EventSink) -> (mpsc::Sender<Report>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Report>(64);
    let task = tokio::spawn(async move {
        while let Some(r) = rx.recv().await {
            sink.emit_best_effort(&r).await;
        }
    });
    (tx, task)
}

// ----- API sources for the probes ------------------------------------------

/// The node's Lease (`kube-node-lease/<node>`) from a watch: no request per probe.
struct WatchedLease(watch::Receiver<Watched<Lease>>);

impl LeaseSource for WatchedLease {
    fn lease_renew_time(&self) -> ApiFuture<'_, Option<Timestamp>> {
        let snap = self.0.borrow().clone();
        Box::pin(async move {
            if snap.stale {
                return Err("the Lease watch is not current".into());
            }
            Ok(snap
                .obj
                .and_then(|l| l.spec)
                .and_then(|s| s.renew_time)
                .map(|t| t.0))
        })
    }
}

/// The Ready condition's message, from the node watch (no API call).
struct WatchedReady(watch::Receiver<NodeSnapshot>);

impl ReadyConditionSource for WatchedReady {
    fn ready_message(&self) -> ApiFuture<'_, Option<String>> {
        let snap = self.0.borrow().clone();
        Box::pin(async move {
            if snap.stale {
                return Err("the node watch is not current".into());
            }
            let node = snap.obj.ok_or("the node has not been seen")?;
            Ok(node
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .into_iter()
                .find(|c| c.type_ == "Ready")
                .and_then(|c| c.message))
        })
    }
    fn node_info(&self) -> ApiFuture<'_, (String, String)> {
        let snap = self.0.borrow().clone();
        Box::pin(async move {
            if snap.stale {
                return Err("the node watch is not current".into());
            }
            let info = snap
                .obj
                .and_then(|n| n.status)
                .and_then(|s| s.node_info)
                .ok_or("the node has not been seen")?;
            Ok((info.container_runtime_version, info.kubelet_version))
        })
    }
}

/// The API server's `Date` header from `GET /version` (any status carries it).
///
/// One request per [`DATE_REFRESH`] at most while the clocks agree: between
/// requests the server's time is the last `Date` plus the monotonic time
/// since, so a local clock that jumps is still seen at once (the monotonic
/// clock does not jump with it). While the clocks disagree by more than the
/// measurement's own error, every probe asks the server again.
struct ApiDate {
    kube: Kube,
    last: Mutex<Option<(Timestamp, Dur, Instant)>>,
}

/// How long one `Date` measurement is extrapolated.
pub const DATE_REFRESH: Duration = Duration::from_secs(300);

impl ApiDate {
    fn new(kube: Kube) -> Self {
        ApiDate {
            kube,
            last: Mutex::new(None),
        }
    }

    fn extrapolated(&self) -> Option<(Timestamp, Dur)> {
        let (date, rtt, at) = (*self.last.lock().unwrap_or_else(|e| e.into_inner()))?;
        let since = at.elapsed();
        if since >= DATE_REFRESH {
            return None;
        }
        let server_now = Dur::from_std(since).after(date);
        let off = server_now
            .duration_since(Timestamp::now())
            .as_secs_f64()
            .abs();
        // Date has 1 s resolution; within that (plus the round trip) they agree.
        (off < 1.0 + rtt.std().as_secs_f64()).then_some((server_now, rtt))
    }

    async fn measure(&self) -> Result<(Timestamp, Dur), String> {
        let req = http::Request::get("/version")
            .body(kube::client::Body::empty())
            .map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let timeout = self.kube.call_timeout();
        let resp = tokio::time::timeout(timeout, self.kube.client().send(req))
            .await
            .map_err(|_| format!("GET /version: no answer within {timeout:?}"))?
            .map_err(|e| format!("GET /version: {e}"))?;
        let rtt = Dur::from_std(t0.elapsed());
        let date = resp
            .headers()
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .ok_or("the API server sent no Date header")?;
        let at = parse_http_date(date).ok_or_else(|| format!("unreadable Date header {date:?}"))?;
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((at, rtt, Instant::now()));
        Ok((at, rtt))
    }
}

/// An HTTP-date (RFC 9110 IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn parse_http_date(s: &str) -> Option<Timestamp> {
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(s.trim())
        .ok()
}

impl ServerClock for ApiDate {
    fn date(&self) -> ApiFuture<'_, (Timestamp, Dur)> {
        Box::pin(async move {
            match self.extrapolated() {
                Some(v) => Ok(v),
                None => self.measure().await,
            }
        })
    }
}

// ----- views of the cluster and node -------------------------------------------

/// What the background refresher last learnt, each part with the time it
/// stops being trusted.
#[derive(Debug, Clone)]
struct Refreshed {
    slot: SlotView,
    slot_until: Option<Instant>,
    fleet: Option<FleetView>,
    fleet_until: Option<Instant>,
}

/// How much the gates' views are needed, from the last decision: the
/// refresher's cadence (see `spawn_refresher`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Need {
    /// Healthy, nothing open: no request at all.
    None,
    /// A problem or an episode, no disruptive step pending: the slots now and then.
    Slow,
    /// A disruptive step is held by the storm gate: the shared fleet count,
    /// backing off while the storm lasts.
    Storm,
    /// A disruptive step runs, is about to, or waits for a slot.
    Now,
}

fn need_of(decision: &Decision, ledger: &Ledger, open: bool) -> Need {
    match decision {
        Decision::Act(a) if a.disruptive => Need::Now,
        Decision::Hold {
            gate: Gate::DisruptionSlot,
            ..
        } => Need::Now,
        Decision::Hold {
            gate: Gate::StormGate,
            ..
        } => Need::Storm,
        _ if ledger.slot.is_some() => Need::Now,
        _ if open => Need::Slow,
        _ => Need::None,
    }
}

struct Wired {
    node_rx: Option<watch::Receiver<NodeSnapshot>>,
    refreshed: Arc<Mutex<Refreshed>>,
    /// How much the gates' views are needed, and the storm gate in force
    /// (see `spawn_refresher`).
    wanted: watch::Sender<(Need, StormGate)>,
    env: ProbeEnv,
    systemd: Arc<dyn Systemd>,
    conditions_tx: Option<watch::Sender<Vec<DesiredCondition>>>,
    metrics: Arc<Metrics>,
    counted: Mutex<BTreeSet<(String, usize)>>,
    probes: Mutex<Option<ProbeTasks>>,
    /// The runbook's probes run here (not fed from outside): re-timed on reload.
    real_probes: bool,
    probe_tx: mpsc::Sender<Observation>,
    api_sources: ApiSources,
    maintenance: StateFile,
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
        m.set_hold_gate(gate.map(|g| g.to_string()).as_deref());
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
            let desired = desired_conditions(tick, ledger, runbook);
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

/// The NodeConditions nodewarden keeps: one per enabled problem, plus its own.
pub fn desired_conditions(
    tick: &Tick,
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
        out.push(match tick.findings.active.get(&problem) {
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
            &reason_word(tick.decision.name()),
            tick.decision.to_string(),
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
fn spawn_conditions(
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

/// Slot reads while only a problem or a non-disruptive episode is open.
/// How long a tick waits for the fleet count before its first disruptive step.
const FLEET_READ_WAIT: Duration = Duration::from_secs(10);
const SLOW_REFRESH: Duration = Duration::from_secs(60);
/// The longest wait between reads while the storm gate holds.
const STORM_REFRESH_MAX: Duration = Duration::from_secs(120);

/// Whether `v` closes the storm gate (the planner's rule).
/// Re-reads the slot Leases and the fleet for the gates, only while they may
/// be needed: a healthy node sends no requests for them.
///
/// - One LIST of the slot Leases per read; it also carries the shared fleet
///   count ([`crate::act::guard::FLEET_LEASE`]). The fleet is only needed for
///   a disruptive step, and is counted (a paginated LIST of every node) only
///   when the shared count is older than `every` (at most
///   [`FLEET_SHARED_MAX_AGE`]); the count is then published for the other
///   agents. In a correlated failure that is about one node LIST per `every`
///   for the whole cluster, not one per held agent, and no agent acts on a
///   count older than it would have taken itself.
/// - Cadence: `every` while a disruptive step runs, is about to or waits for
///   a slot; [`SLOW_REFRESH`] while only a problem is open; while the storm
///   gate holds, from `every` doubling up to [`STORM_REFRESH_MAX`]. Every
///   wait is jittered, and a failed read waits like a successful one (no
///   retry burst when the API server comes back).
fn spawn_refresher(
    slots: Slots,
    fleet: FleetCounter,
    node: String,
    every: Duration,
    mut wanted: watch::Receiver<(Need, StormGate)>,
    out: Arc<Mutex<Refreshed>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut was_ok = true;
        let mut storm_wait = every;
        loop {
            let (need, gate) = match wanted.wait_for(|n| n.0 != Need::None).await {
                Ok(n) => *n,
                Err(_) => return,
            };
            let result: Result<(SlotView, Option<FleetView>), String> = async {
                let leases = slots.leases().await.map_err(|e| e.to_string())?;
                let slot = slots.view_of(&leases);
                if need < Need::Storm {
                    return Ok((slot, None));
                }
                let now = slots.now();
                // A count as recent as our own would be: use it either way.
                if let Some(c) = shared_fleet(&leases, now, every.min(FLEET_SHARED_MAX_AGE)) {
                    return Ok((slot, Some(c.view_for(&node))));
                }
                // An older one still serves to hold (it cannot let a step run).
                let older = shared_fleet(&leases, now, FLEET_SHARED_MAX_AGE)
                    .map(|c| c.view_for(&node))
                    .filter(|v| gate.is_closed(v));
                if older.is_some() {
                    return Ok((slot, older));
                }
                // Count, unless another agent is counting right now.
                let claimed = fleet
                    .claim(&slots, fleet_lease(&leases), now)
                    .await
                    .map_err(|e| e.to_string())?;
                let Some(claimed) = claimed else {
                    return Ok((slot, None));
                };
                let count = fleet.count_all().await.map_err(|e| e.to_string())?;
                if let Err(e) = fleet
                    .share(&slots, Some(&claimed), &count, slots.now())
                    .await
                {
                    tracing::debug!(error = %e, "could not publish the fleet count: {e}");
                }
                Ok((slot, Some(count.view_for(&node))))
            }
            .await;
            let wait = match need {
                Need::Storm => {
                    let w = storm_wait;
                    storm_wait = (storm_wait * 2).min(STORM_REFRESH_MAX.max(every));
                    w
                }
                Need::Slow => {
                    storm_wait = every;
                    SLOW_REFRESH.max(every)
                }
                Need::Now | Need::None => {
                    storm_wait = every;
                    every
                }
            };
            let wait = jitter(wait, 0.8, 1.2);
            match result {
                Ok((slot, fleet)) => {
                    if !was_ok {
                        tracing::info!("the API server answers again");
                    }
                    was_ok = true;
                    let now = Instant::now();
                    let mut r = out.lock().unwrap_or_else(|e| e.into_inner());
                    r.slot = slot;
                    // Trusted until two more reads could have failed.
                    r.slot_until = Some(now + wait * 3);
                    if let Some(f) = fleet {
                        r.fleet = Some(f);
                        r.fleet_until = Some(now + (wait * 3).max(wait + every));
                    }
                }
                Err(e) => {
                    if was_ok {
                        tracing::warn!(error = %e, "cannot read the disruption slots or the fleet: {e}");
                    }
                    was_ok = false;
                }
            }
            // Sleep, but wake at once when a step starts to need more.
            let deadline = Instant::now() + wait;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    r = wanted.changed() => {
                        if r.is_err() {
                            return;
                        }
                        if wanted.borrow().0 > need {
                            break;
                        }
                    }
                }
            }
        }
    })
}

/// Pass control messages (signals) on to the loop's channel.
fn forward(
    mut from: mpsc::Receiver<Control>,
    to: mpsc::Sender<Control>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(m) = from.recv().await {
            if to.send(m).await.is_err() {
                return;
            }
        }
    })
}

/// Ask for a reload when the runbook file's content changes (ConfigMap
/// updates swap a symlink, so the content is compared, not the mtime). The
/// reload itself validates; a bad file is rejected and logged once per change.
fn watch_runbook(
    path: PathBuf,
    every: Duration,
    to: mpsc::Sender<Control>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // A regular file only, bounded, on the blocking pool: a FIFO or a
        // device in its place is refused at once instead of pinning a thread.
        let read = |p: PathBuf| async move {
            tokio::task::spawn_blocking(move || {
                crate::safe_fs::read_file(
                    &p,
                    crate::runbook::MAX_RUNBOOK_BYTES,
                    crate::safe_fs::Follow::Symlinks,
                )
                .ok()
            })
            .await
            .ok()
            .flatten()
        };
        let mut last = read(path.clone()).await;
        loop {
            tokio::time::sleep(every).await;
            let now = read(path.clone()).await;
            if now.is_some() && now != last {
                tracing::info!(runbook = %path.display(), "the runbook file changed; reloading");
                last = now;
                if to.send(Control::Reload).await.is_err() {
                    return;
                }
            }
        }
    })
}

fn read_boot_id(path: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn slot_config(rb: &Runbook, cfg: &ServeConfig) -> SlotConfig {
    SlotConfig {
        namespace: cfg.namespace.clone(),
        holder: cfg.node_name.clone(),
        slots: rb.spec.safety.max_concurrent_disruptions.max(1),
        lease_duration: rb.spec.safety.disruption_lease_duration.std(),
    }
}

/// Run the agent until SIGTERM/SIGINT. Returns an error only for what makes
/// running unsafe: the ledger cannot be opened or written.
pub async fn serve(cfg: ServeConfig) -> Result<(), ServeError> {
    let parts = Parts {
        systemd: Arc::new(DbusSystemd::new(cfg.dbus.clone())),
        observations: None,
        control: None,
        notifier: Arc::new(Notifier::from_env()),
    };
    serve_with(cfg, parts).await
}

/// The parts `serve` takes from the host, replaceable so many agents can run
/// in one process (the fleet simulator) with fake systemd and probes.
pub struct Parts {
    pub systemd: Arc<dyn Systemd>,
    /// Observations from elsewhere instead of the runbook's probes.
    pub observations: Option<mpsc::Receiver<Observation>>,
    /// Control messages instead of SIGHUP/SIGTERM (and the runbook file watch).
    pub control: Option<mpsc::Receiver<Control>>,
    pub notifier: Arc<Notifier>,
}

/// `serve` with the given parts.
pub async fn serve_with(cfg: ServeConfig, parts: Parts) -> Result<(), ServeError> {
    crate::model::check_node_name(&cfg.node_name).map_err(ServeError::Config)?;
    let clock = SystemClock;
    let rb = cfg.runbook.runbook.clone();
    for w in &cfg.runbook.warnings {
        tracing::warn!(runbook = %cfg.runbook.source, "{}", w.render(&cfg.runbook.source));
    }

    let (ledger_file, ledger, opened) = LedgerFile::open(&cfg.ledger_path, clock.now())?;
    let mut startup_reports = Vec::new();
    match &opened {
        OpenReport::Loaded => tracing::info!(ledger = %cfg.ledger_path.display(), "ledger loaded"),
        OpenReport::Fresh => {
            tracing::info!(ledger = %cfg.ledger_path.display(), "no ledger yet; starting fresh")
        }
        OpenReport::Quarantined {
            reason,
            moved_to,
            salvaged,
        } => {
            tracing::error!(
                ledger = %cfg.ledger_path.display(),
                moved_to = %moved_to.display(),
                reason = %reason,
                salvaged = %salvaged,
                "the ledger was unusable; moved aside, starting over with {salvaged}"
            );
            startup_reports.push(Report::warning(
                "LedgerQuarantined",
                format!(
                    "ledger unusable ({reason}); moved to {}; kept {salvaged}",
                    moved_to.display()
                ),
            ));
        }
    }

    let systemd = parts.systemd;
    let metrics = Arc::new(Metrics::new());
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = Vec::new();

    let kube = match &cfg.api {
        ApiConfig::None => {
            tracing::warn!(
                "no Kubernetes API configured: node-local only, every step that needs the API is held"
            );
            None
        }
        ApiConfig::Kube(opts) => match Kube::connect(opts).await {
            Ok(k) => Some(k),
            Err(KubeError::BadServerUrl(e)) => return Err(ServeError::Config(e)),
            Err(e) => {
                tracing::error!(error = %e, "no Kubernetes API client ({e}); node-local only, every step that needs the API is held");
                None
            }
        },
    };
    let no_api_reason = match &kube {
        Some(_) => String::new(),
        None => "no Kubernetes API client is configured for this agent".to_string(),
    };

    let refreshed = Arc::new(Mutex::new(Refreshed {
        slot: SlotView::Unknown,
        slot_until: None,
        fleet: None,
        fleet_until: None,
    }));
    let mut node_rx = None;
    let mut conditions_tx = None;
    let (wanted_tx, wanted_rx) = watch::channel((Need::None, rb.spec.safety.storm_gate));
    let mut conn = None;
    let api_sources = match &kube {
        None => ApiSources::not_configured(no_api_reason.clone()),
        Some(k) => {
            let node = NodeClient::new(k.clone(), cfg.node_name.clone());
            let (rx, watch_task) = node.spawn_watch(Duration::from_secs(60));
            tasks.push(watch_task);
            let (lease_rx, lease_task) = watch_one(
                Api::<Lease>::namespaced(k.client().clone(), "kube-node-lease"),
                &cfg.node_name,
                Duration::from_secs(60),
            );
            tasks.push(lease_task);
            let slots = Slots::new(k.clone(), slot_config(&rb, &cfg));
            tasks.push(spawn_refresher(
                slots.clone(),
                FleetCounter::new(k.clone(), cfg.node_name.clone()),
                cfg.node_name.clone(),
                cfg.cluster_refresh,
                wanted_rx.clone(),
                refreshed.clone(),
            ));
            let (ctx, crx) = watch::channel(Vec::new());
            tasks.push(spawn_conditions(NodeConditions::new(node.clone()), crx));
            conditions_tx = Some(ctx);
            let (events, events_task) =
                spawn_events(EventSink::for_node(k.clone(), &cfg.node_name, None));
            tasks.push(events_task);
            node_rx = Some(rx.clone());
            conn = Some(Connected {
                kube: k.clone(),
                drainer: Drainer::new(k.clone(), cfg.node_name.clone()),
                node,
                slots,
                events,
            });
            ApiSources {
                lease: Arc::new(WatchedLease(lease_rx)),
                ready: Arc::new(WatchedReady(rx)),
                clock: Arc::new(ApiDate::new(k.clone())),
            }
        }
    };
    let api_side = ApiSide {
        conn,
        no_api: no_api_reason,
        renewal: Mutex::new(None),
    };
    // A slot this node held before a restart keeps being renewed.
    if let (Some(c), Some(slot)) = (&api_side.conn, &ledger.slot) {
        tracing::info!(lease = %slot.lease, "resuming renewal of the disruption slot held before restart");
        api_side.set_renewal(Some(c.slots.keep_renewed(&slot.lease)));
    }
    if let Some(c) = &api_side.conn {
        tracing::info!(node = %c.node.name(), call_timeout = ?c.kube.call_timeout(), "Kubernetes API client ready for node {} (call deadline {:?})", c.node.name(), c.kube.call_timeout());
    }

    if let Some(addr) = cfg.metrics_addr {
        match metrics::bind_loopback(addr).await {
            Ok(l) => {
                tracing::info!(%addr, "metrics on http://{addr}/metrics");
                tasks.push(metrics::serve(l, metrics.clone()));
            }
            Err(e) => tracing::error!(%addr, error = %e, "no metrics endpoint: {e}"),
        }
    }

    // Probes → metrics → agent.
    let (probe_tx, mut probe_rx) = mpsc::channel::<Observation>(64);
    let (obs_tx, mut obs_rx) = mpsc::channel::<Observation>(64);
    {
        let metrics = metrics.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(o) = probe_rx.recv().await {
                metrics.observe_probe(o.problem.as_str(), o.took.std());
                if obs_tx.send(o).await.is_err() {
                    return;
                }
            }
        }));
    }
    let (probe_tasks, probe_count) = match parts.observations {
        None => {
            let set = ProbeSet::new(
                &rb.spec.probes,
                &ProbeEnv {
                    node_info: Some(api_sources.ready.clone()),
                    ..cfg.probe_env.clone()
                },
                systemd.clone(),
                api_sources.clone(),
            );
            (Some(set.spawn(probe_tx.clone())), set.problems().len())
        }
        Some(mut rx) => {
            let tx = probe_tx.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(o) = rx.recv().await {
                    if tx.send(o).await.is_err() {
                        return;
                    }
                }
            }));
            (None, 0)
        }
    };
    let real_probes = probe_tasks.is_some();

    let views = Wired {
        node_rx,
        refreshed,
        wanted: wanted_tx,
        env: ProbeEnv {
            node_info: Some(api_sources.ready.clone()),
            ..cfg.probe_env.clone()
        },
        systemd: systemd.clone(),
        conditions_tx,
        metrics,
        counted: Mutex::new(BTreeSet::new()),
        probes: Mutex::new(probe_tasks),
        real_probes,
        probe_tx,
        api_sources,
        maintenance: StateFile::new(cfg.maintenance_path.clone()),
    };

    let act = RealActuators {
        systemd,
        kube: api_side,
        boot_id_path: cfg.boot_id_path.clone(),
    };
    let boot_id = read_boot_id(&cfg.boot_id_path);
    let mut agent = Agent::new(
        cfg.runbook.clone(),
        ledger,
        boot_id.as_deref(),
        act,
        clock,
        ledger_file,
    )?;
    for r in startup_reports {
        agent.actuators().report(r).await;
    }

    let notifier = parts.notifier;
    let liveness = Liveness::default();
    liveness.alive_for(cfg.tick_every * 3);
    if let Some(every) = notify::watchdog_interval() {
        tasks.push(liveness.spawn_watchdog(notifier.clone(), every));
    }
    let mut control = match parts.control {
        Some(c) => c,
        None => {
            let mut control = run::signals().map_err(ServeError::Signals)?;
            if let (Some(path), Some(every)) = (&cfg.runbook_path, cfg.runbook_poll) {
                let (tx, rx) = mpsc::channel(8);
                tasks.push(forward(control, tx.clone()));
                tasks.push(watch_runbook(path.clone(), every, tx));
                control = rx;
            }
            control
        }
    };
    tracing::info!(
        node = %cfg.node_name,
        runbook = %cfg.runbook.source,
        probes = probe_count,
        boot_id = boot_id.as_deref().unwrap_or("-"),
        "nodewarden started on {} with {}",
        cfg.node_name,
        cfg.runbook.source
    );
    let _ = notifier.ready("started");

    let loop_cfg = LoopConfig {
        tick_every: cfg.tick_every,
        runbook_path: cfg.runbook_path.clone(),
    };
    let result = run::run_loop(
        &mut agent,
        &views,
        &mut obs_rx,
        &mut control,
        &loop_cfg,
        &notifier,
        &liveness,
    )
    .await;
    drop(views);
    for t in &tasks {
        t.abort();
    }
    tracing::info!("nodewarden stopped");
    result.map_err(ServeError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(t.map(|t| t.as_second()), Some(784111777));
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date(""), None);
    }

    #[tokio::test]
    async fn server_date_is_extrapolated_while_the_clocks_agree() {
        let kube = Kube::from_url("http://127.0.0.1:9", Duration::from_secs(1)).unwrap();
        let d = ApiDate::new(kube);
        assert!(d.extrapolated().is_none(), "nothing measured yet");
        let rtt = Dur::from_std(Duration::from_millis(20));
        *d.last.lock().unwrap() = Some((Timestamp::now(), rtt, Instant::now()));
        let (at, r) = d.extrapolated().expect("agrees: no request");
        assert_eq!(r, rtt);
        assert!(at.duration_since(Timestamp::now()).as_secs_f64().abs() < 0.5);
        // The server was 10 s ahead when measured: ask it again every time.
        let ahead = Dur::from_std(Duration::from_secs(10)).after(Timestamp::now());
        *d.last.lock().unwrap() = Some((ahead, rtt, Instant::now()));
        assert!(d.extrapolated().is_none());
        // Too old: measured again.
        let old = Instant::now().checked_sub(DATE_REFRESH + Duration::from_secs(1));
        if let Some(old) = old {
            *d.last.lock().unwrap() = Some((Timestamp::now(), rtt, old));
            assert!(d.extrapolated().is_none());
        }
    }

    #[test]
    fn reasons_are_camel_case() {
        assert_eq!(reason_word("act"), "Act");
        assert_eq!(reason_word(""), "");
    }
}
