//! Drain with `kubectl drain` semantics, through the eviction API so
//! PodDisruptionBudgets hold.
//!
//! One drain is a sequence of passes under ONE overall deadline. A pass:
//!
//! 1. LIST the pods on the node (`fieldSelector=spec.nodeName=NODE`): the list
//!    is built again every pass (kured #1169 built it once);
//! 2. filter as kubectl does: mirror pods skipped; pods already terminating
//!    waited for; DaemonSet pods skipped with `ignoreDaemonSets`, else an
//!    error; finished pods (Succeeded/Failed) always removable; pods with
//!    emptyDir need `deleteEmptyDirData`; pods without a controller need
//!    `force`. Every pod that fails a filter is NAMED in the error and nothing
//!    is evicted;
//! 3. evict (`POST pods/NAME/eviction`, body written here: kube 5's
//!    `EvictParams` spells `deleteOptions` wrong, dropping a grace override;
//!    a UID precondition so a StatefulSet's same-name replacement is never
//!    evicted by mistake) with bounded concurrency. A 429 is a PDB refusal:
//!    the pod is retried in a later pass after at least 5 s (or the server's
//!    `retryAfterSeconds`), and the PDB named by the refusal is recorded. The
//!    client's own retry layer is off (see `act::kube`), so refusals arrive here;
//! 4. WATCH the pods on the node from the list's resourceVersion until every
//!    evicted or terminating pod is gone or replaced (same name, new UID), a
//!    refused pod is due again, or a new pod shows up. No per-pod GET polling:
//!    300 pods cost 300 evictions + 1 LIST + 1 WATCH.
//!
//! With [`SkipWait`] (`skipWaitForDeleteTimeout` while the episode's findings
//! say this node's kubelet cannot finish pods; `drain/skip.rs`), a pod evicted
//! long enough ago is no longer waited for: it is reported as *awaiting this
//! node's kubelet* and does not hold the drain.
//!
//! The drain ends `Ok` only when nothing that must leave is left; otherwise
//! `Err` with the report (evicted, skipped + why, blocked + which PDB, still
//! present). After the deadline, pods are deleted without eviction (ignoring
//! PDBs) only with `deleteAfterDeadline`; pods stuck terminating are never
//! force-deleted.
//!
//! `mode: request` does not evict: it taints the node
//! `nodewarden.io/drain-requested:NoSchedule` for an external controller and
//! watches the node until it is empty. The taint stays until
//! [`Drainer::clear_drain_request`] (call it when uncordoning).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use tokio::time::Instant;

use super::kube::{Kube, KubeError};
use crate::runbook::{Drain, DrainMode};

mod evict;
pub mod filter;
mod report;
mod request;
mod skip;
mod wait;
pub use evict::pdb_from_status;
pub use filter::{Filter, PodVerdict};
use report::uid;
pub use report::{Blocked, DrainError, DrainReport, PodRef, Refusals, SkipReason, SkippedPod};
pub use skip::SkipWait;

/// Least wait before evicting a pod again after a PDB refusal (kubectl's 5 s).
pub const MIN_RETRY_AFTER: Duration = Duration::from_secs(5);
/// The taint of `mode: request`.
pub const DRAIN_REQUEST_TAINT: &str = "nodewarden.io/drain-requested";
/// The server closes a watch after this long at most (kube's limit is < 295 s).
const WATCH_SERVER_TIMEOUT: u32 = 290;
/// After `deleteAfterDeadline` deletions, wait this much beyond the longest grace period.
const DELETE_MARGIN: Duration = Duration::from_secs(10);

// ----- filters ------------------------------------------------------------

/// kubectl drain's filters, in its order, fed `spec`'s settings (`drain/filter.rs`).
pub fn verdict(p: &Pod, spec: &Drain) -> PodVerdict {
    filter::verdict(p, Filter::of(spec))
}

// ----- the drainer ----------------------------------------------------------

/// Drains one node.
#[derive(Clone)]
pub struct Drainer {
    kube: Kube,
    node: String,
    pods: Api<Pod>,
}

impl fmt::Debug for Drainer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drainer")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct BlockedState {
    uid: String,
    pdb: Option<String>,
    message: String,
    retry_at: Instant,
}

/// The state carried across passes.
#[derive(Debug, Default)]
struct Track {
    /// Pods being deleted (evicted by us or found terminating), by UID.
    waiting: BTreeMap<PodRef, String>,
    blocked: BTreeMap<PodRef, BlockedState>,
    /// Pods that must leave and were not evicted yet (request mode: all of them).
    pending: BTreeMap<PodRef, String>,
    evicted: BTreeSet<PodRef>,
    waited: BTreeSet<PodRef>,
    skipped: BTreeMap<PodRef, SkipReason>,
    deleted: BTreeSet<PodRef>,
    /// Pods left to this node's kubelet (`skipWaitForDeleteTimeout`), by UID.
    awaiting: BTreeMap<PodRef, String>,
    /// When each waited-for pod stops being waited for (with `skip`).
    skip_at: BTreeMap<PodRef, Instant>,
    skip: Option<SkipWait>,
    refusals: u32,
    passes: u32,
}

impl Track {
    /// A terminating pod: awaited from now on, or left to the kubelet when
    /// its `deletionTimestamp` is old enough and the kubelet cannot finish it.
    fn terminating(&mut self, p: &Pod, key: PodRef, id: String) {
        let due = self
            .skip
            .as_ref()
            .and_then(|s| s.skip_instant(p, jiff::Timestamp::now(), Instant::now()));
        match due {
            Some(at) if at <= Instant::now() => {
                self.waiting.remove(&key);
                self.skip_at.remove(&key);
                self.awaiting.insert(key, id);
            }
            Some(at) => {
                self.awaiting.remove(&key);
                self.skip_at.insert(key.clone(), at);
                self.waiting.insert(key, id);
            }
            None => {
                self.waiting.insert(key, id);
            }
        }
    }

    /// Moves waited-for pods whose skip time has come to `awaiting`; true when any moved.
    fn promote_due(&mut self, now: Instant) -> bool {
        let due: Vec<PodRef> = self
            .skip_at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut moved = false;
        for key in due {
            self.skip_at.remove(&key);
            if let Some(id) = self.waiting.remove(&key) {
                tracing::info!(pod = %key, "no longer waited for: evicted, still terminating, and this node's kubelet cannot finish it");
                self.awaiting.insert(key, id);
                moved = true;
            }
        }
        moved
    }

    /// The pod is gone (DELETED, or replaced by a new UID).
    fn forget_awaiting(&mut self, key: &PodRef, id: Option<&str>) {
        if id.is_none_or(|id| self.awaiting.get(key).is_some_and(|u| u == id)) {
            self.awaiting.remove(key);
        }
    }
}

impl Drainer {
    pub fn new(kube: Kube, node: impl Into<String>) -> Self {
        Drainer {
            pods: Api::all(kube.client().clone()),
            kube,
            node: node.into(),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    fn selector(&self) -> String {
        format!("spec.nodeName={}", self.node)
    }

    /// Drains per `spec`, waiting for every terminating pod (kubectl's
    /// default). `Ok` only when nothing that must leave is left.
    pub async fn drain(&self, spec: &Drain) -> Result<DrainReport, DrainError> {
        self.drain_stuck(spec, None).await
    }

    /// Drains per `spec`; `kubelet_down` (why this node's kubelet or runtime
    /// cannot finish terminating pods, from the episode's findings) turns on
    /// `skipWaitForDeleteTimeout`. `Ok` when nothing that must leave is left
    /// but pods awaiting this node's kubelet.
    pub async fn drain_stuck(
        &self,
        spec: &Drain,
        kubelet_down: Option<&str>,
    ) -> Result<DrainReport, DrainError> {
        let start = Instant::now();
        let deadline = (!spec.timeout.is_zero()).then(|| start + spec.timeout.std());
        let mut track = Track {
            skip: SkipWait::new(spec, kubelet_down),
            ..Track::default()
        };
        let result = match spec.mode {
            DrainMode::Evict => self.evict_all(spec, deadline, &mut track).await,
            DrainMode::Request => self.request(spec, deadline, &mut track).await,
        };
        let report = self.report(&track, start);
        match result {
            Ok(()) if report.still_present.is_empty() => Ok(report),
            Ok(()) | Err(Stop::Deadline) => Err(DrainError::Deadline {
                after: spec.timeout.std(),
                report: Box::new(report),
            }),
            Err(Stop::Refused(refusals)) => Err(DrainError::Refused {
                node: self.node.clone(),
                refusals,
                report: Box::new(report),
            }),
            Err(Stop::Api(source)) => Err(DrainError::Api {
                node: self.node.clone(),
                source,
                report: Box::new(report),
            }),
        }
    }

    fn report(&self, t: &Track, start: Instant) -> DrainReport {
        let mut still: BTreeSet<PodRef> = t.waiting.keys().cloned().collect();
        still.extend(t.blocked.keys().cloned());
        still.extend(t.pending.keys().cloned());
        let gone = t
            .evicted
            .iter()
            .chain(&t.waited)
            .chain(&t.deleted)
            .filter(|p| !still.contains(*p) && !t.awaiting.contains_key(*p))
            .cloned()
            .collect::<BTreeSet<_>>();
        DrainReport {
            node: self.node.clone(),
            evicted: t.evicted.iter().cloned().collect(),
            gone: gone.into_iter().collect(),
            awaiting_kubelet: t.awaiting.keys().cloned().collect(),
            awaiting_because: (!t.awaiting.is_empty())
                .then(|| t.skip.as_ref().map(|s| s.because().to_string()))
                .flatten(),
            deleted: t.deleted.iter().cloned().collect(),
            waited: t.waited.iter().cloned().collect(),
            skipped: t
                .skipped
                .iter()
                .map(|(p, r)| SkippedPod {
                    pod: p.clone(),
                    reason: *r,
                })
                .collect(),
            blocked: t
                .blocked
                .iter()
                .map(|(p, b)| Blocked {
                    pod: p.clone(),
                    pdb: b.pdb.clone(),
                    message: b.message.clone(),
                })
                .collect(),
            still_present: still.into_iter().collect(),
            pdb_refusals: t.refusals,
            passes: t.passes,
            elapsed_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// A deadline for one call: the call timeout, cut by the drain's deadline.
    fn call_deadline(&self, deadline: Option<Instant>) -> Result<Duration, Stop> {
        let call = self.kube.call_timeout();
        match deadline {
            None => Ok(call),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Err(Stop::Deadline)
                } else {
                    Ok(call.min(left))
                }
            }
        }
    }

    /// LIST the node's pods: (pods, resourceVersion).
    async fn list(&self, deadline: Option<Instant>) -> Result<(Vec<Pod>, String), Stop> {
        let lp = ListParams::default().fields(&self.selector());
        let within = self.call_deadline(deadline)?;
        let what = format!("list pods on node {}", self.node);
        match self
            .kube
            .call_within(what, within, self.pods.list(&lp))
            .await
        {
            Ok(l) => Ok((l.items, l.metadata.resource_version.unwrap_or_default())),
            Err(e) => Err(self.classify_stop(e, deadline)),
        }
    }

    /// A timeout that is really the drain's deadline is reported as such.
    fn classify_stop(&self, e: KubeError, deadline: Option<Instant>) -> Stop {
        match (&e, deadline) {
            (KubeError::Timeout { .. }, Some(d)) if Instant::now() >= d => Stop::Deadline,
            _ => Stop::Api(e),
        }
    }

    /// Classifies a fresh list into the tracking state; returns the pods to evict now.
    fn sort(
        &self,
        pods: Vec<Pod>,
        spec: &Drain,
        t: &mut Track,
        now: Instant,
    ) -> Result<Vec<(PodRef, String)>, Refusals> {
        let mut refusals = Refusals::default();
        let mut seen_blocked = BTreeSet::new();
        t.waiting.clear();
        t.awaiting.clear();
        t.skip_at.clear();
        let mut evict = Vec::new();
        for p in &pods {
            let key = PodRef::of(p);
            let id = uid(p);
            match verdict(p, spec) {
                PodVerdict::Skip(r) => {
                    t.skipped.insert(key, r);
                }
                PodVerdict::Wait => {
                    if !t.evicted.contains(&key) && !t.deleted.contains(&key) {
                        t.waited.insert(key.clone());
                    }
                    t.terminating(p, key, id);
                }
                PodVerdict::Evict => match t.blocked.get(&key) {
                    Some(b) if b.uid == id && b.retry_at > now => {
                        seen_blocked.insert(key);
                    }
                    _ => evict.push((key, id)),
                },
                PodVerdict::RefuseUnmanaged => refusals.unmanaged.push(key),
                PodVerdict::RefuseDaemonSet => refusals.daemon_set.push(key),
                PodVerdict::RefuseEmptyDir => refusals.empty_dir.push(key),
            }
        }
        t.blocked.retain(|k, _| seen_blocked.contains(k));
        t.pending = evict.iter().cloned().collect();
        if refusals.is_empty() {
            Ok(evict)
        } else {
            Err(refusals)
        }
    }
}

/// Why a drain stopped early.
#[derive(Debug)]
enum Stop {
    Deadline,
    Refused(Refusals),
    Api(KubeError),
}

#[cfg(test)]
mod tests;
