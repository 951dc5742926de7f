//! The validated runbook: every default resolved, every cross-field rule
//! checked. Serialises back to the same YAML shape it was read from, so
//! `nodewarden runbook show` prints a runbook that validates again.

use std::collections::BTreeSet;

use serde::Serialize;

pub use super::drift::*;
use crate::domain::{Dur, Problem};

pub const API_VERSION: &str = "nodewarden.io/v1alpha1";
pub const KIND: &str = "Runbook";

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Runbook {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: Spec,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metadata {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spec {
    pub probes: Probes,
    pub steps: Vec<Step>,
    pub safety: Safety,
}

/// Timing shared by every probe.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    pub enabled: bool,
    pub interval: Dur,
    pub timeout: Dur,
    /// A failure must last this long before it is a finding.
    pub fail_for: Dur,
    /// Health must last this long before a finding clears.
    pub ok_for: Dur,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probes {
    #[serde(rename = "KubeletUnhealthy")]
    pub kubelet: KubeletProbe,
    #[serde(rename = "PLEGUnhealthy")]
    pub pleg: PlegProbe,
    #[serde(rename = "ContainerRuntimeUnresponsive")]
    pub runtime: RuntimeProbe,
    #[serde(rename = "ClockSkewed")]
    pub clock: ClockProbe,
    #[serde(rename = "SystemdOutdated")]
    pub systemd: SystemdProbe,
    #[serde(rename = "SwapOn")]
    pub swap: SwapProbe,
    #[serde(rename = "KernelPrerequisitesMissing")]
    pub kernel: KernelProbe,
    #[serde(rename = "CgroupDriverMismatch")]
    pub cgroup: CgroupProbe,
    #[serde(rename = "DiskNearlyFull")]
    pub disk: DiskProbe,
    #[serde(rename = "KubeletCertificateInvalid")]
    pub certificate: CertificateProbe,
    #[serde(rename = "ApiServerUnreachable")]
    pub api_server: ApiServerProbe,
}

impl Probes {
    pub fn timing(&self, p: Problem) -> &Timing {
        match p {
            Problem::KubeletUnhealthy => &self.kubelet.timing,
            Problem::PlegUnhealthy => &self.pleg.timing,
            Problem::ContainerRuntimeUnresponsive => &self.runtime.timing,
            Problem::ClockSkewed => &self.clock.timing,
            Problem::SystemdOutdated => &self.systemd.timing,
            Problem::SwapOn => &self.swap.timing,
            Problem::KernelPrerequisitesMissing => &self.kernel.timing,
            Problem::CgroupDriverMismatch => &self.cgroup.timing,
            Problem::DiskNearlyFull => &self.disk.timing,
            Problem::KubeletCertificateInvalid => &self.certificate.timing,
            Problem::ApiServerUnreachable => &self.api_server.timing,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeletProbe {
    #[serde(flatten)]
    pub timing: Timing,
    pub healthz_url: String,
    pub unit: String,
    /// The node Lease counts as not renewed when older than this while the unit is active.
    pub lease_stale_after: Dur,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlegProbe {
    #[serde(flatten)]
    pub timing: Timing,
    /// kubelet's own PLEG threshold: "last seen active" at or past this is unhealthy.
    pub threshold: Dur,
    /// How far back in the kubelet journal to look.
    pub window: Dur,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RuntimeKind {
    Auto,
    Docker,
    Containerd,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeProbe {
    #[serde(flatten)]
    pub timing: Timing,
    pub runtime: RuntimeKind,
    pub docker_socket: String,
    pub containerd_socket: String,
    /// A runtime process in uninterruptible sleep this long counts as hung.
    pub stuck_for: Dur,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockProbe {
    #[serde(flatten)]
    pub timing: Timing,
    pub max_skew: Dur,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemdProbe {
    #[serde(flatten)]
    pub timing: Timing,
    pub minimums: Vec<SystemdMinimum>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SystemdMinimum {
    /// `el7`, `el8`, `debian`, `ubuntu`, … or `default`.
    pub distro: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub name: String,
    pub when: BTreeSet<Problem>,
    /// The step is passed over while any of these is failing (confirmed or not):
    /// restarting kubelet does not help when the runtime under it is hung.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub skip_when: BTreeSet<Problem>,
    pub action: Action,
    pub disruptive: bool,
    pub cordon: bool,
    pub verify: Dur,
    /// Always printed: an explicit `0s` differs from the default of a unit restart.
    pub cooldown: Dur,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_per: Option<Rate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rate {
    pub count: u32,
    pub window: Dur,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    RestartUnit(RestartUnit),
    RestartContainerRuntime(RestartRuntime),
    RestartTimeSync(RestartTimeSync),
    Drain(Drain),
    Reboot(Reboot),
    Exec(Exec),
    Report(Report),
}

impl Action {
    /// The longest this action can take once started (its deadline). A reboot
    /// includes its final drain pass, given as `final_drain`.
    pub fn max_duration(&self, final_drain: Option<&Drain>) -> Dur {
        match self {
            Action::RestartUnit(r) => r.timeout,
            Action::RestartContainerRuntime(r) => r.timeout,
            Action::RestartTimeSync(r) => r.timeout,
            Action::Drain(d) => d.timeout,
            Action::Reboot(_) => Dur::from_std(
                final_drain.map(|d| d.timeout.std()).unwrap_or_default()
                    + std::time::Duration::from_secs(60),
            ),
            Action::Exec(e) => e.timeout,
            Action::Report(_) => Dur::ZERO,
        }
    }

    pub fn kind(&self) -> ActionKind {
        match self {
            Action::RestartUnit(_) => ActionKind::RestartUnit,
            Action::RestartContainerRuntime(_) => ActionKind::RestartContainerRuntime,
            Action::RestartTimeSync(_) => ActionKind::RestartTimeSync,
            Action::Drain(_) => ActionKind::Drain,
            Action::Reboot(_) => ActionKind::Reboot,
            Action::Exec(_) => ActionKind::Exec,
            Action::Report(_) => ActionKind::Report,
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum ActionKind {
    RestartUnit,
    RestartContainerRuntime,
    RestartTimeSync,
    Drain,
    Reboot,
    Exec,
    Report,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::RestartUnit => "restartUnit",
            ActionKind::RestartContainerRuntime => "restartContainerRuntime",
            ActionKind::RestartTimeSync => "restartTimeSync",
            ActionKind::Drain => "drain",
            ActionKind::Reboot => "reboot",
            ActionKind::Exec => "exec",
            ActionKind::Report => "report",
        }
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestartUnit {
    pub unit: String,
    pub timeout: Dur,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestartRuntime {
    /// Candidates in order; the first that exists on the node is restarted.
    pub units: Vec<String>,
    /// Capture diagnostics first (dockerd stack dump via SIGUSR1, last journal lines).
    pub diagnostics: bool,
    pub timeout: Dur,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestartTimeSync {
    pub units: Vec<String>,
    pub timeout: Dur,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DrainMode {
    /// Evict through `pods/eviction` so PodDisruptionBudgets hold.
    Evict,
    /// Taint the node for an external controller and wait for it to empty.
    Request,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drain {
    pub mode: DrainMode,
    pub timeout: Dur,
    pub delete_empty_dir_data: bool,
    pub force: bool,
    pub ignore_daemon_sets: bool,
    /// Override of the pods' termination grace period; zero keeps each pod's own.
    #[serde(skip_serializing_if = "Dur::is_zero")]
    pub grace_period: Dur,
    /// After the deadline, delete remaining pods without eviction (ignores PDBs). Opt-in only.
    pub delete_after_deadline: bool,
    /// A pod evicted (or found terminating) whose `deletionTimestamp` is older
    /// than this is no longer waited for, but only while the episode's
    /// findings say this node's kubelet or runtime cannot finish it (kubectl
    /// `--skip-wait-for-delete-timeout`). Zero: always wait (kubectl's default).
    pub skip_wait_for_delete_timeout: Dur,
    pub concurrency: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reboot {
    pub timeout: Dur,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exec {
    pub argv: Vec<String>,
    pub timeout: Dur,
    /// Why this command is safe to run without cordon, slot and storm gate;
    /// required for an exec step with `disruptive: false`.
    #[serde(
        rename = "nonDisruptiveBecause",
        skip_serializing_if = "Option::is_none"
    )]
    pub non_disruptive_because: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Safety {
    pub max_concurrent_disruptions: u32,
    pub disruption_lease_duration: Dur,
    pub storm_gate: StormGate,
    pub require_api_for_disruptive: bool,
    pub blackouts: Vec<Blackout>,
    pub reboots: RebootCap,
    pub on_exhausted: OnExhausted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StormGate {
    /// Hold when more than this percentage of the *other* nodes is NotReady or remediating.
    pub max_unhealthy_percent: u32,
    /// Hold when more than this many other nodes are; absent = no absolute limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unhealthy_nodes: Option<u32>,
}

impl StormGate {
    /// The storm gate's one rule: closed when more than `maxUnhealthyPercent`
    /// of the other nodes, or more than `maxUnhealthyNodes` of them, are
    /// NotReady or remediating.
    pub fn is_closed(&self, fleet: &crate::view::FleetView) -> bool {
        let pct_over = u64::from(fleet.other_unhealthy) * 100
            > u64::from(self.max_unhealthy_percent) * u64::from(fleet.other_nodes);
        let abs_over = self
            .max_unhealthy_nodes
            .is_some_and(|m| fleet.other_unhealthy > m);
        pct_over || abs_over
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RebootCap {
    pub max: u32,
    pub window: Dur,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OnExhausted {
    pub stay_cordoned: bool,
    pub uncordon_on_recovery: bool,
}

/// A weekly window during which no disruptive step starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blackout {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub days: Vec<Weekday>,
    /// Minutes after midnight.
    #[serde(serialize_with = "ser_hhmm")]
    pub from: u16,
    #[serde(serialize_with = "ser_hhmm")]
    pub to: u16,
    pub time_zone: String,
    #[serde(skip)]
    pub tz: jiff::tz::TimeZone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];
    pub fn parse(s: &str) -> Option<Weekday> {
        let l = s.to_ascii_lowercase();
        Weekday::ALL
            .into_iter()
            .find(|d| l.starts_with(&format!("{d:?}").to_ascii_lowercase()) && l.len() >= 3)
    }
    fn from_jiff(d: jiff::civil::Weekday) -> Weekday {
        use jiff::civil::Weekday as J;
        match d {
            J::Monday => Weekday::Mon,
            J::Tuesday => Weekday::Tue,
            J::Wednesday => Weekday::Wed,
            J::Thursday => Weekday::Thu,
            J::Friday => Weekday::Fri,
            J::Saturday => Weekday::Sat,
            J::Sunday => Weekday::Sun,
        }
    }
    fn prev(self) -> Weekday {
        let i = Weekday::ALL.iter().position(|d| *d == self).unwrap_or(0);
        Weekday::ALL[(i + 6) % 7]
    }
}

fn ser_hhmm<S: serde::Serializer>(m: &u16, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{:02}:{:02}", m / 60, m % 60))
}

impl Blackout {
    /// Whether `t` falls inside this window. A window whose `to` is not after
    /// its `from` runs past midnight into the next day.
    pub fn contains(&self, t: jiff::Timestamp) -> bool {
        let z = t.to_zoned(self.tz.clone());
        let day = Weekday::from_jiff(z.weekday());
        let minute = z.hour() as u16 * 60 + z.minute() as u16;
        if self.from < self.to {
            self.days.contains(&day) && minute >= self.from && minute < self.to
        } else {
            (self.days.contains(&day) && minute >= self.from)
                || (self.days.contains(&day.prev()) && minute < self.to)
        }
    }
}

impl Runbook {
    pub fn step(&self, name: &str) -> Option<(usize, &Step)> {
        self.spec
            .steps
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == name)
    }

    /// The blackout window in force at `t`, if any.
    pub fn blackout_at(&self, t: jiff::Timestamp) -> Option<&Blackout> {
        self.spec.safety.blackouts.iter().find(|b| b.contains(t))
    }

    /// The first blackout window in force at any time in `[from, to]`.
    /// Windows start and end on whole minutes, so checking `from` and every
    /// minute boundary up to `to` is exact.
    pub fn blackout_during(&self, from: jiff::Timestamp, to: jiff::Timestamp) -> Option<&Blackout> {
        if self.spec.safety.blackouts.is_empty() {
            return None;
        }
        if let Some(b) = self.blackout_at(from) {
            return Some(b);
        }
        let mut t = jiff::Timestamp::from_second((from.as_second() / 60 + 1) * 60).ok()?;
        // A week of minutes covers every weekly window.
        for _ in 0..(7 * 24 * 60 + 1) {
            if t > to {
                return None;
            }
            if let Some(b) = self.blackout_at(t) {
                return Some(b);
            }
            t = t.checked_add(jiff::SignedDuration::from_secs(60)).ok()?;
        }
        None
    }
}
