//! events.k8s.io/v1 Events on this Node, through `kube::runtime::events::Recorder`.
//!
//! Events about a cluster-scoped object go to the `default` namespace (the
//! Recorder does this for a reference without a namespace). Repeats of the
//! same reason and message within the Recorder's cache window become an
//! EventSeries patch instead of a new object.

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

use crate::act::Report;
use crate::act::kube::{Kube, KubeError};

/// `reportingController` of nodewarden's Events.
pub const REPORTING_CONTROLLER: &str = "nodewarden.io/agent";

/// The Event `note` is limited to 1 kB by the API.
const MAX_NOTE: usize = 1024;

/// Writes Events about this Node.
#[derive(Clone)]
pub struct EventSink {
    kube: Kube,
    recorder: Recorder,
    reference: ObjectReference,
    timeout: Duration,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("node", &self.reference.name)
            .finish_non_exhaustive()
    }
}

/// The reference of a Node (`uid` lets `kubectl describe node` match it exactly).
pub fn node_reference(node: &str, uid: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(node.into()),
        uid,
        ..Default::default()
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

impl EventSink {
    /// Publish Events in order from a queue, each under the client's deadline,
    /// in a task of their own so a slow API server never stalls the caller.
    pub fn spawn(self) -> (mpsc::Sender<Report>, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Report>(64);
        let task = tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                self.emit_best_effort(&r).await;
            }
        });
        (tx, task)
    }

    /// `instance` is the reporting instance (the node name is a good one).
    pub fn new(kube: Kube, reference: ObjectReference, instance: &str) -> Self {
        let reporter = Reporter {
            controller: REPORTING_CONTROLLER.into(),
            instance: Some(instance.into()),
        };
        EventSink {
            recorder: Recorder::new(kube.client().clone(), reporter),
            timeout: kube.call_timeout(),
            kube,
            reference,
        }
    }

    /// For this node; `uid` from the Node object when known.
    pub fn for_node(kube: Kube, node: &str, uid: Option<String>) -> Self {
        EventSink::new(kube, node_reference(node, uid), node)
    }

    /// Publishes one Event for `report` under the call deadline.
    pub async fn emit(&self, report: &Report) -> Result<(), KubeError> {
        let ev = Event {
            type_: if report.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: truncate(&report.reason, 128),
            note: Some(truncate(&report.message, MAX_NOTE)),
            action: truncate(&report.reason, 128),
            secondary: None,
        };
        let what = format!("publish event {}", report.reason);
        self.kube
            .call_within(
                what,
                self.timeout,
                self.recorder.publish(&ev, &self.reference),
            )
            .await
    }

    /// Best effort: logs a failure instead of returning it (an Event must never fail a step).
    pub async fn emit_best_effort(&self, report: &Report) {
        if let Err(e) = self.emit(report).await {
            tracing::debug!("event not written: {e}");
        }
    }
}

#[cfg(test)]
mod tests;
