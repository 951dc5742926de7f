//! `nodewarden run`: the agent wired to the real node and cluster.
//!
//! This module only connects parts that are tested on their own: the probes
//! (`crate::probe`, with the watch-backed API sources in `probe::watched`),
//! systemd over D-Bus, the Kubernetes side of the actuators
//! (`crate::act::api_side`), conditions, Events and metrics (`crate::report`),
//! the ledger, the refresher of the gates' views (`refresher`), the loop's
//! views (`wired`), and the run loop. Nothing here decides anything.
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

use super::Agent;
use super::refresher::{Need, Refreshed, spawn_refresher};
use super::run::{self, Control, Liveness, LoopConfig};
use super::wired::Wired;
use crate::act::api_side::{ApiSide, Connected};
use crate::act::csr::CsrLister;
use crate::act::drain::Drainer;
use crate::act::fleet::FleetCounter;
use crate::act::kube::{Kube, KubeError, KubeOptions, WatchTimes, watch_one};
use crate::act::node::{NodeClient, NodeConditions};
use crate::act::real::RealActuators;
use crate::act::slots::{SlotConfig, Slots};
use crate::act::{Actuators, Clock, Report, SystemClock};
use crate::enact::LedgerWriteError;
use crate::health::Observation;
use crate::host::notify::{self, Notifier};
use crate::host::systemd::{DbusOptions, DbusSystemd, PROBE_ROUND, ReadMemo, Systemd};
use crate::ledger::{LedgerError, LedgerFile, OpenReport};
use crate::maintenance::procedure::StateFile;
use crate::plan::SlotView;
use crate::probe::watched::{ApiDate, WatchedLease, WatchedReach, WatchedReady};
use crate::probe::{ApiSources, ProbeEnv, ProbeSet};
use crate::report::conditions::spawn_conditions;
use crate::report::events::EventSink;
use crate::report::metrics::{self, Metrics};
use crate::runbook::{Loaded, Runbook};

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
    let settle = tokio::spawn(settle_after_startup());
    let r = serve_with(cfg, parts).await;
    settle.abort();
    r
}

/// When start-up is over: every probe has run its first round, the watches are open.
const SETTLE_AFTER: Duration = Duration::from_secs(60);

/// Once, [`SETTLE_AFTER`] after start: hand back the memory start-up left resident
/// (`host::resident`; issue 15). One log line says what it did.
async fn settle_after_startup() {
    tokio::time::sleep(SETTLE_AFTER).await;
    match tokio::task::spawn_blocking(crate::host::resident::settle).await {
        Ok(s) => tracing::info!(
            malloc_trimmed = s.trimmed,
            paged_out_ranges = s.ranges,
            paged_out_kib = s.bytes / 1024,
            error = s.error.as_deref().unwrap_or(""),
            "start-up memory handed back: {} KiB of the executable's read-only pages{}",
            s.bytes / 1024,
            s.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ),
        Err(e) => tracing::warn!(error = %e, "handing back start-up memory failed"),
    }
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
    crate::domain::check_node_name(&cfg.node_name).map_err(ServeError::Config)?;
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
    // The probes and the planner's node facts read unit states through a memo: the
    // probes of one round ask about the same units (host/systemd/memo.rs). The
    // actuators keep the plain client, so a restart is verified on fresh answers.
    let read_systemd: Arc<dyn Systemd> = Arc::new(ReadMemo::new(systemd.clone(), PROBE_ROUND));
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
            let (rx, watch_task) = node.spawn_watch(WatchTimes::LONG, k.pulse().clone());
            tasks.push(watch_task);
            let (lease_rx, lease_task) = watch_one(
                Api::<Lease>::namespaced(k.client().clone(), "kube-node-lease"),
                &cfg.node_name,
                WatchTimes::LONG,
                k.pulse().clone(),
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
                EventSink::for_node(k.clone(), &cfg.node_name, None).spawn();
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
                reach: Arc::new(WatchedReach {
                    node: rx.clone(),
                    lease: lease_rx.clone(),
                }),
                lease: Arc::new(WatchedLease(lease_rx)),
                ready: Arc::new(WatchedReady(rx)),
                clock: Arc::new(ApiDate::new(k.clone())),
                csrs: Arc::new(CsrLister::new(k.clone(), cfg.node_name.clone())),
            }
        }
    };
    let api_side = ApiSide::new(conn, no_api_reason);
    // A slot this node held before a restart keeps being renewed.
    if let (Some(_), Some(slot)) = (api_side.connected(), &ledger.slot) {
        tracing::info!(lease = %slot.lease, "resuming renewal of the disruption slot held before restart");
        api_side.resume_renewal(&slot.lease);
    }
    if let Some(c) = api_side.connected() {
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
                read_systemd.clone(),
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
        systemd: read_systemd,
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
