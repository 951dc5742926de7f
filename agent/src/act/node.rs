//! This node through the API: cordon with ownership, NodeConditions, and the
//! planner's `NodeView`.
//!
//! Ownership: nodewarden cordons with ONE merge patch that sets
//! `spec.unschedulable` and the annotation `nodewarden.io/cordoned-by:
//! nodewarden` (+ `cordoned-at`, `cordon-reason`), guarded by the
//! `resourceVersion` it read, so an admin's cordon placed between the read and
//! the write is never claimed (409 → read again → it is the admin's). An
//! admin's cordon is used as is, never annotated, and never lifted: `uncordon`
//! refuses a cordoned node without the annotation. `disown_cordon` hands a
//! cordon over to humans (annotation removed, node stays cordoned).
//!
//! Conditions: one NodeCondition per problem plus nodewarden's own
//! (`NodewardenRemediating`, `NodewardenExhausted`, `NodewardenMaintenance`),
//! written with a strategic-merge patch on `nodes/status` keyed by `type` (as
//! node-problem-detector does). `lastTransitionTime` changes only when the
//! status does; existing conditions are read at start instead of being reset.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::kube::{Kube, KubeError};
use super::{ActError, Clock, SystemClock};
use crate::domain::{Problem, Timestamp};
use crate::view::NodeView;

/// Who cordoned the node; the value is always [`OWNER`].
pub const CORDONED_BY: &str = "nodewarden.io/cordoned-by";
pub const CORDONED_AT: &str = "nodewarden.io/cordoned-at";
pub const CORDON_REASON: &str = "nodewarden.io/cordon-reason";
pub const OWNER: &str = "nodewarden";

/// An episode is open and nodewarden is acting on the node.
pub const COND_REMEDIATING: &str = "NodewardenRemediating";
/// The runbook is exhausted: a human takes over.
pub const COND_EXHAUSTED: &str = "NodewardenExhausted";
/// Planned maintenance is in progress (automatic remediation paused).
pub const COND_MAINTENANCE: &str = "NodewardenMaintenance";

/// How often a 409 on a read-then-patch is retried before giving up.
pub const MAX_CONFLICT_RETRIES: u32 = 5;

/// The condition type of a problem (`KubeletUnhealthy`, `PLEGUnhealthy`, …).
pub fn problem_condition(p: Problem) -> &'static str {
    p.as_str()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// `uncordon` on a node cordoned by someone else.
    #[error(
        "node {node} is cordoned but not by nodewarden (no {CORDONED_BY} annotation); an admin's cordon is never lifted"
    )]
    NotOurs { node: String },
    /// Every read-then-patch attempt lost to a concurrent writer.
    #[error("{what} on node {node}: still conflicting after {attempts} attempts")]
    Conflict {
        node: String,
        what: &'static str,
        attempts: u32,
    },
}

impl NodeError {
    pub fn is_retriable(&self) -> bool {
        match self {
            NodeError::Kube(e) => e.is_retriable(),
            NodeError::NotOurs { .. } => false,
            NodeError::Conflict { .. } => true,
        }
    }
}

impl From<NodeError> for ActError {
    fn from(e: NodeError) -> ActError {
        match e {
            NodeError::Kube(k) => k.into(),
            e => ActError::Failed(e.to_string()),
        }
    }
}

/// What `cordon` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CordonOutcome {
    /// nodewarden cordoned the node now (with its annotation).
    Cordoned,
    /// It was already cordoned by nodewarden.
    AlreadyOurs,
    /// It was already cordoned by someone else: used, not annotated, never lifted.
    AlreadyCordonedByOther,
}

/// What `uncordon` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UncordonOutcome {
    Uncordoned,
    /// Not cordoned at all (nothing to lift).
    NotCordoned,
}

/// The planner's view of a Node object.
pub fn node_view(node: &Node) -> NodeView {
    NodeView {
        unschedulable: node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
        cordon_annotation: ours(node),
    }
}

/// The node carries nodewarden's cordon annotation.
pub fn ours(node: &Node) -> bool {
    node.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CORDONED_BY))
        .is_some_and(|v| v == OWNER)
}

/// The status of the node's `Ready` condition is `True`.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// This node through the API. Cheap to clone.
#[derive(Clone)]
pub struct NodeClient {
    kube: Kube,
    api: Api<Node>,
    node: String,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl NodeClient {
    pub fn new(kube: Kube, node: impl Into<String>) -> Self {
        NodeClient {
            api: Api::all(kube.client().clone()),
            kube,
            node: node.into(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Where `cordoned-at` and condition times come from.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn name(&self) -> &str {
        &self.node
    }

    pub fn kube(&self) -> &Kube {
        &self.kube
    }

    pub async fn get(&self) -> Result<Node, NodeError> {
        let what = format!("get node {}", self.node);
        Ok(self.kube.call(what, self.api.get(&self.node)).await?)
    }

    /// One GET: the planner's view of this node.
    pub async fn view(&self) -> Result<NodeView, NodeError> {
        Ok(node_view(&self.get().await?))
    }

    async fn merge_patch(&self, what: &str, patch: Value) -> Result<Node, KubeError> {
        let what = format!("{what} node {}", self.node);
        self.kube
            .call(
                what,
                self.api
                    .patch(&self.node, &PatchParams::default(), &Patch::Merge(&patch)),
            )
            .await
    }

    /// Read, decide, patch with the read `resourceVersion`; a 409 means someone
    /// wrote in between: read again, at most [`MAX_CONFLICT_RETRIES`] times.
    async fn read_modify_write<T>(
        &self,
        what: &'static str,
        mut decide: impl FnMut(&Node) -> Result<(T, Option<Value>), NodeError>,
    ) -> Result<T, NodeError> {
        for _ in 0..=MAX_CONFLICT_RETRIES {
            let node = self.get().await?;
            let (out, patch) = decide(&node)?;
            let Some(mut patch) = patch else {
                return Ok(out);
            };
            patch["metadata"]["resourceVersion"] = json!(node.metadata.resource_version);
            match self.merge_patch(what, patch).await {
                Ok(_) => return Ok(out),
                Err(e) if e.is_conflict() => {
                    tracing::debug!(node = %self.node, "{what}: conflict, reading again");
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(NodeError::Conflict {
            node: self.node.clone(),
            what,
            attempts: MAX_CONFLICT_RETRIES + 1,
        })
    }

    /// Cordons the node with nodewarden's ownership annotation, unless it is
    /// already cordoned (by nodewarden or by someone else, whose cordon is used as is).
    pub async fn cordon(&self, reason: &str) -> Result<CordonOutcome, NodeError> {
        let at = self.clock.now().to_string();
        self.read_modify_write("cordon", |node| {
            let view = node_view(node);
            Ok(match (view.unschedulable, view.cordon_annotation) {
                (true, true) => (CordonOutcome::AlreadyOurs, None),
                (true, false) => (CordonOutcome::AlreadyCordonedByOther, None),
                (false, _) => (
                    CordonOutcome::Cordoned,
                    Some(json!({
                        "metadata": {"annotations": {
                            CORDONED_BY: OWNER,
                            CORDONED_AT: at,
                            CORDON_REASON: reason,
                        }},
                        "spec": {"unschedulable": true},
                    })),
                ),
            })
        })
        .await
    }

    /// Lifts the cordon only if the node carries nodewarden's annotation;
    /// refuses ([`NodeError::NotOurs`]) a node cordoned by someone else.
    pub async fn uncordon(&self) -> Result<UncordonOutcome, NodeError> {
        let node_name = self.node.clone();
        self.read_modify_write("uncordon", |node| {
            let view = node_view(node);
            let clear = json!({CORDONED_BY: null, CORDONED_AT: null, CORDON_REASON: null});
            match (view.unschedulable, view.cordon_annotation) {
                (true, false) => Err(NodeError::NotOurs {
                    node: node_name.clone(),
                }),
                (true, true) => Ok((
                    UncordonOutcome::Uncordoned,
                    Some(json!({"metadata": {"annotations": clear}, "spec": {"unschedulable": null}})),
                )),
                // Someone uncordoned it already; drop a stale annotation.
                (false, true) => Ok((
                    UncordonOutcome::NotCordoned,
                    Some(json!({"metadata": {"annotations": clear}})),
                )),
                (false, false) => Ok((UncordonOutcome::NotCordoned, None)),
            }
        })
        .await
    }

    /// Removes nodewarden's annotation and leaves the node cordoned: a human owns
    /// the cordon now. Returns whether there was an annotation to remove.
    pub async fn disown_cordon(&self) -> Result<bool, NodeError> {
        self.read_modify_write("disown cordon of", |node| {
            let has = node
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(CORDONED_BY));
            Ok(if has {
                (
                    true,
                    Some(json!({"metadata": {"annotations": {
                        CORDONED_BY: null, CORDONED_AT: null, CORDON_REASON: null,
                    }}})),
                )
            } else {
                (false, None)
            })
        })
        .await
    }

    /// Watches this one Node (`metadata.name=NODE`) in the background and
    /// publishes the latest object; see [`super::watch::watch_one`].
    pub fn spawn_watch(
        &self,
        times: impl Into<super::watch::WatchTimes>,
        pulse: super::watch::ApiPulse,
    ) -> (watch::Receiver<NodeSnapshot>, tokio::task::JoinHandle<()>) {
        super::watch::watch_one(self.api.clone(), &self.node, times, pulse)
    }
}

/// The watched Node, for `Views::cluster()` (no API call).
pub type NodeSnapshot = super::kube::Watched<Node>;

impl NodeSnapshot {
    pub fn view(&self) -> Option<NodeView> {
        self.obj.as_ref().map(node_view)
    }
}

/// One condition nodewarden wants on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredCondition {
    pub type_: String,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl DesiredCondition {
    pub fn new(type_: &str, status: bool, reason: &str, message: impl Into<String>) -> Self {
        DesiredCondition {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// nodewarden's NodeConditions on this node.
#[derive(Debug)]
pub struct NodeConditions {
    node: NodeClient,
    /// Conditions as last read or written, by type; `None` until loaded.
    known: Mutex<Option<BTreeMap<String, NodeCondition>>>,
    /// Re-send unchanged conditions (fresh `lastHeartbeatTime`) this often.
    heartbeat_every: Duration,
}

/// Default heartbeat of unchanged conditions (node-problem-detector's cadence).
pub const DEFAULT_CONDITION_HEARTBEAT: Duration = Duration::from_secs(300);

fn status_str(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

impl NodeConditions {
    pub fn new(node: NodeClient) -> Self {
        NodeConditions {
            node,
            known: Mutex::new(None),
            heartbeat_every: DEFAULT_CONDITION_HEARTBEAT,
        }
    }

    pub fn with_heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat_every = every;
        self
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Option<BTreeMap<String, NodeCondition>>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, node: &Node) -> usize {
        let map: BTreeMap<String, NodeCondition> = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.type_.clone(), c))
            .collect();
        let n = map.len();
        *self.known() = Some(map);
        n
    }

    /// Reads the node's existing conditions (at start: never reset them).
    /// Returns how many conditions the node has.
    pub async fn load(&self) -> Result<usize, NodeError> {
        let node = self.node.get().await?;
        Ok(self.remember(&node))
    }

    /// A condition as last read or written.
    pub fn current(&self, type_: &str) -> Option<NodeCondition> {
        self.known().as_ref()?.get(type_).cloned()
    }

    /// Brings the given conditions to the desired state with one strategic-merge
    /// patch on `nodes/status`, only when one changed (status, reason, message)
    /// or the last heartbeat is older than the heartbeat interval. Returns
    /// whether a patch was sent. Loads the existing conditions first if needed.
    pub async fn set(&self, desired: &[DesiredCondition]) -> Result<bool, NodeError> {
        if self.known().is_none() {
            self.load().await?;
        }
        let now = self.node.clock.now();
        let patch = {
            let known = self.known();
            let known = known.as_ref();
            let mut due = false;
            let mut conds = Vec::new();
            for d in desired {
                let old = known.and_then(|k| k.get(&d.type_));
                let status = status_str(d.status);
                let ltt = match old {
                    Some(o) if o.status == status => o.last_transition_time.clone(),
                    _ => None,
                }
                .map(|t| t.0)
                .unwrap_or(now);
                let changed = old.is_none_or(|o| {
                    o.status != status
                        || o.reason.as_deref() != Some(d.reason.as_str())
                        || o.message.as_deref() != Some(d.message.as_str())
                });
                let stale = old
                    .and_then(|o| o.last_heartbeat_time.as_ref())
                    .is_none_or(|t| heartbeat_due(t.0, now, self.heartbeat_every));
                due |= changed || stale;
                conds.push(NodeCondition {
                    type_: d.type_.clone(),
                    status: status.into(),
                    reason: Some(d.reason.clone()),
                    message: Some(d.message.clone()),
                    last_transition_time: Some(Time(ltt)),
                    last_heartbeat_time: Some(Time(now)),
                });
            }
            if !due {
                return Ok(false);
            }
            json!({"status": {"conditions": conds}})
        };
        let what = format!("patch conditions of node {}", self.node.node);
        let node = self
            .node
            .kube
            .call(
                what,
                self.node.api.patch_status(
                    &self.node.node,
                    &PatchParams::default(),
                    &Patch::Strategic(&patch),
                ),
            )
            .await?;
        self.remember(&node);
        Ok(true)
    }
}

fn heartbeat_due(last: Timestamp, now: Timestamp, every: Duration) -> bool {
    match Duration::try_from(now.duration_since(last)) {
        Ok(d) => d >= every,
        Err(_) => false, // last heartbeat in the future (clock skew): not due
    }
}

#[cfg(test)]
mod tests;
