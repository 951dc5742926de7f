//! Reading what the impact report needs, through the project's client
//! (`act::kube`): every call under the client's per-call deadline.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};

use super::ClusterObjects;
use crate::act::kube::{Kube, KubeError};

/// Read what `impact` needs for `node`, each call under the client's
/// per-call deadline: the node's pods, their owners (ReplicaSet →
/// Deployment, StatefulSet), the PDBs of the namespaces involved, and the
/// PVCs/PVs the pods mount. Namespaced lists are limited to the namespaces
/// the node's pods use.
pub async fn fetch(kube: &Kube, node: &str) -> Result<ClusterObjects, KubeError> {
    let client = kube.client();
    let pods_api: Api<Pod> = Api::all(client.clone());
    let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    let pods = kube
        .call(format!("list pods on {node}"), pods_api.list(&lp))
        .await?
        .items;
    let namespaces: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| p.metadata.namespace.clone())
        .collect();
    let mut objs = ClusterObjects {
        node: node.to_string(),
        pods,
        ..Default::default()
    };
    for ns in &namespaces {
        let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
        let dep: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let sts: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
        let pdb: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
        let pvc: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
        let lp = ListParams::default();
        objs.replica_sets.extend(
            kube.call(format!("list replicasets in {ns}"), rs.list(&lp))
                .await?
                .items,
        );
        objs.deployments.extend(
            kube.call(format!("list deployments in {ns}"), dep.list(&lp))
                .await?
                .items,
        );
        objs.stateful_sets.extend(
            kube.call(format!("list statefulsets in {ns}"), sts.list(&lp))
                .await?
                .items,
        );
        objs.pdbs.extend(
            kube.call(format!("list poddisruptionbudgets in {ns}"), pdb.list(&lp))
                .await?
                .items,
        );
        objs.pvcs.extend(
            kube.call(
                format!("list persistentvolumeclaims in {ns}"),
                pvc.list(&lp),
            )
            .await?
            .items,
        );
    }
    let wanted: BTreeSet<String> = objs
        .pvcs
        .iter()
        .filter_map(|c| c.spec.as_ref().and_then(|s| s.volume_name.clone()))
        .collect();
    if !wanted.is_empty() {
        let pv: Api<PersistentVolume> = Api::all(client.clone());
        for name in wanted {
            if let Some(v) = kube
                .call(format!("get persistentvolume {name}"), pv.get_opt(&name))
                .await?
            {
                objs.pvs.push(v);
            }
        }
    }
    Ok(objs)
}
