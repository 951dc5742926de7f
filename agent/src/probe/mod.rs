//! Probes: each problem family in its own file, each call under a hard deadline.
//!
//! A [`Probe`] looks at one problem and returns one [`Observation`] with evidence. The
//! [`ProbeSet`] built from the runbook's `probes` runs each probe under its `timeout` (a
//! `tokio::time::timeout` around the whole probe, on top of the per-call deadlines inside):
//! once for `check` and `dry-run` ([`ProbeSet::run_once`], all probes concurrently), or
//! continuously for the daemon ([`ProbeSet::spawn`]: one task per probe on its own interval,
//! observations into an mpsc channel). A probe that overruns becomes an observation with
//! evidence `probe = timeout after Xs` (Failing or Unknown, per probe) and never delays the
//! others.
//!
//! Cluster-side facts come through small traits the daemon implements with kube:
//! [`LeaseSource`], [`ReadyConditionSource`], [`ServerClock`]. Outside a cluster,
//! [`NotConfigured`] answers every one of them with a clear reason (the probe part is then
//! Unknown, never a failure).
//!
//! Trait methods return boxed futures (like [`crate::host::systemd::Systemd`]) so probes and
//! sources are dyn-compatible: the set holds `Arc<dyn Probe>` and tests swap in fakes.

pub mod apireach;
pub mod certs;
pub mod cgroup_driver;
pub mod clock;
pub mod cri_cgroup;
pub mod disk;
pub mod hostfs;
pub mod io;
pub mod kubecert;
pub mod kubelet;
pub mod kubelet_invocation;
pub mod layout;
pub mod pleg;
pub mod pleg_journal;
pub mod runtime;
pub mod runtime_procs;
pub mod swap;
pub mod sysctl;
pub mod systemd;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod version;
pub mod watched;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::domain::{Dur, Problem, Timestamp};
use crate::health::{Observation, Verdict};
use crate::host::systemd::Systemd;
use crate::runbook::{Action, Probes, Runbook, Timing};
use crate::view::NodeFacts;

pub use apireach::ReachSource;
pub use certs::CsrSource;
pub use clock::{KernelClock, KernelClockSource, ServerClock};
pub use kubelet::LeaseSource;
pub use pleg::ReadyConditionSource;

/// The future a probe returns.
pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = Observation> + Send + 'a>>;
/// The future an API-backed source returns; the error is a reason for a person.
pub type ApiFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// One probe.
pub trait Probe: Send + Sync {
    fn problem(&self) -> Problem;
    /// Look once. `now` is the observation's time (and the reference for ages).
    fn run(&self, now: Timestamp) -> ProbeFuture<'_>;
    /// The verdict when the whole probe overran its timeout: `Failing` where a hang is the
    /// symptom (kubelet, runtime), `Unknown` where it only means we could not look.
    fn timeout_verdict(&self) -> Verdict {
        Verdict::Failing
    }
}

/// The time left for calls inside a probe: 90% of its timeout, so a probe reports which call
/// hung (with its own evidence) before the outer deadline cuts it off.
pub(crate) fn budget(timeout: Dur) -> Duration {
    timeout.std().mul_f64(0.9)
}

pub(crate) fn elapsed_since(t: tokio::time::Instant) -> Dur {
    Dur::from_std(t.elapsed())
}

/// Run `probe` once under `timeout`.
pub async fn run_probe(probe: &dyn Probe, timeout: Dur, now: Timestamp) -> Observation {
    let started = tokio::time::Instant::now();
    match tokio::time::timeout(timeout.std(), probe.run(now)).await {
        Ok(mut o) => {
            if o.took.is_zero() {
                o.took = elapsed_since(started);
            }
            o
        }
        Err(_) => {
            let after = io::fmt_secs(timeout.std());
            Observation::new(
                probe.problem(),
                now,
                probe.timeout_verdict(),
                format!("the probe timed out after {after}"),
            )
            .with("probe", format!("timeout after {after}"))
            .took(timeout)
        }
    }
}

/// Errors building the probes.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("invalid probe setting: {0}")]
    Setting(String),
}

/// A source that is not configured (no cluster access): every call says why.
#[derive(Debug, Clone)]
pub struct NotConfigured(pub String);

impl LeaseSource for NotConfigured {
    fn lease_renew_time(&self) -> ApiFuture<'_, Option<Timestamp>> {
        let r = self.0.clone();
        Box::pin(async move { Err(r) })
    }
}
impl ReadyConditionSource for NotConfigured {
    fn ready_message(&self) -> ApiFuture<'_, Option<String>> {
        let r = self.0.clone();
        Box::pin(async move { Err(r) })
    }
}
impl ServerClock for NotConfigured {
    fn date(&self) -> ApiFuture<'_, (Timestamp, Dur)> {
        let r = self.0.clone();
        Box::pin(async move { Err(r) })
    }
}

/// The cluster-side sources the probes read.
#[derive(Clone)]
pub struct ApiSources {
    pub lease: Arc<dyn LeaseSource>,
    pub ready: Arc<dyn ReadyConditionSource>,
    pub clock: Arc<dyn ServerClock>,
    /// This node's CSRs (KubeletCertificateInvalid; asked rarely).
    pub csrs: Arc<dyn CsrSource>,
    /// The agent's standing watches on the API server (ApiServerUnreachable).
    pub reach: Arc<dyn ReachSource>,
}

impl ApiSources {
    /// No cluster access: every API-backed part of a probe is Unknown with `reason`.
    pub fn not_configured(reason: impl Into<String>) -> Self {
        let n = Arc::new(NotConfigured(reason.into()));
        ApiSources {
            lease: n.clone(),
            ready: n.clone(),
            clock: n.clone(),
            csrs: n.clone(),
            reach: n,
        }
    }
}

/// Where the probes look on the node. Everything is a path so tests use fixture trees.
#[derive(Clone)]
pub struct ProbeEnv {
    /// procfs (`/proc`).
    pub proc_root: PathBuf,
    /// The kernel log device (`/dev/kmsg`), read non-blocking.
    pub kmsg: PathBuf,
    /// `/etc/os-release` (falls back to `/usr/lib/os-release` when this is the default and missing).
    pub os_release: PathBuf,
    /// dpkg's database (`/var/lib/dpkg/status`).
    pub dpkg_status: PathBuf,
    /// The `rpm` program.
    pub rpm: PathBuf,
    /// The `journalctl` program.
    pub journalctl: PathBuf,
    /// Read this journal directory (`journalctl -D`) instead of the system journal.
    pub journal_dir: Option<PathBuf>,
    /// The kubelet's client certificate.
    pub kubelet_client_cert: PathBuf,
    /// kubeadm's kubelet flags (`--container-runtime-endpoint`).
    pub kubeadm_flags: PathBuf,
    /// The kubelet's config file (`containerRuntimeEndpoint`).
    pub kubelet_config: PathBuf,
    /// System bus address for timedated; `None`: `DBUS_SYSTEM_BUS_ADDRESS` or the standard socket.
    pub dbus_address: Option<String>,
    /// Kernel clock state (adjtimex).
    pub kernel_clock: Arc<dyn KernelClockSource>,
    /// Other EnvironmentFiles of the kubelet unit (`/etc/sysconfig/kubelet`, `/etc/default/kubelet`).
    pub kubelet_env_files: Vec<PathBuf>,
    /// CRI-O's socket.
    pub crio_socket: PathBuf,
    /// cri-dockerd's CRI socket.
    pub cri_dockerd_socket: PathBuf,
    /// The Node's nodeInfo (the daemon's node watch); `None` in `check` and `dry-run`.
    pub node_info: Option<Arc<dyn ReadyConditionSource>>,
    /// The host's root directory when the agent does not run in it (a DaemonSet pod with
    /// the host's `/` mounted read-only at `/host`): the host's tools (`journalctl`,
    /// `rpm`) run chrooted there, and the files and sockets above are looked up under it.
    /// `None`: the agent runs on the host (the systemd unit).
    pub host_root: Option<PathBuf>,
}

impl ProbeEnv {
    /// The default places, under `root` when it is given and not `/` (`--host-root`).
    /// `/proc` stays the pod's own: with `hostPID` it shows the host's processes, and
    /// `/dev/kmsg` is a device the pod gets or does not.
    pub fn on_host(root: Option<&Path>) -> ProbeEnv {
        let d = ProbeEnv::default();
        let Some(r) = root.filter(|r| *r != Path::new("/")) else {
            return d;
        };
        let host_root = Some(r.to_path_buf());
        let env = ProbeEnv { host_root, ..d };
        ProbeEnv {
            os_release: env.host_path(&env.os_release),
            dpkg_status: env.host_path(&env.dpkg_status),
            kubelet_client_cert: env.host_path(&env.kubelet_client_cert),
            kubeadm_flags: env.host_path(&env.kubeadm_flags),
            kubelet_config: env.host_path(&env.kubelet_config),
            kubelet_env_files: env
                .kubelet_env_files
                .iter()
                .map(|f| env.host_path(f))
                .collect(),
            crio_socket: env.host_path(&env.crio_socket),
            cri_dockerd_socket: env.host_path(&env.cri_dockerd_socket),
            ..env
        }
    }

    /// The runtime layout detector for `settings` (the kubelet's unit, the runtime
    /// sockets) on this node: one construction for the probes and for the node facts.
    pub fn runtime_detector(
        &self,
        settings: &Probes,
        systemd: &Arc<dyn Systemd>,
    ) -> runtime::Detector {
        runtime::Detector {
            setting: settings.runtime.runtime,
            docker_socket: self.host_path(&settings.runtime.docker_socket),
            containerd_socket: self.host_path(&settings.runtime.containerd_socket),
            kubelet_unit: settings.kubelet.unit.clone(),
            proc_root: self.proc_root.clone(),
            kubeadm_flags: self.kubeadm_flags.clone(),
            kubelet_config: self.kubelet_config.clone(),
            systemd: systemd.clone(),
            kubelet_env_files: self.kubelet_env_files.clone(),
            crio_socket: self.crio_socket.clone(),
            cri_dockerd_socket: self.cri_dockerd_socket.clone(),
            node: self.node_info.clone(),
            host_root: self.host_root.clone(),
            invocation_cache: Default::default(),
        }
    }

    /// `p` as the probes must open it: under the host root when there is one, with the
    /// symlinks of its directories resolved inside that root as a chroot would (Debian's
    /// `/var/run` → `/run` is absolute and would otherwise lead into the pod's own tree).
    /// The last component is left alone: a socket may appear later, a link may change.
    pub fn host_path(&self, p: impl AsRef<Path>) -> PathBuf {
        let p = p.as_ref();
        match &self.host_root {
            Some(r) if p.is_absolute() => hostfs::under_root(r, p),
            _ => p.to_path_buf(),
        }
    }
}

impl Default for ProbeEnv {
    fn default() -> Self {
        ProbeEnv {
            proc_root: "/proc".into(),
            kmsg: "/dev/kmsg".into(),
            os_release: "/etc/os-release".into(),
            dpkg_status: "/var/lib/dpkg/status".into(),
            rpm: "rpm".into(),
            journalctl: "journalctl".into(),
            journal_dir: None,
            kubelet_client_cert: "/var/lib/kubelet/pki/kubelet-client-current.pem".into(),
            kubeadm_flags: "/var/lib/kubelet/kubeadm-flags.env".into(),
            kubelet_config: "/var/lib/kubelet/config.yaml".into(),
            dbus_address: None,
            kernel_clock: Arc::new(clock::Adjtimex),
            host_root: None,
            kubelet_env_files: vec![
                "/etc/sysconfig/kubelet".into(),
                "/etc/default/kubelet".into(),
            ],
            crio_socket: "/var/run/crio/crio.sock".into(),
            cri_dockerd_socket: "/var/run/cri-dockerd.sock".into(),
            node_info: None,
        }
    }
}

/// The probes of a runbook, each with its timing.
#[derive(Clone)]
pub struct ProbeSet {
    probes: Vec<(Arc<dyn Probe>, Timing)>,
}

impl ProbeSet {
    /// The enabled probes of `settings`, looking at the node through `env`, systemd and `api`.
    pub fn new(
        settings: &Probes,
        env: &ProbeEnv,
        systemd: Arc<dyn Systemd>,
        api: ApiSources,
    ) -> ProbeSet {
        let kubelet_unit = settings.kubelet.unit.clone();
        let detector = Arc::new(env.runtime_detector(settings, &systemd));
        let all: Vec<(Arc<dyn Probe>, Timing)> = vec![
            (
                Arc::new(kubelet::KubeletCheck {
                    settings: settings.kubelet.clone(),
                    systemd: systemd.clone(),
                    lease: api.lease.clone(),
                }),
                settings.kubelet.timing,
            ),
            (
                Arc::new(pleg::PlegCheck {
                    settings: settings.pleg.clone(),
                    unit: kubelet_unit,
                    systemd: systemd.clone(),
                    ready: api.ready.clone(),
                    journalctl: env.journalctl.clone(),
                    journal_dir: env.journal_dir.clone(),
                    host_root: env.host_root.clone(),
                    journal: Default::default(),
                }),
                settings.pleg.timing,
            ),
            (
                Arc::new(runtime::RuntimeCheck::new(
                    settings.runtime.clone(),
                    detector.clone(),
                    env.proc_root.clone(),
                    env.kmsg.clone(),
                )),
                settings.runtime.timing,
            ),
            (
                Arc::new(
                    clock::ClockCheck::new(
                        settings.clock.clone(),
                        api.clock.clone(),
                        env.kernel_clock.clone(),
                        env.kubelet_client_cert.clone(),
                        env.dbus_address.clone(),
                    )
                    .in_host_root(env.host_root.clone()),
                ),
                settings.clock.timing,
            ),
            (
                Arc::new(systemd::SystemdCheck {
                    settings: settings.systemd.clone(),
                    systemd,
                    os_release: env.os_release.clone(),
                    dpkg_status: env.dpkg_status.clone(),
                    rpm: env.rpm.clone(),
                    host_root: env.host_root.clone(),
                }),
                settings.systemd.timing,
            ),
            // #16's host side, in Problem::ALL's order; the kubelet's invocation through
            // the same detector.
            (
                Arc::new(swap::SwapCheck {
                    swaps: env.proc_root.join("swaps"),
                    kubelet: detector.clone(),
                }),
                settings.swap.timing,
            ),
            (
                Arc::new(sysctl::SysctlCheck {
                    sysctls: settings.kernel.sysctls.clone(),
                    proc_root: env.proc_root.clone(),
                }),
                settings.kernel.timing,
            ),
            (
                Arc::new(cgroup_driver::CgroupCheck {
                    kubelet: detector.clone(),
                    docker_socket: env.host_path(&settings.runtime.docker_socket),
                    containerd_config: env.host_path(&settings.cgroup.containerd_config),
                    crio_config: env.host_path(&settings.cgroup.crio_config),
                    timeout: settings.cgroup.timing.timeout,
                }),
                settings.cgroup.timing,
            ),
            (
                Arc::new(disk::DiskCheck {
                    settings: settings.disk.clone(),
                    host_path: {
                        let e = env.clone();
                        Arc::new(move |p: &str| e.host_path(p))
                    },
                    kubelet: detector.clone(),
                }),
                settings.disk.timing,
            ),
            (
                Arc::new(kubecert::KubeletCertCheck::new(
                    kubecert::CertSettings::of(&settings.certificate, &settings.kubelet),
                    kubecert::Locate::Kubelet {
                        detector: detector.clone(),
                        client: settings.certificate.client_cert.clone(),
                        serving: settings.certificate.serving_cert.clone(),
                    },
                    env.host_root.clone(),
                    api.clock.clone(),
                    api.lease.clone(),
                    api.csrs.clone(),
                )),
                settings.certificate.timing,
            ),
            (
                Arc::new(apireach::ApiReachCheck {
                    reach: api.reach.clone(),
                }),
                settings.api_server.timing,
            ),
        ];
        ProbeSet {
            probes: all.into_iter().filter(|(_, t)| t.enabled).collect(),
        }
    }

    /// A set of arbitrary probes (tests, benchmarks).
    pub fn from_probes(probes: Vec<(Arc<dyn Probe>, Timing)>) -> ProbeSet {
        ProbeSet { probes }
    }

    pub fn problems(&self) -> Vec<Problem> {
        self.probes.iter().map(|(p, _)| p.problem()).collect()
    }

    /// Run every probe once, concurrently, each under its own timeout; results in the
    /// set's order.
    pub async fn run_once(&self, now: Timestamp) -> Vec<Observation> {
        futures::future::join_all(
            self.probes
                .iter()
                .map(|(p, t)| run_probe(p.as_ref(), t.timeout, now)),
        )
        .await
    }

    /// Run each probe as its own task on its own interval (the first run at once), sending
    /// each observation to `tx`. Tasks end when `tx`'s receiver is dropped, or when the
    /// returned [`ProbeTasks`] is dropped.
    pub fn spawn(&self, tx: mpsc::Sender<Observation>) -> ProbeTasks {
        let mut set = JoinSet::new();
        for (probe, timing) in &self.probes {
            let probe = probe.clone();
            let timing = *timing;
            let tx = tx.clone();
            set.spawn(async move {
                let mut tick =
                    tokio::time::interval(timing.interval.std().max(Duration::from_millis(10)));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let obs = run_probe(probe.as_ref(), timing.timeout, Timestamp::now()).await;
                    if tx.send(obs).await.is_err() {
                        break;
                    }
                }
            });
        }
        ProbeTasks { _set: set }
    }
}

/// The running probe tasks; dropping this stops them.
pub struct ProbeTasks {
    _set: JoinSet<()>,
}

/// The units the runbook's steps name, in order, without duplicates.
pub fn step_units(runbook: &Runbook) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in &runbook.spec.steps {
        let names: &[String] = match &s.action {
            Action::RestartUnit(r) => std::slice::from_ref(&r.unit),
            Action::RestartContainerRuntime(r) => &r.units,
            Action::RestartTimeSync(r) => &r.units,
            _ => &[],
        };
        for n in names {
            if !out.contains(n) {
                out.push(n.clone());
            }
        }
    }
    out
}

/// Facts about the node for the planner: which of the units the runbook's steps name exist
/// (and since when each has been up: `InactiveExitTimestamp`, when it is up now), the
/// detected runtime's unit, and the boot ID. Everything within `deadline`; what cannot be
/// learnt in time is left `None`.
pub async fn node_facts(
    runbook: &Runbook,
    env: &ProbeEnv,
    systemd: Arc<dyn Systemd>,
    deadline: Duration,
) -> NodeFacts {
    let names = step_units(runbook);
    let inactive = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let units = async {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let present = systemd.units_present(&refs).await.ok()?;
        let mut map = BTreeMap::new();
        for u in present.iter().filter(|u| u.exists()) {
            let since = match systemd.unit_status(&u.name).await {
                Ok(st)
                    if matches!(
                        st.active_state.as_str(),
                        "active" | "reloading" | "activating" | "deactivating"
                    ) =>
                {
                    st.inactive_exit
                }
                Ok(_) => {
                    inactive
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(u.name.clone());
                    None
                }
                Err(_) => None,
            };
            map.insert(u.name.clone(), since);
        }
        Some(map)
    };
    let detector = env.runtime_detector(&runbook.spec.probes, &systemd);
    let runtime_units = async {
        detector
            .detect()
            .await
            .kind
            .map(|k| k.layout().units().iter().map(|u| u.to_string()).collect())
            .unwrap_or_default()
    };
    let boot_id = async {
        tokio::fs::read_to_string(env.proc_root.join("sys/kernel/random/boot_id"))
            .await
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let (units, runtime_units, boot_id) = tokio::join!(
        async { tokio::time::timeout(deadline, units).await.ok().flatten() },
        async {
            tokio::time::timeout(deadline, runtime_units)
                .await
                .unwrap_or_default()
        },
        async { tokio::time::timeout(deadline, boot_id).await.ok().flatten() },
    );
    let inactive = inactive.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut runtime_units: Vec<String> = runtime_units;
    let runtime_unit = (!runtime_units.is_empty()).then(|| runtime_units.remove(0));
    NodeFacts {
        units,
        runtime_unit,
        runtime_then: runtime_units,
        boot_id,
        inactive,
    }
}

/// Why the API-backed parts of a probe are Unknown in `check` and `dry-run`.
pub const NO_CLUSTER: &str =
    "not configured: check and dry-run run without cluster access (the daemon reads the API)";

/// One live look at this node from the shell (`check`, `dry-run`): every enabled probe once
/// (systemd over the system bus, no cluster access), and the node facts.
pub async fn look_once(runbook: &Runbook, env: &ProbeEnv) -> (Vec<Observation>, NodeFacts) {
    let opts = crate::host::systemd::DbusOptions {
        address: env.dbus_address.clone(),
        connect_timeout: Duration::from_secs(2),
        call_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let systemd: Arc<dyn Systemd> = Arc::new(crate::host::systemd::DbusSystemd::new(opts));
    let set = ProbeSet::new(
        &runbook.spec.probes,
        env,
        systemd.clone(),
        ApiSources::not_configured(NO_CLUSTER),
    );
    let now = Timestamp::now();
    tokio::join!(
        set.run_once(now),
        node_facts(runbook, env, systemd, Duration::from_secs(10))
    )
}

#[cfg(test)]
mod tests;
