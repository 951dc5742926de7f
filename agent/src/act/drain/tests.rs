use super::*;
use crate::domain::Dur;
use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, PodSpec, PodStatus, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::core::Status;
use serde_json::json;

fn spec() -> Drain {
    Drain {
        mode: DrainMode::Evict,
        timeout: Dur::from_secs(600),
        delete_empty_dir_data: false,
        force: false,
        ignore_daemon_sets: true,
        grace_period: Dur::ZERO,
        delete_after_deadline: false,
        skip_wait_for_delete_timeout: Dur::ZERO,
        concurrency: 10,
    }
}

fn pod(owner: Option<&str>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            namespace: Some("ns".into()),
            owner_references: owner.map(|k| {
                vec![OwnerReference {
                    kind: k.into(),
                    name: "o".into(),
                    controller: Some(true),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        }),
    }
}

#[test]
fn filters_follow_kubectl() {
    let s = spec();
    assert_eq!(verdict(&pod(Some("ReplicaSet")), &s), PodVerdict::Evict);
    assert_eq!(verdict(&pod(None), &s), PodVerdict::RefuseUnmanaged);
    assert_eq!(
        verdict(&pod(Some("DaemonSet")), &s),
        PodVerdict::Skip(SkipReason::DaemonSet)
    );
    let strict = Drain {
        ignore_daemon_sets: false,
        ..spec()
    };
    assert_eq!(
        verdict(&pod(Some("DaemonSet")), &strict),
        PodVerdict::RefuseDaemonSet
    );
    let mut finished = pod(None);
    finished.status = Some(PodStatus {
        phase: Some("Succeeded".into()),
        ..Default::default()
    });
    assert_eq!(
        verdict(&finished, &s),
        PodVerdict::Evict,
        "finished pods are always removable"
    );
    let mut ed = pod(Some("ReplicaSet"));
    ed.spec = Some(PodSpec {
        volumes: Some(vec![Volume {
            name: "cache".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }]),
        ..Default::default()
    });
    assert_eq!(verdict(&ed, &s), PodVerdict::RefuseEmptyDir);
    let ok = Drain {
        delete_empty_dir_data: true,
        ..spec()
    };
    assert_eq!(verdict(&ed, &ok), PodVerdict::Evict);
    let mut mirror = pod(Some("Node"));
    mirror.metadata.annotations =
        Some([("kubernetes.io/config.mirror".to_string(), "x".to_string())].into());
    assert_eq!(verdict(&mirror, &s), PodVerdict::Skip(SkipReason::Mirror));
    let mut term = pod(None);
    term.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
    assert_eq!(verdict(&term, &s), PodVerdict::Wait);
}

/// Same name, new UID on the node while the old pod is awaited: the old
/// one is done; the newcomer (not terminating) needs a new pass.
#[tokio::test]
async fn replacement_with_new_uid_counts_as_done() {
    let Ok(kube) = Kube::from_url("http://127.0.0.1:9", Duration::from_secs(1)) else {
        panic!("client")
    };
    let d = Drainer::new(kube, "n1");
    let mut t = Track::default();
    let key = PodRef {
        namespace: "ns".into(),
        name: "p".into(),
    };
    t.waiting.insert(key.clone(), "old".into());
    let mut newer = pod(Some("StatefulSet"));
    newer.metadata.uid = Some("new".into());
    assert!(
        d.seen(&newer, &spec(), &mut t),
        "the replacement needs a pass"
    );
    assert!(t.waiting.is_empty(), "the old pod counts as gone");
    // The same pod seen again terminating is waited for, not re-evicted.
    let mut old = pod(Some("StatefulSet"));
    old.metadata.uid = Some("old".into());
    old.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
    let mut t = Track::default();
    t.waiting.insert(key.clone(), "old".into());
    assert!(!d.seen(&old, &spec(), &mut t));
    assert_eq!(t.waiting.get(&key).map(String::as_str), Some("old"));
}

#[test]
fn pdb_name_from_refusal() {
    let s: Status = serde_json::from_value(json!({
        "status": "Failure", "code": 429, "reason": "TooManyRequests",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        "details": {"causes": [{"reason": "DisruptionBudget",
            "message": "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}]},
    }))
    .unwrap_or_default();
    assert_eq!(pdb_from_status(&s).as_deref(), Some("web-pdb"));
    let s: Status = serde_json::from_value(json!({
        "status": "Failure", "code": 429, "reason": "TooManyRequests",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.",
    }))
    .unwrap_or_default();
    assert_eq!(pdb_from_status(&s), None);
    let s: Status = serde_json::from_value(json!({
        "code": 429, "message": "x",
        "details": {"causes": [{"reason": "DisruptionBudget",
            "message": "The disruption budget db is still being processed by the server."}]},
    }))
    .unwrap_or_default();
    assert_eq!(pdb_from_status(&s).as_deref(), Some("db"));
}

#[test]
fn summary_is_bounded() {
    let r = DrainReport {
        node: "n1".into(),
        still_present: (0..100)
            .map(|i| PodRef {
                namespace: "ns".into(),
                name: format!("p{i}"),
            })
            .collect(),
        ..Default::default()
    };
    let s = r.summary();
    assert!(s.contains("+95 more"), "{s}");
    assert!(s.len() < 300);
}
