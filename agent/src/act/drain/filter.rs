//! kubectl drain's pod filters, in one place: the drain (`act/drain/`) and
//! `maintenance plan`'s impact report (`maintenance.rs`) both call
//! [`verdict`] with the runbook's drain settings, so the report cannot
//! promise what the drain will refuse, or the other way round.

use k8s_openapi::api::core::v1::Pod;

use super::SkipReason;
use crate::runbook::Drain;

/// The drain settings the filters read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter {
    /// Pods without a controller may go (`force`).
    pub force: bool,
    /// DaemonSet pods stay instead of refusing the drain.
    pub ignore_daemon_sets: bool,
    /// Pods with emptyDir may go (their data is lost).
    pub delete_empty_dir_data: bool,
}

impl Filter {
    pub fn of(spec: &Drain) -> Filter {
        Filter {
            force: spec.force,
            ignore_daemon_sets: spec.ignore_daemon_sets,
            delete_empty_dir_data: spec.delete_empty_dir_data,
        }
    }
}

impl Default for Filter {
    /// The runbook's defaults for a drain step.
    fn default() -> Self {
        Filter {
            force: false,
            ignore_daemon_sets: true,
            delete_empty_dir_data: true,
        }
    }
}

/// What a pass does with one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodVerdict {
    Skip(SkipReason),
    /// Already terminating: wait for it.
    Wait,
    Evict,
    RefuseUnmanaged,
    RefuseDaemonSet,
    RefuseEmptyDir,
}

pub fn controller_kind(p: &Pod) -> Option<&str> {
    p.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.kind.as_str())
}

pub fn is_mirror(p: &Pod) -> bool {
    p.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"))
}

pub fn is_finished(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

pub fn has_empty_dir(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|v| v.iter().any(|v| v.empty_dir.is_some()))
}

/// kubectl drain's filters, in its order.
pub fn verdict(p: &Pod, spec: Filter) -> PodVerdict {
    if is_mirror(p) {
        return PodVerdict::Skip(SkipReason::Mirror);
    }
    if p.metadata.deletion_timestamp.is_some() {
        return PodVerdict::Wait;
    }
    let kind = controller_kind(p);
    if kind == Some("DaemonSet") {
        return if spec.ignore_daemon_sets {
            PodVerdict::Skip(SkipReason::DaemonSet)
        } else {
            PodVerdict::RefuseDaemonSet
        };
    }
    if is_finished(p) {
        return PodVerdict::Evict;
    }
    if has_empty_dir(p) && !spec.delete_empty_dir_data {
        return PodVerdict::RefuseEmptyDir;
    }
    if kind.is_none() && !spec.force {
        return PodVerdict::RefuseUnmanaged;
    }
    PodVerdict::Evict
}
