//! Drain against the fake API server with the real kube client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nodewarden::act::ActError;
use nodewarden::act::drain::{DRAIN_REQUEST_TAINT, DrainError, Drainer, PodRef, SkipReason};
use nodewarden::act::kube::Kube;
use nodewarden::domain::Dur;
use nodewarden::runbook::{Drain, DrainMode};
use nodewarden_fakeapi::{Budget, FakeApi, Kind, Mode, pod};
use serde_json::Value;

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(40), f)
        .await
        .expect("test took longer than 40 s");
}

fn spec(timeout_secs: u64) -> Drain {
    Drain {
        mode: DrainMode::Evict,
        timeout: Dur::from_secs(timeout_secs),
        delete_empty_dir_data: true,
        force: false,
        ignore_daemon_sets: true,
        grace_period: Dur::ZERO,
        delete_after_deadline: false,
        skip_wait_for_delete_timeout: Dur::ZERO,
        concurrency: 10,
    }
}

async fn fake() -> FakeApi {
    let api = FakeApi::start().await;
    api.add_node("n1");
    api.add_node("n2");
    // A 30 s grace period takes 30 ms.
    api.set_grace_scale(0.001);
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

/// A PDB refuses the eviction (429); another pod becomes Ready; the drain
/// retries after at least 5 s and finishes.
#[tokio::test]
async fn drain_blocked_by_pdb_then_allowed() {
    bounded(async {
        let api = Arc::new(fake().await);
        api.add_pod(
            pod("shop", "web-0")
                .node("n1")
                .replicaset("web")
                .label("app", "web"),
        );
        api.add_pod(
            pod("shop", "web-1")
                .node("n2")
                .replicaset("web")
                .label("app", "web"),
        );
        api.add_pod(
            pod("shop", "web-2")
                .node("n2")
                .replicaset("web")
                .label("app", "web")
                .ready(false),
        );
        api.add_pdb(
            "shop",
            "web-pdb",
            &[("app", "web")],
            Budget::MinAvailable(2),
        );
        let helper = {
            let api = api.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                api.set_pod_ready("shop", "web-2", true);
            })
        };
        let start = Instant::now();
        let report = drainer(&api).drain(&spec(30)).await.expect("drained");
        let took = start.elapsed();
        helper.await.expect("helper");
        assert_eq!(report.evicted, vec![r("shop", "web-0")]);
        assert!(
            report.blocked.is_empty() && report.still_present.is_empty(),
            "{report:?}"
        );
        assert_eq!(report.pdb_refusals, 1);
        assert_eq!(
            api.count("create", "pods/eviction"),
            2,
            "one refusal, one success: no busy loop"
        );
        assert!(
            took >= Duration::from_secs(5),
            "retried after ≥ 5 s: {took:?}"
        );
        assert!(took < Duration::from_secs(8), "{took:?}");
        assert!(api.get(Kind::Pod, "shop", "web-0").is_none());
        assert!(
            report.summary().contains("evicted 1"),
            "{}",
            report.summary()
        );
    })
    .await;
}

/// The deadline passes while a PDB blocks: Err naming the PDB, no deletion.
#[tokio::test]
async fn deadline_reached_names_the_blocking_pdb() {
    bounded(async {
        let api = fake().await;
        api.add_pod(
            pod("shop", "web-0")
                .node("n1")
                .replicaset("web")
                .label("app", "web"),
        );
        api.add_pod(pod("shop", "api-0").node("n1").replicaset("api"));
        api.add_pdb(
            "shop",
            "web-pdb",
            &[("app", "web")],
            Budget::MinAvailable(1),
        );
        let start = Instant::now();
        let e = drainer(&api).drain(&spec(2)).await.expect_err("blocked");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_millis(3000),
            "{took:?}"
        );
        assert!(e.is_retriable());
        let DrainError::Deadline { ref report, .. } = e else {
            panic!("{e:?}")
        };
        assert_eq!(report.blocked.len(), 1);
        assert_eq!(report.blocked[0].pod, r("shop", "web-0"));
        assert_eq!(report.blocked[0].pdb.as_deref(), Some("web-pdb"));
        assert!(
            report.blocked[0].message.contains("needs 1 healthy pods"),
            "{}",
            report.blocked[0].message
        );
        assert_eq!(report.still_present, vec![r("shop", "web-0")]);
        assert_eq!(report.evicted, vec![r("shop", "api-0")]);
        let msg = e.to_string();
        assert!(
            msg.contains("web-pdb") && msg.contains("shop/web-0"),
            "{msg}"
        );
        // Within 2 s the refused pod was asked once: 429 is not retried by the client
        // and the drain waits ≥ 5 s before asking again.
        assert_eq!(api.count("create", "pods/eviction"), 2);
        assert!(
            api.get(Kind::Pod, "shop", "web-0").is_some(),
            "never deleted without opt-in"
        );
        assert!(matches!(ActError::from(e), ActError::Timeout { .. }));
    })
    .await;
}

/// `deleteAfterDeadline`: after the deadline the blocked pod is deleted without eviction.
#[tokio::test]
async fn delete_after_deadline_is_opt_in() {
    bounded(async {
        let api = fake().await;
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
        let s = Drain {
            delete_after_deadline: true,
            ..spec(1)
        };
        let report = drainer(&api)
            .drain(&s)
            .await
            .expect("deleted after the deadline");
        assert_eq!(report.deleted, vec![r("shop", "web-0")]);
        assert!(report.evicted.is_empty());
        assert_eq!(api.count("delete", "pods"), 1);
        assert!(api.get(Kind::Pod, "shop", "web-0").is_none());
    })
    .await;
}

/// DaemonSet and mirror pods stay; finished pods go without force.
#[tokio::test]
async fn daemonset_and_mirror_pods_left_alone() {
    bounded(async {
        let api = fake().await;
        api.add_daemonset("kube-system", "fluentd", &[("app", "fluentd")]);
        api.add_pod(
            pod("kube-system", "fluentd-x1")
                .node("n1")
                .daemonset("fluentd"),
        );
        api.add_pod(pod("kube-system", "kube-proxy-n1").node("n1").mirror());
        api.add_pod(pod("shop", "web-0").node("n1").replicaset("web"));
        api.add_pod(pod("batch", "job-done").node("n1").phase("Succeeded"));
        let report = drainer(&api).drain(&spec(30)).await.expect("drained");
        assert_eq!(
            report.evicted,
            vec![r("batch", "job-done"), r("shop", "web-0")]
        );
        let skipped: Vec<(PodRef, SkipReason)> = report
            .skipped
            .iter()
            .map(|s| (s.pod.clone(), s.reason))
            .collect();
        assert_eq!(
            skipped,
            vec![
                (r("kube-system", "fluentd-x1"), SkipReason::DaemonSet),
                (r("kube-system", "kube-proxy-n1"), SkipReason::Mirror),
            ]
        );
        assert!(api.get(Kind::Pod, "kube-system", "fluentd-x1").is_some());
        assert!(api.get(Kind::Pod, "kube-system", "kube-proxy-n1").is_some());
        let evicted: Vec<String> = api
            .requests()
            .iter()
            .filter(|q| q.subresource.as_deref() == Some("eviction"))
            .filter_map(|q| q.name.clone())
            .collect();
        assert!(
            !evicted
                .iter()
                .any(|n| n.starts_with("fluentd") || n.starts_with("kube-proxy")),
            "{evicted:?}"
        );

        // Without ignoreDaemonSets the DaemonSet pod is an error that names it.
        let api = fake().await;
        api.add_pod(
            pod("kube-system", "fluentd-x1")
                .node("n1")
                .daemonset("fluentd"),
        );
        api.add_pod(pod("shop", "web-0").node("n1").replicaset("web"));
        let s = Drain {
            ignore_daemon_sets: false,
            ..spec(30)
        };
        let e = drainer(&api).drain(&s).await.expect_err("refused");
        assert!(e.to_string().contains("kube-system/fluentd-x1"), "{e}");
        assert!(!e.is_retriable());
        assert_eq!(
            api.count("create", "pods/eviction"),
            0,
            "nothing evicted when a filter refuses"
        );
    })
    .await;
}

/// Pods without a controller need force; every one of them is named.
#[tokio::test]
async fn unmanaged_pods_without_force_are_named() {
    bounded(async {
        let api = fake().await;
        api.add_pod(pod("dev", "scratch-1").node("n1"));
        api.add_pod(pod("dev", "scratch-2").node("n1"));
        api.add_pod(pod("shop", "web-0").node("n1").replicaset("web"));
        let e = drainer(&api).drain(&spec(30)).await.expect_err("refused");
        let DrainError::Refused { ref refusals, .. } = e else {
            panic!("{e:?}")
        };
        assert_eq!(
            refusals.unmanaged,
            vec![r("dev", "scratch-1"), r("dev", "scratch-2")]
        );
        let msg = e.to_string();
        assert!(
            msg.contains("dev/scratch-1") && msg.contains("dev/scratch-2") && msg.contains("force"),
            "{msg}"
        );
        assert!(!e.is_retriable());
        assert!(
            matches!(ActError::from(e), ActError::Failed(ref m) if m.contains("dev/scratch-1"))
        );
        assert_eq!(api.count("create", "pods/eviction"), 0);

        // emptyDir without deleteEmptyDirData is refused the same way.
        api.add_pod(
            pod("shop", "cache-0")
                .node("n1")
                .replicaset("cache")
                .empty_dir("tmp"),
        );
        let s = Drain {
            force: true,
            delete_empty_dir_data: false,
            ..spec(30)
        };
        let e = drainer(&api).drain(&s).await.expect_err("refused");
        assert!(
            e.to_string().contains("shop/cache-0") && e.to_string().contains("deleteEmptyDirData"),
            "{e}"
        );

        // With force (and emptyDir allowed) they are evicted.
        let s = Drain {
            force: true,
            ..spec(30)
        };
        let report = drainer(&api).drain(&s).await.expect("drained");
        assert_eq!(report.evicted.len(), 4);
    })
    .await;
}

/// A StatefulSet pod replaced by a new pod with the same name (new UID) on
/// another node counts as done: the drain does not wait for (or evict) the
/// replacement that carries the old name.
#[tokio::test]
async fn statefulset_replacement_counts_as_done() {
    bounded(async {
        let api = fake().await;
        api.add_statefulset("db", "pg", 1, &[("app", "pg")]);
        api.set_replacement_node(Some("n2"));
        let old = api.add_pod(
            pod("db", "pg-0")
                .node("n1")
                .statefulset("pg")
                .label("app", "pg"),
        );
        let report = drainer(&api).drain(&spec(30)).await.expect("drained");
        assert_eq!(report.evicted, vec![r("db", "pg-0")]);
        let new = api
            .get(Kind::Pod, "db", "pg-0")
            .expect("replacement exists");
        assert_ne!(uid_of(&new), uid_of(&old), "same name, new UID");
        assert_eq!(
            new.pointer("/spec/nodeName").and_then(Value::as_str),
            Some("n2")
        );
        assert_eq!(
            api.count("create", "pods/eviction"),
            1,
            "the replacement is not evicted"
        );
    })
    .await;
}

/// Pods are waited for by ONE watch of the node's pods: evictions + one list
/// + one watch, no GET per pod.
#[tokio::test]
async fn pods_waited_for_by_watch_not_polling() {
    bounded(async {
        let api = fake().await;
        for i in 0..25 {
            api.add_pod(
                pod("shop", &format!("web-{i}"))
                    .node("n1")
                    .replicaset("web")
                    .grace(30),
            );
        }
        // Pods on another node are not touched.
        api.add_pod(pod("shop", "other").node("n2").replicaset("web"));
        api.clear_log();
        let report = drainer(&api).drain(&spec(30)).await.expect("drained");
        assert_eq!(report.evicted.len(), 25);
        assert_eq!(report.passes, 1);
        assert_eq!(api.count("create", "pods/eviction"), 25);
        assert_eq!(api.count("list", "pods"), 1);
        assert_eq!(api.count("watch", "pods"), 1);
        assert_eq!(api.count("get", "pods"), 0, "no per-pod polling");
        assert_eq!(
            api.requests().len(),
            27,
            "{:?}",
            api.requests()
                .iter()
                .map(|r| (&r.verb, r.resource_path()))
                .collect::<Vec<_>>()
        );
        let list = api
            .requests()
            .into_iter()
            .find(|r| r.verb == "list")
            .expect("list");
        assert!(
            list.query
                .unwrap_or_default()
                .contains("spec.nodeName%3Dn1")
        );
        assert!(api.get(Kind::Pod, "shop", "other").is_some());
    })
    .await;
}

/// A grace-period override reaches the server (kube 5's EvictParams would drop it).
#[tokio::test]
async fn grace_override_reaches_the_server() {
    bounded(async {
        let api = fake().await;
        api.set_grace_scale(1.0);
        api.add_pod(pod("shop", "slow").node("n1").replicaset("web").grace(600));
        let s = Drain {
            grace_period: Dur::from_secs(1),
            ..spec(20)
        };
        let start = Instant::now();
        drainer(&api).drain(&s).await.expect("drained");
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "1 s grace, not 600 s: {:?}",
            start.elapsed()
        );
        let rec = api
            .requests()
            .into_iter()
            .find(|q| q.subresource.as_deref() == Some("eviction"))
            .expect("eviction");
        let body: Value = serde_json::from_str(&rec.body).expect("json");
        assert_eq!(
            body.pointer("/deleteOptions/gracePeriodSeconds"),
            Some(&Value::from(1))
        );
        assert!(body.pointer("/deleteOptions/preconditions/uid").is_some());
    })
    .await;
}

/// Already-terminating pods are waited for, not evicted again; a pod stuck
/// terminating (dead kubelet) ends the drain at the deadline as still present.
#[tokio::test]
async fn terminating_pods_are_waited_for() {
    bounded(async {
        let api = fake().await;
        api.set_node_kubelet_alive("n1", false);
        api.add_pod(pod("shop", "stuck").node("n1").replicaset("web"));
        let kube = Kube::from_url(&api.url(), Duration::from_secs(2)).expect("client");
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(kube.client().clone(), "shop");
        pods.delete("stuck", &Default::default())
            .await
            .expect("delete");
        api.clear_log();
        let e = drainer(&api).drain(&spec(1)).await.expect_err("stuck");
        let rep = e.report();
        assert_eq!(rep.waited, vec![r("shop", "stuck")]);
        assert_eq!(rep.still_present, vec![r("shop", "stuck")]);
        assert_eq!(api.count("create", "pods/eviction"), 0);
        // The kubelet comes back: the pod goes and the drain succeeds.
        api.set_node_kubelet_alive("n1", true);
        let rep = drainer(&api).drain(&spec(10)).await.expect("drained");
        assert!(rep.still_present.is_empty());
    })
    .await;
}

/// A hung or down API server ends the drain with a typed error within its deadline.
#[tokio::test]
async fn api_down_or_hung_ends_the_drain_in_time() {
    bounded(async {
        let api = fake().await;
        api.add_pod(pod("shop", "web-0").node("n1").replicaset("web"));
        api.set_mode(Mode::Hang).await;
        let start = Instant::now();
        let e = drainer(&api).drain(&spec(1)).await.expect_err("hung");
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "{:?}",
            start.elapsed()
        );
        assert!(matches!(e, DrainError::Deadline { .. }), "{e:?}");
        assert!(e.is_retriable());

        api.set_mode(Mode::Down).await;
        let start = Instant::now();
        let e = drainer(&api).drain(&spec(10)).await.expect_err("down");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert!(
            matches!(e, DrainError::Api { ref source, .. } if source.is_unreachable()),
            "{e:?}"
        );
        assert!(matches!(ActError::from(e), ActError::ApiUnreachable(_)));
    })
    .await;
}

/// `mode: request` taints the node and waits for someone else to empty it.
#[tokio::test]
async fn request_mode_taints_and_waits_for_empty() {
    bounded(async {
        let api = Arc::new(fake().await);
        api.add_pod(pod("shop", "web-0").node("n1").replicaset("web"));
        api.add_pod(
            pod("kube-system", "fluentd-x1")
                .node("n1")
                .daemonset("fluentd"),
        );
        let controller = {
            let api = api.clone();
            tokio::spawn(async move {
                // The external controller sees the taint and removes the pod.
                loop {
                    let tainted = api
                        .get(Kind::Node, "", "n1")
                        .and_then(|n| n.pointer("/spec/taints").cloned())
                        .is_some_and(|t| t.to_string().contains(DRAIN_REQUEST_TAINT));
                    if tainted {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        api.remove(Kind::Pod, "shop", "web-0");
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        let d = drainer(&api);
        let s = Drain {
            mode: DrainMode::Request,
            ..spec(10)
        };
        let report = d.drain(&s).await.expect("emptied");
        controller.await.expect("controller");
        assert_eq!(report.evicted, vec![r("shop", "web-0")]);
        assert_eq!(api.count("create", "pods/eviction"), 0);
        let taints = api
            .get(Kind::Node, "", "n1")
            .and_then(|n| n.pointer("/spec/taints").cloned())
            .expect("taints");
        assert_eq!(taints[0]["key"], DRAIN_REQUEST_TAINT);
        assert_eq!(taints[0]["effect"], "NoSchedule");
        d.clear_drain_request().await.expect("untaint");
        let taints = api
            .get(Kind::Node, "", "n1")
            .and_then(|n| n.pointer("/spec/taints").cloned());
        assert!(
            taints
                .as_ref()
                .is_none_or(|t| t.as_array().is_none_or(Vec::is_empty)),
            "{taints:?}"
        );
    })
    .await;
}

/// The lead's `KubeSide` needs `Send` futures: every operation here is.
#[tokio::test]
async fn futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let api = fake().await;
    let kube = Kube::from_url(&api.url(), Duration::from_secs(1)).expect("client");
    let node = nodewarden::act::node::NodeClient::new(kube.clone(), "n1");
    let conds = nodewarden::act::node::NodeConditions::new(node.clone());
    let slots = nodewarden::act::slots::Slots::new(
        kube.clone(),
        nodewarden::act::slots::SlotConfig {
            namespace: "nw".into(),
            holder: "n1".into(),
            slots: 1,
            lease_duration: Duration::from_secs(60),
        },
    );
    let events = nodewarden::report::EventSink::for_node(kube.clone(), "n1", None);
    let fleet = nodewarden::act::fleet::FleetCounter::new(kube.clone(), "n1");
    let d = drainer(&api);
    let s = spec(1);
    let rep = nodewarden::act::Report::normal("X", "y");
    send(&node.cordon("r"));
    send(&node.uncordon());
    send(&node.disown_cordon());
    send(&conds.set(&[]));
    send(&slots.acquire());
    send(&slots.release("x"));
    send(&d.drain(&s));
    send(&events.emit(&rep));
    send(&fleet.count());
}
