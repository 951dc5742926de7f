//! Pods evicted but left to a kubelet that cannot finish them
//! (`skipWaitForDeleteTimeout`, kubectl's `--skip-wait-for-delete-timeout`,
//! kubernetes #85577).
//!
//! A pod whose eviction the API server accepted stays `Terminating` until its
//! node's kubelet confirms the termination; the API server never removes it
//! by itself (docs/platform-facts.md, "A node whose kubelet or runtime is
//! stuck"). A drain of a node whose kubelet is the failure would wait forever.
//! A pod counts as *evicted, awaiting this node's kubelet* only when all three
//! hold:
//!
//! 1. its eviction was accepted, or it was already terminating: it carries a
//!    `deletionTimestamp`;
//! 2. that `deletionTimestamp` is older than `skipWaitForDeleteTimeout`. The
//!    API server sets it to the time of the deletion plus the pod's grace
//!    period, so the pod has had its whole grace period and the timeout on
//!    top since it was evicted;
//! 3. the caller says this node's kubelet or runtime cannot finish it (the
//!    episode's findings): [`SkipWait::new`] gets no reason otherwise, and
//!    every terminating pod is waited for as kubectl does by default.
//!
//! Nothing here deletes anything: the pods stay for the kubelet to finish
//! (after a reboot); a pod refused by a PDB or never evicted still blocks.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

use crate::runbook::Drain;

/// When (and why) terminating pods stop being waited for in one drain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipWait {
    after: Duration,
    because: String,
}

impl SkipWait {
    /// `None` (wait for every terminating pod) unless the drain has a
    /// timeout and `kubelet_down` says why this node's kubelet cannot finish pods.
    pub fn new(spec: &Drain, kubelet_down: Option<&str>) -> Option<SkipWait> {
        let because = kubelet_down?;
        (!spec.skip_wait_for_delete_timeout.is_zero()).then(|| SkipWait {
            after: spec.skip_wait_for_delete_timeout.std(),
            because: because.to_string(),
        })
    }

    /// Why the kubelet cannot finish the pods (for the report).
    pub fn because(&self) -> &str {
        &self.because
    }

    /// The wall-clock time from which `p` is no longer waited for; `None`
    /// when it is not terminating (conditions 1 and 2).
    pub fn skip_at(&self, p: &Pod) -> Option<Timestamp> {
        let deleted = p.metadata.deletion_timestamp.as_ref()?.0;
        let after = jiff::SignedDuration::try_from(self.after).ok()?;
        deleted.checked_add(after).ok()
    }

    /// The monotonic instant of [`SkipWait::skip_at`], from the wall clock `now`.
    pub fn skip_instant(&self, p: &Pod, now: Timestamp, mono: Instant) -> Option<Instant> {
        let at = self.skip_at(p)?;
        let left = now.duration_until(at);
        Some(match Duration::try_from(left) {
            Ok(d) => mono + d,
            // Already past (a negative span does not convert).
            Err(_) => mono,
        })
    }
}

#[cfg(test)]
mod tests;
