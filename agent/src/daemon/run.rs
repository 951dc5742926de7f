//! The run loop around `Agent`: observations, timers, reload and stop.
//!
//! It owns no decision logic. Signals are turned into `Control` messages by
//! `signals()`, so tests drive the loop with a channel. Stopping mid-step
//! drops the step's future at an await point; the ledger is written
//! synchronously before every await, so what is on disk is always a state the
//! planner can resume from.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Agent, Tick};
use crate::act::{Actuators, Clock};
use crate::enact::{LedgerSink, LedgerWriteError};
use crate::health::Observation;
use crate::host::notify::Notifier;
use crate::ledger::{Ledger, MaintenanceRecord};
use crate::plan::{ClusterView, NodeFacts};
use crate::plan::{Decision, Gate};
use crate::runbook::{Runbook, StormGate};

/// How long the node's facts (units present and since when active, the runtime unit, the
/// boot ID) are reused while the planner decides without them (a quiet node): the
/// iteration after a problem becomes active, or anything of ours is open, reads them anew.
const QUIET_FACTS_MAX_AGE: Duration = Duration::from_secs(60);

/// After an observation, how long the loop waits for the rest of its round before it
/// decides. The probes of one interval tick at the same instant; deciding once per
/// round instead of once per probe halved the loop's iterations on an idle node (36 a
/// minute with four 10 s probes and the 5 s tick; docs/benchmarks.md, pass 3). A
/// problem is acted on this much later, far inside any `failFor`.
const OBSERVATIONS_GATHERED_FOR: Duration = Duration::from_millis(250);

/// Where the loop gets its view of the cluster and of the node each tick.
pub trait Views {
    /// A snapshot of the watch caches (no API call).
    fn cluster(&self) -> ClusterView;
    /// Node facts (unit ages, runtime unit, boot ID) for the units `runbook` names,
    /// each read under a deadline.
    fn facts(&self, runbook: &Runbook) -> impl Future<Output = NodeFacts>;
    /// Called after every tick, to publish it (conditions, metrics). Must not block:
    /// hand slow work to a task.
    fn published(&self, _tick: &Tick, _ledger: &Ledger, _runbook: &Runbook) {}
    /// Called after a reload was accepted (to re-time the probes).
    fn reloaded(&self, _runbook: &Runbook) {}
    /// Called every round with the ledger write error while the ledger cannot
    /// be written (`None` once it can): condition, metric.
    fn ledger_unwritable(&self, _error: Option<&str>) {}
    /// Planned maintenance in force on this node (`nodewarden maintenance start`).
    fn maintenance(&self) -> Option<MaintenanceRecord> {
        None
    }
    /// Read the other nodes' health for the storm gate now, bounded in
    /// time; the next [`Views::cluster`] carries it when it came.
    fn read_fleet(&self, _gate: StormGate) -> impl Future<Output = ()> {
        async {}
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Re-read the runbook (SIGHUP).
    Reload,
    /// Finish and exit (SIGTERM, SIGINT).
    Stop,
}

/// Turn SIGHUP into `Reload` and SIGTERM/SIGINT into `Stop`.
pub fn signals() -> std::io::Result<mpsc::Receiver<Control>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = hup.recv() => Control::Reload,
                _ = term.recv() => Control::Stop,
                _ = int.recv() => Control::Stop,
            };
            let stop = msg == Control::Stop;
            if tx.send(msg).await.is_err() || stop {
                break;
            }
        }
    });
    Ok(rx)
}

/// Proof of life for the systemd watchdog: the loop beats each iteration and
/// announces how long the step it starts may take.
#[derive(Debug, Clone)]
pub struct Liveness {
    deadline_ms: Arc<AtomicI64>,
    origin: Instant,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            deadline_ms: Arc::new(AtomicI64::new(0)),
            origin: Instant::now(),
        }
    }
}

impl Liveness {
    fn now_ms(&self) -> i64 {
        self.origin.elapsed().as_millis() as i64
    }
    /// Alive for at least `d` from now.
    pub fn alive_for(&self, d: Duration) {
        let until = self.now_ms() + d.as_millis() as i64;
        self.deadline_ms.fetch_max(until, Ordering::Relaxed);
    }
    pub fn is_alive(&self) -> bool {
        self.now_ms() <= self.deadline_ms.load(Ordering::Relaxed)
    }
    /// Ping the watchdog every `interval / 2` while alive; stop pinging when the loop hangs.
    pub fn spawn_watchdog(
        &self,
        notifier: Arc<Notifier>,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(interval / 2);
            loop {
                every.tick().await;
                if me.is_alive() {
                    if let Err(e) = notifier.watchdog() {
                        tracing::warn!(error = %e, "watchdog notification failed");
                    }
                } else {
                    tracing::error!(
                        "the agent loop has not made progress; letting the systemd watchdog restart it"
                    );
                }
            }
        })
    }
}

pub struct LoopConfig {
    /// Re-plan at least this often without new observations.
    pub tick_every: Duration,
    /// Runbook to re-read on reload; `None` = built-in default (reload is refused).
    pub runbook_path: Option<PathBuf>,
}

/// The ledger cannot be written: say so (log, status, the view's condition and
/// metric) and try again after a backoff that doubles from 1 s to 1 min. The
/// agent keeps running; it plans and acts again once a write succeeds.
fn unwritable<V: Views>(
    views: &V,
    notifier: &Notifier,
    e: &LedgerWriteError,
    backoff: &mut Option<Duration>,
    next: &mut Instant,
) {
    let wait = match *backoff {
        None => Duration::from_secs(1),
        Some(d) => (d * 2).min(Duration::from_secs(60)),
    };
    *backoff = Some(wait);
    tracing::error!(
        error = %e,
        retry_in_ms = wait.as_millis() as u64,
        "{e}; every step is held until the ledger can be written (retry in {wait:?})"
    );
    views.ledger_unwritable(Some(&e.0));
    let _ = notifier.status(&format!("holding every step: {e}"));
    *next = Instant::now() + wait;
}

/// Run until `Stop` (or the control channel closes). Returns how it ended.
pub async fn run_loop<A, C, L, V>(
    agent: &mut Agent<A, C, L>,
    views: &V,
    observations: &mut mpsc::Receiver<Observation>,
    control: &mut mpsc::Receiver<Control>,
    cfg: &LoopConfig,
    notifier: &Notifier,
    liveness: &Liveness,
) -> Result<(), LedgerWriteError>
where
    A: Actuators,
    C: Clock,
    L: LedgerSink,
    V: Views,
{
    let mut next = Instant::now();
    let mut obs_open = true;
    let mut backoff: Option<Duration> = None;
    // The node's facts as last read, and when (see QUIET_FACTS_MAX_AGE).
    let mut facts_cache: Option<(Instant, NodeFacts)> = None;
    loop {
        liveness.alive_for(cfg.tick_every * 3);
        tokio::select! {
            biased;
            msg = control.recv() => match msg {
                Some(Control::Reload) => {
                    match &cfg.runbook_path {
                        Some(p) => {
                            if agent.reload(p).is_ok() {
                                views.reloaded(&agent.runbook().runbook);
                                facts_cache = None;
                            }
                        }
                        None => tracing::warn!("reload requested but the built-in runbook is in use; nothing to reload"),
                    }
                    next = Instant::now();
                    continue;
                }
                Some(Control::Stop) | None => break,
            },
            o = observations.recv(), if obs_open => match o {
                Some(o) => {
                    agent.observe(o);
                    // The probes of one round tick together and answer within
                    // milliseconds of each other: decide once on all of them.
                    let window = tokio::time::sleep(OBSERVATIONS_GATHERED_FOR);
                    tokio::pin!(window);
                    loop {
                        tokio::select! {
                            biased;
                            o = observations.recv() => match o {
                                Some(o) => agent.observe(o),
                                None => {
                                    obs_open = false;
                                    break;
                                }
                            },
                            _ = &mut window => break,
                        }
                    }
                }
                None => obs_open = false,
            },
            _ = tokio::time::sleep_until(next) => {}
        }
        // While the ledger cannot be written, observations do not shorten the backoff.
        if backoff.is_some() && Instant::now() < next {
            continue;
        }
        // The longest step may take this long; the watchdog must not fire meanwhile.
        let longest = agent
            .runbook()
            .runbook
            .spec
            .steps
            .iter()
            .map(|s| s.action.max_duration(None).std())
            .max()
            .unwrap_or_default();
        liveness.alive_for(longest + Duration::from_secs(60));
        if let Err(e) = agent.set_maintenance(views.maintenance()) {
            unwritable(views, notifier, &e, &mut backoff, &mut next);
            continue;
        }
        let mut cluster = views.cluster();
        // Facts cost a dozen D-Bus messages on a node: read at each iteration only
        // while the planner may act on them, else at most every QUIET_FACTS_MAX_AGE.
        let facts = match facts_cache.take() {
            Some((at, f)) if at.elapsed() < QUIET_FACTS_MAX_AGE && agent.reads_no_facts() => {
                facts_cache = Some((at, f.clone()));
                f
            }
            _ => {
                let f = views.facts(&agent.runbook().runbook).await;
                facts_cache = Some((Instant::now(), f.clone()));
                f
            }
        };
        // A disruptive step held only because the fleet was never read: read
        // it first rather than hold (and report Held) for one tick.
        if cluster.api_reachable
            && cluster.fleet.is_none()
            && matches!(
                agent.peek(&cluster, &facts),
                Decision::Hold {
                    gate: Gate::StormGate,
                    ..
                }
            )
        {
            views
                .read_fleet(agent.runbook().runbook.spec.safety.storm_gate)
                .await;
            cluster = views.cluster();
        }
        let tick = tokio::select! {
            biased;
            msg = control.recv() => match msg {
                Some(Control::Reload) => {
                    if let Some(p) = &cfg.runbook_path
                        && agent.reload(p).is_ok()
                    {
                        views.reloaded(&agent.runbook().runbook);
                        facts_cache = None;
                    }
                    next = Instant::now();
                    continue;
                }
                Some(Control::Stop) | None => {
                    tracing::info!("stopping in the middle of a step; the ledger records it and the next start resumes");
                    break;
                }
            },
            t = agent.tick(&cluster, &facts) => match t {
                Ok(t) => t,
                Err(e) => {
                    unwritable(views, notifier, &e, &mut backoff, &mut next);
                    continue;
                }
            },
        };
        if backoff.is_some() {
            backoff = None;
            views.ledger_unwritable(None);
        }
        views.published(&tick, agent.ledger(), &agent.runbook().runbook);
        let _ = notifier.status(&tick.decision.to_string());
        let wait = match tick.decision.next_change() {
            Some(t) => {
                let d = t.duration_since(tick.now);
                let d = Duration::from_secs_f64(d.as_secs_f64().max(0.0));
                d.min(cfg.tick_every)
            }
            None => cfg.tick_every,
        };
        next = Instant::now() + wait.max(Duration::from_millis(100));
    }
    let _ = notifier.stopping();
    Ok(())
}
