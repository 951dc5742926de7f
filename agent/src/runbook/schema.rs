//! The runbook as written: serde types that mirror the YAML, with source
//! positions on every value a semantic check may need to point at.
//!
//! These types are only an input format. `validate` turns them into the
//! model in `runbook::model`, which is what the rest of the agent uses.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::model::{Dur, Problem};

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RunbookDoc {
    pub api_version: S<String>,
    pub kind: S<String>,
    #[serde(default)]
    pub metadata: Option<MetadataDoc>,
    pub spec: SpecDoc,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetadataDoc {
    pub name: Option<S<String>>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpecDoc {
    #[serde(default)]
    pub probes: BTreeMap<Problem, S<ProbeDoc>>,
    pub steps: S<Vec<StepDoc>>,
    #[serde(default)]
    pub safety: Option<SafetyDoc>,
}

/// Settings of one probe. Fields after `okFor` belong to one problem only;
/// validation rejects them under any other problem.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProbeDoc {
    pub enabled: Option<bool>,
    pub interval: Option<S<Dur>>,
    pub timeout: Option<S<Dur>>,
    pub fail_for: Option<S<Dur>>,
    pub ok_for: Option<S<Dur>>,
    // KubeletUnhealthy
    pub healthz_url: Option<S<String>>,
    pub unit: Option<S<String>>,
    pub lease_stale_after: Option<S<Dur>>,
    // PLEGUnhealthy
    pub threshold: Option<S<Dur>>,
    pub window: Option<S<Dur>>,
    // ContainerRuntimeUnresponsive
    pub runtime: Option<S<RuntimeKindDoc>>,
    pub docker_socket: Option<S<String>>,
    pub containerd_socket: Option<S<String>>,
    pub stuck_for: Option<S<Dur>>,
    // ClockSkewed
    pub max_skew: Option<S<Dur>>,
    // SystemdOutdated
    pub minimums: Option<S<Vec<SystemdMinimumDoc>>>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum RuntimeKindDoc {
    Auto,
    Docker,
    Containerd,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SystemdMinimumDoc {
    pub distro: S<String>,
    pub version: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StepDoc {
    pub name: S<String>,
    pub when: S<Vec<Problem>>,
    #[serde(default)]
    pub skip_when: Vec<Problem>,
    pub action: S<ActionDoc>,
    pub disruptive: Option<S<bool>>,
    pub cordon: Option<S<bool>>,
    pub verify: Option<S<Dur>>,
    pub cooldown: Option<S<Dur>>,
    pub max_per: Option<S<RateDoc>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateDoc {
    pub count: u32,
    pub window: Dur,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum ActionDoc {
    RestartUnit(RestartUnitDoc),
    RestartContainerRuntime(#[serde(default)] RestartRuntimeDoc),
    RestartTimeSync(#[serde(default)] RestartTimeSyncDoc),
    Drain(#[serde(default)] DrainDoc),
    Reboot(#[serde(default)] RebootDoc),
    Exec(ExecDoc),
    Report(#[serde(default)] ReportDoc),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RestartUnitDoc {
    pub unit: S<String>,
    pub timeout: Option<S<Dur>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RestartRuntimeDoc {
    pub units: Option<S<Vec<String>>>,
    pub diagnostics: Option<bool>,
    pub timeout: Option<S<Dur>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RestartTimeSyncDoc {
    pub units: Option<S<Vec<String>>>,
    pub timeout: Option<S<Dur>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DrainDoc {
    pub timeout: Option<S<Dur>>,
    pub delete_empty_dir_data: Option<bool>,
    pub force: Option<bool>,
    pub ignore_daemon_sets: Option<bool>,
    pub grace_period: Option<S<Dur>>,
    pub delete_after_deadline: Option<bool>,
    pub skip_wait_for_delete_timeout: Option<S<Dur>>,
    pub concurrency: Option<S<u32>>,
    pub mode: Option<DrainModeDoc>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub enum DrainModeDoc {
    Evict,
    Request,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RebootDoc {
    /// How long after the reboot request the node must be back before the
    /// attempt counts as failed.
    pub timeout: Option<S<Dur>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecDoc {
    pub argv: S<Vec<String>>,
    pub timeout: Option<S<Dur>>,
    /// Why the command is harmless enough to run with `disruptive: false`.
    pub non_disruptive_because: Option<S<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReportDoc {
    pub message: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SafetyDoc {
    pub max_concurrent_disruptions: Option<S<u32>>,
    pub disruption_lease_duration: Option<S<Dur>>,
    pub storm_gate: Option<StormGateDoc>,
    pub require_api_for_disruptive: Option<S<bool>>,
    #[serde(default)]
    pub blackouts: Vec<BlackoutDoc>,
    pub reboots: Option<RebootCapDoc>,
    pub on_exhausted: Option<OnExhaustedDoc>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StormGateDoc {
    pub max_unhealthy_percent: Option<S<u32>>,
    pub max_unhealthy_nodes: Option<S<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BlackoutDoc {
    pub name: Option<String>,
    pub days: S<Vec<String>>,
    pub from: S<String>,
    pub to: S<String>,
    pub time_zone: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RebootCapDoc {
    pub max: S<u32>,
    pub window: S<Dur>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OnExhaustedDoc {
    pub stay_cordoned: Option<bool>,
    pub uncordon_on_recovery: Option<bool>,
}
