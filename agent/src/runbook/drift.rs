//! The validated settings of #16's readiness-drift probes: configuration
//! the seeds' operators fix by hand. Every one of these problems is
//! report-only (`Problem::report_only`).

use serde::Serialize;

use super::model::Timing;
use crate::domain::Dur;

/// `SwapOn`: swap in `/proc/swaps` while the kubelet's `failSwapOn` is not false.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SwapProbe {
    #[serde(flatten)]
    pub timing: Timing,
}

/// One sysctl and the value it must have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sysctl {
    /// Dotted, like `net.ipv4.ip_forward` (read from `/proc/sys/net/ipv4/ip_forward`).
    pub name: String,
    pub value: String,
}

/// `KernelPrerequisitesMissing`: sysctls kubeadm's preflight requires.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KernelProbe {
    #[serde(flatten)]
    pub timing: Timing,
    pub sysctls: Vec<Sysctl>,
}

/// `CgroupDriverMismatch`: the kubelet's `cgroupDriver` against the runtime's.
/// The docker socket is the `ContainerRuntimeUnresponsive` probe's.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CgroupProbe {
    #[serde(flatten)]
    pub timing: Timing,
    pub containerd_config: String,
    pub crio_config: String,
}

/// `DiskNearlyFull`: free bytes or inodes near the kubelet's eviction thresholds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskProbe {
    #[serde(flatten)]
    pub timing: Timing,
    /// Judged against the kubelet's `nodefs.*` thresholds.
    pub nodefs_paths: Vec<String>,
    /// Judged against `imagefs.*`; a path that does not exist is skipped.
    pub imagefs_paths: Vec<String>,
    /// Nearly full: free below the kubelet's threshold plus this many percentage points.
    pub margin_percent: u32,
}

/// `KubeletCertificateInvalid`: the kubelet's certificates and this node's CSRs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateProbe {
    #[serde(flatten)]
    pub timing: Timing,
    /// The client certificate's path, when set: it wins over where the kubelet's own
    /// invocation says it is (`probe/kubecert/paths.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    /// The serving certificate's path, when set (likewise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving_cert: Option<String>,
    /// Expiry within this many days is a warning in the evidence.
    pub warn_days: u32,
    /// Expiry within this many days is a failure.
    pub fail_days: u32,
    /// One of this node's CSRs `Pending` longer than this is a failure.
    pub csr_pending_for: Dur,
    /// The least time between two lists of CSRs (cluster-wide: there is no selector for
    /// a node's own), which happen only while there is a reason (`probe/kubecert.rs`).
    pub csr_interval: Dur,
}

/// `ApiServerUnreachable`: the API server cannot be reached from the node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiServerProbe {
    #[serde(flatten)]
    pub timing: Timing,
}
