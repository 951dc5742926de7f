//! Cluster-wide safety: disruption slots (a Lease semaphore) and the storm
//! gate's view of the other nodes.
//!
//! # Disruption slots
//!
//! `maxConcurrentDisruptions` Leases named `nodewarden-slot-0 … N-1` in the
//! agent's namespace. A node holds a slot when a Lease's `holderIdentity` is
//! its name and the Lease has not expired (`renewTime + leaseDurationSeconds`
//! is in the future). Acquiring creates a missing Lease or takes over a free
//! (no holder) or expired one with a `resourceVersion` precondition: when two
//! agents race, the API server lets exactly one write win and the other gets
//! 409 and tries the next slot. A live holder's slot is never taken. The
//! holder renews while it holds the slot and clears `holderIdentity` to
//! release it; a dead holder blocks the cluster for at most one Lease duration.
//!
//! Expiry is judged with the caller's [`Clock`]; pass one corrected by the API
//! server's `Date` header when the local clock may be skewed (ClockSkewed is
//! one of the problems nodewarden remediates).
//!
//! # Storm gate
//!
//! [`FleetCounter`] counts the *other* nodes that are NotReady or being
//! remediated by nodewarden (its cordon annotation or its
//! `NodewardenRemediating` condition). Ready needs `status`, which no
//! metadata-only list carries, so this is a paginated LIST of nodes decoded
//! into a minimal struct (name, annotations, `unschedulable`, condition
//! types/statuses; `status.images` and the rest are skipped while parsing). It
//! is run on demand, only when a disruptive step is being considered, instead
//! of a cluster-wide watch: at 5,000 nodes a full-Node reflector would cost
//! every agent ~50–100 MB (nodes carry image lists) and the API server 5,000
//! watchers receiving every node status change, against a memory target of
//! 12 MiB. On demand it costs `ceil(nodes / page)` requests (25 at 5,000
//! nodes with pages of 200) and a peak of about one page of JSON (~3 MB),
//! and nothing while the node is healthy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, ListParams, PostParams};
use serde::Deserialize;

use super::kube::{Kube, KubeError};
use super::node::{COND_REMEDIATING, CORDONED_BY, OWNER};
use super::{ActError, Clock, SystemClock};
use crate::model::Timestamp;
use crate::view::{FleetView, SlotView};

/// Slot Leases are named `nodewarden-slot-<i>`.
pub const SLOT_PREFIX: &str = "nodewarden-slot-";
/// Label on the slot Leases (one LIST reads them all).
pub const SLOT_LABEL: &str = "nodewarden.io/disruption-slot";

pub fn slot_name(i: u32) -> String {
    format!("{SLOT_PREFIX}{i}")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// Every slot is held by a live holder.
    #[error("no disruption slot is free (held by {})", holders.join(", "))]
    Busy { holders: Vec<String> },
    /// The slot is no longer ours (expired and taken over, or released by someone).
    #[error("disruption slot {lease} is no longer held by {holder} (now: {})", now_held_by.as_deref().unwrap_or("nobody"))]
    Lost {
        lease: String,
        holder: String,
        now_held_by: Option<String>,
    },
}

impl GuardError {
    pub fn is_retriable(&self) -> bool {
        match self {
            GuardError::Kube(e) => e.is_retriable(),
            GuardError::Busy { .. } => true,
            GuardError::Lost { .. } => false,
        }
    }
}

impl From<GuardError> for ActError {
    fn from(e: GuardError) -> ActError {
        match e {
            GuardError::Kube(k) => k.into(),
            GuardError::Busy { holders } => ActError::SlotBusy(holders.join(", ")),
            e => ActError::Failed(e.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotConfig {
    /// The agent's namespace.
    pub namespace: String,
    /// Holder identity: the node name.
    pub holder: String,
    /// `maxConcurrentDisruptions` (at least 1).
    pub slots: u32,
    /// `leaseDurationSeconds` of a held slot.
    pub lease_duration: Duration,
}

/// When the Lease's holder stops being live: `renewTime` (else `acquireTime`)
/// + `leaseDurationSeconds`. `None` without a time (treated as expired).
pub fn lease_expiry(lease: &Lease) -> Option<Timestamp> {
    let spec = lease.spec.as_ref()?;
    let t = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(0).max(0));
    t.checked_add(jiff::SignedDuration::from_secs(secs)).ok()
}

/// The live holder of a Lease at `now`, if any.
pub fn live_holder(lease: &Lease, now: Timestamp) -> Option<String> {
    let holder = lease
        .spec
        .as_ref()?
        .holder_identity
        .as_deref()
        .filter(|h| !h.is_empty())?;
    match lease_expiry(lease) {
        Some(exp) if exp > now => Some(holder.to_string()),
        _ => None,
    }
}

/// The planner's view of the slots from the current Leases (those named
/// `nodewarden-slot-0..slots-1`; a missing one is free).
pub fn slot_view(leases: &[Lease], holder: &str, slots: u32, now: Timestamp) -> SlotView {
    let by_name: BTreeMap<&str, &Lease> = leases
        .iter()
        .filter_map(|l| Some((l.metadata.name.as_deref()?, l)))
        .collect();
    let mut holders = Vec::new();
    let mut free = false;
    for i in 0..slots.max(1) {
        let name = slot_name(i);
        match by_name.get(name.as_str()).and_then(|l| live_holder(l, now)) {
            Some(h) if h == holder => return SlotView::Held,
            Some(h) => holders.push(h),
            None => free = true,
        }
    }
    if free {
        SlotView::Free
    } else {
        SlotView::Busy { holders }
    }
}

fn micro(t: Timestamp) -> MicroTime {
    MicroTime(t)
}

/// The Lease semaphore.
#[derive(Clone)]
pub struct Slots {
    kube: Kube,
    api: Api<Lease>,
    cfg: SlotConfig,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slots")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Slots {
    pub fn new(kube: Kube, cfg: SlotConfig) -> Self {
        Slots {
            api: Api::namespaced(kube.client().clone(), &cfg.namespace),
            kube,
            cfg,
            clock: Arc::new(SystemClock),
        }
    }

    /// Where "now" comes from for expiry and renew times.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn config(&self) -> &SlotConfig {
        &self.cfg
    }

    fn duration_secs(&self) -> i32 {
        i32::try_from(self.cfg.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// One LIST of the slot Leases.
    pub async fn leases(&self) -> Result<Vec<Lease>, GuardError> {
        let lp = ListParams::default().labels(SLOT_LABEL);
        let what = format!("list slot leases in {}", self.cfg.namespace);
        let list = self.kube.call(what, self.api.list(&lp)).await?;
        Ok(list.items)
    }

    /// "Now" by this guard's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The planner's view from Leases already listed with [`Slots::leases`].
    pub fn view_of(&self, leases: &[Lease]) -> SlotView {
        slot_view(leases, &self.cfg.holder, self.cfg.slots, self.clock.now())
    }

    /// The planner's view (one LIST).
    pub async fn view(&self) -> Result<SlotView, GuardError> {
        let leases = self.leases().await?;
        Ok(slot_view(
            &leases,
            &self.cfg.holder,
            self.cfg.slots,
            self.clock.now(),
        ))
    }

    fn fresh_spec(&self, now: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.cfg.holder.clone()),
            lease_duration_seconds: Some(self.duration_secs()),
            acquire_time: Some(micro(now)),
            renew_time: Some(micro(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Takes a slot: the one this node already holds, else a missing, free or
    /// expired one. Returns the Lease name. [`GuardError::Busy`] names the
    /// live holders when none is free.
    pub async fn acquire(&self) -> Result<String, GuardError> {
        let leases = self.leases().await?;
        let by_name: BTreeMap<String, Lease> = leases
            .into_iter()
            .filter_map(|l| Some((l.metadata.name.clone()?, l)))
            .collect();
        let now = self.clock.now();
        // Already ours (an agent restart): renew it and keep it.
        for i in 0..self.cfg.slots.max(1) {
            let name = slot_name(i);
            if let Some(l) = by_name.get(&name)
                && live_holder(l, now).as_deref() == Some(self.cfg.holder.as_str())
            {
                self.renew(&name).await?;
                return Ok(name);
            }
        }
        let mut holders = Vec::new();
        for i in 0..self.cfg.slots.max(1) {
            let name = slot_name(i);
            let attempt = match by_name.get(&name) {
                None => self.create(&name, now).await,
                Some(l) => match live_holder(l, now) {
                    Some(h) => {
                        holders.push(h);
                        continue;
                    }
                    None => self.take_over(l, now).await,
                },
            };
            match attempt {
                Ok(()) => {
                    tracing::info!(lease = %name, "disruption slot acquired");
                    return Ok(name);
                }
                // Someone else won this slot: try the next one.
                Err(e) if e.is_conflict() => {
                    holders.push(format!("{name} (taken concurrently)"));
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(GuardError::Busy { holders })
    }

    async fn create(&self, name: &str, now: Timestamp) -> Result<(), KubeError> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(self.cfg.namespace.clone()),
                labels: Some([(SLOT_LABEL.to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            spec: Some(self.fresh_spec(now, 0)),
        };
        let what = format!("create lease {}/{name}", self.cfg.namespace);
        self.kube
            .call(what, self.api.create(&PostParams::default(), &lease))
            .await
            .map(|_| ())
    }

    /// PUT with the read `resourceVersion`: 409 if anyone wrote since.
    async fn take_over(&self, old: &Lease, now: Timestamp) -> Result<(), KubeError> {
        let mut lease = old.clone();
        let transitions = old
            .spec
            .as_ref()
            .and_then(|s| s.lease_transitions)
            .unwrap_or(0)
            .saturating_add(1);
        lease.spec = Some(self.fresh_spec(now, transitions));
        lease
            .metadata
            .labels
            .get_or_insert_default()
            .insert(SLOT_LABEL.into(), "true".into());
        let name = old.metadata.name.clone().unwrap_or_default();
        let what = format!("take over lease {}/{name}", self.cfg.namespace);
        self.kube
            .call(
                what,
                self.api.replace(&name, &PostParams::default(), &lease),
            )
            .await
            .map(|_| ())
    }

    async fn get(&self, lease: &str) -> Result<Lease, KubeError> {
        let what = format!("get lease {}/{lease}", self.cfg.namespace);
        self.kube.call(what, self.api.get(lease)).await
    }

    /// Extends a held slot. [`GuardError::Lost`] when it is not ours any more
    /// (it expired and someone took it over): stop disrupting.
    pub async fn renew(&self, lease: &str) -> Result<(), GuardError> {
        for _ in 0..3 {
            let mut l = self.get(lease).await?;
            let now = self.clock.now();
            let holder = l.spec.as_ref().and_then(|s| s.holder_identity.clone());
            if holder.as_deref() != Some(self.cfg.holder.as_str()) {
                return Err(GuardError::Lost {
                    lease: lease.into(),
                    holder: self.cfg.holder.clone(),
                    now_held_by: holder.filter(|h| !h.is_empty()),
                });
            }
            let spec = l.spec.get_or_insert_default();
            spec.renew_time = Some(micro(now));
            spec.lease_duration_seconds = Some(self.duration_secs());
            let what = format!("renew lease {}/{lease}", self.cfg.namespace);
            match self
                .kube
                .call(what, self.api.replace(lease, &PostParams::default(), &l))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(GuardError::Lost {
            lease: lease.into(),
            holder: self.cfg.holder.clone(),
            now_held_by: None,
        })
    }

    /// Gives the slot back (clears the holder) if it is still ours; a slot
    /// that is already someone else's or gone is left alone.
    pub async fn release(&self, lease: &str) -> Result<(), GuardError> {
        for _ in 0..3 {
            let mut l = match self.get(lease).await {
                Ok(l) => l,
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            let spec = l.spec.get_or_insert_default();
            if spec.holder_identity.as_deref() != Some(self.cfg.holder.as_str()) {
                return Ok(());
            }
            spec.holder_identity = None;
            spec.renew_time = None;
            spec.acquire_time = None;
            let what = format!("release lease {}/{lease}", self.cfg.namespace);
            match self
                .kube
                .call(what, self.api.replace(lease, &PostParams::default(), &l))
                .await
            {
                Ok(_) => {
                    tracing::info!(lease, "disruption slot released");
                    return Ok(());
                }
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(GuardError::Kube(KubeError::Api {
            what: format!("release lease {lease}"),
            code: 409,
            reason: "Conflict".into(),
            message: "still conflicting after 3 attempts".into(),
        }))
    }

    /// Renews `lease` every third of its duration until the handle is dropped
    /// or the slot is lost; `lost` fires with the error that ended it.
    pub fn keep_renewed(&self, lease: &str) -> Renewal {
        let me = self.clone();
        let lease = lease.to_string();
        let (tx, rx) = tokio::sync::watch::channel(None);
        let every = (self.cfg.lease_duration / 3).max(Duration::from_secs(1));
        let task = tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                tokio::time::sleep(every).await;
                match me.renew(&lease).await {
                    Ok(()) => failures = 0,
                    Err(e @ GuardError::Lost { .. }) => {
                        let _ = tx.send(Some(e));
                        return;
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(lease, "renewing the disruption slot: {e}");
                        // Two more tries fit in the Lease's lifetime.
                        if failures >= 3 {
                            let _ = tx.send(Some(e));
                            return;
                        }
                    }
                }
            }
        });
        Renewal { task, lost: rx }
    }
}

/// A background renewal; dropping it stops renewing (it does not release).
#[derive(Debug)]
pub struct Renewal {
    task: tokio::task::JoinHandle<()>,
    /// `Some(error)` once renewing stopped for good.
    pub lost: tokio::sync::watch::Receiver<Option<GuardError>>,
}

impl Drop for Renewal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ----- storm gate --------------------------------------------------------

#[derive(Debug, Deserialize, Default)]
struct MiniMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Default)]
struct MiniCondition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
}

#[derive(Debug, Deserialize, Default)]
struct MiniStatus {
    #[serde(default)]
    conditions: Vec<MiniCondition>,
}

#[derive(Debug, Deserialize, Default)]
struct MiniNode {
    #[serde(default)]
    metadata: MiniMeta,
    #[serde(default)]
    status: MiniStatus,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MiniListMeta {
    #[serde(rename = "continue", default)]
    continue_: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MiniList {
    #[serde(default)]
    metadata: MiniListMeta,
    #[serde(default)]
    items: Vec<MiniNode>,
}

impl MiniNode {
    fn unhealthy(&self) -> bool {
        let cond = |t: &str| {
            self.status
                .conditions
                .iter()
                .find(|c| c.type_ == t)
                .map(|c| c.status.as_str())
        };
        cond("Ready") != Some("True")
            || cond(COND_REMEDIATING) == Some("True")
            || self
                .metadata
                .annotations
                .get(CORDONED_BY)
                .map(String::as_str)
                == Some(OWNER)
    }
}

/// Counts the other nodes for the storm gate (see the module docs for the cost).
#[derive(Debug, Clone)]
pub struct FleetCounter {
    kube: Kube,
    node: String,
    page: u32,
}

impl FleetCounter {
    pub fn new(kube: Kube, own_node: impl Into<String>) -> Self {
        FleetCounter {
            kube,
            node: own_node.into(),
            page: 200,
        }
    }

    /// Nodes per LIST page (bounds peak memory).
    pub fn with_page(mut self, page: u32) -> Self {
        self.page = page.max(1);
        self
    }

    /// The other nodes and how many of them are NotReady or being remediated.
    pub async fn count(&self) -> Result<FleetView, KubeError> {
        Ok(self.count_all().await?.view_for(&self.node))
    }

    /// Every node (this one included) and the names of the unhealthy ones.
    pub async fn count_all(&self) -> Result<FleetCount, KubeError> {
        let mut out = FleetCount {
            nodes: 0,
            unhealthy: 0,
            unhealthy_names: Some(Vec::new()),
        };
        let mut cont: Option<String> = None;
        let mut pages = 0u32;
        loop {
            let mut lp = ListParams::default().limit(self.page);
            if let Some(c) = &cont {
                lp = lp.continue_token(c);
            }
            let req = kube::core::Request::new("/api/v1/nodes")
                .list(&lp)
                .map_err(|e| KubeError::Config(e.to_string()))?;
            let list: MiniList = self
                .kube
                .call(
                    "list nodes for the storm gate",
                    self.kube.client().request(req),
                )
                .await?;
            for n in list.items {
                out.nodes += 1;
                if n.unhealthy() {
                    out.unhealthy += 1;
                    if let Some(names) = &mut out.unhealthy_names {
                        names.push(n.metadata.name);
                        if names.len() > SHARED_NAMES_MAX {
                            out.unhealthy_names = None;
                        }
                    }
                }
            }
            pages += 1;
            match list.metadata.continue_ {
                Some(c) if !c.is_empty() && pages < 10_000 => cont = Some(c),
                _ => return Ok(out),
            }
        }
    }

    /// Claims the next count of the fleet, so that agents finding the shared
    /// count stale at the same moment do not all list every node: writes
    /// `acquireTime` (and this node as holder) on the fleet Lease with the
    /// listed `resourceVersion`. `None`: another agent claimed it less than
    /// [`FLEET_CLAIM_TTL`] ago, or won the race. The Lease returned is the
    /// one to pass to [`FleetCounter::share`].
    pub async fn claim(
        &self,
        slots: &Slots,
        old: Option<&Lease>,
        now: Timestamp,
    ) -> Result<Option<Lease>, KubeError> {
        if let Some(spec) = old.and_then(|l| l.spec.as_ref())
            && let Some(at) = spec.acquire_time.as_ref()
            && spec.holder_identity.as_deref() != Some(self.node.as_str())
        {
            let age = now.duration_since(at.0);
            let ttl = jiff::SignedDuration::try_from(FLEET_CLAIM_TTL).unwrap_or_default();
            if age < ttl && age > -ttl {
                return Ok(None);
            }
        }
        let mut lease = fleet_lease_base(slots, old);
        let spec = lease.spec.get_or_insert_default();
        spec.holder_identity = Some(self.node.clone());
        spec.acquire_time = Some(micro(now));
        let what = format!(
            "claim the fleet count in lease {}/{FLEET_LEASE}",
            slots.cfg.namespace
        );
        write_fleet_lease(slots, old.is_some(), &lease, what).await
    }

    /// Publishes `count` in the shared fleet Lease ([`FLEET_LEASE`]) so the
    /// other agents can use it instead of listing every node themselves.
    /// `old` is that Lease as last listed (`None`: it does not exist yet). A
    /// conflict means another agent published meanwhile: nothing to do.
    pub async fn share(
        &self,
        slots: &Slots,
        old: Option<&Lease>,
        count: &FleetCount,
        now: Timestamp,
    ) -> Result<(), KubeError> {
        let mut lease = fleet_lease_base(slots, old);
        let ann = lease.metadata.annotations.get_or_insert_default();
        ann.insert(ANN_FLEET_NODES.into(), count.nodes.to_string());
        ann.insert(ANN_FLEET_UNHEALTHY.into(), count.unhealthy.to_string());
        match &count.unhealthy_names {
            Some(n) => ann.insert(ANN_FLEET_NAMES.into(), n.join(",")),
            None => ann.remove(ANN_FLEET_NAMES),
        };
        ann.insert(ANN_FLEET_BY.into(), self.node.clone());
        // The count is done: the claim ends (no holder, no acquireTime).
        lease.spec = Some(LeaseSpec {
            renew_time: Some(micro(now)),
            ..Default::default()
        });
        let what = format!(
            "publish the fleet count in lease {}/{FLEET_LEASE}",
            slots.cfg.namespace
        );
        // A conflict: another agent published meanwhile, nothing to do.
        write_fleet_lease(slots, old.is_some(), &lease, what)
            .await
            .map(|_| ())
    }
}

/// The fleet Lease to write: `old` as listed (its resourceVersion guards the
/// write), or a new one; always carrying the slot label.
fn fleet_lease_base(slots: &Slots, old: Option<&Lease>) -> Lease {
    let mut lease = old.cloned().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(FLEET_LEASE.into()),
            namespace: Some(slots.cfg.namespace.clone()),
            ..Default::default()
        },
        spec: None,
    });
    lease
        .metadata
        .labels
        .get_or_insert_default()
        .insert(SLOT_LABEL.into(), "true".into());
    lease
}

/// Creates the fleet Lease (`exists` false) or replaces it; `Ok(None)` when
/// another agent wrote it first (409).
async fn write_fleet_lease(
    slots: &Slots,
    exists: bool,
    lease: &Lease,
    what: String,
) -> Result<Option<Lease>, KubeError> {
    let pp = PostParams::default();
    let r = if exists {
        let put = slots.api.replace(FLEET_LEASE, &pp, lease);
        slots.kube.call(what, put).await
    } else {
        slots.kube.call(what, slots.api.create(&pp, lease)).await
    };
    match r {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.is_conflict() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The shared fleet count: a Lease next to the slot Leases (same label, so
/// the slot LIST carries it at no extra request). Whichever agent finds it
/// older than its refresh interval while it needs the storm gate counts
/// the nodes and publishes the result; the others read it. In a storm that
/// is one paginated node LIST per interval for the whole cluster instead of
/// one per held agent.
pub const FLEET_LEASE: &str = "nodewarden-fleet";
/// How long a claim to count the fleet keeps other agents from counting.
pub const FLEET_CLAIM_TTL: Duration = Duration::from_secs(15);
/// The oldest shared count a reader uses (readers use a tighter bound: their
/// own refresh interval).
pub const FLEET_SHARED_MAX_AGE: Duration = Duration::from_secs(30);
const ANN_FLEET_NODES: &str = "nodewarden.io/fleet-nodes";
const ANN_FLEET_UNHEALTHY: &str = "nodewarden.io/fleet-unhealthy";
const ANN_FLEET_NAMES: &str = "nodewarden.io/fleet-unhealthy-nodes";
const ANN_FLEET_BY: &str = "nodewarden.io/fleet-counted-by";
/// Above this many unhealthy nodes the names are not published (annotation
/// size); readers then count themselves as unhealthy (conservative).
const SHARED_NAMES_MAX: usize = 500;

/// A count of every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetCount {
    pub nodes: u32,
    pub unhealthy: u32,
    /// The unhealthy nodes' names; `None` when there were too many to keep.
    pub unhealthy_names: Option<Vec<String>>,
}

impl FleetCount {
    /// The storm gate's view from `node`: the other nodes. Without names, the
    /// node itself is assumed unhealthy-and-counted only if that cannot lower
    /// the figure (it stays in `other_unhealthy`: a conservative count).
    pub fn view_for(&self, node: &str) -> FleetView {
        let me_listed = self.nodes > 0;
        let me_unhealthy = match &self.unhealthy_names {
            Some(n) => n.iter().any(|x| x == node),
            None => false,
        };
        FleetView {
            other_nodes: self.nodes.saturating_sub(u32::from(me_listed)),
            other_unhealthy: self.unhealthy.saturating_sub(u32::from(me_unhealthy)),
        }
    }
}

/// The shared count in `leases` (as listed with the slots) if it is fresh
/// at `now`: written at most `max_age` ago and not in the future (beyond
/// 5 s of clock error).
pub fn shared_fleet(leases: &[Lease], now: Timestamp, max_age: Duration) -> Option<FleetCount> {
    let l = fleet_lease(leases)?;
    let at = l.spec.as_ref()?.renew_time.as_ref()?.0;
    let age = now.duration_since(at);
    let max = jiff::SignedDuration::try_from(max_age).ok()?;
    if age > max || age < jiff::SignedDuration::from_secs(-5) {
        return None;
    }
    let ann = l.metadata.annotations.as_ref()?;
    let num = |k: &str| ann.get(k).and_then(|v| v.parse::<u32>().ok());
    Some(FleetCount {
        nodes: num(ANN_FLEET_NODES)?,
        unhealthy: num(ANN_FLEET_UNHEALTHY)?,
        unhealthy_names: ann.get(ANN_FLEET_NAMES).map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        }),
    })
}

/// The shared fleet Lease among `leases`, if any.
pub fn fleet_lease(leases: &[Lease]) -> Option<&Lease> {
    leases
        .iter()
        .find(|l| l.metadata.name.as_deref() == Some(FLEET_LEASE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(name: &str, holder: Option<&str>, renewed: Timestamp, secs: i32) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                lease_duration_seconds: Some(secs),
                renew_time: Some(MicroTime(renewed)),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn views() {
        let now: Timestamp = "2025-06-01T12:00:00Z".parse().unwrap_or_default();
        let ago = |s: i64| now - jiff::SignedDuration::from_secs(s);
        assert_eq!(slot_view(&[], "a", 1, now), SlotView::Free);
        let live = lease("nodewarden-slot-0", Some("b"), ago(10), 60);
        assert_eq!(
            slot_view(std::slice::from_ref(&live), "a", 1, now),
            SlotView::Busy {
                holders: vec!["b".into()]
            }
        );
        assert_eq!(
            slot_view(std::slice::from_ref(&live), "b", 1, now),
            SlotView::Held
        );
        assert_eq!(
            slot_view(std::slice::from_ref(&live), "a", 2, now),
            SlotView::Free
        );
        let expired = lease("nodewarden-slot-0", Some("b"), ago(61), 60);
        assert_eq!(slot_view(&[expired], "a", 1, now), SlotView::Free);
        let released = lease("nodewarden-slot-0", None, ago(1), 60);
        assert_eq!(slot_view(&[released], "a", 1, now), SlotView::Free);
        // A lease outside the slot range does not count.
        let other = lease("nodewarden-slot-5", Some("c"), ago(1), 60);
        assert_eq!(slot_view(&[other], "a", 1, now), SlotView::Free);
    }

    #[test]
    fn shared_fleet_count() {
        let now: Timestamp = "2025-06-01T12:00:00Z".parse().unwrap_or_default();
        let count = FleetCount {
            nodes: 10,
            unhealthy: 3,
            unhealthy_names: Some(vec!["a".into(), "b".into(), "c".into()]),
        };
        assert_eq!(
            count.view_for("a"),
            FleetView {
                other_nodes: 9,
                other_unhealthy: 2
            }
        );
        assert_eq!(count.view_for("z").other_unhealthy, 3);
        // Without names the reader stays counted as unhealthy: never fewer.
        let blind = FleetCount {
            unhealthy_names: None,
            ..count.clone()
        };
        assert_eq!(blind.view_for("a").other_unhealthy, 3);

        let mut l = lease(FLEET_LEASE, Some("x"), now, 0);
        l.metadata.annotations = Some(
            [
                (ANN_FLEET_NODES.to_string(), "10".to_string()),
                (ANN_FLEET_UNHEALTHY.to_string(), "3".to_string()),
                (ANN_FLEET_NAMES.to_string(), "a,b,c".to_string()),
            ]
            .into(),
        );
        let later = |s: i64| now + jiff::SignedDuration::from_secs(s);
        let age = Duration::from_secs(10);
        assert_eq!(
            shared_fleet(std::slice::from_ref(&l), later(5), age),
            Some(count)
        );
        assert_eq!(shared_fleet(std::slice::from_ref(&l), later(11), age), None);
        // Written "in the future" by a skewed clock: not trusted.
        assert_eq!(shared_fleet(std::slice::from_ref(&l), later(-6), age), None);
        // It is not a slot.
        assert_eq!(slot_view(&[l], "a", 1, now), SlotView::Free);
    }

    #[test]
    fn mini_node_health() {
        let n: MiniNode = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x", "annotations": {CORDONED_BY: OWNER}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "images": [{"names": ["a"]}]},
        }))
        .unwrap_or_default();
        assert!(n.unhealthy());
        let n: MiniNode = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap_or_default();
        assert!(!n.unhealthy());
        let n = MiniNode::default();
        assert!(n.unhealthy(), "no Ready condition = not Ready");
    }
}
