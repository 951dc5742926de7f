//! The storm gate's view of the other nodes, and the count shared through
//! the `nodewarden-fleet` Lease.
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
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, PostParams};
use serde::Deserialize;

use super::kube::{Kube, KubeError};
use super::node::{COND_REMEDIATING, CORDONED_BY, OWNER};

use super::slots::{SLOT_LABEL, Slots, micro};
use crate::domain::Timestamp;
use crate::view::FleetView;

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
mod tests;
