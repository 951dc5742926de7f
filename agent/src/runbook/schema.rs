//! The runbook as written: serde types that mirror the YAML, with source
//! positions on every value a semantic check may need to point at.
//!
//! These types are only an input format. `validate` turns them into the
//! model in `runbook::model`, which is what the rest of the agent uses.

use std::collections::BTreeMap;

use crate::yaml::Spanned;
use serde::Deserialize;

use crate::domain::{Dur, Problem};

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
    pub probes: ProbesDoc,
    pub steps: S<Vec<StepDoc>>,
    #[serde(default)]
    pub safety: Option<SafetyDoc>,
}

/// Settings of one probe: the timing every probe shares, then its own
/// fields. One type per problem, so a field of another problem is an unknown
/// field, rejected by the parser with its position like any other.
macro_rules! probe_doc {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Deserialize, Default)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct $name {
            pub enabled: Option<bool>,
            pub interval: Option<S<Dur>>,
            pub timeout: Option<S<Dur>>,
            pub fail_for: Option<S<Dur>>,
            pub ok_for: Option<S<Dur>>,
            $($(#[$fm])* pub $f: $t,)*
        }
        impl ProbeDoc for $name {
            fn common(&self) -> CommonDoc<'_> {
                CommonDoc {
                    enabled: self.enabled,
                    interval: self.interval.as_ref(),
                    timeout: self.timeout.as_ref(),
                    fail_for: self.fail_for.as_ref(),
                    ok_for: self.ok_for.as_ref(),
                }
            }
        }
    };
}

/// The timing fields every probe's settings have.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommonDoc<'a> {
    pub enabled: Option<bool>,
    pub interval: Option<&'a S<Dur>>,
    pub timeout: Option<&'a S<Dur>>,
    pub fail_for: Option<&'a S<Dur>>,
    pub ok_for: Option<&'a S<Dur>>,
}

/// One problem's probe settings.
pub trait ProbeDoc {
    fn common(&self) -> CommonDoc<'_>;
}

/// `spec.probes`: one key per problem, each with its own settings type.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProbesDoc {
    #[serde(rename = "KubeletUnhealthy")]
    pub kubelet: Option<S<KubeletDoc>>,
    #[serde(rename = "PLEGUnhealthy")]
    pub pleg: Option<S<PlegDoc>>,
    #[serde(rename = "ContainerRuntimeUnresponsive")]
    pub runtime: Option<S<RuntimeDoc>>,
    #[serde(rename = "ClockSkewed")]
    pub clock: Option<S<ClockDoc>>,
    #[serde(rename = "SystemdOutdated")]
    pub systemd: Option<S<SystemdDoc>>,
    #[serde(rename = "SwapOn")]
    pub swap: Option<S<SwapDoc>>,
    #[serde(rename = "KernelPrerequisitesMissing")]
    pub kernel: Option<S<KernelDoc>>,
    #[serde(rename = "CgroupDriverMismatch")]
    pub cgroup: Option<S<CgroupDoc>>,
    #[serde(rename = "DiskNearlyFull")]
    pub disk: Option<S<DiskDoc>>,
    #[serde(rename = "KubeletCertificateInvalid")]
    pub certificate: Option<S<CertificateDoc>>,
    #[serde(rename = "ApiServerUnreachable")]
    pub api_server: Option<S<ApiServerDoc>>,
}

probe_doc!(KubeletDoc {
    healthz_url: Option<S<String>>,
    unit: Option<S<String>>,
    lease_stale_after: Option<S<Dur>>,
});

probe_doc!(PlegDoc {
    threshold: Option<S<Dur>>,
    window: Option<S<Dur>>,
});

probe_doc!(RuntimeDoc {
    runtime: Option<S<RuntimeKindDoc>>,
    docker_socket: Option<S<String>>,
    containerd_socket: Option<S<String>>,
    stuck_for: Option<S<Dur>>,
});

probe_doc!(ClockDoc {
    max_skew: Option<S<Dur>>,
});

probe_doc!(SystemdDoc {
    minimums: Option<S<Vec<SystemdMinimumDoc>>>,
});

probe_doc!(SwapDoc {
    /// The swap table (`/proc/swaps`, under the host root).
    swaps_file: Option<S<String>>,
});

probe_doc!(KernelDoc {
    /// The sysctls and the values they must have.
    sysctls: Option<S<Vec<SysctlDoc>>>,
});

probe_doc!(CgroupDoc {
    containerd_config: Option<S<String>>,
    crio_config: Option<S<String>>,
});

probe_doc!(DiskDoc {
    /// The kubelet's filesystem (`nodefs`) and what lives beside it.
    nodefs_paths: Option<S<Vec<String>>>,
    /// The runtimes' image filesystems (`imagefs`); those that do not exist are skipped.
    imagefs_paths: Option<S<Vec<String>>>,
    /// How many percentage points above the kubelet's eviction threshold count as nearly full.
    margin_percent: Option<S<u32>>,
});

probe_doc!(CertificateDoc {
    client_cert: Option<S<String>>,
    serving_cert: Option<S<String>>,
    warn_days: Option<S<u32>>,
    fail_days: Option<S<u32>>,
    csr_pending_for: Option<S<Dur>>,
    csr_interval: Option<S<Dur>>,
});

probe_doc!(ApiServerDoc {});

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SysctlDoc {
    pub name: S<String>,
    pub value: S<String>,
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
