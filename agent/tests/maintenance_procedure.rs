//! `maintenance start|end` against the fake API server: the order of effects,
//! the refusals that change nothing, and the state that survives between them.

use std::sync::Arc;
use std::time::Duration;

use nodewarden::act::kube::Kube;
use nodewarden::domain::{Dur, Problem, Timestamp};
use nodewarden::health::{Observation, Verdict as ProbeVerdict};
use nodewarden::maintenance::procedure::{self, Ctx, MaintError, StartOptions, StateFile};
use nodewarden::runbook;
use nodewarden_fakeapi::{Budget, FakeApi, Kind, Mode, pod};

const NODE: &str = "n1";

fn ctx(api: &FakeApi, dir: &tempfile::TempDir) -> Ctx {
    Ctx {
        kube: Kube::from_url(&api.url(), Duration::from_secs(2)).unwrap(),
        node: NODE.into(),
        namespace: "nodewarden".into(),
        state: StateFile::new(dir.path().join("maintenance.json")),
        by: "alice".into(),
    }
}

fn opts() -> StartOptions {
    StartOptions {
        reason: "kernel 6.1.112".into(),
        timeout: Dur::from_std(Duration::from_secs(20)),
        force: false,
        max_duration: Dur::from_std(Duration::from_secs(3600)),
        surge_single_replicas: false,
    }
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn healthy() -> Vec<Observation> {
    vec![Observation::new(
        Problem::KubeletUnhealthy,
        now(),
        ProbeVerdict::Healthy,
        "healthz ok",
    )]
}

/// A 3-replica Deployment spread over n1/n2 behind a PDB, a DaemonSet pod.
fn seed(api: &FakeApi) {
    api.set_grace_scale(0.01);
    api.add_node(NODE);
    api.add_node("n2");
    api.add_deployment("default", "web", 3, &[("app", "web")]);
    api.add_replicaset("default", "web-1", 3, &[("app", "web")], Some("web"));
    for (name, node) in [("web-1-a", NODE), ("web-1-b", "n2"), ("web-1-c", "n2")] {
        api.add_pod(
            pod("default", name)
                .node(node)
                .replicaset("web-1")
                .label("app", "web"),
        );
    }
    api.add_pdb(
        "default",
        "web-pdb",
        &[("app", "web")],
        Budget::MinAvailable(2),
    );
    api.add_daemonset("kube-system", "fluentd", &[("app", "fluentd")]);
    api.add_pod(
        pod("kube-system", "fluentd-n1")
            .node(NODE)
            .daemonset("fluentd"),
    );
}

fn node_json(api: &FakeApi) -> serde_json::Value {
    api.get(Kind::Node, "", NODE).unwrap()
}

fn unschedulable(api: &FakeApi) -> bool {
    node_json(api)["spec"]["unschedulable"] == true
}

fn condition(api: &FakeApi, ty: &str) -> Option<String> {
    node_json(api)["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
        .map(|c| c["status"].as_str().unwrap_or("").to_string())
}

fn slot_holder(api: &FakeApi) -> Option<String> {
    api.get(Kind::Lease, "nodewarden", "nodewarden-slot-0")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
}

fn mutations(api: &FakeApi) -> usize {
    api.requests()
        .iter()
        .filter(|r| !matches!(r.method.as_str(), "GET"))
        .count()
}

fn on_node(api: &FakeApi, ns: &str, name: &str) -> bool {
    api.get(Kind::Pod, ns, name).is_some_and(|p| {
        p["spec"]["nodeName"] == NODE && p["metadata"]["deletionTimestamp"].is_null()
    })
}

#[tokio::test]
async fn start_then_end_round_trip() {
    let api = FakeApi::start().await;
    seed(&api);
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(&api, &dir);
    let rb = runbook::default_runbook().runbook;

    let s = procedure::start(&c, &rb, &opts(), now()).await.unwrap();
    assert!(!s.resumed);
    assert!(s.state.drained && s.state.cordoned_by_us);
    assert!(unschedulable(&api));
    assert_eq!(
        node_json(&api)["metadata"]["annotations"]["nodewarden.io/cordoned-by"],
        "nodewarden"
    );
    assert_eq!(slot_holder(&api).as_deref(), Some(NODE));
    assert_eq!(
        condition(&api, "NodewardenMaintenance").as_deref(),
        Some("True")
    );
    assert!(!on_node(&api, "default", "web-1-a"), "evicted");
    assert!(
        on_node(&api, "kube-system", "fluentd-n1"),
        "DaemonSet pod stays"
    );
    assert!(api.count("create", "pods/eviction") >= 1);

    // On disk for the daemon (it pauses) and for `status`.
    let st = c.state.load().unwrap().unwrap();
    assert_eq!(st.by, "alice");
    assert_eq!(st.reason, "kernel 6.1.112");
    assert_eq!(
        procedure::daemon_view(&c.state).map(|r| r.reason),
        Some("kernel 6.1.112".to_string())
    );

    // Start twice: refused, nothing sent.
    let before = mutations(&api);
    let e = procedure::start(&c, &rb, &opts(), now()).await.unwrap_err();
    assert!(matches!(e, MaintError::AlreadyInForce { .. }), "{e}");
    assert_eq!(mutations(&api), before);

    let ended = procedure::end(&c, &healthy()).await.unwrap();
    assert!(ended.uncordoned, "{:?}", ended.notes);
    assert!(!unschedulable(&api));
    assert!(node_json(&api)["metadata"]["annotations"]["nodewarden.io/cordoned-by"].is_null());
    assert_eq!(slot_holder(&api), None, "slot released");
    assert_eq!(
        condition(&api, "NodewardenMaintenance").as_deref(),
        Some("False")
    );
    assert!(c.state.load().unwrap().is_none());
    assert_eq!(procedure::daemon_view(&c.state), None);

    let reasons: Vec<String> = api
        .list(Kind::Event)
        .iter()
        .chain(api.list(Kind::CoreEvent).iter())
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect();
    for r in [
        "MaintenanceStarted",
        "MaintenanceDrained",
        "MaintenanceEnded",
    ] {
        assert!(reasons.iter().any(|x| x == r), "{r} in {reasons:?}");
    }

    // End with nothing in force.
    let e = procedure::end(&c, &healthy()).await.unwrap_err();
    assert!(matches!(e, MaintError::NotInForce), "{e}");
}

#[tokio::test]
async fn an_unhealthy_node_is_not_uncordoned() {
    let api = FakeApi::start().await;
    seed(&api);
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(&api, &dir);
    let rb = runbook::default_runbook().runbook;
    procedure::start(&c, &rb, &opts(), now()).await.unwrap();
    let sick = vec![Observation::new(
        Problem::ContainerRuntimeUnresponsive,
        now(),
        ProbeVerdict::Failing,
        "docker /_ping timed out",
    )];
    let before = mutations(&api);
    let e = procedure::end(&c, &sick).await.unwrap_err();
    assert!(matches!(e, MaintError::Unhealthy(_)), "{e}");
    assert!(e.to_string().contains("docker /_ping timed out"));
    assert_eq!(mutations(&api), before, "nothing changed");
    assert!(unschedulable(&api));
    assert!(c.state.load().unwrap().is_some(), "still in maintenance");
}

#[tokio::test]
async fn an_admins_cordon_is_used_and_left_in_place() {
    let api = FakeApi::start().await;
    seed(&api);
    api.modify(Kind::Node, "", NODE, |n| {
        n["spec"]["unschedulable"] = true.into();
    });
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(&api, &dir);
    let rb = runbook::default_runbook().runbook;
    let s = procedure::start(&c, &rb, &opts(), now()).await.unwrap();
    assert!(!s.state.cordoned_by_us && s.state.was_cordoned);
    assert!(node_json(&api)["metadata"]["annotations"]["nodewarden.io/cordoned-by"].is_null());
    let ended = procedure::end(&c, &healthy()).await.unwrap();
    assert!(!ended.uncordoned);
    assert!(unschedulable(&api), "the admin's cordon stays");
    assert_eq!(slot_holder(&api), None);
}

#[tokio::test]
async fn api_down_at_start_or_end_changes_nothing() {
    let api = FakeApi::start().await;
    seed(&api);
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(&api, &dir);
    let rb = runbook::default_runbook().runbook;

    api.set_mode(Mode::Down).await;
    let e = procedure::start(&c, &rb, &opts(), now()).await.unwrap_err();
    assert!(matches!(e, MaintError::ApiUnreachable(_)), "{e}");
    assert!(c.state.load().unwrap().is_none(), "no state written");
    api.set_mode(Mode::Up).await;
    assert!(!unschedulable(&api));
    assert_eq!(slot_holder(&api), None);

    procedure::start(&c, &rb, &opts(), now()).await.unwrap();
    api.set_mode(Mode::Hang).await;
    let t0 = std::time::Instant::now();
    let e = procedure::end(&c, &healthy()).await.unwrap_err();
    assert!(matches!(e, MaintError::ApiUnreachable(_)), "{e}");
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "bounded by the call deadline"
    );
    api.set_mode(Mode::Up).await;
    assert!(unschedulable(&api), "still cordoned");
    assert!(c.state.load().unwrap().is_some(), "still in maintenance");
    procedure::end(&c, &healthy()).await.unwrap();
    assert!(!unschedulable(&api));
}

#[tokio::test]
async fn blocked_or_busy_start_changes_nothing() {
    let api = FakeApi::start().await;
    seed(&api);
    // An unmanaged pod without --force blocks the drain.
    api.add_pod(pod("default", "debug").node(NODE));
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(&api, &dir);
    let rb = runbook::default_runbook().runbook;
    api.clear_log();
    let e = procedure::start(&c, &rb, &opts(), now()).await.unwrap_err();
    let MaintError::Blocked(report) = &e else {
        panic!("{e}")
    };
    assert!(
        report
            .pods
            .iter()
            .any(|p| p.name == "debug"
                && p.verdict == nodewarden::maintenance::ImpactVerdict::Blocked)
    );
    assert_eq!(mutations(&api), 0, "nothing changed");
    assert!(c.state.load().unwrap().is_none());

    // Every slot held by another node: refused before the cordon.
    api.remove(Kind::Pod, "default", "debug");
    let other = nodewarden::act::slots::Slots::new(
        Kube::from_url(&api.url(), Duration::from_secs(2)).unwrap(),
        nodewarden::act::slots::SlotConfig {
            namespace: "nodewarden".into(),
            holder: "n2".into(),
            slots: 1,
            lease_duration: Duration::from_secs(600),
        },
    );
    other.acquire().await.unwrap();
    let e = procedure::start(&c, &rb, &opts(), now()).await.unwrap_err();
    assert!(e.to_string().contains("n2"), "{e}");
    assert!(!unschedulable(&api));
    assert!(c.state.load().unwrap().is_none());
}

#[tokio::test]
async fn a_drain_blocked_by_a_pdb_stays_cordoned_and_resumes() {
    let api = FakeApi::start().await;
    seed(&api);
    // Two of the three replicas elsewhere are not Ready: the PDB allows nothing.
    api.set_pod_ready("default", "web-1-b", false);
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(&api, &dir);
    let rb = runbook::default_runbook().runbook;
    let mut o = opts();
    o.timeout = Dur::from_std(Duration::from_secs(2));
    // The impact report sees the PDB at its limit and refuses up front.
    let e = procedure::start(&c, &rb, &o, now()).await.unwrap_err();
    assert!(matches!(e, MaintError::Blocked(_)), "{e}");
    assert!(!unschedulable(&api));

    // The PDB allows the eviction when we look, but the disruption controller
    // has not observed it when we evict (429 until the deadline).
    api.set_pod_ready("default", "web-1-b", true);
    api.set_pdb_observed("default", "web-pdb", false);
    let e = procedure::start(&c, &rb, &o, now()).await.unwrap_err();
    let MaintError::DrainFailed(msg) = &e else {
        panic!("{e}")
    };
    assert!(msg.contains("web-1-a"), "names the blocked pod: {msg}");
    assert!(unschedulable(&api), "stays cordoned");
    let st = c.state.load().unwrap().unwrap();
    assert!(!st.drained && st.cordoned_by_us);
    assert_eq!(slot_holder(&api).as_deref(), Some(NODE), "slot kept");
    assert!(on_node(&api, "default", "web-1-a"));

    // `start` again resumes the drain once the PDB allows it.
    api.set_pdb_observed("default", "web-pdb", true);
    let s = procedure::start(&c, &rb, &opts(), now()).await.unwrap();
    assert!(s.resumed && s.state.drained);
    assert!(!on_node(&api, "default", "web-1-a"));
}

/// Plays the Deployment controller for `default/solo`: a scale to 2 gets a
/// Ready pod on n2 (when `ready` is set), a scale back to 1 drops it.
fn deployment_controller(api: Arc<FakeApi>, ready: bool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Some(d) = api.get(Kind::Deployment, "default", "solo") {
                let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
                let have = d["status"]["readyReplicas"].as_i64().unwrap_or(0);
                if want == 2 && have < 2 && ready {
                    api.add_pod(
                        pod("default", "solo-1-b")
                            .node("n2")
                            .replicaset("solo-1")
                            .label("app", "solo"),
                    );
                    api.modify(Kind::Deployment, "default", "solo", |d| {
                        d["status"]["readyReplicas"] = 2.into();
                    });
                } else if want == 1 && have == 2 {
                    api.modify(Kind::Deployment, "default", "solo", |d| {
                        d["status"]["readyReplicas"] = 1.into();
                    });
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

fn seed_solo(api: &FakeApi) {
    api.add_deployment("default", "solo", 1, &[("app", "solo")]);
    api.add_replicaset("default", "solo-1", 1, &[("app", "solo")], Some("solo"));
    api.add_pod(
        pod("default", "solo-1-a")
            .node(NODE)
            .replicaset("solo-1")
            .label("app", "solo"),
    );
}

fn replicas(api: &FakeApi) -> i64 {
    api.get(Kind::Deployment, "default", "solo").unwrap()["spec"]["replicas"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn surge_single_replicas_before_the_drain_and_scale_back_at_end() {
    let api = Arc::new(FakeApi::start().await);
    seed(&api);
    seed_solo(&api);
    let ctl = deployment_controller(api.clone(), true);
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(&api, &dir);
    let rb = runbook::default_runbook().runbook;
    let mut o = opts();
    o.surge_single_replicas = true;

    let s = procedure::start(&c, &rb, &o, now()).await.unwrap();
    assert_eq!(s.state.surged.len(), 1, "{:?}", s.state.surged);
    assert_eq!(replicas(&api), 2);
    assert!(!on_node(&api, "default", "solo-1-a"), "old replica evicted");
    // Order: cordon, then the scale, then the old pod's eviction.
    let log = api.requests();
    let at = |f: &dyn Fn(&nodewarden_fakeapi::RequestRecord) -> bool| log.iter().position(f);
    let cordon =
        at(&|r| r.resource == "nodes" && r.verb == "patch" && r.body.contains("unschedulable"))
            .expect("cordon");
    let scale =
        at(&|r| r.subresource.as_deref() == Some("scale") && r.verb == "patch").expect("scale");
    let evict = at(&|r| {
        r.subresource.as_deref() == Some("eviction") && r.name.as_deref() == Some("solo-1-a")
    })
    .expect("eviction");
    assert!(cordon < scale && scale < evict, "{cordon} {scale} {evict}");

    let ended = procedure::end(&c, &healthy()).await.unwrap();
    assert_eq!(replicas(&api), 1, "{:?}", ended.notes);
    assert!(
        ended
            .notes
            .iter()
            .any(|n| n.contains("scaled default/solo back to 1"))
    );
    ctl.abort();
}

#[tokio::test]
async fn a_surge_that_never_gets_ready_stops_before_evicting_and_end_undoes_it() {
    let api = Arc::new(FakeApi::start().await);
    seed(&api);
    seed_solo(&api);
    let ctl = deployment_controller(api.clone(), false);
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(&api, &dir);
    let rb = runbook::default_runbook().runbook;
    let mut o = opts();
    o.surge_single_replicas = true;
    o.timeout = Dur::from_std(Duration::from_secs(2));

    let e = procedure::start(&c, &rb, &o, now()).await.unwrap_err();
    assert!(matches!(e, MaintError::DrainFailed(_)), "{e}");
    assert!(e.to_string().contains("default/solo"), "{e}");
    assert!(
        on_node(&api, "default", "solo-1-a"),
        "not evicted without its replacement"
    );
    assert_eq!(api.count("create", "pods/eviction"), 0);
    assert!(unschedulable(&api));
    assert_eq!(c.state.load().unwrap().unwrap().surged.len(), 1);

    let ended = procedure::end(&c, &healthy()).await.unwrap();
    assert_eq!(replicas(&api), 1, "{:?}", ended.notes);
    assert!(!unschedulable(&api));
    ctl.abort();
}
