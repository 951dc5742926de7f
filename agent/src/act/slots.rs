//! Disruption slots: a Lease semaphore, so that at most
//! `maxConcurrentDisruptions` nodes are disrupted at once.
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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, ListParams, PostParams};

use super::kube::{Kube, KubeError};
use super::{ActError, Clock, SystemClock};
use crate::domain::Timestamp;
use crate::view::SlotView;

/// Slot Leases are named `nodewarden-slot-<i>`.
pub const SLOT_PREFIX: &str = "nodewarden-slot-";
/// Label on the slot Leases (one LIST reads them all).
pub const SLOT_LABEL: &str = "nodewarden.io/disruption-slot";

pub fn slot_name(i: u32) -> String {
    format!("{SLOT_PREFIX}{i}")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
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

impl SlotError {
    pub fn is_retriable(&self) -> bool {
        match self {
            SlotError::Kube(e) => e.is_retriable(),
            SlotError::Busy { .. } => true,
            SlotError::Lost { .. } => false,
        }
    }
}

impl From<SlotError> for ActError {
    fn from(e: SlotError) -> ActError {
        match e {
            SlotError::Kube(k) => k.into(),
            SlotError::Busy { holders } => ActError::SlotBusy(holders.join(", ")),
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

pub(super) fn micro(t: Timestamp) -> MicroTime {
    MicroTime(t)
}

/// The Lease semaphore.
#[derive(Clone)]
pub struct Slots {
    pub(super) kube: Kube,
    pub(super) api: Api<Lease>,
    pub(super) cfg: SlotConfig,
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
    pub async fn leases(&self) -> Result<Vec<Lease>, SlotError> {
        let lp = ListParams::default().labels(SLOT_LABEL);
        let what = format!("list slot leases in {}", self.cfg.namespace);
        let list = self.kube.call(what, self.api.list(&lp)).await?;
        Ok(list.items)
    }

    /// "Now" by these slots' clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The planner's view from Leases already listed with [`Slots::leases`].
    pub fn view_of(&self, leases: &[Lease]) -> SlotView {
        slot_view(leases, &self.cfg.holder, self.cfg.slots, self.clock.now())
    }

    /// The planner's view (one LIST).
    pub async fn view(&self) -> Result<SlotView, SlotError> {
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
    /// expired one. Returns the Lease name. [`SlotError::Busy`] names the
    /// live holders when none is free.
    pub async fn acquire(&self) -> Result<String, SlotError> {
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
        Err(SlotError::Busy { holders })
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

    /// Extends a held slot. [`SlotError::Lost`] when it is not ours any more
    /// (it expired and someone took it over): stop disrupting.
    pub async fn renew(&self, lease: &str) -> Result<(), SlotError> {
        for _ in 0..3 {
            let mut l = self.get(lease).await?;
            let now = self.clock.now();
            let holder = l.spec.as_ref().and_then(|s| s.holder_identity.clone());
            if holder.as_deref() != Some(self.cfg.holder.as_str()) {
                return Err(SlotError::Lost {
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
        Err(SlotError::Lost {
            lease: lease.into(),
            holder: self.cfg.holder.clone(),
            now_held_by: None,
        })
    }

    /// Gives the slot back (clears the holder) if it is still ours; a slot
    /// that is already someone else's or gone is left alone.
    pub async fn release(&self, lease: &str) -> Result<(), SlotError> {
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
        Err(SlotError::Kube(KubeError::Api {
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
                    Err(e @ SlotError::Lost { .. }) => {
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
    pub lost: tokio::sync::watch::Receiver<Option<SlotError>>,
}

impl Drop for Renewal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
pub(super) mod tests;
