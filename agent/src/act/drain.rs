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

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions, WatchEvent, WatchParams,
};
use kube::core::Status;
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use super::ActError;
use super::kube::{Kube, KubeError};
use crate::model::Dur;
use crate::runbook::{Drain, DrainMode};

pub mod filter;
mod skip;
pub use filter::{Filter, Verdict};
pub use skip::SkipWait;

/// Least wait before evicting a pod again after a PDB refusal (kubectl's 5 s).
pub const MIN_RETRY_AFTER: Duration = Duration::from_secs(5);
/// The taint of `mode: request`.
pub const DRAIN_REQUEST_TAINT: &str = "nodewarden.io/drain-requested";
/// The server closes a watch after this long at most (kube's limit is < 295 s).
const WATCH_SERVER_TIMEOUT: u32 = 290;
/// After `deleteAfterDeadline` deletions, wait this much beyond the longest grace period.
const DELETE_MARGIN: Duration = Duration::from_secs(10);

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
    fn of(p: &Pod) -> PodRef {
        PodRef {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            name: p.metadata.name.clone().unwrap_or_default(),
        }
    }
}

fn uid(p: &Pod) -> String {
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
    fn is_empty(&self) -> bool {
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

// ----- filters ------------------------------------------------------------

/// kubectl drain's filters, in its order, fed `spec`'s settings (`drain/filter.rs`).
pub fn verdict(p: &Pod, spec: &Drain) -> Verdict {
    filter::verdict(p, Filter::of(spec))
}

// ----- eviction -----------------------------------------------------------

#[derive(Debug)]
enum Evicted {
    Accepted,
    /// 404: already gone.
    Gone,
    /// 409 on the UID precondition: the pod was replaced meanwhile.
    Replaced,
    /// 429 (or a retriable failure): try again after `retry_after`.
    Refused {
        pdb: Option<String>,
        message: String,
        retry_after: Duration,
        by_pdb: bool,
    },
    Failed(KubeError),
}

/// The PDB named by a refusal: `The disruption budget NAME needs …` / `… is still being processed …`.
pub fn pdb_from_status(s: &Status) -> Option<String> {
    let from = |m: &str| {
        let rest = m.split("disruption budget ").nth(1)?;
        let name = rest.split_whitespace().next()?;
        // "Cannot evict pod as it would violate the pod's disruption budget." has no name.
        (!name.is_empty() && !name.ends_with('.')).then(|| name.to_string())
    };
    s.details
        .as_ref()
        .and_then(|d| d.causes.iter().find_map(|c| from(&c.message)))
        .or_else(|| from(&s.message))
}

fn refusal_message(s: &Status) -> String {
    let cause = s
        .details
        .as_ref()
        .and_then(|d| d.causes.first())
        .map(|c| c.message.as_str())
        .filter(|m| !m.is_empty());
    match cause {
        Some(c) => format!("{} {c}", s.message),
        None => s.message.clone(),
    }
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

/// Why a wait ended.
#[derive(Debug, PartialEq, Eq)]
enum WaitEnd {
    /// Nothing left to wait for or retry, and no new pod appeared.
    Settled,
    /// A refused pod is due again, or a new pod appeared: next pass.
    NextPass,
    /// The watch failed (410 Expired, closed, silent): re-list.
    Relist,
    Deadline,
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
                Verdict::Skip(r) => {
                    t.skipped.insert(key, r);
                }
                Verdict::Wait => {
                    if !t.evicted.contains(&key) && !t.deleted.contains(&key) {
                        t.waited.insert(key.clone());
                    }
                    t.terminating(p, key, id);
                }
                Verdict::Evict => match t.blocked.get(&key) {
                    Some(b) if b.uid == id && b.retry_at > now => {
                        seen_blocked.insert(key);
                    }
                    _ => evict.push((key, id)),
                },
                Verdict::RefuseUnmanaged => refusals.unmanaged.push(key),
                Verdict::RefuseDaemonSet => refusals.daemon_set.push(key),
                Verdict::RefuseEmptyDir => refusals.empty_dir.push(key),
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

    async fn evict_all(
        &self,
        spec: &Drain,
        deadline: Option<Instant>,
        t: &mut Track,
    ) -> Result<(), Stop> {
        match self.evict_passes(spec, deadline, t).await {
            Err(Stop::Deadline) => self.after_deadline(spec, t).await,
            r => r,
        }
    }

    async fn evict_passes(
        &self,
        spec: &Drain,
        deadline: Option<Instant>,
        t: &mut Track,
    ) -> Result<(), Stop> {
        loop {
            t.passes += 1;
            let (pods, rv) = self.list(deadline).await?;
            let now = Instant::now();
            let to_evict = self.sort(pods, spec, t, now).map_err(Stop::Refused)?;
            if to_evict.is_empty() && t.waiting.is_empty() && t.blocked.is_empty() {
                return Ok(());
            }
            if !to_evict.is_empty() {
                self.evict_batch(to_evict, spec, deadline, t).await?;
            }
            match self.wait(spec, &rv, deadline, t, None).await? {
                WaitEnd::Settled => return Ok(()),
                WaitEnd::NextPass | WaitEnd::Relist => continue,
                WaitEnd::Deadline => return Err(Stop::Deadline),
            }
        }
    }

    async fn evict_batch(
        &self,
        pods: Vec<(PodRef, String)>,
        spec: &Drain,
        deadline: Option<Instant>,
        t: &mut Track,
    ) -> Result<(), Stop> {
        let concurrency = usize::try_from(spec.concurrency.max(1)).unwrap_or(1);
        let grace = (!spec.grace_period.is_zero()).then(|| spec.grace_period.std().as_secs());
        let mut results = futures::stream::iter(pods)
            .map(|(key, id)| async move {
                let r = self.evict_one(&key, &id, grace, deadline).await;
                (key, id, r)
            })
            .buffer_unordered(concurrency);
        loop {
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d, results.next()).await {
                    Ok(n) => n,
                    Err(_) => return Err(Stop::Deadline),
                },
                None => results.next().await,
            };
            let Some((key, id, r)) = next else {
                return Ok(());
            };
            t.pending.remove(&key);
            match r {
                Evicted::Accepted => {
                    t.blocked.remove(&key);
                    t.evicted.insert(key.clone());
                    t.waiting.insert(key, id);
                }
                Evicted::Gone | Evicted::Replaced => {
                    t.blocked.remove(&key);
                }
                Evicted::Refused {
                    pdb,
                    message,
                    retry_after,
                    by_pdb,
                } => {
                    if by_pdb {
                        t.refusals += 1;
                    }
                    tracing::info!(pod = %key, pdb = pdb.as_deref().unwrap_or("-"), "eviction refused: {message}");
                    t.blocked.insert(
                        key,
                        BlockedState {
                            uid: id,
                            pdb,
                            message,
                            retry_at: Instant::now() + retry_after,
                        },
                    );
                }
                Evicted::Failed(e) => {
                    if e.is_retriable() {
                        t.blocked.insert(
                            key,
                            BlockedState {
                                uid: id,
                                pdb: None,
                                message: e.to_string(),
                                retry_at: Instant::now() + MIN_RETRY_AFTER,
                            },
                        );
                    } else {
                        return Err(self.classify_stop(e, deadline));
                    }
                }
            }
        }
    }

    async fn evict_one(
        &self,
        pod: &PodRef,
        id: &str,
        grace: Option<u64>,
        deadline: Option<Instant>,
    ) -> Evicted {
        let within = match self.call_deadline(deadline) {
            Ok(w) => w,
            Err(_) => {
                return Evicted::Failed(KubeError::Timeout {
                    what: format!("evict pod {pod}"),
                    after: Duration::ZERO,
                });
            }
        };
        let mut delete_options = json!({"preconditions": {"uid": id}});
        if let Some(g) = grace {
            delete_options["gracePeriodSeconds"] = json!(g);
        }
        let body = json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod.name, "namespace": pod.namespace},
            "deleteOptions": delete_options,
        });
        let what = format!("evict pod {pod}");
        let req = match serde_json::to_vec(&body)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                kube::core::Request::new(format!("/api/v1/namespaces/{}/pods", pod.namespace))
                    .create_subresource("eviction", &pod.name, &kube::api::PostParams::default(), b)
                    .map_err(|e| e.to_string())
            }) {
            Ok(r) => r,
            Err(e) => return Evicted::Failed(KubeError::Config(format!("{what}: {e}"))),
        };
        match tokio::time::timeout(within, self.kube.client().request_text(req)).await {
            Err(_) => Evicted::Failed(KubeError::Timeout {
                what,
                after: within,
            }),
            Ok(Ok(_)) => Evicted::Accepted,
            Ok(Err(kube::Error::Api(s))) => match s.code {
                404 => Evicted::Gone,
                409 => Evicted::Replaced,
                429 => {
                    let retry = s
                        .details
                        .as_ref()
                        .map(|d| Duration::from_secs(u64::from(d.retry_after_seconds)))
                        .unwrap_or_default();
                    let by_pdb =
                        s.details.as_ref().is_some_and(|d| {
                            d.causes.iter().any(|c| c.reason == "DisruptionBudget")
                        }) || s.message.contains("disruption budget");
                    Evicted::Refused {
                        pdb: pdb_from_status(&s),
                        message: refusal_message(&s),
                        retry_after: retry.max(MIN_RETRY_AFTER),
                        by_pdb,
                    }
                }
                400 if super::versions::eviction_v1_unsupported(s.code, &s.message) => {
                    Evicted::Failed(super::versions::eviction_v1_error(what, s.code, &s.message))
                }
                _ => Evicted::Failed(KubeError::from_kube(what, kube::Error::Api(s))),
            },
            Ok(Err(e)) => Evicted::Failed(KubeError::from_kube(what, e)),
        }
    }

    /// Watches the node's pods from `rv`. Ends when nothing is left to wait
    /// for (`Settled`), a refused pod is due or a new pod appeared
    /// (`NextPass`), the watch fails (`Relist`) or the deadline passes.
    /// `until` (a deadline of its own) ends the wait like the deadline.
    async fn wait(
        &self,
        spec: &Drain,
        rv: &str,
        deadline: Option<Instant>,
        t: &mut Track,
        until: Option<Instant>,
    ) -> Result<WaitEnd, Stop> {
        let mut rv = rv.to_string();
        let end = match (deadline, until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let done = |t: &Track| t.waiting.is_empty() && t.blocked.is_empty() && t.pending.is_empty();
        if done(t) {
            return Ok(WaitEnd::Settled);
        }
        loop {
            let left = end.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Ok(WaitEnd::Deadline);
            }
            let server_timeout = left
                .map(|l| (l.as_secs() as u32).saturating_add(1))
                .unwrap_or(WATCH_SERVER_TIMEOUT)
                .clamp(1, WATCH_SERVER_TIMEOUT);
            let wp = WatchParams::default()
                .fields(&self.selector())
                .timeout(server_timeout);
            let within = left.map_or(self.kube.call_timeout(), |l| {
                l.min(self.kube.call_timeout())
            });
            let what = format!("watch pods on node {}", self.node);
            let stream = match self
                .kube
                .call_within(what, within, self.pods.watch(&wp, &rv))
                .await
            {
                Ok(s) => s,
                Err(e) if e.is_unreachable() && end.is_some_and(|d| Instant::now() >= d) => {
                    return Ok(WaitEnd::Deadline);
                }
                Err(e) if e.code() == Some(410) => return Ok(WaitEnd::Relist),
                Err(e) => return Err(self.classify_stop(e, deadline)),
            };
            let mut stream = stream.boxed();
            // No event for longer than the server's own timeout: the stream is dead.
            let silence = Duration::from_secs(u64::from(server_timeout)) + Duration::from_secs(30);
            loop {
                let next_retry = t.blocked.values().map(|b| b.retry_at).min();
                let next_skip = t.skip_at.values().min().copied();
                let wake = [end, next_retry, next_skip].into_iter().flatten().min();
                let wait_for = wake
                    .map(|w| w.saturating_duration_since(Instant::now()))
                    .unwrap_or(silence)
                    .min(silence);
                let ev = match tokio::time::timeout(wait_for, stream.try_next()).await {
                    Err(_) => {
                        let now = Instant::now();
                        if t.promote_due(now) {
                            if done(t) {
                                return Ok(WaitEnd::Settled);
                            }
                            continue;
                        }
                        if end.is_some_and(|d| now >= d) {
                            return Ok(WaitEnd::Deadline);
                        }
                        if next_retry.is_some_and(|r| now >= r) {
                            return Ok(WaitEnd::NextPass);
                        }
                        return Ok(WaitEnd::Relist);
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(node = %self.node, "pod watch failed: {e}");
                        return Ok(WaitEnd::Relist);
                    }
                    // The server closed the watch (its timeout): open another one.
                    Ok(Ok(None)) => break,
                    Ok(Ok(Some(ev))) => ev,
                };
                match ev {
                    WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                        if let Some(v) = p.metadata.resource_version.clone() {
                            rv = v;
                        }
                        if self.seen(&p, spec, t) {
                            return Ok(WaitEnd::NextPass);
                        }
                    }
                    WatchEvent::Deleted(p) => {
                        if let Some(v) = p.metadata.resource_version.clone() {
                            rv = v;
                        }
                        let key = PodRef::of(&p);
                        let id = uid(&p);
                        if t.waiting.get(&key) == Some(&id) {
                            t.waiting.remove(&key);
                            t.skip_at.remove(&key);
                        }
                        t.forget_awaiting(&key, Some(&id));
                        if t.blocked.get(&key).is_some_and(|b| b.uid == id) {
                            t.blocked.remove(&key);
                        }
                        if t.pending.get(&key) == Some(&id) {
                            t.pending.remove(&key);
                            if spec.mode == DrainMode::Request {
                                t.evicted.insert(key);
                            }
                        }
                    }
                    WatchEvent::Bookmark(b) => rv = b.metadata.resource_version,
                    WatchEvent::Error(s) => {
                        tracing::debug!(node = %self.node, "pod watch error: {} {}", s.code, s.message);
                        return Ok(WaitEnd::Relist);
                    }
                }
                if done(t) {
                    return Ok(WaitEnd::Settled);
                }
            }
        }
    }

    /// Applies an ADDED/MODIFIED pod to the tracking state; true when it needs a new pass.
    fn seen(&self, p: &Pod, spec: &Drain, t: &mut Track) -> bool {
        let key = PodRef::of(p);
        let id = uid(p);
        // Same name, new UID: the old pod is gone (a StatefulSet replacement).
        if t.waiting.get(&key).is_some_and(|u| *u != id) {
            t.waiting.remove(&key);
            t.skip_at.remove(&key);
        }
        if t.awaiting.get(&key).is_some_and(|u| *u != id) {
            t.forget_awaiting(&key, None);
        }
        if t.blocked.get(&key).is_some_and(|b| b.uid != id) {
            t.blocked.remove(&key);
        }
        if t.pending.get(&key).is_some_and(|u| *u != id) {
            t.pending.remove(&key);
            if spec.mode == DrainMode::Request {
                t.evicted.insert(key.clone());
            }
        }
        let verdict = verdict(p, spec);
        match verdict {
            Verdict::Skip(_) => false,
            Verdict::Wait => {
                if spec.mode == DrainMode::Evict {
                    t.blocked.remove(&key);
                    t.pending.remove(&key);
                    if !t.awaiting.contains_key(&key) {
                        t.terminating(p, key, id);
                    }
                }
                // Request mode: the pod stays pending until it is deleted.
                false
            }
            _ if spec.mode == DrainMode::Request => {
                t.pending.entry(key).or_insert(id);
                false
            }
            _ => {
                let known = t.waiting.get(&key) == Some(&id)
                    || t.awaiting.get(&key) == Some(&id)
                    || t.blocked.get(&key).is_some_and(|b| b.uid == id)
                    || t.pending.get(&key) == Some(&id);
                !known
            }
        }
    }

    /// The deadline passed: optionally delete what is left without eviction.
    async fn after_deadline(&self, spec: &Drain, t: &mut Track) -> Result<(), Stop> {
        if !spec.delete_after_deadline || spec.mode == DrainMode::Request {
            return Err(Stop::Deadline);
        }
        // A fresh list: only pods that are not terminating are deleted.
        let extra = self.kube.call_timeout();
        let (pods, rv) = self.list(Some(Instant::now() + extra)).await?;
        let mut longest = 0u64;
        let grace = (!spec.grace_period.is_zero()).then(|| spec.grace_period.std().as_secs());
        t.waiting.clear();
        t.awaiting.clear();
        t.skip_at.clear();
        t.pending.clear();
        let mut delete = Vec::new();
        for p in &pods {
            let key = PodRef::of(p);
            match verdict(p, spec) {
                Verdict::Skip(_) => {}
                Verdict::Wait => {
                    t.terminating(p, key, uid(p));
                }
                _ => {
                    let g = grace.unwrap_or_else(|| {
                        p.spec
                            .as_ref()
                            .and_then(|s| s.termination_grace_period_seconds)
                            .and_then(|g| u64::try_from(g).ok())
                            .unwrap_or(30)
                    });
                    longest = longest.max(g);
                    delete.push((key, uid(p)));
                }
            }
        }
        t.blocked.clear();
        for (key, id) in delete {
            let dp = DeleteParams {
                grace_period_seconds: grace.and_then(|g| u32::try_from(g).ok()),
                preconditions: Some(Preconditions {
                    uid: Some(id.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            let api: Api<Pod> = Api::namespaced(self.kube.client().clone(), &key.namespace);
            let what = format!("delete pod {key} after the drain deadline");
            match self.kube.call(what, api.delete(&key.name, &dp)).await {
                Ok(_) => {
                    tracing::warn!(pod = %key, "deleted without eviction after the drain deadline (deleteAfterDeadline)");
                    t.deleted.insert(key.clone());
                    t.waiting.insert(key, id);
                }
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => {
                    t.pending.insert(key.clone(), id.clone());
                    tracing::warn!(pod = %key, "delete after deadline failed: {e}");
                }
            }
        }
        let until = Instant::now() + Duration::from_secs(longest) + DELETE_MARGIN;
        match self.wait(spec, &rv, None, t, Some(until)).await? {
            WaitEnd::Settled => Ok(()),
            _ => Err(Stop::Deadline),
        }
    }

    // ----- request mode ---------------------------------------------------

    async fn request(
        &self,
        spec: &Drain,
        deadline: Option<Instant>,
        t: &mut Track,
    ) -> Result<(), Stop> {
        self.set_drain_request(true, deadline).await?;
        loop {
            t.passes += 1;
            let (pods, rv) = self.list(deadline).await?;
            t.pending.clear();
            for p in &pods {
                let key = PodRef::of(p);
                match verdict(p, spec) {
                    Verdict::Skip(r) => {
                        t.skipped.insert(key, r);
                    }
                    _ => {
                        t.pending.insert(key, uid(p));
                    }
                }
            }
            if t.pending.is_empty() {
                return Ok(());
            }
            match self.wait(spec, &rv, deadline, t, None).await? {
                WaitEnd::Settled => return Ok(()),
                WaitEnd::NextPass | WaitEnd::Relist => continue,
                WaitEnd::Deadline => return Err(Stop::Deadline),
            }
        }
    }

    /// Adds or removes the `nodewarden.io/drain-requested:NoSchedule` taint.
    /// `spec.taints` is an atomic list: read, change, write with the read
    /// resourceVersion (409 → again).
    async fn set_drain_request(&self, on: bool, deadline: Option<Instant>) -> Result<(), Stop> {
        let nodes: Api<Node> = Api::all(self.kube.client().clone());
        for _ in 0..5 {
            let within = self.call_deadline(deadline)?;
            let what = format!("get node {}", self.node);
            let node = self
                .kube
                .call_within(what, within, nodes.get(&self.node))
                .await
                .map_err(|e| self.classify_stop(e, deadline))?;
            let mut taints = node
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default();
            let has = taints.iter().any(|t| t.key == DRAIN_REQUEST_TAINT);
            if has == on {
                return Ok(());
            }
            if on {
                taints.push(k8s_openapi::api::core::v1::Taint {
                    key: DRAIN_REQUEST_TAINT.into(),
                    value: Some(crate::act::node::OWNER.into()),
                    effect: "NoSchedule".into(),
                    time_added: None,
                });
            } else {
                taints.retain(|t| t.key != DRAIN_REQUEST_TAINT);
            }
            let patch = json!({
                "metadata": {"resourceVersion": node.metadata.resource_version},
                "spec": {"taints": taints},
            });
            let within = self.call_deadline(deadline)?;
            let what = format!("taint node {}", self.node);
            match self
                .kube
                .call_within(
                    what,
                    within,
                    nodes.patch(&self.node, &PatchParams::default(), &Patch::Merge(&patch)),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(self.classify_stop(e, deadline)),
            }
        }
        Err(Stop::Api(KubeError::Api {
            what: format!("taint node {}", self.node),
            code: 409,
            reason: "Conflict".into(),
            message: "still conflicting after 5 attempts".into(),
        }))
    }

    /// Removes the drain-request taint (call when uncordoning).
    pub async fn clear_drain_request(&self) -> Result<(), KubeError> {
        match self.set_drain_request(false, None).await {
            Ok(()) => Ok(()),
            Err(Stop::Api(e)) => Err(e),
            Err(_) => Err(KubeError::Timeout {
                what: format!("untaint node {}", self.node),
                after: self.kube.call_timeout(),
            }),
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
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, PodSpec, PodStatus, Volume};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

    fn spec() -> Drain {
        Drain {
            mode: DrainMode::Evict,
            timeout: Dur::from_secs(600),
            delete_empty_dir_data: false,
            force: false,
            ignore_daemon_sets: true,
            grace_period: Dur::ZERO,
            delete_after_deadline: false,
            skip_wait_for_delete_timeout: Dur::ZERO,
            concurrency: 10,
        }
    }

    fn pod(owner: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                owner_references: owner.map(|k| {
                    vec![OwnerReference {
                        kind: k.into(),
                        name: "o".into(),
                        controller: Some(true),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn filters_follow_kubectl() {
        let s = spec();
        assert_eq!(verdict(&pod(Some("ReplicaSet")), &s), Verdict::Evict);
        assert_eq!(verdict(&pod(None), &s), Verdict::RefuseUnmanaged);
        assert_eq!(
            verdict(&pod(Some("DaemonSet")), &s),
            Verdict::Skip(SkipReason::DaemonSet)
        );
        let strict = Drain {
            ignore_daemon_sets: false,
            ..spec()
        };
        assert_eq!(
            verdict(&pod(Some("DaemonSet")), &strict),
            Verdict::RefuseDaemonSet
        );
        let mut finished = pod(None);
        finished.status = Some(PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        assert_eq!(
            verdict(&finished, &s),
            Verdict::Evict,
            "finished pods are always removable"
        );
        let mut ed = pod(Some("ReplicaSet"));
        ed.spec = Some(PodSpec {
            volumes: Some(vec![Volume {
                name: "cache".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert_eq!(verdict(&ed, &s), Verdict::RefuseEmptyDir);
        let ok = Drain {
            delete_empty_dir_data: true,
            ..spec()
        };
        assert_eq!(verdict(&ed, &ok), Verdict::Evict);
        let mut mirror = pod(Some("Node"));
        mirror.metadata.annotations =
            Some([("kubernetes.io/config.mirror".to_string(), "x".to_string())].into());
        assert_eq!(verdict(&mirror, &s), Verdict::Skip(SkipReason::Mirror));
        let mut term = pod(None);
        term.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(verdict(&term, &s), Verdict::Wait);
    }

    /// Same name, new UID on the node while the old pod is awaited: the old
    /// one is done; the newcomer (not terminating) needs a new pass.
    #[tokio::test]
    async fn replacement_with_new_uid_counts_as_done() {
        let Ok(kube) = Kube::from_url("http://127.0.0.1:9", Duration::from_secs(1)) else {
            panic!("client")
        };
        let d = Drainer::new(kube, "n1");
        let mut t = Track::default();
        let key = PodRef {
            namespace: "ns".into(),
            name: "p".into(),
        };
        t.waiting.insert(key.clone(), "old".into());
        let mut newer = pod(Some("StatefulSet"));
        newer.metadata.uid = Some("new".into());
        assert!(
            d.seen(&newer, &spec(), &mut t),
            "the replacement needs a pass"
        );
        assert!(t.waiting.is_empty(), "the old pod counts as gone");
        // The same pod seen again terminating is waited for, not re-evicted.
        let mut old = pod(Some("StatefulSet"));
        old.metadata.uid = Some("old".into());
        old.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let mut t = Track::default();
        t.waiting.insert(key.clone(), "old".into());
        assert!(!d.seen(&old, &spec(), &mut t));
        assert_eq!(t.waiting.get(&key).map(String::as_str), Some("old"));
    }

    #[test]
    fn pdb_name_from_refusal() {
        let s: Status = serde_json::from_value(json!({
            "status": "Failure", "code": 429, "reason": "TooManyRequests",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "details": {"causes": [{"reason": "DisruptionBudget",
                "message": "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}]},
        }))
        .unwrap_or_default();
        assert_eq!(pdb_from_status(&s).as_deref(), Some("web-pdb"));
        let s: Status = serde_json::from_value(json!({
            "status": "Failure", "code": 429, "reason": "TooManyRequests",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        }))
        .unwrap_or_default();
        assert_eq!(pdb_from_status(&s), None);
        let s: Status = serde_json::from_value(json!({
            "code": 429, "message": "x",
            "details": {"causes": [{"reason": "DisruptionBudget",
                "message": "The disruption budget db is still being processed by the server."}]},
        }))
        .unwrap_or_default();
        assert_eq!(pdb_from_status(&s).as_deref(), Some("db"));
    }

    #[test]
    fn summary_is_bounded() {
        let r = DrainReport {
            node: "n1".into(),
            still_present: (0..100)
                .map(|i| PodRef {
                    namespace: "ns".into(),
                    name: format!("p{i}"),
                })
                .collect(),
            ..Default::default()
        };
        let s = r.summary();
        assert!(s.contains("+95 more"), "{s}");
        assert!(s.len() < 300);
    }
}
