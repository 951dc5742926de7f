//! What a dry-run assumes of the world it cannot see: the cluster as the
//! operator describes it with `dry-run`'s flags, and a node whose every
//! candidate unit is present and long up.

use std::collections::BTreeMap;

use crate::domain::Timestamp;
use crate::plan::{ClusterView, FleetView, NodeFacts, NodeView, SlotView};
use crate::runbook::{Action, Runbook};

/// The cluster a dry-run assumes, as the operator describes it (`dry-run`'s
/// flags): how many other nodes and how many of them unhealthy (the storm
/// gate), the API down, an admin's cordon, every slot held by someone else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterScenario {
    pub other_nodes: u32,
    pub other_unhealthy: u32,
    pub api_down: bool,
    pub admin_cordoned: bool,
    pub slot_busy: Option<String>,
}

impl ClusterScenario {
    /// The planner's view of that cluster; an error when it cannot exist.
    pub fn view(&self) -> Result<ClusterView, String> {
        if self.other_unhealthy > self.other_nodes {
            return Err(format!(
                "--unhealthy-nodes {} is more than --cluster-nodes {}",
                self.other_unhealthy, self.other_nodes
            ));
        }
        let mut cluster = ClusterView::calm(self.other_nodes);
        cluster.fleet = Some(FleetView {
            other_nodes: self.other_nodes,
            other_unhealthy: self.other_unhealthy,
        });
        if self.api_down {
            // Nothing of the API is known: no node, no slots, no fleet.
            cluster.api_reachable = false;
            cluster.node = None;
            cluster.slot = SlotView::Unknown;
            cluster.fleet = None;
        }
        if self.admin_cordoned
            && let Some(n) = cluster.node.as_mut()
        {
            *n = NodeView {
                unschedulable: true,
                cordon_annotation: false,
            };
        }
        if let Some(h) = &self.slot_busy {
            cluster.slot = SlotView::Busy {
                holders: vec![h.clone()],
            };
        }
        Ok(cluster)
    }
}

/// Node facts for a dry-run when systemd is not asked: every candidate unit
/// is assumed present and long up, so the timeline shows the full ladder.
pub fn assumed_node_facts(runbook: &Runbook) -> NodeFacts {
    let mut units: BTreeMap<String, Option<Timestamp>> = BTreeMap::new();
    for s in &runbook.spec.steps {
        match &s.action {
            Action::RestartUnit(r) => {
                units.insert(r.unit.clone(), None);
            }
            Action::RestartContainerRuntime(r) => {
                if let Some(u) = r.units.first() {
                    units.insert(u.clone(), None);
                }
            }
            Action::RestartTimeSync(r) => {
                if let Some(u) = r.units.first() {
                    units.insert(u.clone(), None);
                }
            }
            _ => {}
        }
    }
    NodeFacts {
        units: Some(units),
        runtime_unit: None,
        runtime_then: Vec::new(),
        boot_id: None,
        inactive: Default::default(),
    }
}

#[cfg(test)]
mod tests;
