use super::*;
use serde_json::json;

fn pod(v: serde_json::Value) -> Pod {
    serde_json::from_value(v).unwrap()
}

fn owned(name: &str, kind: &str, owner: &str, labels: serde_json::Value) -> Pod {
    pod(json!({
        "metadata": {"name": name, "namespace": "default", "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": owner, "uid": "u", "controller": true}]},
        "spec": {"nodeName": "n1", "containers": [{"name": "c"}], "terminationGracePeriodSeconds": 45},
        "status": {"phase": "Running"}
    }))
}

fn objects() -> ClusterObjects {
    let mut o = ClusterObjects {
        node: "n1".into(),
        ..Default::default()
    };
    // web: Deployment with 3 replicas, one here, PDB allows 1.
    o.pods.push(owned(
        "web-abc-1",
        "ReplicaSet",
        "web-abc",
        json!({"app": "web"}),
    ));
    o.replica_sets.push(
        serde_json::from_value(json!({"metadata": {"name": "web-abc", "namespace": "default",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d", "controller": true}]},
            "spec": {"replicas": 3, "selector": {}}})).unwrap(),
    );
    o.deployments.push(
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 3, "selector": {}, "template": {}}})).unwrap(),
    );
    o.pdbs.push(
        serde_json::from_value(json!({"metadata": {"name": "web-pdb", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "minAvailable": 2},
            "status": {"disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3}})).unwrap(),
    );
    // solo: single-replica Deployment.
    o.pods.push(owned(
        "solo-x-1",
        "ReplicaSet",
        "solo-x",
        json!({"app": "solo"}),
    ));
    o.replica_sets.push(
        serde_json::from_value(json!({"metadata": {"name": "solo-x", "namespace": "default",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "solo", "uid": "d2", "controller": true}]},
            "spec": {"replicas": 1, "selector": {}}})).unwrap(),
    );
    o.deployments.push(
        serde_json::from_value(json!({"metadata": {"name": "solo", "namespace": "default"}, "spec": {"replicas": 1, "selector": {}, "template": {}}})).unwrap(),
    );
    // db: StatefulSet with a local PV; PDB at its limit.
    let mut db = owned("db-0", "StatefulSet", "db", json!({"app": "db"}));
    db.spec.as_mut().unwrap().volumes = Some(vec![
        serde_json::from_value(
            json!({"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}),
        )
        .unwrap(),
    ]);
    o.pods.push(db);
    o.stateful_sets.push(
        serde_json::from_value(json!({"metadata": {"name": "db", "namespace": "default"}, "spec": {"replicas": 3, "selector": {}, "template": {}, "serviceName": "db"}})).unwrap(),
    );
    o.pvcs.push(
        serde_json::from_value(json!({"metadata": {"name": "data-db-0", "namespace": "default"}, "spec": {"volumeName": "pv-local-1"}})).unwrap(),
    );
    o.pvs.push(
        serde_json::from_value(json!({"metadata": {"name": "pv-local-1"}, "spec": {"local": {"path": "/mnt/disks/1"}}})).unwrap(),
    );
    o.pdbs.push(
        serde_json::from_value(json!({"metadata": {"name": "db-pdb", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "db"}}, "maxUnavailable": 0},
            "status": {"disruptionsAllowed": 0, "currentHealthy": 3, "desiredHealthy": 3, "expectedPods": 3}})).unwrap(),
    );
    // an unmanaged pod, a DaemonSet pod, a mirror pod.
    o.pods.push(pod(json!({"metadata": {"name": "debug", "namespace": "default"}, "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Running"}})));
    o.pods
        .push(owned("fluentd-1", "DaemonSet", "fluentd", json!({})));
    o.pods.push(pod(json!({"metadata": {"name": "kube-proxy-n1", "namespace": "kube-system",
        "annotations": {"kubernetes.io/config.mirror": "x"}}, "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Running"}})));
    o
}

fn find<'a>(r: &'a ImpactReport, name: &str) -> &'a PodImpact {
    r.pods.iter().find(|p| p.name == name).unwrap()
}

#[test]
fn verdicts_per_pod_and_overall() {
    let r = impact(&objects(), Options::default());
    assert_eq!(r.verdict, ImpactVerdict::Blocked);
    assert_eq!(r.longest_wait_seconds, None);
    let web = find(&r, "web-abc-1");
    assert_eq!(web.owner, "Deployment/web");
    assert_eq!(web.verdict, ImpactVerdict::Safe, "{web:?}");
    assert_eq!(web.pdbs, ["web-pdb (disruptionsAllowed 1)"]);
    let solo = find(&r, "solo-x-1");
    assert_eq!(solo.verdict, ImpactVerdict::Disruptive);
    assert!(solo.reasons[0].contains("single replica"));
    let db = find(&r, "db-0");
    assert_eq!(db.verdict, ImpactVerdict::Blocked);
    assert!(db.reasons.iter().any(|x| x.contains("db-pdb")), "{db:?}");
    assert_eq!(db.local_data, ["local PV pv-local-1 (claim data-db-0)"]);
    let debug = find(&r, "debug");
    assert_eq!(debug.verdict, ImpactVerdict::Blocked);
    assert!(debug.reasons[0].contains("--force"));
    assert_eq!(find(&r, "fluentd-1").verdict, ImpactVerdict::Stays);
    assert_eq!(find(&r, "kube-proxy-n1").verdict, ImpactVerdict::Stays);
    assert!(
        r.summary
            .starts_with("6 pods: 2 blocked, 1 disruptive, 1 safe, 2 stay"),
        "{}",
        r.summary
    );
    // Blocked first in the listing.
    assert_eq!(r.pods[0].verdict, ImpactVerdict::Blocked);
}

#[test]
fn force_and_surge_change_the_verdicts() {
    let mut o = objects();
    o.pdbs
        .retain(|p| p.metadata.name.as_deref() != Some("db-pdb"));
    let r = impact(
        &o,
        Options {
            filter: Filter {
                force: true,
                ..Filter::default()
            },
            surge_single_replicas: true,
        },
    );
    assert_eq!(find(&r, "debug").verdict, ImpactVerdict::Disruptive);
    assert_eq!(find(&r, "solo-x-1").verdict, ImpactVerdict::Safe);
    assert_eq!(
        find(&r, "db-0").verdict,
        ImpactVerdict::Disruptive,
        "local data"
    );
    assert_eq!(r.verdict, ImpactVerdict::Disruptive);
    assert_eq!(r.longest_wait_seconds, Some(45));
}

#[test]
fn all_replicas_on_this_node_is_disruptive() {
    let mut o = objects();
    o.pods.push(owned(
        "web-abc-2",
        "ReplicaSet",
        "web-abc",
        json!({"app": "web"}),
    ));
    o.pods.push(owned(
        "web-abc-3",
        "ReplicaSet",
        "web-abc",
        json!({"app": "web"}),
    ));
    let r = impact(&o, Options::default());
    let web = find(&r, "web-abc-1");
    assert_eq!(web.replicas_on_node, 3);
    assert_eq!(web.verdict, ImpactVerdict::Disruptive);
    assert!(web.reasons.iter().any(|x| x.contains("all 3 replicas")));
}

#[test]
fn label_selector_expressions() {
    let sel: LabelSelector = serde_json::from_value(json!({"matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["a", "b"]},
        {"key": "canary", "operator": "DoesNotExist"}]}))
    .unwrap();
    let l = |v: serde_json::Value| serde_json::from_value::<BTreeMap<String, String>>(v).unwrap();
    assert!(selector_matches(&sel, &l(json!({"tier": "a"}))));
    assert!(!selector_matches(&sel, &l(json!({"tier": "c"}))));
    assert!(!selector_matches(
        &sel,
        &l(json!({"tier": "a", "canary": "1"}))
    ));
}
