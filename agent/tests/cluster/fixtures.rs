//! Fixtures through the API as admin, with objects the real server accepts
//! (containers, selectors, owner UIDs), the same on both servers.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Map, Value, json};

use super::{Cluster, kubelet};

fn labels(pairs: &[(&str, &str)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect::<Map<_, _>>(),
    )
}

fn container() -> Value {
    json!([{"name": "app", "image": "registry.k8s.io/pause:3.10"}])
}

/// A Ready node registered by its kubelet.
pub async fn node<C: Cluster>(c: &C, name: &str) -> Node {
    kubelet::register_node(&c.admin(), name).await
}

/// A workload (`ReplicaSet` or `StatefulSet`) whose pods the test creates
/// itself (no workload controller runs on the real server); returns its UID.
pub async fn workload<C: Cluster>(
    c: &C,
    kind: &str,
    ns: &str,
    name: &str,
    replicas: i32,
    pod_labels: &[(&str, &str)],
) -> String {
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": labels(pod_labels)},
        "template": {"metadata": {"labels": labels(pod_labels)}, "spec": {"containers": container()}},
    });
    let obj = json!({"metadata": {"name": name, "namespace": ns}, "spec": spec.clone()});
    let uid = match kind {
        "ReplicaSet" => {
            let api: Api<ReplicaSet> = Api::namespaced(c.admin(), ns);
            api.create(
                &PostParams::default(),
                &serde_json::from_value(obj).expect("rs"),
            )
            .await
            .map(|o| o.metadata.uid)
        }
        "StatefulSet" => {
            spec["serviceName"] = json!(name);
            let obj = json!({"metadata": {"name": name, "namespace": ns}, "spec": spec});
            let api: Api<StatefulSet> = Api::namespaced(c.admin(), ns);
            api.create(
                &PostParams::default(),
                &serde_json::from_value(obj).expect("sts"),
            )
            .await
            .map(|o| o.metadata.uid)
        }
        other => panic!("workload kind {other}"),
    };
    uid.unwrap_or_else(|e| panic!("create {kind} {ns}/{name} on {}: {e}", c.name()))
        .expect("uid")
}

/// A pod: which node, which owner (kind, name, uid), labels, ready.
pub struct PodFix<'a> {
    pub ns: &'a str,
    pub name: &'a str,
    pub node: &'a str,
    pub owner: Option<(&'a str, &'a str, &'a str)>,
    pub labels: &'a [(&'a str, &'a str)],
    pub ready: bool,
}

/// Creates the pod on its node and lets its kubelet run it (Running, Ready as asked).
pub async fn pod<C: Cluster>(c: &C, f: PodFix<'_>) -> Pod {
    let mut obj = json!({
        "metadata": {"name": f.name, "namespace": f.ns, "labels": labels(f.labels)},
        "spec": {"nodeName": f.node, "containers": container(), "terminationGracePeriodSeconds": 30},
    });
    if let Some((kind, name, uid)) = f.owner {
        obj["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": true,
        }]);
    }
    let api: Api<Pod> = Api::namespaced(c.admin(), f.ns);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(obj).expect("pod"),
    )
    .await
    .unwrap_or_else(|e| panic!("create pod {}/{} on {}: {e}", f.ns, f.name, c.name()));
    kubelet::run_pod(&c.admin(), f.ns, f.name, f.ready).await;
    get_pod(c, f.ns, f.name).await.expect("pod just created")
}

pub async fn get_pod<C: Cluster>(c: &C, ns: &str, name: &str) -> Option<Pod> {
    let api: Api<Pod> = Api::namespaced(c.admin(), ns);
    api.get_opt(name).await.expect("get pod")
}

pub async fn get_node<C: Cluster>(c: &C, name: &str) -> Node {
    let api: Api<Node> = Api::all(c.admin());
    api.get(name).await.expect("get node")
}

/// A merge patch of a Node as admin (`status: true`: of `nodes/status`).
pub async fn patch_node<C: Cluster>(c: &C, name: &str, patch: Value, status: bool) {
    let api: Api<Node> = Api::all(c.admin());
    let pp = PatchParams::default();
    let r = if status {
        api.patch_status(name, &pp, &Patch::Merge(&patch)).await
    } else {
        api.patch(name, &pp, &Patch::Merge(&patch)).await
    };
    r.unwrap_or_else(|e| panic!("patch node {name}: {e}"));
}

/// A PodDisruptionBudget with `minAvailable`.
pub async fn pdb<C: Cluster>(c: &C, ns: &str, name: &str, sel: &[(&str, &str)], min: i32) {
    let obj = json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"minAvailable": min, "selector": {"matchLabels": labels(sel)}},
    });
    let api: Api<PodDisruptionBudget> = Api::namespaced(c.admin(), ns);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(obj).expect("pdb"),
    )
    .await
    .unwrap_or_else(|e| panic!("create pdb {ns}/{name}: {e}"));
}

pub async fn set_pdb_min<C: Cluster>(c: &C, ns: &str, name: &str, min: i32) {
    let api: Api<PodDisruptionBudget> = Api::namespaced(c.admin(), ns);
    let patch = json!({"spec": {"minAvailable": min}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("patch pdb {ns}/{name}: {e}"));
}

/// Waits until the disruption controller has observed the PDB with this status.
pub async fn wait_pdb<C: Cluster>(c: &C, ns: &str, name: &str, healthy: i32, allowed: i32) {
    let api: Api<PodDisruptionBudget> = Api::namespaced(c.admin(), ns);
    let mut last = None;
    for _ in 0..200 {
        let p = api.get(name).await.expect("get pdb");
        let generation = p.metadata.generation.unwrap_or(0);
        if let Some(s) = &p.status
            && s.observed_generation.unwrap_or(0) >= generation
            && s.current_healthy == healthy
            && s.disruptions_allowed == allowed
        {
            return;
        }
        last = p.status;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "pdb {ns}/{name} on {}: want healthy {healthy} allowed {allowed}, have {last:?}",
        c.name()
    );
}

/// Polls `f` every 100 ms for up to `secs`.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..secs * 10 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within {secs} s");
}
