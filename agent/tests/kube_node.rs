//! The node side against the fake API server with the real kube client:
//! the client (no 429 retries, deadlines), cordon ownership, NodeConditions, Events.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, EvictParams};
use nodewarden::act::kube::{Kube, KubeError};
use nodewarden::act::node::{
    CORDON_REASON, CORDONED_AT, CORDONED_BY, CordonOutcome, DesiredCondition, NodeClient,
    NodeConditions, NodeError, UncordonOutcome, node_view,
};
use nodewarden::act::watch::WatchTimes;
use nodewarden::act::{ActError, Clock, Report};
use nodewarden::domain::Timestamp;
use nodewarden::report::EventSink;
use nodewarden_fakeapi::{Budget, FakeApi, Kind, Mode, pod};
use serde_json::{Value, json};

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test took longer than 30 s");
}

fn kube(api: &FakeApi) -> Kube {
    Kube::from_url(&api.url(), Duration::from_secs(2)).expect("client")
}

fn annotation(api: &FakeApi, node: &str, key: &str) -> Option<String> {
    api.get(Kind::Node, "", node)?
        .pointer(&format!("/metadata/annotations/{}", key.replace('/', "~1")))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn unschedulable(api: &FakeApi, node: &str) -> bool {
    api.get(Kind::Node, "", node)
        .and_then(|n| n.pointer("/spec/unschedulable").and_then(Value::as_bool))
        .unwrap_or(false)
}

/// kube's default retry layer is off: a PDB-blocked eviction comes back at
/// once as a 429, after exactly one request.
#[tokio::test]
async fn client_does_not_retry_429() {
    bounded(async {
        let api = FakeApi::start().await;
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
        let k = kube(&api);
        let pods: Api<Pod> = Api::namespaced(k.client().clone(), "shop");
        let start = Instant::now();
        let e = k
            .call("evict", pods.evict("web-0", &EvictParams::default()))
            .await
            .expect_err("blocked");
        assert_eq!(e.code(), Some(429), "{e}");
        assert!(e.is_retriable());
        assert_eq!(
            api.count("create", "pods/eviction"),
            1,
            "no client-side retries"
        );
        assert!(start.elapsed() < Duration::from_secs(1));
    })
    .await;
}

/// A hung API server gives a typed timeout within the call deadline; a down
/// one a typed "unreachable"; a 500 an API error. Nothing hangs.
#[tokio::test]
async fn down_and_hang_give_typed_errors_within_the_deadline() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_node("n1");
        let k = Kube::from_url(&api.url(), Duration::from_millis(300)).expect("client");
        let node = NodeClient::new(k, "n1");

        api.set_mode(Mode::Hang).await;
        let start = Instant::now();
        let e = node.cordon("test").await.expect_err("hang");
        assert!(
            matches!(e, NodeError::Kube(KubeError::Timeout { .. })),
            "{e:?}"
        );
        assert!(
            start.elapsed() < Duration::from_millis(900),
            "{:?}",
            start.elapsed()
        );
        assert!(matches!(ActError::from(e), ActError::Timeout { .. }));

        api.set_mode(Mode::Down).await;
        let start = Instant::now();
        let e = node.view().await.expect_err("down");
        assert!(
            matches!(e, NodeError::Kube(ref k) if k.is_unreachable()),
            "{e:?}"
        );
        assert!(start.elapsed() < Duration::from_millis(900));
        assert!(matches!(
            ActError::from(e),
            ActError::ApiUnreachable(_) | ActError::Timeout { .. }
        ));

        api.set_mode(Mode::Error500).await;
        let e = node.uncordon().await.expect_err("500");
        assert!(
            matches!(e, NodeError::Kube(KubeError::Api { code: 500, .. })),
            "{e:?}"
        );
        assert!(e.is_retriable());

        api.set_mode(Mode::Up).await;
        assert_eq!(node.cordon("test").await, Ok(CordonOutcome::Cordoned));
    })
    .await;
}

#[tokio::test]
async fn cordon_with_ownership_and_uncordon() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_node("n1");
        let node = NodeClient::new(kube(&api), "n1");
        api.clear_log();
        assert_eq!(
            node.cordon("KubeletUnhealthy: restart runtime").await,
            Ok(CordonOutcome::Cordoned)
        );
        assert!(unschedulable(&api, "n1"));
        assert_eq!(
            annotation(&api, "n1", CORDONED_BY).as_deref(),
            Some("nodewarden")
        );
        assert!(annotation(&api, "n1", CORDONED_AT).is_some());
        assert_eq!(
            annotation(&api, "n1", CORDON_REASON).as_deref(),
            Some("KubeletUnhealthy: restart runtime")
        );
        // One read and ONE patch set both the cordon and the annotation.
        assert_eq!(api.count("get", "nodes"), 1);
        assert_eq!(api.count("patch", "nodes"), 1);
        let v = node.view().await.expect("view");
        assert!(v.unschedulable && v.cordon_annotation);

        assert_eq!(node.cordon("again").await, Ok(CordonOutcome::AlreadyOurs));
        assert_eq!(node.uncordon().await, Ok(UncordonOutcome::Uncordoned));
        assert!(!unschedulable(&api, "n1"));
        assert_eq!(annotation(&api, "n1", CORDONED_BY), None);
        assert_eq!(annotation(&api, "n1", CORDON_REASON), None);
        assert_eq!(node.uncordon().await, Ok(UncordonOutcome::NotCordoned));
    })
    .await;
}

/// An admin's cordon is used, never claimed, never lifted.
#[tokio::test]
async fn admin_cordon_is_never_lifted() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_node("n1");
        api.modify(Kind::Node, "", "n1", |n| {
            n["spec"]["unschedulable"] = json!(true)
        });
        let node = NodeClient::new(kube(&api), "n1");
        api.clear_log();
        assert_eq!(
            node.cordon("x").await,
            Ok(CordonOutcome::AlreadyCordonedByOther)
        );
        assert_eq!(
            api.count("patch", "nodes"),
            0,
            "the admin's cordon is not annotated"
        );
        assert_eq!(annotation(&api, "n1", CORDONED_BY), None);

        let e = node.uncordon().await.expect_err("refused");
        assert!(matches!(e, NodeError::NotOurs { .. }), "{e:?}");
        assert!(!e.is_retriable());
        assert!(e.to_string().contains("never lifted"), "{e}");
        assert!(unschedulable(&api, "n1"), "still cordoned");
        assert_eq!(node.disown_cordon().await, Ok(false));
        assert!(unschedulable(&api, "n1"));
        assert_eq!(api.count("patch", "nodes"), 0);
    })
    .await;
}

/// disown: the annotation goes, the cordon stays, and from then on it is not ours to lift.
#[tokio::test]
async fn disown_keeps_the_node_cordoned() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_node("n1");
        let node = NodeClient::new(kube(&api), "n1");
        node.cordon("exhausted soon").await.expect("cordon");
        assert_eq!(node.disown_cordon().await, Ok(true));
        assert!(unschedulable(&api, "n1"));
        assert_eq!(annotation(&api, "n1", CORDONED_BY), None);
        assert_eq!(annotation(&api, "n1", CORDONED_AT), None);
        assert!(matches!(
            node.uncordon().await,
            Err(NodeError::NotOurs { .. })
        ));
        assert!(unschedulable(&api, "n1"));
    })
    .await;
}

/// Someone writes the node between nodewarden's read and its patch: the
/// resourceVersion precondition makes the patch fail with 409, and the
/// cordon reads again and succeeds.
#[tokio::test]
async fn cordon_conflict_is_retried() {
    bounded(async {
        let api = Arc::new(FakeApi::start().await);
        api.add_node("n1");
        api.set_latency(Duration::from_millis(150));
        let node = NodeClient::new(
            Kube::from_url(&api.url(), Duration::from_secs(5)).expect("client"),
            "n1",
        );
        api.clear_log();
        let writer = {
            let api = api.clone();
            tokio::spawn(async move {
                // As soon as the first GET has been answered, change the node.
                loop {
                    if api.count("get", "nodes") >= 1 {
                        api.modify(Kind::Node, "", "n1", |n| {
                            n["metadata"]["labels"]["touched"] = json!("yes");
                        });
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        assert_eq!(node.cordon("conflict").await, Ok(CordonOutcome::Cordoned));
        writer.await.expect("writer");
        let patches: Vec<u16> = api
            .requests()
            .iter()
            .filter(|r| r.verb == "patch" && r.resource == "nodes")
            .map(|r| r.status)
            .collect();
        assert_eq!(
            patches,
            vec![409, 200],
            "first patch conflicted, second won"
        );
        assert_eq!(
            api.count("get", "nodes"),
            2,
            "read again after the conflict"
        );
        assert!(unschedulable(&api, "n1"));
        assert_eq!(
            annotation(&api, "n1", CORDONED_BY).as_deref(),
            Some("nodewarden")
        );
        // The concurrent write survived.
        let n = api.get(Kind::Node, "", "n1").expect("node");
        assert_eq!(n.pointer("/metadata/labels/touched"), Some(&json!("yes")));
    })
    .await;
}

/// An admin cordons between nodewarden's read and its patch: the 409 makes
/// nodewarden read again, see the admin's cordon, and leave it unannotated.
#[tokio::test]
async fn admin_cordon_racing_ours_is_not_claimed() {
    bounded(async {
        let api = Arc::new(FakeApi::start().await);
        api.add_node("n1");
        api.set_latency(Duration::from_millis(150));
        let node = NodeClient::new(
            Kube::from_url(&api.url(), Duration::from_secs(5)).expect("client"),
            "n1",
        );
        api.clear_log();
        let admin = {
            let api = api.clone();
            tokio::spawn(async move {
                loop {
                    if api.count("get", "nodes") >= 1 {
                        api.modify(Kind::Node, "", "n1", |n| {
                            n["spec"]["unschedulable"] = json!(true)
                        });
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        assert_eq!(
            node.cordon("race").await,
            Ok(CordonOutcome::AlreadyCordonedByOther)
        );
        admin.await.expect("admin");
        assert_eq!(annotation(&api, "n1", CORDONED_BY), None);
        assert!(matches!(
            node.uncordon().await,
            Err(NodeError::NotOurs { .. })
        ));
    })
    .await;
}

struct FixedClock(Mutex<Timestamp>);

impl FixedClock {
    fn set(&self, t: &str) {
        *self.0.lock().expect("clock") = t.parse().expect("timestamp");
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().expect("clock")
    }
}

fn condition(api: &FakeApi, t: &str) -> Option<Value> {
    api.get(Kind::Node, "", "n1")?
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
        .cloned()
}

#[tokio::test]
async fn conditions_keep_last_transition_time_across_same_status_updates() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_node("n1");
        let clock = Arc::new(FixedClock(Mutex::new(Timestamp::UNIX_EPOCH)));
        clock.set("2025-06-01T10:00:00Z");
        let node = NodeClient::new(kube(&api), "n1").with_clock(clock.clone());
        let conds = NodeConditions::new(node.clone());
        assert_eq!(
            conds.load().await,
            Ok(4),
            "the kubelet's four conditions are read, not reset"
        );

        let failing = |msg: &str| {
            vec![
                DesiredCondition::new("KubeletUnhealthy", true, "HealthzFailed", msg),
                DesiredCondition::new(
                    "NodewardenRemediating",
                    true,
                    "StepStarted",
                    "restart kubelet",
                ),
            ]
        };
        assert_eq!(conds.set(&failing("healthz timed out")).await, Ok(true));
        let c = condition(&api, "KubeletUnhealthy").expect("condition");
        assert_eq!(c["status"], "True");
        assert_eq!(c["reason"], "HealthzFailed");
        assert_eq!(c["lastTransitionTime"], "2025-06-01T10:00:00Z");
        assert_eq!(
            condition(&api, "Ready").expect("kubelet's Ready kept")["status"],
            "True"
        );

        // Same status, new message: patched, transition time unchanged.
        clock.set("2025-06-01T10:01:00Z");
        assert_eq!(conds.set(&failing("healthz refused")).await, Ok(true));
        let c = condition(&api, "KubeletUnhealthy").expect("condition");
        assert_eq!(c["message"], "healthz refused");
        assert_eq!(c["lastTransitionTime"], "2025-06-01T10:00:00Z");
        assert_eq!(c["lastHeartbeatTime"], "2025-06-01T10:01:00Z");

        // Nothing changed and the heartbeat is fresh: no request at all.
        api.clear_log();
        clock.set("2025-06-01T10:02:00Z");
        assert_eq!(conds.set(&failing("healthz refused")).await, Ok(false));
        assert_eq!(api.requests().len(), 0);
        // The heartbeat is due after 5 minutes: patched, transition time unchanged.
        clock.set("2025-06-01T10:07:00Z");
        assert_eq!(conds.set(&failing("healthz refused")).await, Ok(true));
        assert_eq!(
            condition(&api, "KubeletUnhealthy").expect("c")["lastTransitionTime"],
            "2025-06-01T10:00:00Z"
        );

        // A restarted agent reads the conditions and keeps the transition time.
        let again = NodeConditions::new(node.clone());
        clock.set("2025-06-01T10:08:00Z");
        assert_eq!(again.set(&failing("still refused")).await, Ok(true));
        assert_eq!(
            condition(&api, "KubeletUnhealthy").expect("c")["lastTransitionTime"],
            "2025-06-01T10:00:00Z"
        );

        // Status flips: the transition time moves.
        clock.set("2025-06-01T10:09:00Z");
        let healthy = vec![DesiredCondition::new(
            "KubeletUnhealthy",
            false,
            "KubeletHealthy",
            "healthz ok",
        )];
        assert_eq!(again.set(&healthy).await, Ok(true));
        let c = condition(&api, "KubeletUnhealthy").expect("condition");
        assert_eq!(c["status"], "False");
        assert_eq!(c["lastTransitionTime"], "2025-06-01T10:09:00Z");
        // The other condition was not touched by this patch.
        assert_eq!(
            condition(&api, "NodewardenRemediating").expect("kept")["status"],
            "True"
        );
        // The patch is a strategic merge on the status subresource.
        let rec = api
            .requests()
            .into_iter()
            .rfind(|r| r.verb == "patch")
            .expect("patch");
        assert_eq!(rec.subresource.as_deref(), Some("status"));
        assert_eq!(
            rec.content_type.as_deref(),
            Some("application/strategic-merge-patch+json")
        );
        let n: Node =
            serde_json::from_value(api.get(Kind::Node, "", "n1").expect("n")).expect("node");
        assert!(!node_view(&n).unschedulable);
    })
    .await;
}

#[tokio::test]
async fn events_are_written_on_the_node_in_default() {
    bounded(async {
        let api = FakeApi::start().await;
        let n = api.add_node("n1");
        let uid = n
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        let sink = EventSink::for_node(kube(&api), "n1", uid.clone());
        sink.emit(&Report::warning(
            "StepFailed",
            "restart kubelet.service: job failed",
        ))
        .await
        .expect("event");
        sink.emit(&Report::normal("Cordoned", "cordoned by nodewarden"))
            .await
            .expect("event");
        let evs = api.list(Kind::Event);
        assert_eq!(evs.len(), 2, "{evs:?}");
        let e = evs
            .iter()
            .find(|e| e["reason"] == "StepFailed")
            .expect("StepFailed event");
        assert_eq!(e["metadata"]["namespace"], "default");
        assert_eq!(e["type"], "Warning");
        assert_eq!(e["note"], "restart kubelet.service: job failed");
        assert_eq!(e["regarding"]["kind"], "Node");
        assert_eq!(e["regarding"]["name"], "n1");
        assert_eq!(e["regarding"]["uid"], json!(uid));
        assert_eq!(e["reportingController"], "nodewarden.io/agent");
        assert_eq!(e["reportingInstance"], "n1");
        // Best effort: a dead API server does not fail or hang the caller.
        api.set_mode(Mode::Hang).await;
        let start = Instant::now();
        sink.emit_best_effort(&Report::normal("Held", "x")).await;
        assert!(start.elapsed() < Duration::from_secs(3));
    })
    .await;
}

/// Timed bookmarks keep a long watch alive: with a server-side timeout far
/// beyond the silence limit, a quiet watch on a healthy server costs one watch
/// request and the view stays current; a hung one is seen within the limit.
/// As on the real API server, the bookmarks come only once some Node (here
/// another one, outside the watch's field selector) has changed since the
/// watch started.
#[tokio::test]
async fn bookmarks_keep_a_long_watch_alive_and_a_hang_is_still_seen() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_node("n1");
        api.set_bookmark_every(Duration::from_millis(300));
        let node = NodeClient::new(kube(&api), "n1");
        let times = WatchTimes {
            silence: Duration::from_secs(1),
            server_timeout: Duration::from_secs(60),
            spread: false,
        };
        let (mut rx, task) = node.spawn_watch(times, Default::default());
        while rx.borrow().view().is_none() {
            rx.changed().await.expect("watch");
        }
        // Another node joins: the Node cacher moves on, so bookmarks flow.
        api.add_node("n2");
        // Three silence limits with no change to this Node: bookmarks only.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!rx.borrow().stale, "a bookmarked quiet watch is not stale");
        assert_eq!(api.count("watch", "nodes"), 1, "{:?}", api.requests());
        assert_eq!(api.count("list", "nodes"), 1);

        api.set_mode(Mode::Hang).await;
        let start = Instant::now();
        while !rx.borrow().stale {
            tokio::time::timeout(Duration::from_secs(5), rx.changed())
                .await
                .expect("a hung server is seen within the silence limit")
                .expect("watch");
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );

        api.set_mode(Mode::Up).await;
        while rx.borrow().stale {
            tokio::time::timeout(Duration::from_secs(20), rx.changed())
                .await
                .expect("the watch comes back")
                .expect("watch");
        }
        task.abort();
    })
    .await;
}

/// A real API server sends no bookmark to a watch while its resource does not
/// change (docs/benchmarks.md): a quiet watch stays open while the API shows
/// life elsewhere (the shared pulse: the Lease watch), and when the whole API
/// is quiet it is reopened to check, without ever being marked stale.
#[tokio::test]
async fn a_quiet_watch_is_checked_by_a_reopen_never_marked_stale() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_node("n1");
        api.set_bookmark_every(Duration::from_secs(3600));
        let node = NodeClient::new(kube(&api), "n1");
        let times = WatchTimes {
            silence: Duration::from_secs(1),
            server_timeout: Duration::from_secs(60),
            spread: false,
        };
        let pulse = nodewarden::act::watch::ApiPulse::default();
        let (mut rx, task) = node.spawn_watch(times, pulse.clone());
        while rx.borrow().view().is_none() {
            rx.changed().await.expect("watch");
        }
        // Another watch beats the pulse: this one stays open, quiet.
        for _ in 0..10 {
            pulse.beat();
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(api.count("watch", "nodes"), 1, "{:?}", api.requests());
        // Nothing anywhere: reopened about once per silence, still current.
        tokio::time::sleep(Duration::from_millis(2600)).await;
        let n = api.count("watch", "nodes");
        assert!((2..=4).contains(&n), "{n} watches");
        assert!(!rx.borrow().stale);
        assert_eq!(api.count("list", "nodes"), 1, "resumed, never listed again");
        task.abort();
    })
    .await;
}

/// The background watch of this one Node feeds `Views::cluster()` without API calls.
#[tokio::test]
async fn node_watch_follows_the_cordon() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_node("n1");
        api.add_node("n2");
        let node = NodeClient::new(kube(&api), "n1");
        let (mut rx, task) = node.spawn_watch(Duration::from_secs(10), Default::default());
        let seen = |rx: &tokio::sync::watch::Receiver<nodewarden::act::node::NodeSnapshot>| {
            rx.borrow().view()
        };
        while seen(&rx).is_none() {
            rx.changed().await.expect("watch");
        }
        assert_eq!(seen(&rx).map(|v| v.unschedulable), Some(false));
        node.cordon("watch test").await.expect("cordon");
        while !seen(&rx).is_some_and(|v| v.unschedulable && v.cordon_annotation) {
            rx.changed().await.expect("watch");
        }
        assert!(!rx.borrow().stale);
        let watches = api
            .requests()
            .into_iter()
            .filter(|r| r.verb == "watch" || r.verb == "list")
            .filter(|r| r.resource == "nodes")
            .all(|r| r.query.unwrap_or_default().contains("metadata.name%3Dn1"));
        assert!(watches, "only this node is listed and watched");
        task.abort();
    })
    .await;
}
