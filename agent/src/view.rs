//! What the planner sees of the world: the node and cluster as last observed
//! and the node's own facts. Plain data on the ground floor, so the probes and
//! the API adapters that fill it in never import the planner.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::domain::Timestamp;

/// The node as the API server last showed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    pub unschedulable: bool,
    /// nodewarden's cordon annotation is on the node.
    pub cordon_annotation: bool,
}

/// The cluster-wide disruption slots, as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum SlotView {
    /// This node holds a slot.
    Held,
    /// At least one slot is free (or expired) and could be taken.
    Free,
    /// Every slot is held by a live holder.
    Busy {
        holders: Vec<String>,
    },
    Unknown,
}

/// The other nodes, for the storm gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetView {
    pub other_nodes: u32,
    /// Other nodes NotReady or cordoned by nodewarden.
    pub other_unhealthy: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    pub api_reachable: bool,
    /// `None` when the node has not been seen (API unreachable since start).
    pub node: Option<NodeView>,
    pub slot: SlotView,
    pub fleet: Option<FleetView>,
}

impl ClusterView {
    /// A reachable API, a schedulable node, a free slot and a healthy fleet.
    pub fn calm(other_nodes: u32) -> Self {
        ClusterView {
            api_reachable: true,
            node: Some(NodeView {
                unschedulable: false,
                cordon_annotation: false,
            }),
            slot: SlotView::Free,
            fleet: Some(FleetView {
                other_nodes,
                other_unhealthy: 0,
            }),
        }
    }
}

/// Facts about the node itself, from the probes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeFacts {
    /// Units known to exist, with the time they last became active (`InactiveExitTimestamp`).
    /// `None` when systemd could not be asked.
    pub units: Option<BTreeMap<String, Option<Timestamp>>>,
    /// The unit of the container runtime the kubelet uses, when detected.
    pub runtime_unit: Option<String>,
    /// Units restarted after `runtime_unit`, in order, by the same step: the
    /// rest of the layout (cri-dockerd: `docker.service` after
    /// `cri-docker.service`, since restarting cri-dockerd does not restart
    /// the dockerd behind it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtime_then: Vec<String>,
    pub boot_id: Option<String>,
    /// Units of `units` that exist but are not running (a time-sync daemon
    /// is restarted only when it runs; one is never started).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub inactive: BTreeSet<String>,
}

impl NodeFacts {
    pub fn unit_exists(&self, unit: &str) -> Option<bool> {
        self.units.as_ref().map(|u| u.contains_key(unit))
    }
    pub fn unit_active_since(&self, unit: &str) -> Option<Timestamp> {
        self.units
            .as_ref()
            .and_then(|u| u.get(unit).copied().flatten())
    }
}
