//! The fake apiserver driven by the real kube client (kube 5, k8s-openapi v1_33).

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use k8s_openapi::api::events::v1::Event as EventV1;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{
    Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::runtime::watcher;
use kube::{Client, Config};
use nodewarden_fakeapi::{Budget, FakeApi, Kind, Mode, pod};
use serde_json::{Value, json};

/// A kube client for the fake. `retry: false` turns off kube's default retry
/// layer (429/503/504 retried up to 15 times with backoff).
fn client(api: &FakeApi, retry: bool) -> Client {
    let mut config = Config::new(api.url().parse().expect("url"));
    config.default_retry = retry;
    Client::try_from(config).expect("client")
}

/// Every test body runs under this bound.
async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test took longer than 30 s");
}

fn api_error(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn condition<'a>(node: &'a Node, t: &str) -> Option<&'a k8s_openapi::api::core::v1::NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
}

#[tokio::test]
async fn node_get_and_patches_respect_the_status_subresource() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_node("n1");
        let nodes: Api<Node> = Api::all(client(&api, false));

        let n = nodes.get("n1").await.unwrap();
        assert_eq!(condition(&n, "Ready").unwrap().status, "True");
        assert!(n.metadata.uid.is_some() && n.metadata.resource_version.is_some());
        assert!(n.metadata.creation_timestamp.is_some());

        // Main resource: spec and labels change, status does not.
        let patched = nodes
            .patch(
                "n1",
                &PatchParams::default(),
                &Patch::Merge(json!({
                    "metadata": {"labels": {"nodewarden/state": "draining"}},
                    "spec": {"unschedulable": true},
                    "status": {"conditions": []},
                })),
            )
            .await
            .unwrap();
        assert_eq!(patched.spec.as_ref().unwrap().unschedulable, Some(true));
        assert_eq!(
            patched.metadata.labels.as_ref().unwrap()["nodewarden/state"],
            "draining"
        );
        assert_eq!(
            patched
                .status
                .as_ref()
                .unwrap()
                .conditions
                .as_ref()
                .unwrap()
                .len(),
            4
        );
        assert_ne!(
            patched.metadata.resource_version,
            n.metadata.resource_version
        );

        // Status subresource: strategic merge of conditions keyed by type; spec untouched.
        let patched = nodes
            .patch_status(
                "n1",
                &PatchParams::default(),
                &Patch::Strategic(json!({
                    "spec": {"unschedulable": false},
                    "status": {"conditions": [
                        {"type": "Ready", "status": "False", "reason": "PLEGNotHealthy"},
                        {"type": "KubeletStalled", "status": "True", "reason": "PLEG"},
                    ]},
                })),
            )
            .await
            .unwrap();
        let conds = patched
            .status
            .as_ref()
            .unwrap()
            .conditions
            .as_ref()
            .unwrap();
        assert_eq!(conds.len(), 5, "merged by type: {conds:?}");
        assert_eq!(condition(&patched, "Ready").unwrap().status, "False");
        assert_eq!(
            condition(&patched, "Ready").unwrap().reason.as_deref(),
            Some("PLEGNotHealthy")
        );
        assert_eq!(condition(&patched, "DiskPressure").unwrap().status, "False");
        assert_eq!(
            condition(&patched, "KubeletStalled").unwrap().status,
            "True"
        );
        assert_eq!(
            patched.spec.as_ref().unwrap().unschedulable,
            Some(true),
            "status patch left spec"
        );

        // A merge patch on status replaces the list (RFC 7386).
        let patched = nodes
            .patch_status(
                "n1",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                ),
            )
            .await
            .unwrap();
        assert_eq!(patched.status.unwrap().conditions.unwrap().len(), 1);

        // spec.taints has no merge key in the Go types: a strategic patch replaces the list.
        nodes
            .patch(
                "n1",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"taints": [
                {"key": "a", "effect": "NoSchedule"}]}})),
            )
            .await
            .unwrap();
        let n = nodes
            .patch(
                "n1",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"taints": [
                {"key": "b", "effect": "NoSchedule"}]}})),
            )
            .await
            .unwrap();
        let taints = n.spec.unwrap().taints.unwrap();
        assert_eq!(taints.len(), 1);
        assert_eq!(taints[0].key, "b");

        // Server-side apply needs a field manager; then it merges.
        let n = nodes
            .patch(
                "n1",
                &PatchParams::apply("nodewarden").force(),
                &Patch::Apply(json!({"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": "n1", "annotations": {"nodewarden/x": "1"}}})),
            )
            .await
            .unwrap();
        assert_eq!(n.metadata.annotations.unwrap()["nodewarden/x"], "1");
        assert_eq!(n.metadata.labels.unwrap()["nodewarden/state"], "draining");

        // Missing object → 404 NotFound Status.
        let e = api_error(nodes.get("nope").await.unwrap_err());
        assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
        assert_eq!(e.message, "nodes \"nope\" not found");

        // A patch carrying a stale resourceVersion is a conflict.
        let e = api_error(
            nodes
                .patch(
                    "n1",
                    &PatchParams::default(),
                    &Patch::Merge(json!({
                    "metadata": {"resourceVersion": "1", "labels": {"x": "y"}}})),
                )
                .await
                .unwrap_err(),
        );
        assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    })
    .await;
}

#[tokio::test]
async fn json_patch_and_bad_requests_over_raw_http() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_node("n1");
        let c = client(&api, false);
        let req = http::Request::patch("/api/v1/nodes/n1")
            .header("content-type", "application/json-patch+json")
            .body(
                serde_json::to_vec(&json!([
                    {"op": "test", "path": "/spec", "value": {}},
                    {"op": "add", "path": "/spec/unschedulable", "value": true},
                ]))
                .unwrap(),
            )
            .unwrap();
        let n: Node = c.request(req).await.unwrap();
        assert_eq!(n.spec.unwrap().unschedulable, Some(true));

        let req = http::Request::patch("/api/v1/nodes/n1")
            .header("content-type", "application/json-patch+json")
            .body(br#"[{"op":"test","path":"/spec/unschedulable","value":false}]"#.to_vec())
            .unwrap();
        assert_eq!(api_error(c.request_text(req).await.unwrap_err()).code, 422);

        let req = http::Request::post("/api/v1/namespaces/default/pods")
            .header("content-type", "application/json")
            .body(b"{not json".to_vec())
            .unwrap();
        let e = api_error(c.request_text(req).await.unwrap_err());
        assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));

        let req = http::Request::patch("/api/v1/nodes/n1")
            .header("content-type", "text/plain")
            .body(b"{}".to_vec())
            .unwrap();
        assert_eq!(api_error(c.request_text(req).await.unwrap_err()).code, 415);

        let req = http::Request::get("/apis/example.com/v1/widgets")
            .body(vec![])
            .unwrap();
        let e = api_error(c.request_text(req).await.unwrap_err());
        assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));

        let req = http::Request::get("/api/v1/pods?fieldSelector=spec.bogus%3Dx")
            .body(vec![])
            .unwrap();
        let e = api_error(c.request_text(req).await.unwrap_err());
        assert_eq!(e.code, 400);
        assert!(
            e.message.contains("field label not supported"),
            "{}",
            e.message
        );
    })
    .await;
}

#[tokio::test]
async fn pods_listed_by_node_field_selector() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_pod(pod("a", "p1").node("n1").label("app", "web"));
        api.add_pod(pod("b", "p2").node("n1"));
        api.add_pod(pod("a", "p3").node("n2").label("app", "web"));
        api.add_pod(pod("a", "p4"));
        let c = client(&api, false);
        let all: Api<Pod> = Api::all(c.clone());

        let on_n1 = all
            .list(&ListParams::default().fields("spec.nodeName=n1"))
            .await
            .unwrap();
        let names: Vec<_> = on_n1
            .items
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["p1", "p2"]);
        assert!(on_n1.metadata.resource_version.is_some());

        let not_n1 = all
            .list(&ListParams::default().fields("spec.nodeName!=n1"))
            .await
            .unwrap();
        assert_eq!(not_n1.items.len(), 2);
        let in_a: Api<Pod> = Api::namespaced(c.clone(), "a");
        let l = in_a
            .list(
                &ListParams::default()
                    .fields("spec.nodeName=n1")
                    .labels("app=web"),
            )
            .await
            .unwrap();
        assert_eq!(l.items.len(), 1);
        let meta = all
            .list_metadata(&ListParams::default().fields("metadata.namespace=a"))
            .await
            .unwrap();
        assert_eq!(meta.items.len(), 3);
        assert_eq!(meta.items[0].metadata.name.as_deref(), Some("p1"));

        // Paging.
        let page = all.list(&ListParams::default().limit(3)).await.unwrap();
        assert_eq!(page.items.len(), 3);
        let token = page.metadata.continue_.clone().expect("continue token");
        let rest = all
            .list(&ListParams::default().limit(3).continue_token(&token))
            .await
            .unwrap();
        assert_eq!(rest.items.len(), 1);
        assert!(rest.metadata.continue_.is_none_or(|c| c.is_empty()));
    })
    .await;
}

fn web_pods(api: &FakeApi, n: usize) {
    api.add_statefulset("shop", "web", n as i64, &[("app", "web")]);
    for i in 0..n {
        api.add_pod(
            pod("shop", &format!("web-{i}"))
                .node("n1")
                .label("app", "web")
                .statefulset("web"),
        );
    }
}

#[tokio::test]
async fn eviction_blocked_by_pdb_then_allowed() {
    bounded(async {
        let api = FakeApi::start().await;
        web_pods(&api, 3);
        api.set_pod_ready("shop", "web-2", false);
        api.add_pdb(
            "shop",
            "web-pdb",
            &[("app", "web")],
            Budget::MinAvailable(2),
        );
        let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client(&api, false), "shop");
        let st = pdbs.get("web-pdb").await.unwrap().status.unwrap();
        assert_eq!(
            (
                st.current_healthy,
                st.desired_healthy,
                st.disruptions_allowed
            ),
            (2, 2, 0)
        );

        let pods: Api<Pod> = Api::namespaced(client(&api, false), "shop");
        let e = api_error(
            pods.evict("web-0", &EvictParams::default())
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, 429);
        assert_eq!(e.reason, "TooManyRequests");
        assert_eq!(
            e.message,
            "Cannot evict pod as it would violate the pod's disruption budget."
        );
        let cause = &e.details.as_ref().unwrap().causes[0];
        assert_eq!(cause.reason, "DisruptionBudget");
        assert_eq!(
            cause.message,
            "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"
        );
        assert_eq!(
            api.count("create", "pods/eviction"),
            1,
            "no client-side retries"
        );
        assert!(
            api.get(Kind::Pod, "shop", "web-0").unwrap()["metadata"]["deletionTimestamp"].is_null()
        );

        // Another pod becomes Ready: one disruption allowed.
        api.set_pod_ready("shop", "web-2", true);
        let st = pdbs.get("web-pdb").await.unwrap().status.unwrap();
        assert_eq!(st.disruptions_allowed, 1);
        let s = pods.evict("web-0", &EvictParams::default()).await.unwrap();
        assert_eq!(s.code, 201);
        let p = pods.get("web-0").await.unwrap();
        assert!(p.metadata.deletion_timestamp.is_some());
        assert_eq!(p.metadata.deletion_grace_period_seconds, Some(30));
        let dt = p
            .status
            .unwrap()
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "DisruptionTarget");
        assert_eq!(dt.unwrap().reason.as_deref(), Some("EvictionByEvictionAPI"));
        assert_eq!(
            pdbs.get("web-pdb")
                .await
                .unwrap()
                .status
                .unwrap()
                .disruptions_allowed,
            0
        );

        // Budget used up again.
        let e = api_error(
            pods.evict("web-1", &EvictParams::default())
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, 429);
        // Evicting the already-terminating pod succeeds without change.
        let before = api.get(Kind::Pod, "shop", "web-0").unwrap();
        pods.evict("web-0", &EvictParams::default()).await.unwrap();
        assert_eq!(api.get(Kind::Pod, "shop", "web-0").unwrap(), before);
        // Missing pod.
        assert_eq!(
            api_error(
                pods.evict("nope", &EvictParams::default())
                    .await
                    .unwrap_err()
            )
            .code,
            404
        );
    })
    .await;
}

#[tokio::test]
async fn pending_pod_bypasses_pdb_and_unobserved_pdb_blocks() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_pod(
            pod("ns", "pending")
                .node("n1")
                .phase("Pending")
                .label("app", "x"),
        );
        api.add_pod(pod("ns", "running").node("n1").label("app", "x"));
        api.add_pod(pod("ns", "running2").node("n1").label("app", "x"));
        api.add_pdb("ns", "pdb", &[("app", "x")], Budget::MinAvailable(5));
        let pods: Api<Pod> = Api::namespaced(client(&api, false), "ns");
        assert_eq!(
            api_error(
                pods.evict("running", &EvictParams::default())
                    .await
                    .unwrap_err()
            )
            .code,
            429
        );
        pods.evict("pending", &EvictParams::default())
            .await
            .unwrap();

        // Not yet observed by the disruption controller → 429 "still being processed".
        api.add_pdb("ns", "pdb2", &[("app", "y")], Budget::MaxUnavailable(1));
        api.add_pod(pod("ns", "y1").node("n1").label("app", "y"));
        api.add_pod(pod("ns", "y2").node("n1").label("app", "y"));
        api.set_pdb_observed("ns", "pdb2", false);
        let e = api_error(pods.evict("y1", &EvictParams::default()).await.unwrap_err());
        assert_eq!((e.code, e.reason.as_str()), (429, "TooManyRequests"));
        let cause = &e.details.as_ref().unwrap().causes[0];
        assert!(
            cause
                .message
                .contains("still being processed by the server"),
            "{}",
            cause.message
        );
        assert_eq!(e.details.as_ref().unwrap().retry_after_seconds, 10);
        api.set_pdb_observed("ns", "pdb2", true);
        pods.evict("y1", &EvictParams::default()).await.unwrap();

        // With the disruption controller off a new PDB is never observed.
        api.set_disruption_controller(false);
        api.add_pdb(
            "ns",
            "pdb3",
            &[("app", "z")],
            Budget::MaxUnavailablePercent(50),
        );
        api.add_pod(pod("ns", "z1").node("n1").label("app", "z"));
        let e = api_error(pods.evict("z1", &EvictParams::default()).await.unwrap_err());
        assert!(
            e.details.unwrap().causes[0]
                .message
                .contains("still being processed")
        );
        api.set_disruption_controller(true);
        pods.evict("z1", &EvictParams::default()).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn kube_retry_layer_retries_429() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_pod(pod("ns", "p").node("n1").label("app", "x"));
        api.add_pdb("ns", "pdb", &[("app", "x")], Budget::MinAvailable(1));
        // The default client (default_retry = true) retries a 429 on its own.
        let pods: Api<Pod> = Api::namespaced(client(&api, true), "ns");
        let r = tokio::time::timeout(
            Duration::from_millis(300),
            pods.evict("p", &EvictParams::default()),
        )
        .await;
        assert!(
            r.is_err(),
            "a PDB-blocked eviction stalls inside the default client"
        );
        assert!(
            api.count("create", "pods/eviction") > 1,
            "the client retried by itself"
        );
    })
    .await;
}

#[tokio::test]
async fn evicted_pod_terminates_after_grace_and_grace_override() {
    bounded(async {
        let api = FakeApi::start().await;
        api.set_grace_scale(0.01);
        api.add_pod(pod("ns", "p").node("n1").grace(30));
        api.add_pod(pod("ns", "q").node("n1").grace(30));
        api.add_pod(pod("ns", "r").node("n1").grace(30));
        let pods: Api<Pod> = Api::namespaced(client(&api, false), "ns");
        let start = Instant::now();
        pods.evict("p", &EvictParams::default()).await.unwrap();
        let p = pods.get("p").await.unwrap();
        assert!(p.metadata.deletion_timestamp.is_some());
        wait_for("p gone", async || pods.get_opt("p").await.unwrap().is_none().then_some(())).await;
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(250), "grace honoured: {took:?}");

        // kube 5's EvictParams sends `delete_options` (snake case): the
        // apiserver drops the unknown field, so the override never arrives.
        let ep = EvictParams { delete_options: Some(DeleteParams { grace_period_seconds: Some(1), ..Default::default() }), ..Default::default() };
        pods.evict("q", &ep).await.unwrap();
        let q = pods.get("q").await.unwrap();
        assert_eq!(q.metadata.deletion_grace_period_seconds, Some(30), "override ignored");
        let rec = api.requests().into_iter().rfind(|r| r.subresource.as_deref() == Some("eviction")).unwrap();
        assert!(rec.body.contains("delete_options"), "{}", rec.body);

        // A correctly spelled body (`deleteOptions`) is honoured.
        let body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": "r", "namespace": "ns"}, "deleteOptions": {"gracePeriodSeconds": 2}});
        let req = http::Request::post("/api/v1/namespaces/ns/pods/r/eviction")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap();
        client(&api, false).request_text(req).await.unwrap();
        assert_eq!(pods.get("r").await.unwrap().metadata.deletion_grace_period_seconds, Some(2));

        // DELETE with grace 0 removes at once; a dead kubelet keeps terminating pods.
        api.set_kubelet_alive(false);
        api.add_pod(pod("ns", "s").node("n1").grace(1));
        pods.delete("s", &DeleteParams::default()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(pods.get("s").await.unwrap().metadata.deletion_timestamp.is_some(), "still terminating");
        pods.delete("s", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
        assert!(pods.get_opt("s").await.unwrap().is_none());
        api.set_kubelet_alive(true);
        wait_for("q and r gone", async || {
            (pods.get_opt("q").await.unwrap().is_none() && pods.get_opt("r").await.unwrap().is_none()).then_some(())
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn statefulset_pod_replaced_with_same_name_and_new_uid() {
    bounded(async {
        let api = FakeApi::start().await;
        api.set_grace_scale(0.001);
        api.set_replacement_node(Some("n2"));
        web_pods(&api, 1);
        api.add_replicaset("shop", "api-7d4", 1, &[("app", "api")], None);
        api.add_pod(
            pod("shop", "api-7d4-abcde")
                .node("n1")
                .label("app", "api")
                .replicaset("api-7d4"),
        );
        let pods: Api<Pod> = Api::namespaced(client(&api, false), "shop");
        let old = pods.get("web-0").await.unwrap();
        pods.evict("web-0", &EvictParams::default()).await.unwrap();
        let new = wait_for("replacement", async || {
            let p = pods.get_opt("web-0").await.unwrap()?;
            (p.metadata.uid != old.metadata.uid).then_some(p)
        })
        .await;
        assert_eq!(new.metadata.name.as_deref(), Some("web-0"));
        assert!(new.metadata.deletion_timestamp.is_none());
        assert_eq!(
            new.status.as_ref().unwrap().phase.as_deref(),
            Some("Pending")
        );
        assert_eq!(new.spec.as_ref().unwrap().node_name.as_deref(), Some("n2"));
        assert_eq!(
            new.metadata.owner_references.as_ref().unwrap()[0].kind,
            "StatefulSet"
        );

        pods.evict("api-7d4-abcde", &EvictParams::default())
            .await
            .unwrap();
        wait_for("rs replacement", async || {
            let l = pods
                .list(&ListParams::default().labels("app=api"))
                .await
                .unwrap();
            (l.items.len() == 1 && l.items[0].metadata.name.as_deref() != Some("api-7d4-abcde"))
                .then_some(())
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn watch_events_follow_the_field_selector() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_pod(pod("ns", "before").node("n1"));
        let c = client(&api, false);
        let pods: Api<Pod> = Api::all(c.clone());
        let list = pods
            .list(&ListParams::default().fields("spec.nodeName=n1"))
            .await
            .unwrap();
        let rv = list.metadata.resource_version.unwrap();
        let wp = WatchParams::default().fields("spec.nodeName=n1").timeout(3);
        let mut stream = pods.watch(&wp, &rv).await.unwrap().boxed();

        api.add_pod(pod("ns", "elsewhere").node("n2"));
        api.add_pod(pod("ns", "p").node("n1"));
        api.set_pod_ready("ns", "p", false);
        api.remove(Kind::Pod, "ns", "p");
        let mut seen = Vec::new();
        while seen.len() < 3 {
            match stream
                .try_next()
                .await
                .unwrap()
                .expect("stream ended early")
            {
                WatchEvent::Added(p) => seen.push(("ADDED", p.metadata.name.unwrap())),
                WatchEvent::Modified(p) => seen.push(("MODIFIED", p.metadata.name.unwrap())),
                WatchEvent::Deleted(p) => seen.push(("DELETED", p.metadata.name.unwrap())),
                WatchEvent::Bookmark(_) => {}
                WatchEvent::Error(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(
            seen,
            [
                ("ADDED", "p".into()),
                ("MODIFIED", "p".into()),
                ("DELETED", "p".into())
            ]
        );
        // timeoutSeconds ends the stream (after a bookmark, if asked for).
        let start = Instant::now();
        while stream.try_next().await.unwrap().is_some() {}
        assert!(start.elapsed() < Duration::from_secs(4));

        // An expired resourceVersion answers 410 Gone.
        api.compact();
        let mut s = pods
            .watch(&WatchParams::default(), &rv)
            .await
            .unwrap()
            .boxed();
        match s.try_next().await.unwrap() {
            Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
            other => panic!("expected 410, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn runtime_watcher_sees_apply_and_delete() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_pod(pod("ns", "a").node("n1"));
        let pods: Api<Pod> = Api::all(client(&api, false));
        let mut w = watcher(pods, watcher::Config::default().fields("spec.nodeName=n1")).boxed();
        let mut init = Vec::new();
        loop {
            match w.try_next().await.unwrap().unwrap() {
                watcher::Event::InitApply(p) => init.push(p.metadata.name.unwrap()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
        assert_eq!(init, ["a"]);
        api.add_pod(pod("ns", "b").node("n2"));
        api.add_pod(pod("ns", "c").node("n1"));
        match w.try_next().await.unwrap().unwrap() {
            watcher::Event::Apply(p) => assert_eq!(p.metadata.name.as_deref(), Some("c")),
            other => panic!("{other:?}"),
        }
        api.modify(Kind::Pod, "ns", "c", |p| {
            p["spec"]["nodeName"] = json!("n2")
        });
        match w.try_next().await.unwrap().unwrap() {
            watcher::Event::Delete(p) => assert_eq!(p.metadata.name.as_deref(), Some("c")),
            other => panic!("moving off the node is a DELETED for this watch: {other:?}"),
        }
        assert_eq!(api.count("list", "pods"), 1);
        assert_eq!(api.count("watch", "pods"), 1);
        let watch_req = api
            .requests()
            .into_iter()
            .find(|r| r.verb == "watch")
            .unwrap();
        assert!(
            watch_req
                .query
                .unwrap()
                .contains("allowWatchBookmarks=true")
        );
    })
    .await;
}

#[tokio::test]
async fn lease_create_and_update_conflicts() {
    bounded(async {
        let api = FakeApi::start().await;
        let leases: Api<Lease> = Api::namespaced(client(&api, false), "kube-node-lease");
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": "nodewarden-slot-0"},
            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 60},
        }))
        .unwrap();
        let created = leases.create(&PostParams::default(), &lease).await.unwrap();
        let e = api_error(
            leases
                .create(&PostParams::default(), &lease)
                .await
                .unwrap_err(),
        );
        assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));

        let mut mine = created.clone();
        mine.spec.as_mut().unwrap().holder_identity = Some("n2".into());
        let updated = leases
            .replace("nodewarden-slot-0", &PostParams::default(), &mine)
            .await
            .unwrap();
        assert_eq!(updated.spec.unwrap().holder_identity.as_deref(), Some("n2"));

        // Someone else's update with the old resourceVersion loses.
        let mut theirs = created;
        theirs.spec.as_mut().unwrap().holder_identity = Some("n3".into());
        let e = api_error(
            leases
                .replace("nodewarden-slot-0", &PostParams::default(), &theirs)
                .await
                .unwrap_err(),
        );
        assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
        assert!(
            e.message.contains("the object has been modified"),
            "{}",
            e.message
        );
        assert_eq!(
            leases
                .get("nodewarden-slot-0")
                .await
                .unwrap()
                .spec
                .unwrap()
                .holder_identity
                .as_deref(),
            Some("n2")
        );
        leases
            .delete("nodewarden-slot-0", &DeleteParams::default())
            .await
            .unwrap();
        assert!(leases.get_opt("nodewarden-slot-0").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn date_skew_shows_in_the_date_header() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_node("n1");
        api.set_date_skew(jiff::SignedDuration::from_secs(3600));
        let c = client(&api, false);
        let req = http::Request::get("/api/v1/nodes/n1")
            .body(kube::client::Body::empty())
            .unwrap();
        let resp = c.send(req).await.unwrap();
        let date = resp.headers()["date"].to_str().unwrap().to_string();
        let ts = jiff::fmt::rfc2822::parse(&date).unwrap().timestamp();
        let skew = ts.duration_since(jiff::Timestamp::now());
        assert!(
            (skew.as_secs() - 3600).abs() <= 2,
            "{date} is {skew:?} ahead"
        );
        assert!(date.ends_with(" GMT"));
    })
    .await;
}

#[tokio::test]
async fn down_refuses_connections_and_up_restores_the_same_port() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_node("n1");
        let addr = api.addr();
        let nodes: Api<Node> = Api::all(client(&api, false));
        nodes.get("n1").await.unwrap();

        api.set_mode(Mode::Down).await;
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "connection refused"
        );
        let r = tokio::time::timeout(Duration::from_secs(5), nodes.get("n1"))
            .await
            .expect("fails fast");
        assert!(r.is_err());

        api.set_mode(Mode::Up).await;
        assert_eq!(api.addr(), addr);
        nodes.get("n1").await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn hang_makes_calls_time_out_and_error500_fails_them() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_node("n1");
        let nodes: Api<Node> = Api::all(client(&api, false));
        api.set_mode(Mode::Hang).await;
        let r = tokio::time::timeout(Duration::from_millis(300), nodes.get("n1")).await;
        assert!(r.is_err(), "timed out");
        assert_eq!(api.requests().last().unwrap().status, 0);

        api.set_mode(Mode::Error500).await;
        let e = api_error(nodes.get("n1").await.unwrap_err());
        assert_eq!((e.code, e.reason.as_str()), (500, "InternalError"));

        api.set_mode(Mode::Up).await;
        api.set_latency(Duration::from_millis(50));
        let start = Instant::now();
        nodes.get("n1").await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(50));
    })
    .await;
}

#[tokio::test]
async fn request_log_counts_by_verb_and_resource() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_node("n1");
        api.add_pod(pod("ns", "p").node("n1"));
        let c = client(&api, false);
        let nodes: Api<Node> = Api::all(c.clone());
        let pods: Api<Pod> = Api::namespaced(c.clone(), "ns");
        api.clear_log();
        nodes.get("n1").await.unwrap();
        nodes.get("n1").await.unwrap();
        pods.list(&ListParams::default()).await.unwrap();
        nodes
            .patch_status("n1", &PatchParams::default(), &Patch::Merge(json!({})))
            .await
            .unwrap();
        pods.evict("p", &EvictParams::default()).await.unwrap();
        assert_eq!(api.count("get", "nodes"), 2);
        assert_eq!(api.count("list", "pods"), 1);
        assert_eq!(api.count("patch", "nodes/status"), 1);
        assert_eq!(api.count("patch", "nodes"), 0);
        assert_eq!(api.count("create", "pods/eviction"), 1);
        assert_eq!(api.count("create", "pods"), 0);
        let r = &api.requests()[0];
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.status),
            ("GET", "/api/v1/nodes/n1", 200)
        );
        api.clear_log();
        assert!(api.requests().is_empty());
    })
    .await;
}

#[tokio::test]
async fn deployment_scale_and_events() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_deployment("shop", "web", 2, &[("app", "web")]);
        let c = client(&api, false);
        let deps: Api<Deployment> = Api::namespaced(c.clone(), "shop");
        let s = deps.get_scale("web").await.unwrap();
        assert_eq!(s.spec.unwrap().replicas, Some(2));
        let s = deps
            .patch_scale(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 3}})),
            )
            .await
            .unwrap();
        assert_eq!(s.spec.unwrap().replicas, Some(3));
        let d = deps.get("web").await.unwrap();
        assert_eq!(d.spec.unwrap().replicas, Some(3));
        assert_eq!(d.metadata.generation, Some(2));

        // Events for a Node go to `default` via events.k8s.io/v1.
        let recorder = kube::runtime::events::Recorder::new(
            c.clone(),
            kube::runtime::events::Reporter {
                controller: "nodewarden".into(),
                instance: Some("n1".into()),
            },
        );
        let node_ref = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some("n1".into()),
            ..Default::default()
        };
        let ev = kube::runtime::events::Event {
            type_: kube::runtime::events::EventType::Warning,
            reason: "KubeletRestarted".into(),
            note: Some("PLEG stalled".into()),
            action: "Remediate".into(),
            secondary: None,
        };
        recorder.publish(&ev, &node_ref).await.unwrap();
        recorder.publish(&ev, &node_ref).await.unwrap();
        let events: Api<EventV1> = Api::namespaced(c.clone(), "default");
        let list = events.list(&ListParams::default()).await.unwrap();
        assert_eq!(list.items.len(), 1);
        assert_eq!(list.items[0].reason.as_deref(), Some("KubeletRestarted"));
        assert!(api.count("create", "events") >= 1);
        let raw: Value = serde_json::to_value(&list.items[0]).unwrap();
        assert_eq!(raw["regarding"]["name"], "n1");

        let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(c, "default");
        let e: k8s_openapi::api::core::v1::Event = serde_json::from_value(json!({
            "metadata": {"generateName": "n1."},
            "involvedObject": {"kind": "Node", "name": "n1"},
            "reason": "Test", "type": "Normal",
        }))
        .unwrap();
        let created = core.create(&PostParams::default(), &e).await.unwrap();
        assert!(created.metadata.name.unwrap().starts_with("n1."));
        let l = core
            .list(&ListParams::default().fields("involvedObject.name=n1"))
            .await
            .unwrap();
        assert_eq!(l.items.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn pdb_percentages_use_the_controller_scale() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_deployment("ns", "d", 4, &[("app", "d")]);
        api.add_replicaset("ns", "d-1", 4, &[("app", "d")], Some("d"));
        for i in 0..3 {
            api.add_pod(
                pod("ns", &format!("d-1-{i}"))
                    .node("n1")
                    .label("app", "d")
                    .replicaset("d-1"),
            );
        }
        // 4 expected (from the Deployment), 25 % may be unavailable → 3 desired, 3 healthy.
        let pdb = api.add_pdb(
            "ns",
            "pdb",
            &[("app", "d")],
            Budget::MaxUnavailablePercent(25),
        );
        assert_eq!(pdb["status"]["expectedPods"], 4);
        assert_eq!(pdb["status"]["desiredHealthy"], 3);
        assert_eq!(pdb["status"]["disruptionsAllowed"], 0);
        let pods: Api<Pod> = Api::namespaced(client(&api, false), "ns");
        assert_eq!(
            api_error(
                pods.evict("d-1-0", &EvictParams::default())
                    .await
                    .unwrap_err()
            )
            .code,
            429
        );
        api.add_pod(
            pod("ns", "d-1-3")
                .node("n1")
                .label("app", "d")
                .replicaset("d-1"),
        );
        pods.evict("d-1-0", &EvictParams::default()).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn shutdown_stops_serving() {
    bounded(async {
        let api = FakeApi::start().await;
        let addr = api.addr();
        api.shutdown().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn hostile_requests_get_statuses_not_panics() {
    bounded(async {
        let api = FakeApi::start().await;
        api.add_node("n1");
        api.add_pod(pod("ns", "p").node("n1").label("app", "x"));
        api.add_pdb("ns", "pdb", &[("app", "x")], Budget::MinAvailable(0));
        let c = client(&api, false);
        let send = |method: &str, uri: &str, ctype: &str, body: &str| {
            http::Request::builder()
                .method(method)
                .uri(uri)
                .header("content-type", ctype)
                .body(body.as_bytes().to_vec())
                .unwrap()
        };
        let cases = [
            (
                "PUT",
                "/api/v1/namespaces/ns/pods/p",
                "application/json",
                r#"{"metadata":{"name":"p"},"spec":5}"#,
                200,
            ),
            (
                "PUT",
                "/apis/policy/v1/namespaces/ns/poddisruptionbudgets/pdb/status",
                "application/json",
                r#"{"metadata":{"name":"pdb"},"status":"x"}"#,
                200,
            ),
            (
                "PATCH",
                "/api/v1/nodes/n2?fieldManager=t",
                "application/apply-patch+yaml",
                r#"{"metadata":5}"#,
                201,
            ),
            (
                "PATCH",
                "/api/v1/nodes/n1",
                "application/apply-patch+yaml",
                r#"{}"#,
                422,
            ),
            (
                "PATCH",
                "/api/v1/nodes/n1",
                "application/merge-patch+json",
                r#"[1]"#,
                400,
            ),
            (
                "PATCH",
                "/api/v1/nodes/n1",
                "application/json-patch+json",
                r#"[{"op":"nope","path":"/x"}]"#,
                400,
            ),
            (
                "PUT",
                "/api/v1/nodes/n1",
                "application/json",
                r#"{"metadata":{"name":"other"}}"#,
                400,
            ),
            ("PUT", "/api/v1/nodes/n1", "application/json", r#"[]"#, 400),
            (
                "POST",
                "/api/v1/nodes",
                "application/json",
                r#"{"metadata":{}}"#,
                422,
            ),
            (
                "POST",
                "/api/v1/namespaces/ns/pods/p/eviction",
                "application/json",
                r#"{"metadata":{"name":"q"}}"#,
                400,
            ),
            (
                "POST",
                "/api/v1/namespaces/ns/pods/p/eviction",
                "application/json",
                r#"5"#,
                400,
            ),
            (
                "GET",
                "/api/v1/pods?watch=true&timeoutSeconds=99999999999999999999",
                "",
                "",
                400,
            ),
            ("GET", "/api/v1/pods?labelSelector=a%20in%20b", "", "", 400),
            ("GET", "/api/v1/pods?continue=zz", "", "", 400),
            (
                "DELETE",
                "/api/v1/namespaces/ns/pods/p?gracePeriodSeconds=x",
                "",
                "",
                400,
            ),
            ("POST", "/api/v1/nodes/n1", "application/json", "{}", 405),
            ("GET", "/api/v1/namespaces/ns", "", "", 404),
        ];
        for (method, uri, ctype, body, want) in cases {
            let got = match c.request_text(send(method, uri, ctype, body)).await {
                Ok(_) => {
                    if method == "PATCH" && want == 201 {
                        201
                    } else {
                        200
                    }
                }
                Err(e) => api_error(e).code,
            };
            assert_eq!(got, want, "{method} {uri} {body}");
        }
        // The pod with a broken spec and the PDB with a broken status still work.
        let pods: Api<Pod> = Api::namespaced(c.clone(), "ns");
        let e = pods.evict("p", &EvictParams::default()).await;
        assert!(e.is_ok() || api_error(e.unwrap_err()).code < 500);
        let nodes: Api<Node> = Api::all(c);
        nodes.get("n1").await.unwrap();
        assert!(api.requests().iter().all(|r| r.status != 0));
    })
    .await;
}
