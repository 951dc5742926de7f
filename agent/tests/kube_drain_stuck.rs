//! `skipWaitForDeleteTimeout` against the fake API server with the real kube
//! client: a node whose kubelet is hung never finishes the pods the drain
//! evicts (`set_node_kubelet_alive(node, false)`, docs/platform-facts.md "A
//! node whose kubelet or runtime is stuck").

use std::time::Duration;

use nodewarden::act::drain::{DrainError, Drainer, PodRef};
use nodewarden::act::kube::Kube;
use nodewarden::domain::Dur;
use nodewarden::runbook::{Drain, DrainMode};
use nodewarden_fakeapi::{Budget, FakeApi, Kind, pod};
use serde_json::Value;

const DOWN: &str = "the kubelet is down (PLEGUnhealthy)";

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(40), f)
        .await
        .expect("test took longer than 40 s");
}

fn spec(timeout_secs: u64, skip_secs: u64) -> Drain {
    Drain {
        mode: DrainMode::Evict,
        timeout: Dur::from_secs(timeout_secs),
        delete_empty_dir_data: true,
        force: false,
        ignore_daemon_sets: true,
        grace_period: Dur::ZERO,
        delete_after_deadline: false,
        skip_wait_for_delete_timeout: Dur::from_secs(skip_secs),
        concurrency: 10,
    }
}

async fn fake() -> FakeApi {
    let api = FakeApi::start().await;
    api.add_node("n1");
    api.add_node("n2");
    api
}

fn drainer(api: &FakeApi) -> Drainer {
    Drainer::new(
        Kube::from_url(&api.url(), Duration::from_secs(2)).expect("client"),
        "n1",
    )
}

fn r(ns: &str, name: &str) -> PodRef {
    PodRef {
        namespace: ns.into(),
        name: name.into(),
    }
}

fn uid_of(v: &Value) -> String {
    v.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The kubelet is hung: the evicted pod stays Terminating; after its grace
/// period (in its deletionTimestamp) and skipWaitForDeleteTimeout it is left
/// to the kubelet and the drain finishes, naming it. Nothing is deleted.
#[tokio::test]
async fn a_hung_kubelet_leaves_the_pod_awaiting_and_the_drain_finishes() {
    bounded(async {
        let api = fake().await;
        api.set_node_kubelet_alive("n1", false);
        api.add_pod(pod("shop", "web2-a").node("n1").replicaset("web").grace(1));
        api.add_pod(pod("kube-system", "proxy").node("n1").daemonset("proxy"));
        let report = drainer(&api)
            .drain_stuck(&spec(20, 1), Some(DOWN))
            .await
            .expect("drained but for the pod awaiting the kubelet");
        assert_eq!(report.evicted, vec![r("shop", "web2-a")]);
        assert_eq!(report.awaiting_kubelet, vec![r("shop", "web2-a")]);
        assert!(report.gone.is_empty(), "{report:?}");
        assert_eq!(report.awaiting_because.as_deref(), Some(DOWN));
        let s = report.summary();
        assert!(
            s.contains("evicted but still terminating because the kubelet is down")
                && s.contains("shop/web2-a"),
            "{s}"
        );
        // Still there, terminating: never force-deleted, never deleted at all.
        let p = api.get(Kind::Pod, "shop", "web2-a").expect("still there");
        assert!(p.pointer("/metadata/deletionTimestamp").is_some());
        assert_eq!(api.count("delete", "pods"), 0);
        // A second drain (the one right before the reboot) leaves it at once.
        let again = drainer(&api)
            .drain_stuck(&spec(20, 1), Some(DOWN))
            .await
            .expect("drained");
        assert_eq!(again.awaiting_kubelet, vec![r("shop", "web2-a")]);
        assert!(again.evicted.is_empty(), "not evicted twice: {again:?}");
        // After the reboot the kubelet finishes it.
        api.set_node_kubelet_alive("n1", true);
        api.set_grace_scale(0.001);
        let after = drainer(&api).drain(&spec(20, 1)).await.expect("drained");
        assert!(after.awaiting_kubelet.is_empty() && after.still_present.is_empty());
    })
    .await;
}

/// Without a finding that says the kubelet cannot finish (planned
/// maintenance, a healthy kubelet), the drain waits as kubectl does.
#[tokio::test]
async fn without_the_finding_every_terminating_pod_is_waited_for() {
    bounded(async {
        let api = fake().await;
        api.set_node_kubelet_alive("n1", false);
        api.add_pod(pod("shop", "web").node("n1").replicaset("web").grace(1));
        let e = drainer(&api)
            .drain_stuck(&spec(4, 1), None)
            .await
            .expect_err("waits until the deadline");
        assert!(matches!(e, DrainError::Deadline { .. }), "{e}");
        assert_eq!(e.report().still_present, vec![r("shop", "web")]);
        assert!(e.report().awaiting_kubelet.is_empty());
        // skipWaitForDeleteTimeout 0: the same, even with the finding.
        let e = drainer(&api)
            .drain_stuck(&spec(3, 0), Some(DOWN))
            .await
            .expect_err("waits until the deadline");
        assert_eq!(e.report().still_present, vec![r("shop", "web")]);
    })
    .await;
}

/// A pod awaiting the kubelet does not hide one a PDB refuses: the drain
/// fails, naming both classes and the PDB.
#[tokio::test]
async fn a_pdb_refusal_still_fails_the_drain() {
    bounded(async {
        let api = fake().await;
        api.set_node_kubelet_alive("n1", false);
        api.add_pod(pod("shop", "cart").node("n1").replicaset("cart").grace(1));
        api.add_pod(
            pod("shop", "web-0")
                .node("n1")
                .replicaset("web")
                .label("app", "web"),
        );
        api.add_pdb(
            "shop",
            "web-pdb",
            &[("app", "web")],
            Budget::MinAvailable(1),
        );
        let e = drainer(&api)
            .drain_stuck(&spec(4, 1), Some(DOWN))
            .await
            .expect_err("the PDB refuses");
        let rep = e.report();
        assert_eq!(rep.awaiting_kubelet, vec![r("shop", "cart")]);
        assert_eq!(rep.blocked.len(), 1, "{rep:?}");
        assert_eq!(rep.blocked[0].pod, r("shop", "web-0"));
        assert_eq!(rep.blocked[0].pdb.as_deref(), Some("web-pdb"));
        assert_eq!(rep.still_present, vec![r("shop", "web-0")]);
        let s = e.to_string();
        assert!(s.contains("by PDB web-pdb"), "{s}");
    })
    .await;
}

/// A StatefulSet pod stuck Terminating: its same-name replacement is not
/// created while the old object exists, and the drain never forces it.
#[tokio::test]
async fn a_statefulset_pod_stuck_terminating_is_never_forced() {
    bounded(async {
        let api = fake().await;
        api.set_node_kubelet_alive("n1", false);
        api.add_statefulset("db", "pg", 1, &[("app", "pg")]);
        api.set_replacement_node(Some("n2"));
        let old = api.add_pod(
            pod("db", "pg-0")
                .node("n1")
                .statefulset("pg")
                .label("app", "pg")
                .grace(1),
        );
        let report = drainer(&api)
            .drain_stuck(&spec(20, 1), Some(DOWN))
            .await
            .expect("drained");
        assert_eq!(report.awaiting_kubelet, vec![r("db", "pg-0")]);
        let now = api
            .get(Kind::Pod, "db", "pg-0")
            .expect("old pod still there");
        assert_eq!(uid_of(&now), uid_of(&old), "no replacement yet");
        assert_eq!(
            api.count("delete", "pods"),
            0,
            "never deleted, never forced"
        );
        // The kubelet comes back: the old pod goes and the replacement appears.
        api.set_grace_scale(0.001);
        api.set_node_kubelet_alive("n1", true);
        for _ in 0..100 {
            if api
                .get(Kind::Pod, "db", "pg-0")
                .is_some_and(|p| uid_of(&p) != uid_of(&old))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the replacement never came");
    })
    .await;
}
