//! What a kubelet does, as the API server sees it: one definition for both servers.
//!
//! The API calls of a kubelet (register the Node and its Lease, post node
//! status, move a pod to Running + Ready through `pods/status`) are plain
//! functions here, used on the fake and on the real server alike.
//!
//! What a kubelet does in the background (finish a terminating pod once its
//! containers stopped, unless it is stuck) and what the StatefulSet
//! controller does (recreate an evicted pod under the same name once the old
//! one is gone) are modelled inside `tests/fakeapi` (`kubelet_step`,
//! `set_node_kubelet_alive`, the same-name replacement); on the real server
//! [`HarnessKubelet`] does the same through the API. The shared suite holds
//! both to the same observable behaviour: a scenario that sees a difference fails.
//! Real behaviour reproduced (docs/platform-facts.md, "Eviction and
//! PodDisruptionBudgets" and "A node whose kubelet or runtime is stuck"):
//! a terminating pod is removed by the kubelet's final `DELETE` with grace 0
//! and a UID precondition; a replacement pod keeps name, labels and owner
//! and starts Pending and unscheduled (no scheduler runs in either).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::{Value, json};

pub fn micro_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn secs_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer in 10 s"))
}

/// The kubelet's four node conditions as it posts them.
pub fn kubelet_conditions(heartbeat: &str) -> Value {
    json!([
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
         "message": "kubelet has sufficient memory available", "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat},
        {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure",
         "message": "kubelet has no disk pressure", "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat},
        {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID",
         "message": "kubelet has sufficient PID available", "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat},
        {"type": "Ready", "status": "True", "reason": "KubeletReady",
         "message": "kubelet is posting ready status", "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat},
    ])
}

/// Registers the Node (Ready, with the kubelet's conditions) and creates its
/// Lease in `kube-node-lease`, as a kubelet does at start.
pub async fn register_node(client: &kube::Client, name: &str) -> Node {
    let nodes: Api<Node> = Api::all(client.clone());
    let now = secs_now();
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
        }},
        "spec": {},
        "status": {
            "conditions": kubelet_conditions(&now),
            "addresses": [{"type": "Hostname", "address": name}],
        },
    }))
    .expect("node json");
    let created = bounded("create node", nodes.create(&PostParams::default(), &node))
        .await
        .unwrap_or_else(|e| panic!("create node {name}: {e}"));
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": [{
            "apiVersion": "v1", "kind": "Node", "name": name,
            "uid": created.metadata.uid.clone().unwrap_or_default(),
        }]},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro_now()},
    }))
    .expect("lease json");
    bounded(
        "create lease",
        leases.create(&PostParams::default(), &lease),
    )
    .await
    .unwrap_or_else(|e| panic!("create lease {name}: {e}"));
    created
}

/// The kubelet's status heartbeat: a strategic-merge patch of `nodes/status`
/// that carries only its own four conditions (merged by `type`).
pub async fn post_node_status(client: &kube::Client, node: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({"status": {"conditions": kubelet_conditions(&secs_now())}});
    bounded(
        "node status",
        nodes.patch_status(node, &PatchParams::default(), &Patch::Strategic(&patch)),
    )
    .await
    .unwrap_or_else(|e| panic!("kubelet status of {node}: {e}"));
}

/// The kubelet's heartbeat: `renewTime` of its Lease in `kube-node-lease`.
pub async fn renew_lease(client: &kube::Client, node: &str) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let patch = json!({"spec": {"renewTime": micro_now()}});
    bounded(
        "renew lease",
        leases.patch(node, &PatchParams::default(), &Patch::Merge(&patch)),
    )
    .await
    .unwrap_or_else(|e| panic!("renew lease {node}: {e}"));
}

/// Moves a pod to Running and sets its Ready condition (`pods/status`).
pub async fn run_pod(client: &kube::Client, ns: &str, name: &str, ready: bool) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let flag = if ready { "True" } else { "False" };
    let now = secs_now();
    let patch = json!({"status": {
        "phase": "Running",
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
            {"type": "Ready", "status": flag, "lastTransitionTime": now},
        ],
    }});
    bounded(
        "pod status",
        pods.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch)),
    )
    .await
    .unwrap_or_else(|e| panic!("pod status {ns}/{name}: {e}"));
}

/// The kubelets of every node (and the StatefulSet controller) on the real
/// server: a background loop through the admin client.
#[derive(Clone)]
pub struct HarnessKubelet {
    client: kube::Client,
    stuck: Arc<Mutex<BTreeSet<String>>>,
}

impl HarnessKubelet {
    pub fn new(client: kube::Client) -> Self {
        HarnessKubelet {
            client,
            stuck: Arc::default(),
        }
    }

    pub fn set_stuck(&self, node: &str, stuck: bool) {
        let mut s = self.stuck.lock().expect("lock");
        if stuck {
            s.insert(node.to_string());
        } else {
            s.remove(node);
        }
    }

    fn is_stuck(&self, node: Option<&str>) -> bool {
        node.is_some_and(|n| self.stuck.lock().expect("lock").contains(n))
    }

    /// Runs until aborted: finishes terminating pods every 100 ms, renews
    /// the node Leases every 2 s.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut pending: BTreeMap<(String, String), Pod> = BTreeMap::new();
            let mut tick = 0u64;
            let mut failing = false;
            loop {
                match self.finish_terminating(&mut pending).await {
                    // One line per outage (the 410 scenario restarts the apiserver).
                    Err(e) if !failing => {
                        eprintln!("harness kubelet: {e} (retrying every 100 ms)");
                        failing = true;
                    }
                    Err(_) => {}
                    Ok(()) => failing = false,
                }
                self.replace(&mut pending).await;
                if tick.is_multiple_of(20)
                    && !failing
                    && let Err(e) = self.renew_leases().await
                {
                    eprintln!("harness kubelet: leases: {e}");
                }
                tick += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }

    async fn finish_terminating(
        &self,
        pending: &mut BTreeMap<(String, String), Pod>,
    ) -> Result<(), kube::Error> {
        let all: Api<Pod> = Api::all(self.client.clone());
        let list = all.list(&ListParams::default()).await?;
        for pod in list.items {
            if pod.metadata.deletion_timestamp.is_none() {
                continue;
            }
            let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
            if self.is_stuck(node) {
                continue;
            }
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: pod.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(&name, &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => continue,
                Err(e) => return Err(e),
            }
            let sts = pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "StatefulSet" && o.controller == Some(true));
            if sts {
                pending.insert((ns, name), pod);
            }
        }
        Ok(())
    }

    /// The StatefulSet controller: the same name, a new UID, Pending and unscheduled.
    async fn replace(&self, pending: &mut BTreeMap<(String, String), Pod>) {
        let mut done = Vec::new();
        for ((ns, name), old) in pending.iter() {
            let Some(owner) = old
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.kind == "StatefulSet")
            else {
                done.push((ns.clone(), name.clone()));
                continue;
            };
            let sets: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
            match sets.get_opt(&owner.name).await {
                Ok(Some(s)) if s.spec.as_ref().and_then(|s| s.replicas) != Some(0) => {}
                Ok(_) => {
                    done.push((ns.clone(), name.clone()));
                    continue;
                }
                Err(_) => continue,
            }
            let mut spec = old.spec.clone().unwrap_or_default();
            spec.node_name = None;
            let pod = Pod {
                metadata: kube::api::ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    labels: old.metadata.labels.clone(),
                    annotations: old.metadata.annotations.clone(),
                    owner_references: old.metadata.owner_references.clone(),
                    ..Default::default()
                },
                spec: Some(spec),
                status: None,
            };
            let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            match api.create(&PostParams::default(), &pod).await {
                Ok(_) => done.push((ns.clone(), name.clone())),
                // The old pod is still there: next tick.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => eprintln!("harness kubelet: replace {ns}/{name}: {e}"),
            }
        }
        for k in done {
            pending.remove(&k);
        }
    }

    async fn renew_leases(&self) -> Result<(), kube::Error> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        for l in leases.list(&ListParams::default()).await?.items {
            let name = l.metadata.name.clone().unwrap_or_default();
            if self.is_stuck(Some(&name)) {
                continue;
            }
            let patch = json!({"spec": {"renewTime": micro_now()}});
            match leases
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) | Err(kube::Error::Api(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
