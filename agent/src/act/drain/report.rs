//! What a drain did and why it stopped: the report, the refusals, the error.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use crate::act::ActError;
use crate::act::kube::KubeError;
use crate::domain::Dur;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl PodRef {
    pub(super) fn of(p: &Pod) -> PodRef {
        PodRef {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            name: p.metadata.name.clone().unwrap_or_default(),
        }
    }
}

pub(super) fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SkipReason {
    /// Managed by a DaemonSet (`ignoreDaemonSets`).
    DaemonSet,
    /// A static pod's mirror: the kubelet owns it.
    Mirror,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::DaemonSet => "DaemonSet",
            SkipReason::Mirror => "mirror pod",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedPod {
    pub pod: PodRef,
    pub reason: SkipReason,
}

/// A pod whose eviction was refused (or failed) at the end of the drain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blocked {
    pub pod: PodRef,
    /// The PodDisruptionBudget named by the refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdb: Option<String>,
    pub message: String,
}

/// What a drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainReport {
    pub node: String,
    /// Evictions accepted (request mode: pods that left the node).
    pub evicted: Vec<PodRef>,
    /// Evicted (or waited for) and gone from the node.
    pub gone: Vec<PodRef>,
    /// Evicted (or found terminating) and no longer waited for: this node's
    /// kubelet cannot finish them (`skipWaitForDeleteTimeout`); they go with the reboot.
    pub awaiting_kubelet: Vec<PodRef>,
    /// Why the kubelet cannot finish them (the episode's findings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awaiting_because: Option<String>,
    /// Deleted without eviction after the deadline (`deleteAfterDeadline`).
    pub deleted: Vec<PodRef>,
    /// Already terminating when found; waited for.
    pub waited: Vec<PodRef>,
    pub skipped: Vec<SkippedPod>,
    /// Refused at the end (by which PDB).
    pub blocked: Vec<Blocked>,
    /// Pods that still had to leave when the drain ended.
    pub still_present: Vec<PodRef>,
    /// 429 refusals seen over the whole drain.
    pub pdb_refusals: u32,
    pub passes: u32,
    pub elapsed_ms: u64,
}

fn list_names(pods: &[PodRef], max: usize) -> String {
    let mut s: Vec<String> = pods.iter().take(max).map(ToString::to_string).collect();
    if pods.len() > max {
        s.push(format!("+{} more", pods.len() - max));
    }
    s.join(", ")
}

impl DrainReport {
    /// One line, bounded in length.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("evicted {}", self.evicted.len())];
        if !self.gone.is_empty() {
            parts.push(format!(
                "gone {} ({})",
                self.gone.len(),
                list_names(&self.gone, 5)
            ));
        }
        if !self.awaiting_kubelet.is_empty() {
            parts.push(format!(
                "evicted but still terminating because {} {} ({})",
                self.awaiting_because
                    .as_deref()
                    .unwrap_or("the kubelet is down"),
                self.awaiting_kubelet.len(),
                list_names(&self.awaiting_kubelet, 5)
            ));
        }
        if !self.deleted.is_empty() {
            parts.push(format!(
                "deleted without eviction {} ({})",
                self.deleted.len(),
                list_names(&self.deleted, 5)
            ));
        }
        if !self.waited.is_empty() {
            parts.push(format!("waited for {} terminating", self.waited.len()));
        }
        if !self.skipped.is_empty() {
            let ds = self
                .skipped
                .iter()
                .filter(|s| s.reason == SkipReason::DaemonSet)
                .count();
            parts.push(format!(
                "skipped {} ({ds} DaemonSet, {} mirror)",
                self.skipped.len(),
                self.skipped.len() - ds
            ));
        }
        if !self.blocked.is_empty() {
            let b: Vec<String> = self
                .blocked
                .iter()
                .take(5)
                .map(|b| match &b.pdb {
                    Some(p) => format!("{} by PDB {p}", b.pod),
                    None => format!("{}: {}", b.pod, b.message),
                })
                .collect();
            let more = if self.blocked.len() > 5 {
                format!(", +{} more", self.blocked.len() - 5)
            } else {
                String::new()
            };
            parts.push(format!(
                "blocked {} ({}{more})",
                self.blocked.len(),
                b.join(", ")
            ));
        }
        if !self.still_present.is_empty() {
            parts.push(format!(
                "still present {} ({})",
                self.still_present.len(),
                list_names(&self.still_present, 5)
            ));
        }
        format!(
            "drain of {}: {} in {} pass(es), {:.1}s",
            self.node,
            parts.join("; "),
            self.passes,
            self.elapsed_ms as f64 / 1000.0
        )
    }

    /// The PDBs that blocked pods at the end.
    pub fn blocking_pdbs(&self) -> BTreeSet<String> {
        self.blocked.iter().filter_map(|b| b.pdb.clone()).collect()
    }
}

/// Pods the filters refuse to remove: every one is named.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Refusals {
    /// Without a controller; need `force`.
    pub unmanaged: Vec<PodRef>,
    /// DaemonSet-managed; need `ignoreDaemonSets`.
    pub daemon_set: Vec<PodRef>,
    /// With emptyDir; need `deleteEmptyDirData`.
    pub empty_dir: Vec<PodRef>,
}

impl Refusals {
    pub(super) fn is_empty(&self) -> bool {
        self.unmanaged.is_empty() && self.daemon_set.is_empty() && self.empty_dir.is_empty()
    }
}

impl fmt::Display for Refusals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.unmanaged.is_empty() {
            parts.push(format!(
                "pods not managed by a controller (force is off): {}",
                list_names(&self.unmanaged, 20)
            ));
        }
        if !self.daemon_set.is_empty() {
            parts.push(format!(
                "DaemonSet-managed pods (ignoreDaemonSets is off): {}",
                list_names(&self.daemon_set, 20)
            ));
        }
        if !self.empty_dir.is_empty() {
            parts.push(format!(
                "pods with emptyDir data (deleteEmptyDirData is off): {}",
                list_names(&self.empty_dir, 20)
            ));
        }
        f.write_str(&parts.join("; "))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrainError {
    /// The filters refuse some pods; nothing was evicted in that pass. Not
    /// retriable: the runbook (force, ignoreDaemonSets, deleteEmptyDirData) or
    /// the workload must change.
    #[error("cannot drain node {node}: {refusals}")]
    Refused {
        node: String,
        refusals: Refusals,
        report: Box<DrainReport>,
    },
    /// The deadline passed with pods left (blocked by PDBs, still terminating).
    #[error("drain did not finish within {after:?}: {}", report.summary())]
    Deadline {
        after: Duration,
        report: Box<DrainReport>,
    },
    /// An API call failed in a way the drain cannot wait out (403, a hung
    /// API server past the deadline...).
    #[error("drain of node {node} failed: {source}; {}", report.summary())]
    Api {
        node: String,
        source: KubeError,
        report: Box<DrainReport>,
    },
}

impl DrainError {
    pub fn report(&self) -> &DrainReport {
        match self {
            DrainError::Refused { report, .. }
            | DrainError::Deadline { report, .. }
            | DrainError::Api { report, .. } => report,
        }
    }

    /// Running the drain again later may succeed (a PDB may allow it, the
    /// API may come back); a refusal needs a change first.
    pub fn is_retriable(&self) -> bool {
        match self {
            DrainError::Refused { .. } => false,
            DrainError::Deadline { .. } => true,
            DrainError::Api { source, .. } => source.is_retriable(),
        }
    }
}

impl From<DrainError> for ActError {
    fn from(e: DrainError) -> ActError {
        match &e {
            DrainError::Deadline { after, .. } => ActError::Timeout {
                what: e.to_string(),
                after: Dur::from_std(*after),
            },
            DrainError::Api { source, .. } if source.is_unreachable() => {
                ActError::ApiUnreachable(e.to_string())
            }
            _ => ActError::Failed(e.to_string()),
        }
    }
}
