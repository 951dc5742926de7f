//! The fleet simulator: many real agent loops (`serve_with`) in one process
//! against one fake API server, with fake probes and a fake systemd driven by
//! scenario scripts. Shared by `benches/fleetsim.rs` (the figures) and
//! `tests/fleet.rs` (a CI-sized check). See docs/fleet.md.

// Each includer (the bench, the test) uses a different part.
#![allow(dead_code)]
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nodewarden::act::kube::{KubeOptions, Source};
use nodewarden::daemon::run::Control;
use nodewarden::daemon::serve::{ApiConfig, Parts, ServeConfig, serve_with};
use nodewarden::domain::{Problem, Timestamp};
use nodewarden::health::{Observation, Verdict};
use nodewarden::host::notify::Notifier;
use nodewarden::host::systemd::{
    JobResult, RestartOutcome, SdFuture, Systemd, SystemdError, UnitPresence, UnitStatus,
};
use nodewarden::probe::ProbeEnv;
use nodewarden_fakeapi::{FakeApi, Kind, Mode, RequestRecord};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub const NAMESPACE: &str = "nodewarden";
pub const MAX_DISRUPTIONS: usize = 3;

/// The default ladder with seconds for minutes (like tests/e2e/runbook.yaml).
pub const RUNBOOK: &str = r#"
apiVersion: nodewarden.io/v1alpha1
kind: Runbook
metadata: {name: fleetsim}
spec:
  probes:
    KubeletUnhealthy: {interval: 1s, timeout: 1s, failFor: 2s, okFor: 2s, leaseStaleAfter: 10s}
    PLEGUnhealthy: {enabled: false}
    ContainerRuntimeUnresponsive: {enabled: false}
    ClockSkewed: {enabled: false}
    SystemdOutdated: {interval: 1s, timeout: 1s, failFor: 0s, okFor: 0s}
  steps:
    - name: restart-kubelet
      when: [KubeletUnhealthy]
      action: {restartUnit: {unit: kubelet.service, timeout: 5s}}
      cooldown: 1s
      verify: 3s
    - name: restart-container-runtime
      when: [KubeletUnhealthy]
      action: {restartContainerRuntime: {units: [docker.service], diagnostics: false, timeout: 5s}}
      cooldown: 1s
      verify: 3s
    - name: drain
      when: [KubeletUnhealthy]
      action: {drain: {timeout: 20s, deleteEmptyDirData: true, force: true, ignoreDaemonSets: true}}
      verify: 1s
    - name: reboot
      when: [KubeletUnhealthy]
      action: {reboot: {timeout: 20s}}
      verify: 4s
    - name: report-outdated-systemd
      when: [SystemdOutdated]
      action: {report: {message: schedule a systemd upgrade}}
  safety:
    maxConcurrentDisruptions: 3
    disruptionLeaseDuration: 1m
    stormGate: {maxUnhealthyPercent: 20}
    reboots: {max: 1, window: 6h}
"#;

/// What fixes a node's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    Kubelet = 1,
    Runtime = 2,
    Reboot = 3,
}

/// Per node: the fault (0 = healthy, else the `Fix` that cures it), counters.
#[derive(Default)]
pub struct NodeSim {
    pub name: String,
    fault: AtomicU8,
    pub restarts_kubelet: AtomicU64,
    pub restarts_runtime: AtomicU64,
    pub reboots: AtomicU64,
    /// A disruptive action ran while this node held no live slot.
    pub unslotted_disruptions: AtomicU64,
    /// Set while the node's API connection is cut (partition).
    pub cut_off: AtomicBool,
    /// Disruptive actions taken while cut off.
    pub disruptive_while_cut: AtomicU64,
    /// The node's systemd is below the runbook's minimum (report-only SystemdOutdated).
    pub outdated: AtomicBool,
    reboot_tx: Mutex<Option<mpsc::Sender<()>>>,
}

impl NodeSim {
    pub fn failing(&self) -> bool {
        self.fault.load(Ordering::SeqCst) != 0
    }
}

/// The whole fleet.
pub struct Fleet {
    pub api: Arc<FakeApi>,
    pub nodes: Vec<Arc<NodeSim>>,
    pub dirs: Vec<PathBuf>,
    _tmp: tempfile::TempDir,
    proxy: Proxy,
    stops: Vec<mpsc::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Peak number of distinct live slot holders seen by the sampler.
    pub peak_slots: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

/// A TCP proxy in front of the fake that can cut every connection through it.
struct Proxy {
    url: String,
    cut: watch::Sender<bool>,
    pub attempts: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> std::io::Result<Proxy> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", l.local_addr()?);
        let (cut, cut_rx) = watch::channel(false);
        let attempts = Arc::new(AtomicU64::new(0));
        let a = attempts.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = l.accept().await {
                if *cut_rx.borrow() {
                    a.fetch_add(1, Ordering::Relaxed);
                    drop(inbound);
                    continue;
                }
                let mut rx = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(Ok(mut out)) =
                        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(target))
                            .await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                        _ = rx.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Ok(Proxy {
            url,
            cut,
            attempts,
            task,
        })
    }
}

/// Systemd for one simulated node: restarts always succeed; whether they
/// fix the fault is the node's script. A reboot restarts the agent.
struct SimSystemd {
    node: Arc<NodeSim>,
    api: Arc<FakeApi>,
    units: Mutex<BTreeMap<String, (Timestamp, u64)>>,
}

impl SimSystemd {
    fn status(&self, unit: &str) -> Option<UnitStatus> {
        let u = self.units.lock().unwrap_or_else(|e| e.into_inner());
        let (since, inv) = *u.get(unit)?;
        Some(UnitStatus {
            name: unit.into(),
            load_state: "loaded".into(),
            active_state: "active".into(),
            sub_state: "running".into(),
            invocation_id: Some(format!("{inv:032x}")),
            main_pid: Some(100),
            active_enter: Some(since),
            inactive_exit: Some(since),
            n_restarts: Some(0),
        })
    }

    /// Checks the slot invariant at the moment of a disruptive action.
    fn disruptive(&self) {
        if self.node.cut_off.load(Ordering::SeqCst) {
            self.node
                .disruptive_while_cut
                .fetch_add(1, Ordering::SeqCst);
        }
        if !holds_slot(&self.api, &self.node.name) {
            self.node
                .unslotted_disruptions
                .fetch_add(1, Ordering::SeqCst);
        }
    }

    fn cure(&self, level: Fix) {
        let f = self.node.fault.load(Ordering::SeqCst);
        if f != 0 && f <= level as u8 {
            self.node.fault.store(0, Ordering::SeqCst);
            set_ready(&self.api, &self.node.name, true);
        }
    }
}

fn not_found(unit: &str) -> SystemdError {
    SystemdError::NotFound { unit: unit.into() }
}

impl Systemd for SimSystemd {
    fn unit_status<'a>(&'a self, unit: &'a str) -> SdFuture<'a, UnitStatus> {
        Box::pin(async move { self.status(unit).ok_or_else(|| not_found(unit)) })
    }
    fn restart_unit<'a>(&'a self, unit: &'a str, _t: Duration) -> SdFuture<'a, RestartOutcome> {
        Box::pin(async move {
            let before = self.status(unit).ok_or_else(|| not_found(unit))?;
            {
                let mut u = self.units.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(e) = u.get_mut(unit) {
                    *e = (Timestamp::now(), e.1 + 1);
                }
            }
            if unit == "kubelet.service" {
                self.node.restarts_kubelet.fetch_add(1, Ordering::SeqCst);
                self.cure(Fix::Kubelet);
            } else {
                self.disruptive();
                self.node.restarts_runtime.fetch_add(1, Ordering::SeqCst);
                self.cure(Fix::Runtime);
            }
            let after = self.status(unit).ok_or_else(|| not_found(unit))?;
            Ok(RestartOutcome {
                unit: unit.into(),
                job: "/org/freedesktop/systemd1/job/1".into(),
                result: JobResult::Done,
                before,
                after,
                elapsed: Duration::from_millis(1),
            })
        })
    }
    fn manager_version(&self) -> SdFuture<'_, String> {
        Box::pin(async { Ok("252".to_string()) })
    }
    fn reboot(&self) -> SdFuture<'_, ()> {
        Box::pin(async move {
            self.disruptive();
            self.node.reboots.fetch_add(1, Ordering::SeqCst);
            let tx = self
                .node
                .reboot_tx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(tx) = tx {
                let _ = tx.try_send(());
            }
            Ok(())
        })
    }
    fn kill_unit_signal<'a>(
        &'a self,
        _unit: &'a str,
        _s: nix::sys::signal::Signal,
    ) -> SdFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn units_present<'a>(&'a self, units: &'a [&'a str]) -> SdFuture<'a, Vec<UnitPresence>> {
        Box::pin(async move {
            Ok(units
                .iter()
                .map(|u| {
                    let there = self.status(u).is_some();
                    UnitPresence {
                        name: u.to_string(),
                        load_state: if there { "loaded" } else { "not-found" }.into(),
                        active_state: if there { "active" } else { "inactive" }.into(),
                    }
                })
                .collect())
        })
    }
}

/// Whether `node` is the live holder of a slot Lease in the fake.
pub fn holds_slot(api: &FakeApi, node: &str) -> bool {
    live_holders(api).contains(node)
}

/// Live holders of the slot Leases.
pub fn live_holders(api: &FakeApi) -> BTreeSet<String> {
    let now = Timestamp::now();
    api.list(Kind::Lease)
        .iter()
        .filter(|l| {
            l.pointer("/metadata/name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.starts_with("nodewarden-slot-"))
        })
        .filter_map(|l| {
            let holder = l.pointer("/spec/holderIdentity")?.as_str()?;
            let renew: Timestamp = l.pointer("/spec/renewTime")?.as_str()?.parse().ok()?;
            let secs = l.pointer("/spec/leaseDurationSeconds")?.as_i64()?;
            let exp = renew
                .checked_add(jiff::SignedDuration::from_secs(secs))
                .ok()?;
            (!holder.is_empty() && exp > now).then(|| holder.to_string())
        })
        .collect()
}

/// The node controller's view: Ready follows the kubelet.
fn set_ready(api: &FakeApi, node: &str, ready: bool) {
    api.modify(Kind::Node, "", node, |n| {
        if let Some(conds) = n
            .pointer_mut("/status/conditions")
            .and_then(Value::as_array_mut)
        {
            for c in conds.iter_mut() {
                if c["type"] == "Ready" {
                    c["status"] = Value::String(if ready { "True" } else { "Unknown" }.into());
                }
            }
        }
    });
}

/// Sim-wide settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub agents: usize,
    /// Agents start spread over this long.
    pub startup_spread: Duration,
    /// Agents `0..partitioned` reach the API through the cuttable proxy.
    pub partitioned: usize,
}

impl Fleet {
    pub async fn start(s: &Settings) -> anyhow::Result<Fleet> {
        let api = Arc::new(FakeApi::start().await);
        api.set_grace_scale(0.01);
        let proxy = Proxy::start(api.addr()).await?;
        let tmp = tempfile::tempdir()?;
        let rb = nodewarden::runbook::parse("fleetsim.yaml", RUNBOOK)
            .map_err(|e| anyhow::anyhow!("sim runbook: {e:?}"))?;
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        let mut stops = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..s.agents {
            let name = format!("node-{i:05}");
            api.add_node(&name);
            let dir = tmp.path().join(&name);
            std::fs::create_dir_all(dir.join("proc/sys/kernel/random"))?;
            std::fs::write(boot_id_path(&dir), format!("boot-{i}-0\n"))?;
            let node = Arc::new(NodeSim {
                name: name.clone(),
                ..Default::default()
            });
            let url = if i < s.partitioned {
                proxy.url.clone()
            } else {
                api.url()
            };
            let start_after = s.startup_spread.mul_f64(jitter_unit(i as u64));
            let (stop_tx, stop_rx) = mpsc::channel(1);
            stops.push(stop_tx);
            tasks.push(tokio::spawn(run_node(
                node.clone(),
                api.clone(),
                rb.clone(),
                dir.clone(),
                url,
                start_after,
                stop_rx,
            )));
            nodes.push(node);
            dirs.push(dir);
        }
        let peak_slots = Arc::new(AtomicU64::new(0));
        let (a, p) = (api.clone(), peak_slots.clone());
        let sampler = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                p.fetch_max(live_holders(&a).len() as u64, Ordering::SeqCst);
            }
        });
        Ok(Fleet {
            api,
            nodes,
            dirs,
            _tmp: tmp,
            proxy,
            stops,
            tasks,
            peak_slots,
            sampler,
        })
    }

    /// Makes node `i` fail with a fault that `fix` cures; Ready goes Unknown.
    pub fn fail(&self, i: usize, fix: Fix) {
        self.nodes[i].fault.store(fix as u8, Ordering::SeqCst);
        set_ready(&self.api, &self.nodes[i].name, false);
    }

    /// Cures every fault (the rollout was reverted).
    pub fn heal_all(&self) {
        for n in &self.nodes {
            if n.fault.swap(0, Ordering::SeqCst) != 0 {
                set_ready(&self.api, &n.name, true);
            }
        }
    }

    pub fn cut_partition(&self, cut: bool, partitioned: usize) {
        for n in &self.nodes[..partitioned] {
            n.cut_off.store(cut, Ordering::SeqCst);
        }
        let _ = self.proxy.cut.send(cut);
    }

    pub fn proxy_refused(&self) -> u64 {
        self.proxy.attempts.load(Ordering::Relaxed)
    }

    pub async fn set_api(&self, mode: Mode) {
        self.api.set_mode(mode).await;
    }

    /// The ledger of node `i` (as JSON), if written.
    pub fn ledger(&self, i: usize) -> Option<Value> {
        let text = std::fs::read_to_string(self.dirs[i].join("ledger.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The gate holding node `i`'s episode, if held.
    pub fn hold_gate(&self, i: usize) -> Option<String> {
        self.ledger(i)?
            .pointer("/episode/hold/gate")?
            .as_str()
            .map(str::to_string)
    }

    /// The status of condition `ty` on node `i`'s object in the fake.
    pub fn condition(&self, i: usize, ty: &str) -> Option<String> {
        let node = self.api.get(Kind::Node, "", &self.nodes[i].name)?;
        node.pointer("/status/conditions")?
            .as_array()?
            .iter()
            .find(|c| c["type"] == ty)?["status"]
            .as_str()
            .map(str::to_string)
    }

    /// Node `i` has no open episode (an agent that never had one may not
    /// have written its ledger at all).
    pub fn settled(&self, i: usize) -> bool {
        self.ledger(i)
            .is_none_or(|l| l.get("episode").is_none_or(Value::is_null))
    }

    /// Waits until `pred` holds or `limit` passes; returns whether it held.
    pub async fn until(&self, limit: Duration, mut pred: impl FnMut(&Fleet) -> bool) -> bool {
        let end = Instant::now() + limit;
        loop {
            if pred(self) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub fn counters(&self) -> Counters {
        let mut c = Counters::default();
        for n in &self.nodes {
            c.kubelet_restarts += n.restarts_kubelet.load(Ordering::SeqCst);
            c.runtime_restarts += n.restarts_runtime.load(Ordering::SeqCst);
            c.reboots += n.reboots.load(Ordering::SeqCst);
            c.unslotted += n.unslotted_disruptions.load(Ordering::SeqCst);
            c.while_cut += n.disruptive_while_cut.load(Ordering::SeqCst);
        }
        let log = self.api.requests();
        c.cordons = nodes_where(&log, |r| {
            r.verb == "patch"
                && r.resource == "nodes"
                && r.subresource.is_none()
                && r.body.contains("\"unschedulable\":true")
        });
        c.drains = nodes_where(&log, |r| {
            r.verb == "list"
                && r.resource == "pods"
                && r.query
                    .as_deref()
                    .is_some_and(|q| q.contains("spec.nodeName"))
        });
        c
    }

    pub async fn stop(self) {
        self.sampler.abort();
        for s in &self.stops {
            let _ = s.try_send(());
        }
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        self.proxy.task.abort();
    }
}

/// Distinct node count behind requests matching `f` (name from the path or
/// the `spec.nodeName` field selector).
fn nodes_where(log: &[RequestRecord], f: impl Fn(&RequestRecord) -> bool) -> u64 {
    let mut set = BTreeSet::new();
    for r in log.iter().filter(|r| f(r)) {
        let key = match (&r.name, &r.query) {
            (Some(n), _) if r.resource == "nodes" => n.clone(),
            (_, Some(q)) => q.clone(),
            _ => continue,
        };
        set.insert(key);
    }
    set.len() as u64
}

/// Cumulative effects, for differences between scenarios.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub kubelet_restarts: u64,
    pub runtime_restarts: u64,
    pub reboots: u64,
    pub cordons: u64,
    pub drains: u64,
    pub unslotted: u64,
    pub while_cut: u64,
}

impl Counters {
    pub fn since(&self, before: &Counters) -> Counters {
        Counters {
            kubelet_restarts: self.kubelet_restarts - before.kubelet_restarts,
            runtime_restarts: self.runtime_restarts - before.runtime_restarts,
            reboots: self.reboots - before.reboots,
            cordons: self.cordons.saturating_sub(before.cordons),
            drains: self.drains.saturating_sub(before.drains),
            unslotted: self.unslotted - before.unslotted,
            while_cut: self.while_cut - before.while_cut,
        }
    }
}

fn boot_id_path(dir: &Path) -> PathBuf {
    dir.join("proc/sys/kernel/random/boot_id")
}

/// A deterministic value in [0, 1) for `i`.
pub fn jitter_unit(i: u64) -> f64 {
    let mut x = i
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(0x2545_F491_4F6C_DD1D);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    (x % 1_000_000) as f64 / 1_000_000.0
}

/// One node: the agent, its fake probe, and reboots (stop the agent, new
/// boot ID, start it again on the same ledger).
async fn run_node(
    node: Arc<NodeSim>,
    api: Arc<FakeApi>,
    runbook: nodewarden::runbook::Loaded,
    dir: PathBuf,
    url: String,
    start_after: Duration,
    mut stop: mpsc::Receiver<()>,
) {
    tokio::time::sleep(start_after).await;
    let boot = Timestamp::now();
    let systemd: Arc<dyn Systemd> = Arc::new(SimSystemd {
        node: node.clone(),
        api: api.clone(),
        units: Mutex::new(
            [
                ("kubelet.service".to_string(), (boot, 1)),
                ("docker.service".to_string(), (boot, 1)),
            ]
            .into(),
        ),
    });
    let mut boots = 0u32;
    loop {
        let (reboot_tx, mut reboot_rx) = mpsc::channel(1);
        *node.reboot_tx.lock().unwrap_or_else(|e| e.into_inner()) = Some(reboot_tx);
        let (obs_tx, obs_rx) = mpsc::channel(8);
        let (ctl_tx, ctl_rx) = mpsc::channel(2);
        let cfg = ServeConfig {
            node_name: node.name.clone(),
            runbook: runbook.clone(),
            runbook_path: None,
            ledger_path: dir.join("ledger.json"),
            maintenance_path: dir.join("maintenance.json"),
            api: ApiConfig::Kube(KubeOptions {
                source: Source::Url(url.clone()),
                call_timeout: Duration::from_secs(5),
                connect_timeout: Duration::from_secs(2),
            }),
            namespace: NAMESPACE.into(),
            metrics_addr: None,
            tick_every: Duration::from_secs(1),
            runbook_poll: None,
            cluster_refresh: Duration::from_secs(5),
            probe_env: ProbeEnv {
                proc_root: dir.join("proc"),
                ..Default::default()
            },
            dbus: Default::default(),
            boot_id_path: boot_id_path(&dir),
        };
        let parts = Parts {
            systemd: systemd.clone(),
            observations: Some(obs_rx),
            control: Some(ctl_rx),
            notifier: Arc::new(Notifier::disabled()),
        };
        let agent = tokio::spawn(async move {
            if let Err(e) = serve_with(cfg, parts).await {
                tracing::error!("agent stopped: {e}");
            }
        });
        let n = node.clone();
        let probe = tokio::spawn(async move {
            loop {
                let verdict = if n.failing() {
                    Verdict::Failing
                } else {
                    Verdict::Healthy
                };
                let o = Observation::new(
                    Problem::KubeletUnhealthy,
                    Timestamp::now(),
                    verdict,
                    "simulated",
                );
                if obs_tx.send(o).await.is_err() {
                    return;
                }
                let (verdict, summary) = if n.outdated.load(Ordering::SeqCst) {
                    (
                        Verdict::Failing,
                        "systemd package 219-62.el7 is older than the el7 minimum 219-67.el7",
                    )
                } else {
                    (
                        Verdict::Healthy,
                        "systemd package 219-78.el7_9.9 meets the el7 minimum 219-67.el7",
                    )
                };
                let o =
                    Observation::new(Problem::SystemdOutdated, Timestamp::now(), verdict, summary);
                if obs_tx.send(o).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let rebooting = tokio::select! {
            _ = reboot_rx.recv() => true,
            _ = stop.recv() => false,
        };
        let _ = ctl_tx.send(Control::Stop).await;
        probe.abort();
        let _ = tokio::time::timeout(Duration::from_secs(10), agent).await;
        if !rebooting {
            return;
        }
        boots += 1;
        // The reboot cures what a reboot cures; the node comes back Ready.
        if node.fault.load(Ordering::SeqCst) <= Fix::Reboot as u8 && node.failing() {
            node.fault.store(0, Ordering::SeqCst);
            set_ready(&api, &node.name, true);
        }
        let _ = std::fs::write(boot_id_path(&dir), format!("{}-{boots}\n", node.name));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

// ----- scenarios -----------------------------------------------------------

/// Durations of one run (full or scaled down).
#[derive(Debug, Clone)]
pub struct Scale {
    pub steady: Duration,
    pub storm: Duration,
    pub spread_every: Duration,
    pub outage: Duration,
    pub after_outage: Duration,
    pub partition: Duration,
    pub settle_limit: Duration,
}

impl Scale {
    pub fn full() -> Scale {
        Scale {
            steady: Duration::from_secs(60),
            storm: Duration::from_secs(40),
            spread_every: Duration::from_secs(2),
            outage: Duration::from_secs(120),
            after_outage: Duration::from_secs(60),
            partition: Duration::from_secs(60),
            settle_limit: Duration::from_secs(600),
        }
    }
    pub fn quick() -> Scale {
        Scale {
            steady: Duration::from_secs(15),
            storm: Duration::from_secs(15),
            spread_every: Duration::from_millis(500),
            outage: Duration::from_secs(10),
            after_outage: Duration::from_secs(15),
            partition: Duration::from_secs(12),
            settle_limit: Duration::from_secs(120),
        }
    }
}

/// Figures and requirement checks of one scenario.
#[derive(Debug, Default)]
pub struct Report {
    pub name: String,
    pub figures: Vec<(String, String)>,
    pub checks: Vec<(String, bool, String)>,
}

impl Report {
    fn new(name: &str) -> Report {
        Report {
            name: name.into(),
            ..Default::default()
        }
    }
    fn fig(&mut self, k: &str, v: impl std::fmt::Display) {
        self.figures.push((k.into(), v.to_string()));
    }
    fn check(&mut self, what: &str, ok: bool, detail: impl std::fmt::Display) {
        self.checks.push((what.into(), ok, detail.to_string()));
    }
    pub fn failed(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.1)
            .map(|c| format!("{}: {} ({})", self.name, c.0, c.2))
            .collect()
    }
    pub fn render(&self) -> String {
        let mut s = format!("== {}\n", self.name);
        for (k, v) in &self.figures {
            s.push_str(&format!("   {k:<52} {v}\n"));
        }
        for (w, ok, d) in &self.checks {
            s.push_str(&format!(
                "   [{}] {w}: {d}\n",
                if *ok { "PASS" } else { "FAIL" }
            ));
        }
        s
    }
}

pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

fn per_agent_min(n: usize, agents: usize, window: Duration) -> f64 {
    n as f64 / agents as f64 / (window.as_secs_f64() / 60.0)
}

fn fix_for(k: usize) -> Fix {
    match k % 3 {
        0 => Fix::Kubelet,
        1 => Fix::Runtime,
        _ => Fix::Reboot,
    }
}

impl Fleet {
    async fn settle(&self, limit: Duration) -> bool {
        self.heal_all();
        let n = self.nodes.len();
        self.until(limit, |f| (0..n).all(|i| f.settled(i))).await
    }

    /// Steady state: requests per agent per minute beyond the watches.
    pub async fn steady(&self, sc: &Scale, rss_before: u64) -> Report {
        let mut r = Report::new("steady state");
        let n = self.nodes.len();
        // Watches opened since start-up: which objects each agent watches.
        let mut targets = BTreeSet::new();
        for q in self.api.requests().iter().filter(|q| q.verb == "watch") {
            let sel: String = q
                .query
                .as_deref()
                .unwrap_or("")
                .split('&')
                .filter(|p| p.starts_with("fieldSelector"))
                .collect();
            targets.insert((q.resource.clone(), sel));
        }
        self.api.clear_log();
        tokio::time::sleep(sc.steady).await;
        let log = self.api.requests();
        let mut by: BTreeMap<String, usize> = BTreeMap::new();
        let mut watches = 0usize;
        for q in &log {
            if q.verb == "watch" {
                watches += 1;
            } else {
                *by.entry(format!("{} {}", q.verb, q.resource_path()))
                    .or_default() += 1;
            }
        }
        let other: usize = by.values().sum();
        r.fig("agents", n);
        r.fig("window", format!("{:?}", sc.steady));
        for (k, v) in &by {
            r.fig(
                &format!("{k} /agent/min"),
                format!("{:.3}", per_agent_min(*v, n, sc.steady)),
            );
        }
        let rate = per_agent_min(other, n, sc.steady);
        r.fig("requests beyond watches /agent/min", format!("{rate:.3}"));
        r.fig(
            "watch (re)opens /agent/min",
            format!("{:.2}", per_agent_min(watches, n, sc.steady)),
        );
        r.fig(
            "watched objects per agent (concurrent watches)",
            format!("{:.2}", targets.len() as f64 / n as f64),
        );
        let rss = rss_bytes();
        r.fig("process RSS", format!("{:.1} MiB", rss as f64 / 1048576.0));
        r.fig(
            "memory per agent (RSS delta / agents, incl. fake API side)",
            format!(
                "{:.0} KiB",
                rss.saturating_sub(rss_before) as f64 / 1024.0 / n as f64
            ),
        );
        r.check(
            "under 1 request per agent per minute beyond watches",
            rate < 1.0,
            format!("{rate:.3}"),
        );
        r
    }

    /// 40 % of the nodes fail at once: the storm gate holds every disruptive step.
    pub async fn storm(&self, sc: &Scale) -> Report {
        let mut r = Report::new("storm: 40% fail at once");
        let n = self.nodes.len();
        let failing: Vec<usize> = (0..n).filter(|i| i % 5 < 2).collect();
        let before = self.counters();
        self.api.clear_log();
        for &i in &failing {
            self.fail(i, Fix::Reboot);
        }
        tokio::time::sleep(sc.storm).await;
        let d = self.counters().since(&before);
        let log = self.api.requests();
        let node_lists = log
            .iter()
            .filter(|q| {
                q.verb == "list"
                    && q.resource == "nodes"
                    && q.query.as_deref().is_some_and(|s| s.contains("limit="))
            })
            .count();
        let lease_lists = log
            .iter()
            .filter(|q| q.verb == "list" && q.resource == "leases")
            .count();
        let all = log.iter().filter(|q| q.verb != "watch").count();
        let held: usize = failing
            .iter()
            .filter(|&&i| self.hold_gate(i).as_deref() == Some("StormGate"))
            .count();
        r.fig("failing nodes", failing.len());
        r.fig("window", format!("{:?}", sc.storm));
        r.fig("kubelet restarts (not disruptive)", d.kubelet_restarts);
        r.fig(
            "runtime restarts / cordons / drains / reboots",
            format!(
                "{} / {} / {} / {}",
                d.runtime_restarts, d.cordons, d.drains, d.reboots
            ),
        );
        r.fig("fleet-count node LIST pages, whole cluster", node_lists);
        r.fig("slot+fleet Lease LISTs, whole cluster", lease_lists);
        r.fig(
            "requests/s at the API (non-watch)",
            format!("{:.1}", all as f64 / sc.storm.as_secs_f64()),
        );
        r.fig(
            "failing agents holding on StormGate",
            format!("{held}/{}", failing.len()),
        );
        r.check(
            "no disruptive step anywhere",
            d.runtime_restarts + d.cordons + d.drains + d.reboots == 0,
            format!("{d:?}"),
        );
        r.check(
            "every failing agent reports the storm gate",
            held == failing.len(),
            format!("{held}/{}", failing.len()),
        );
        let ok = self.settle(sc.settle_limit).await;
        r.check(
            "all recover after the fault is reverted",
            ok,
            "episodes closed",
        );
        r
    }

    /// 5 % of the nodes fail one after another.
    pub async fn spread(&self, sc: &Scale) -> Report {
        let mut r = Report::new("spread: 5% fail one by one");
        let n = self.nodes.len();
        let k = (n / 20).max(1);
        let failing: Vec<usize> = (0..k).map(|j| (j * 20 + 3) % n).collect();
        let before = self.counters();
        self.peak_slots.store(0, Ordering::SeqCst);
        let t0 = Instant::now();
        for (j, &i) in failing.iter().enumerate() {
            self.fail(i, fix_for(j));
            tokio::time::sleep(sc.spread_every).await;
        }
        let done = self
            .until(sc.settle_limit, |f| {
                failing
                    .iter()
                    .all(|&i| !f.nodes[i].failing() && f.settled(i))
            })
            .await;
        let took = t0.elapsed();
        let d = self.counters().since(&before);
        let peak = self.peak_slots.load(Ordering::SeqCst);
        r.fig(
            "failing nodes (fixed by kubelet / runtime / reboot, in turn)",
            k,
        );
        r.fig(
            "failures spread over",
            format!("{:?}", sc.spread_every * k as u32),
        );
        r.fig(
            "time until every failed node is handled",
            format!("{:.1} s", took.as_secs_f64()),
        );
        r.fig(
            "kubelet / runtime restarts",
            format!("{} / {}", d.kubelet_restarts, d.runtime_restarts),
        );
        r.fig(
            "cordoned / drained / rebooted nodes",
            format!("{} / {} / {}", d.cordons, d.drains, d.reboots),
        );
        r.fig(
            "peak concurrent disruption slots held",
            format!("{peak} (max {MAX_DISRUPTIONS})"),
        );
        r.check("every failed node handled", done, format!("{took:?}"));
        r.check(
            "peak slots <= maxConcurrentDisruptions",
            peak as usize <= MAX_DISRUPTIONS,
            peak,
        );
        r.check(
            "every disruptive action under a live slot",
            d.unslotted == 0,
            d.unslotted,
        );
        r
    }

    /// The API server is down for a while, with 5 % of the nodes failing.
    pub async fn api_outage(&self, sc: &Scale) -> Report {
        let mut r = Report::new("API server unavailable, then back");
        let n = self.nodes.len();
        let k = (n / 20).max(1);
        let failing: Vec<usize> = (0..k).map(|j| (j * 20 + 11) % n).collect();
        let before = self.counters();
        self.set_api(Mode::Down).await;
        for &i in &failing {
            // The fake is down: Ready can only be set from inside.
            self.fail(i, Fix::Runtime);
        }
        tokio::time::sleep(sc.outage).await;
        let during = self.counters().since(&before);
        self.peak_slots.store(0, Ordering::SeqCst);
        self.api.clear_log();
        self.set_api(Mode::Up).await;
        tokio::time::sleep(sc.after_outage).await;
        let log = self.api.requests();
        let t0 = log.first().map(|q| q.at);
        let mut buckets: BTreeMap<i64, usize> = BTreeMap::new();
        if let Some(t0) = t0 {
            for q in &log {
                *buckets
                    .entry(q.at.duration_since(t0).as_secs())
                    .or_default() += 1;
            }
        }
        let total = log.len();
        let peak_s = buckets.values().copied().max().unwrap_or(0);
        let peak = self.peak_slots.load(Ordering::SeqCst);
        r.fig("outage", format!("{:?}", sc.outage));
        r.fig("failing nodes during the outage", k);
        r.fig(
            "disruptive actions during the outage",
            during.runtime_restarts + during.reboots,
        );
        r.fig(
            &format!("requests in the {:?} after return", sc.after_outage),
            total,
        );
        r.fig("busiest second after return (requests)", peak_s);
        r.fig(
            "busiest second, share of the period",
            format!("{:.1}%", 100.0 * peak_s as f64 / total.max(1) as f64),
        );
        r.fig(
            "peak slots held after return",
            format!("{peak} (max {MAX_DISRUPTIONS})"),
        );
        r.check(
            "no disruptive step while the API is down",
            during.runtime_restarts + during.reboots + during.cordons == 0,
            format!("{during:?}"),
        );
        r.check(
            "no thundering herd (busiest second < 25% of the period)",
            (peak_s as f64) < 0.25 * total.max(1) as f64,
            format!("{peak_s}/{total}"),
        );
        r.check(
            "peak slots <= maxConcurrentDisruptions",
            peak as usize <= MAX_DISRUPTIONS,
            peak,
        );
        let ok = self.settle(sc.settle_limit).await;
        r.check("all handled after return", ok, "episodes closed");
        r
    }

    /// 30 % of the nodes run a systemd below the minimum (report-only
    /// SystemdOutdated) while a few nodes fail: their remediation still
    /// proceeds, because report-only nodes never count as remediating.
    pub async fn outdated(&self, sc: &Scale) -> Report {
        let mut r = Report::new("outdated systemd on 30% of the nodes");
        let n = self.nodes.len();
        let outdated: Vec<usize> = (0..n).filter(|i| i % 10 < 3).collect();
        // Two nodes with a current systemd and one outdated node fail; a
        // runtime restart (disruptive: storm gate, slot, cordon) cures them.
        // They are nodes the storm scenario left alone (i % 5 >= 2): an agent
        // held by a storm keeps trusting that count for minutes (it can only
        // hold), which is not what this scenario is about.
        let mut failing: Vec<usize> = (0..n).filter(|i| i % 10 == 7).take(2).collect();
        failing.extend(outdated.iter().copied().find(|i| i % 10 == 2));
        let before = self.counters();
        for &i in &outdated {
            self.nodes[i].outdated.store(true, Ordering::SeqCst);
        }
        let shown = self
            .until(sc.settle_limit, |f| {
                outdated
                    .iter()
                    .all(|&i| f.condition(i, "SystemdOutdated").as_deref() == Some("True"))
            })
            .await;
        let remediating_before = (0..n)
            .filter(|&i| f_true(self.condition(i, "NodewardenRemediating")))
            .count();
        for &i in &failing {
            self.fail(i, Fix::Runtime);
        }
        // Sample while the failing nodes are handled: an outdated node that
        // does not fail must never show as remediating, nor hold an episode.
        let mut wrongly_remediating = BTreeSet::new();
        let mut storm_held = BTreeSet::new();
        let t0 = Instant::now();
        let done = loop {
            for &i in outdated.iter().filter(|i| !failing.contains(i)) {
                if f_true(self.condition(i, "NodewardenRemediating")) || !self.settled(i) {
                    wrongly_remediating.insert(i);
                }
            }
            // A first hold while the fleet count is being read ("not known
            // yet") is by design; a count over the limit is what must not happen.
            for &i in &failing {
                if let Some(reason) = self.ledger(i).and_then(|l| {
                    (l.pointer("/episode/hold/gate")? == "StormGate")
                        .then(|| {
                            l.pointer("/episode/hold/reason")?
                                .as_str()
                                .map(str::to_string)
                        })
                        .flatten()
                }) && reason.contains("NotReady or remediating")
                {
                    storm_held.insert((i, reason));
                }
            }
            if failing
                .iter()
                .all(|&i| !self.nodes[i].failing() && self.settled(i))
            {
                break true;
            }
            if t0.elapsed() >= sc.settle_limit {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let took = t0.elapsed();
        let d = self.counters().since(&before);
        r.fig(
            "nodes with SystemdOutdated",
            format!("{}/{n}", outdated.len()),
        );
        r.fig(
            "failing nodes (one of them outdated), cured by a runtime restart",
            failing.len(),
        );
        r.fig(
            "time until every failed node is handled",
            format!("{:.1} s", took.as_secs_f64()),
        );
        r.fig(
            "runtime restarts / cordons",
            format!("{} / {}", d.runtime_restarts, d.cordons),
        );
        r.check(
            "every outdated node shows its own SystemdOutdated condition",
            shown,
            format!("{} nodes", outdated.len()),
        );
        r.check(
            "no node remediating before any fault (NodewardenRemediating=True)",
            remediating_before == 0,
            remediating_before,
        );
        r.check(
            "no healthy outdated node ever remediating or holding an episode",
            wrongly_remediating.is_empty(),
            format!("{wrongly_remediating:?}"),
        );
        r.check(
            "no failing node held by the storm gate's count",
            storm_held.is_empty(),
            format!("{storm_held:?}"),
        );
        r.check(
            "every failing node repaired by its runtime restart",
            done && d.runtime_restarts >= failing.len() as u64,
            format!("{took:?}, {} runtime restarts", d.runtime_restarts),
        );
        r.check(
            "every disruptive action under a live slot",
            d.unslotted == 0,
            d.unslotted,
        );
        for &i in &outdated {
            self.nodes[i].outdated.store(false, Ordering::SeqCst);
        }
        let cleared = self
            .until(sc.settle_limit, |f| {
                outdated
                    .iter()
                    .all(|&i| f.condition(i, "SystemdOutdated").as_deref() == Some("False"))
            })
            .await;
        r.check("the conditions clear after the upgrade", cleared, "");
        let ok = self.settle(sc.settle_limit).await;
        r.check("all settled", ok, "episodes closed");
        r
    }

    /// Half the agents cannot reach the API; 5 % of all nodes fail.
    pub async fn partition(&self, sc: &Scale, partitioned: usize) -> Report {
        let mut r = Report::new("partition: half the agents cut off");
        let n = self.nodes.len();
        let k = (n / 20).max(2);
        let failing: Vec<usize> = (0..k).map(|j| (j * n / k + 1) % n).collect();
        let before = self.counters();
        let refused0 = self.proxy_refused();
        self.cut_partition(true, partitioned);
        tokio::time::sleep(Duration::from_secs(2)).await;
        for (j, &i) in failing.iter().enumerate() {
            self.fail(
                i,
                if j % 2 == 0 {
                    Fix::Runtime
                } else {
                    Fix::Reboot
                },
            );
        }
        tokio::time::sleep(sc.partition).await;
        let d = self.counters().since(&before);
        let cut: Vec<usize> = failing
            .iter()
            .copied()
            .filter(|&i| i < partitioned)
            .collect();
        let held_api = cut
            .iter()
            .filter(|&&i| {
                matches!(
                    self.hold_gate(i).as_deref(),
                    Some("ApiUnreachable" | "NodeUnknown")
                )
            })
            .count();
        let refused = self.proxy_refused() - refused0;
        r.fig("cut-off agents", partitioned);
        r.fig(
            "failing nodes: cut off / reachable",
            format!("{} / {}", cut.len(), failing.len() - cut.len()),
        );
        r.fig("disruptive actions by cut-off agents", d.while_cut);
        r.fig(
            "cut-off failing agents holding on ApiUnreachable/NodeUnknown",
            format!("{held_api}/{}", cut.len()),
        );
        r.fig(
            "reachable side: runtime restarts / reboots",
            format!("{} / {}", d.runtime_restarts, d.reboots),
        );
        r.fig(
            "connection attempts per cut-off agent per minute",
            format!(
                "{:.1}",
                per_agent_min(
                    refused as usize,
                    partitioned.max(1),
                    sc.partition + Duration::from_secs(2)
                )
            ),
        );
        r.check(
            "cut-off agents take no disruptive step",
            d.while_cut == 0,
            d.while_cut,
        );
        r.check(
            "cut-off failing agents hold on the API gate",
            held_api == cut.len(),
            format!("{held_api}/{}", cut.len()),
        );
        r.check(
            "every disruptive action under a live slot",
            d.unslotted == 0,
            d.unslotted,
        );
        self.cut_partition(false, partitioned);
        let ok = self.settle(sc.settle_limit).await;
        r.check(
            "all handled after the partition heals",
            ok,
            "episodes closed",
        );
        r
    }
}

fn f_true(status: Option<String>) -> bool {
    status.as_deref() == Some("True")
}
