//! `mode: request`: taint the node for an external controller and watch it
//! empty; the taint stays until `clear_drain_request`.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::time::Instant;

use super::report::*;
use super::wait::WaitEnd;
use super::{DRAIN_REQUEST_TAINT, Drainer, Stop, Track};
use super::{PodVerdict, verdict};
use crate::act::kube::KubeError;
use crate::runbook::Drain;

impl Drainer {
    pub(super) async fn request(
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
                    PodVerdict::Skip(r) => {
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
