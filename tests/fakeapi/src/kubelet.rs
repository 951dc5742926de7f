//! A node's kubelet as the API server sees it: Lease renewals, node status
//! updates, and confirming the termination of the node's pods.
//!
//! A kubelet that is hung or failing does none of the three; one whose PLEG
//! is stuck still renews its Lease and posts `Ready=False` ("PLEG is not
//! healthy"), but cannot finish pods, which then stay `Terminating`
//! (docs/platform-facts.md "A node whose kubelet or runtime is stuck", seen on
//! a real apiserver with a kubelet that stops; "kubelet numbers" for the PLEG
//! message).

use jiff::Timestamp;
use serde_json::json;

use crate::FakeApi;
use crate::store::Kind;

/// What one node's kubelet does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeKubelet {
    /// Renews its Lease, posts `Ready=True`, finishes terminating pods.
    #[default]
    Healthy,
    /// Renews its Lease and posts `Ready=False` with the PLEG message; its
    /// terminating pods are never finished.
    PlegStuck,
    /// No Lease renewal, no status update, no terminating pod finished.
    Hung,
}

/// MicroTime, as the kubelet writes `spec.renewTime`.
fn micro(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

impl FakeApi {
    /// Sets what `node`'s kubelet does. Terminating pods on the node are
    /// finished only while it is [`NodeKubelet::Healthy`].
    pub fn set_node_kubelet(&self, node: &str, kubelet: NodeKubelet) {
        self.set_node_kubelet_alive(node, kubelet == NodeKubelet::Healthy);
        self.kubelets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node.to_string(), kubelet);
    }

    /// What `node`'s kubelet does now (healthy unless set).
    pub fn node_kubelet(&self, node: &str) -> NodeKubelet {
        self.kubelets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .copied()
            .unwrap_or_default()
    }

    /// One heartbeat of `node`'s kubelet, as it sends every
    /// `nodeStatusUpdateFrequency` / Lease renew interval (10 s in a real
    /// kubelet; call it as often as the test's clocks need): renews
    /// `kube-node-lease/NODE` (created on the first beat) and the node's
    /// `Ready` condition. A hung kubelet sends nothing.
    pub fn kubelet_heartbeat(&self, node: &str) {
        let kubelet = self.node_kubelet(node);
        if kubelet == NodeKubelet::Hung {
            return;
        }
        let now = self.state().now();
        let renew = micro(now);
        let lease = self.modify(Kind::Lease, "kube-node-lease", node, |l| {
            l["spec"]["renewTime"] = json!(renew);
        });
        if lease.is_none() {
            self.create(
                Kind::Lease,
                "kube-node-lease",
                json!({
                    "metadata": {"name": node, "namespace": "kube-node-lease"},
                    "spec": {
                        "holderIdentity": node,
                        "leaseDurationSeconds": 40,
                        "renewTime": renew,
                    },
                }),
            );
        }
        let (status, reason, message) = match kubelet {
            NodeKubelet::PlegStuck => (
                "False",
                "KubeletNotReady",
                "PLEG is not healthy: pleg was last seen active 3m0.2s ago; threshold is 3m0s",
            ),
            _ => ("True", "KubeletReady", "kubelet is posting ready status"),
        };
        let beat = crate::util::rfc3339(now);
        self.modify(Kind::Node, "", node, |n| {
            let Some(conds) = n["status"]["conditions"].as_array_mut() else {
                return;
            };
            if let Some(c) = conds.iter_mut().find(|c| c["type"] == "Ready") {
                if c["status"] != status {
                    c["lastTransitionTime"] = json!(beat);
                }
                c["status"] = json!(status);
                c["reason"] = json!(reason);
                c["message"] = json!(message);
                c["lastHeartbeatTime"] = json!(beat);
            } else {
                conds.push(json!({
                    "type": "Ready", "status": status, "reason": reason,
                    "message": message, "lastHeartbeatTime": beat, "lastTransitionTime": beat,
                }));
            }
        });
    }
}
