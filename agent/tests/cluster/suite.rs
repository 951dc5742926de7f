//! The API-side scenarios, written once and run on both servers. Names are
//! prefixed per scenario: on the real server they share one control plane.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use nodewarden::act::Report;
use nodewarden::act::drain::{DrainError, Drainer, PodRef};
use nodewarden::act::fleet::{FleetCounter, fleet_lease, shared_fleet};
use nodewarden::act::node::{
    CordonOutcome, DesiredCondition, NodeClient, NodeConditions, NodeError, UncordonOutcome,
};
use nodewarden::act::slots::{SlotConfig, SlotError, Slots};
use nodewarden::domain::{Dur, Problem, Timestamp};
use nodewarden::health::{Observation, Verdict as ProbeVerdict};
use nodewarden::maintenance::procedure::{self, Ctx, StartOptions, StateFile};
use nodewarden::plan::SlotView;
use nodewarden::report::EventSink;
use nodewarden::runbook::{self, Drain, DrainMode};

use super::Cluster;
use super::fixtures::{self, PodFix, eventually};

/// The namespace of the slot and fleet Leases (the packaged Role's).
const AGENT_NS: &str = "nodewarden";

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

fn r(ns: &str, name: &str) -> PodRef {
    PodRef {
        namespace: ns.into(),
        name: name.into(),
    }
}

fn uid(m: &kube::api::ObjectMeta) -> String {
    m.uid.clone().unwrap_or_default()
}

fn unschedulable(n: &Node) -> bool {
    n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
}

fn annotation(n: &Node, key: &str) -> Option<String> {
    n.metadata.annotations.as_ref()?.get(key).cloned()
}

fn condition(n: &Node, t: &str) -> Option<(String, String)> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

/// Every scenario, by name (the runner on the real server iterates this).
pub const ALL: &[&str] = &[
    "drain_pdb_at_limit_then_relaxed",
    "stuck_kubelet_pods_stay_terminating",
    "statefulset_same_name_replacement",
    "admin_cordon_kept",
    "slot_race_between_two_agents",
    "fleet_count_lease",
    "conditions_coexist_with_the_kubelets",
    "events_on_the_node",
    "maintenance_plan_start_end",
    "delete_after_deadline",
    "node_lease_watch",
    "watch_resumed_after_410",
    "kubelet_csrs_listed_never_approved",
    "api_unreachable_hang_and_restart",
];

/// Runs one scenario by name.
pub async fn run<C: Cluster>(c: &C, name: &str) {
    match name {
        "drain_pdb_at_limit_then_relaxed" => drain_pdb_at_limit_then_relaxed(c).await,
        "stuck_kubelet_pods_stay_terminating" => stuck_kubelet_pods_stay_terminating(c).await,
        "statefulset_same_name_replacement" => statefulset_same_name_replacement(c).await,
        "admin_cordon_kept" => admin_cordon_kept(c).await,
        "slot_race_between_two_agents" => slot_race_between_two_agents(c).await,
        "fleet_count_lease" => fleet_count_lease(c).await,
        "conditions_coexist_with_the_kubelets" => conditions_coexist_with_the_kubelets(c).await,
        "events_on_the_node" => events_on_the_node(c).await,
        "maintenance_plan_start_end" => maintenance_plan_start_end(c).await,
        "delete_after_deadline" => delete_after_deadline(c).await,
        "node_lease_watch" => node_lease_watch(c).await,
        "watch_resumed_after_410" => watch_resumed_after_410(c).await,
        "kubelet_csrs_listed_never_approved" => {
            super::suite_csr::kubelet_csrs_listed_never_approved(c).await
        }
        "api_unreachable_hang_and_restart" => {
            super::suite_reach::api_unreachable_hang_and_restart(c).await
        }
        other => panic!("no scenario {other}"),
    }
}

/// A PDB at its limit refuses the eviction (429); relaxed, the drain's next
/// try (≥ 5 s later) evicts and the kubelet finishes the pod.
pub async fn drain_pdb_at_limit_then_relaxed<C: Cluster>(c: &C) {
    let ns = "s1";
    c.namespace(ns).await;
    fixtures::node(c, "s1-n1").await;
    fixtures::node(c, "s1-n2").await;
    let rs = fixtures::workload(c, "ReplicaSet", ns, "web", 2, &[("app", "web")]).await;
    for (name, node) in [("web-0", "s1-n1"), ("web-1", "s1-n2")] {
        fixtures::pod(
            c,
            PodFix {
                ns,
                name,
                node,
                owner: Some(("ReplicaSet", "web", &rs)),
                labels: &[("app", "web")],
                ready: true,
            },
        )
        .await;
    }
    fixtures::pdb(c, ns, "web-pdb", &[("app", "web")], 2).await;
    fixtures::wait_pdb(c, ns, "web-pdb", 2, 0).await;
    let relax = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        fixtures::set_pdb_min(c, ns, "web-pdb", 1).await;
    };
    let start = Instant::now();
    let drainer = Drainer::new(c.agent(), "s1-n1");
    let drain_spec = spec(30);
    let (report, ()) = tokio::join!(drainer.drain(&drain_spec), relax);
    let report = report.unwrap_or_else(|e| panic!("drain on {}: {e}", c.name()));
    let took = start.elapsed();
    assert_eq!(report.evicted, vec![r(ns, "web-0")]);
    assert!(
        report.blocked.is_empty() && report.still_present.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.pdb_refusals, 1, "{report:?}");
    assert!(
        took >= Duration::from_secs(5),
        "retried after ≥ 5 s: {took:?}"
    );
    assert!(
        fixtures::get_pod(c, ns, "web-0").await.is_none(),
        "finished by its kubelet"
    );
    assert!(fixtures::get_pod(c, ns, "web-1").await.is_some());
}

/// A stuck kubelet never finishes its terminating pods: the drain must not
/// see them gone; once the kubelet is back they go and the drain succeeds.
pub async fn stuck_kubelet_pods_stay_terminating<C: Cluster>(c: &C) {
    let ns = "s2";
    c.namespace(ns).await;
    fixtures::node(c, "s2-n1").await;
    let rs = fixtures::workload(c, "ReplicaSet", ns, "web", 1, &[("app", "web")]).await;
    fixtures::pod(
        c,
        PodFix {
            ns,
            name: "stuck",
            node: "s2-n1",
            owner: Some(("ReplicaSet", "web", &rs)),
            labels: &[("app", "web")],
            ready: true,
        },
    )
    .await;
    c.set_kubelet_stuck("s2-n1", true);
    let e = Drainer::new(c.agent(), "s2-n1")
        .drain(&spec(3))
        .await
        .expect_err("a stuck kubelet keeps the pod");
    assert!(matches!(e, DrainError::Deadline { .. }), "{e:?}");
    let rep = e.report();
    assert_eq!(rep.evicted, vec![r(ns, "stuck")]);
    assert_eq!(rep.still_present, vec![r(ns, "stuck")]);
    let p = fixtures::get_pod(c, ns, "stuck")
        .await
        .expect("still there");
    assert!(p.metadata.deletion_timestamp.is_some(), "terminating");
    // Again: waited for, not evicted a second time.
    let e = Drainer::new(c.agent(), "s2-n1")
        .drain(&spec(1))
        .await
        .expect_err("still stuck");
    assert_eq!(e.report().waited, vec![r(ns, "stuck")]);
    assert!(e.report().evicted.is_empty());
    c.set_kubelet_stuck("s2-n1", false);
    let rep = Drainer::new(c.agent(), "s2-n1")
        .drain(&spec(10))
        .await
        .unwrap_or_else(|e| panic!("kubelet back on {}: {e}", c.name()));
    assert!(rep.still_present.is_empty(), "{rep:?}");
    assert!(fixtures::get_pod(c, ns, "stuck").await.is_none());
}

/// An evicted StatefulSet pod comes back under the same name (new UID,
/// unscheduled): the drain counts the old one as gone and leaves the new one.
pub async fn statefulset_same_name_replacement<C: Cluster>(c: &C) {
    let ns = "s3";
    c.namespace(ns).await;
    fixtures::node(c, "s3-n1").await;
    let sts = fixtures::workload(c, "StatefulSet", ns, "pg", 1, &[("app", "pg")]).await;
    let old = fixtures::pod(
        c,
        PodFix {
            ns,
            name: "pg-0",
            node: "s3-n1",
            owner: Some(("StatefulSet", "pg", &sts)),
            labels: &[("app", "pg")],
            ready: true,
        },
    )
    .await;
    let report = Drainer::new(c.agent(), "s3-n1")
        .drain(&spec(30))
        .await
        .unwrap_or_else(|e| panic!("drain on {}: {e}", c.name()));
    assert_eq!(report.evicted, vec![r(ns, "pg-0")]);
    let old_uid = uid(&old.metadata);
    eventually(10, "replacement pg-0", || async {
        fixtures::get_pod(c, ns, "pg-0")
            .await
            .is_some_and(|p| uid(&p.metadata) != old_uid)
    })
    .await;
    let new = fixtures::get_pod(c, ns, "pg-0").await.expect("replacement");
    assert_eq!(new.spec.as_ref().and_then(|s| s.node_name.clone()), None);
    assert!(new.metadata.deletion_timestamp.is_none());
    // A second drain of the node finds nothing to do.
    let again = Drainer::new(c.agent(), "s3-n1")
        .drain(&spec(5))
        .await
        .expect("nothing left");
    assert!(again.evicted.is_empty(), "{again:?}");
}

/// An admin's cordon is used, never claimed, never lifted; ours round-trips.
pub async fn admin_cordon_kept<C: Cluster>(c: &C) {
    fixtures::node(c, "s4-admin").await;
    fixtures::node(c, "s4-ours").await;
    fixtures::patch_node(
        c,
        "s4-admin",
        serde_json::json!({"spec": {"unschedulable": true}}),
        false,
    )
    .await;
    let node = NodeClient::new(c.agent(), "s4-admin");
    assert_eq!(
        node.cordon("x").await,
        Ok(CordonOutcome::AlreadyCordonedByOther)
    );
    let n = fixtures::get_node(c, "s4-admin").await;
    assert_eq!(annotation(&n, "nodewarden.io/cordoned-by"), None);
    let e = node.uncordon().await.expect_err("refused");
    assert!(matches!(e, NodeError::NotOurs { .. }), "{e:?}");
    assert_eq!(node.disown_cordon().await, Ok(false));
    assert!(unschedulable(&fixtures::get_node(c, "s4-admin").await));

    let ours = NodeClient::new(c.agent(), "s4-ours");
    assert_eq!(
        ours.cordon("kubelet down").await,
        Ok(CordonOutcome::Cordoned)
    );
    assert_eq!(ours.cordon("again").await, Ok(CordonOutcome::AlreadyOurs));
    let n = fixtures::get_node(c, "s4-ours").await;
    assert!(unschedulable(&n));
    assert_eq!(
        annotation(&n, "nodewarden.io/cordoned-by").as_deref(),
        Some("nodewarden")
    );
    assert_eq!(ours.uncordon().await, Ok(UncordonOutcome::Uncordoned));
    let n = fixtures::get_node(c, "s4-ours").await;
    assert!(!unschedulable(&n));
    assert_eq!(annotation(&n, "nodewarden.io/cordoned-by"), None);
}

fn slots<C: Cluster>(c: &C, holder: &str, n: u32) -> Slots {
    Slots::new(
        c.agent(),
        SlotConfig {
            namespace: AGENT_NS.into(),
            holder: holder.into(),
            slots: n,
            lease_duration: Duration::from_secs(60),
        },
    )
}

/// Two agents race for one disruption slot: exactly one wins each round,
/// on the server's optimistic concurrency.
pub async fn slot_race_between_two_agents<C: Cluster>(c: &C) {
    let a = slots(c, "s5-a", 1);
    let b = slots(c, "s5-b", 1);
    for round in 0..10 {
        let (ra, rb) = tokio::join!(a.acquire(), b.acquire());
        let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {ra:?} {rb:?}");
        let (w, loser) = if ra.is_ok() { (&a, &rb) } else { (&b, &ra) };
        assert!(matches!(loser, Err(SlotError::Busy { .. })), "{loser:?}");
        assert_eq!(w.view().await, Ok(SlotView::Held));
        let lease = ra.as_ref().or(rb.as_ref()).expect("winner").clone();
        w.release(&lease).await.expect("release");
    }
    assert_eq!(a.view().await, Ok(SlotView::Free));
}

/// The storm gate's fleet count, and the shared count in the fleet Lease.
pub async fn fleet_count_lease<C: Cluster>(c: &C) {
    fixtures::node(c, "s6-own").await;
    let counter = FleetCounter::new(c.agent(), "s6-own").with_page(2);
    let before = counter.count().await.expect("count");
    for n in [
        "s6-ok",
        "s6-notready",
        "s6-cordoned",
        "s6-remediating",
        "s6-admin",
    ] {
        fixtures::node(c, n).await;
    }
    let mut conds = super::kubelet::kubelet_conditions("2026-01-01T00:00:00Z");
    conds[3]["status"] = serde_json::json!("Unknown");
    fixtures::patch_node(
        c,
        "s6-notready",
        serde_json::json!({"status": {"conditions": conds}}),
        true,
    )
    .await;
    fixtures::patch_node(
        c,
        "s6-cordoned",
        serde_json::json!({"metadata": {"annotations": {"nodewarden.io/cordoned-by": "nodewarden"}},
                           "spec": {"unschedulable": true}}),
        false,
    )
    .await;
    NodeConditions::new(NodeClient::new(c.agent(), "s6-remediating"))
        .set(&[DesiredCondition::new(
            "NodewardenRemediating",
            true,
            "StepStarted",
            "restart kubelet",
        )])
        .await
        .expect("condition");
    fixtures::patch_node(
        c,
        "s6-admin",
        serde_json::json!({"spec": {"unschedulable": true}}),
        false,
    )
    .await;
    let after = counter.count().await.expect("count");
    assert_eq!(
        after.other_nodes,
        before.other_nodes + 5,
        "{before:?} {after:?}"
    );
    assert_eq!(
        after.other_unhealthy,
        before.other_unhealthy + 3,
        "{before:?} {after:?}"
    );

    // Two agents claim the next count with the Lease they both listed:
    // exactly one wins (resourceVersion guard); it counts and shares; the
    // other reads the shared count.
    let s = slots(c, "s6-own", 1);
    let s2 = slots(c, "s6-ok", 1);
    let other = FleetCounter::new(c.agent(), "s6-ok");
    let now = Timestamp::now();
    let leases = s.leases().await.expect("leases");
    let old = fleet_lease(&leases).cloned();
    let (ca, cb) = tokio::join!(
        counter.claim(&s, old.as_ref(), now),
        other.claim(&s2, old.as_ref(), now)
    );
    let (ca, cb) = (ca.expect("claim"), cb.expect("claim"));
    assert_eq!(
        ca.is_some() as u8 + cb.is_some() as u8,
        1,
        "one claim wins: {ca:?} {cb:?}"
    );
    let (winner, won, lease) = match (ca, cb) {
        (Some(l), None) => (&counter, &s, l),
        (None, Some(l)) => (&other, &s2, l),
        _ => unreachable!(),
    };
    let all = winner.count_all().await.expect("count all");
    winner
        .share(won, Some(&lease), &all, now)
        .await
        .expect("share");
    let leases = s.leases().await.expect("leases");
    let shared = shared_fleet(&leases, Timestamp::now(), Duration::from_secs(60)).expect("shared");
    assert_eq!(shared.nodes, all.nodes);
    assert_eq!(shared.unhealthy, all.unhealthy);
}

/// nodewarden's conditions and the kubelet's own live side by side in
/// `nodes/status`: neither's strategic-merge patch removes the other's.
pub async fn conditions_coexist_with_the_kubelets<C: Cluster>(c: &C) {
    fixtures::node(c, "s7-n1").await;
    let conds = NodeConditions::new(NodeClient::new(c.agent(), "s7-n1"));
    assert_eq!(conds.load().await, Ok(4), "the kubelet's four are read");
    let want = [
        DesiredCondition::new(
            "KubeletUnhealthy",
            true,
            "HealthzFailed",
            "healthz timed out",
        ),
        DesiredCondition::new(
            "NodewardenRemediating",
            true,
            "StepStarted",
            "restart kubelet",
        ),
    ];
    assert_eq!(conds.set(&want).await, Ok(true));
    super::kubelet::post_node_status(&c.admin(), "s7-n1").await;
    let n = fixtures::get_node(c, "s7-n1").await;
    assert_eq!(
        condition(&n, "KubeletUnhealthy"),
        Some(("True".into(), "HealthzFailed".into()))
    );
    assert_eq!(
        condition(&n, "Ready"),
        Some(("True".into(), "KubeletReady".into()))
    );
    let healthy = [DesiredCondition::new(
        "KubeletUnhealthy",
        false,
        "KubeletHealthy",
        "healthz ok",
    )];
    assert_eq!(conds.set(&healthy).await, Ok(true));
    let n = fixtures::get_node(c, "s7-n1").await;
    let types: Vec<String> = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.type_)
        .collect();
    assert_eq!(types.len(), 6, "{types:?}");
    assert_eq!(
        condition(&n, "KubeletUnhealthy"),
        Some(("False".into(), "KubeletHealthy".into()))
    );
    assert_eq!(
        condition(&n, "NodewardenRemediating"),
        Some(("True".into(), "StepStarted".into()))
    );
    assert_eq!(
        condition(&n, "MemoryPressure"),
        Some(("False".into(), "KubeletHasSufficientMemory".into()))
    );
}

/// Events about the node (events.k8s.io/v1, in `default`); a repeat is
/// folded into the first one's series.
pub async fn events_on_the_node<C: Cluster>(c: &C) {
    let n = fixtures::node(c, "s8-n1").await;
    let sink = EventSink::for_node(c.agent(), "s8-n1", n.metadata.uid.clone());
    sink.emit(&Report::warning(
        "StepFailed",
        "restart kubelet.service: job failed",
    ))
    .await
    .unwrap_or_else(|e| panic!("event on {}: {e}", c.name()));
    sink.emit(&Report::normal("Cordoned", "cordoned by nodewarden"))
        .await
        .expect("event");
    sink.emit(&Report::warning(
        "StepFailed",
        "restart kubelet.service: job failed",
    ))
    .await
    .unwrap_or_else(|e| panic!("repeated event on {}: {e}", c.name()));
    let evs: Api<Event> = Api::namespaced(c.admin(), "default");
    let mine: Vec<Event> = evs
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("s8-n1"))
        .collect();
    assert_eq!(mine.len(), 2, "{mine:?}");
    let e = mine
        .iter()
        .find(|e| e.reason.as_deref() == Some("StepFailed"))
        .expect("StepFailed");
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(
        e.note.as_deref(),
        Some("restart kubelet.service: job failed")
    );
    assert_eq!(
        e.reporting_controller.as_deref(),
        Some("nodewarden.io/agent")
    );
    assert_eq!(e.reporting_instance.as_deref(), Some("s8-n1"));
    let reg = e.regarding.as_ref().expect("regarding");
    assert_eq!(reg.kind.as_deref(), Some("Node"));
    assert_eq!(reg.uid, n.metadata.uid);
    assert_eq!(
        e.series.as_ref().map(|s| s.count),
        Some(2),
        "the repeat is a series: {e:?}"
    );
}

/// `maintenance plan/start/end` on the API: impact report, cordon +
/// condition + slot + drain, then all undone.
pub async fn maintenance_plan_start_end<C: Cluster>(c: &C) {
    let ns = "s9";
    c.namespace(ns).await;
    fixtures::node(c, "s9-n1").await;
    fixtures::node(c, "s9-n2").await;
    let rs = fixtures::workload(c, "ReplicaSet", ns, "web", 3, &[("app", "web")]).await;
    for (name, node) in [("web-a", "s9-n1"), ("web-b", "s9-n2"), ("web-c", "s9-n2")] {
        fixtures::pod(
            c,
            PodFix {
                ns,
                name,
                node,
                owner: Some(("ReplicaSet", "web", &rs)),
                labels: &[("app", "web")],
                ready: true,
            },
        )
        .await;
    }
    fixtures::pdb(c, ns, "web-pdb", &[("app", "web")], 2).await;
    fixtures::wait_pdb(c, ns, "web-pdb", 3, 1).await;
    let dir = tempfile::tempdir().expect("tmp");
    let ctx = Ctx {
        kube: c.agent(),
        node: "s9-n1".into(),
        namespace: AGENT_NS.into(),
        state: StateFile::new(dir.path().join("maintenance.json")),
        by: "alice".into(),
    };
    let plan = procedure::plan(&ctx, Default::default())
        .await
        .unwrap_or_else(|e| panic!("plan on {}: {e}", c.name()));
    let names: Vec<&str> = plan.pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["web-a"], "{plan:?}");
    assert_eq!(plan.pods[0].owner, "ReplicaSet/web", "{plan:?}");
    assert_eq!(
        plan.pods[0].pdbs,
        vec!["web-pdb (disruptionsAllowed 1)".to_string()]
    );
    let rb = runbook::default_runbook().runbook;
    let opts = StartOptions {
        reason: "kernel 6.1.112".into(),
        timeout: Dur::from_std(Duration::from_secs(20)),
        force: false,
        max_duration: Dur::from_std(Duration::from_secs(3600)),
        surge_single_replicas: false,
    };
    let s = procedure::start(&ctx, &rb, &opts, Timestamp::now())
        .await
        .unwrap_or_else(|e| panic!("start on {}: {e}", c.name()));
    assert!(s.state.drained && s.state.cordoned_by_us, "{s:?}");
    let n = fixtures::get_node(c, "s9-n1").await;
    assert!(unschedulable(&n));
    assert_eq!(
        condition(&n, "NodewardenMaintenance")
            .map(|c| c.0)
            .as_deref(),
        Some("True")
    );
    assert!(
        fixtures::get_pod(c, ns, "web-a").await.is_none(),
        "evicted and finished"
    );
    let healthy = vec![Observation::new(
        Problem::KubeletUnhealthy,
        Timestamp::now(),
        ProbeVerdict::Healthy,
        "healthz ok",
    )];
    let ended = procedure::end(&ctx, &healthy)
        .await
        .unwrap_or_else(|e| panic!("end on {}: {e}", c.name()));
    assert!(ended.uncordoned, "{:?}", ended.notes);
    let n = fixtures::get_node(c, "s9-n1").await;
    assert!(!unschedulable(&n));
    assert_eq!(
        condition(&n, "NodewardenMaintenance")
            .map(|c| c.0)
            .as_deref(),
        Some("False")
    );
    assert_eq!(slots(c, "s9-n1", 1).view().await, Ok(SlotView::Free));
}

/// `deleteAfterDeadline`: a pod a PDB still blocks at the deadline is
/// deleted without eviction (the packaged `pods delete` rule).
pub async fn delete_after_deadline<C: Cluster>(c: &C) {
    let ns = "s11";
    c.namespace(ns).await;
    fixtures::node(c, "s11-n1").await;
    let rs = fixtures::workload(c, "ReplicaSet", ns, "web", 1, &[("app", "web")]).await;
    fixtures::pod(
        c,
        PodFix {
            ns,
            name: "web-0",
            node: "s11-n1",
            owner: Some(("ReplicaSet", "web", &rs)),
            labels: &[("app", "web")],
            ready: true,
        },
    )
    .await;
    fixtures::pdb(c, ns, "web-pdb", &[("app", "web")], 1).await;
    fixtures::wait_pdb(c, ns, "web-pdb", 1, 0).await;
    let s = Drain {
        delete_after_deadline: true,
        ..spec(1)
    };
    let report = Drainer::new(c.agent(), "s11-n1")
        .drain(&s)
        .await
        .unwrap_or_else(|e| panic!("deleted after the deadline on {}: {e}", c.name()));
    assert_eq!(report.deleted, vec![r(ns, "web-0")]);
    assert!(report.evicted.is_empty(), "{report:?}");
    eventually(10, "web-0 gone", || async {
        fixtures::get_pod(c, ns, "web-0").await.is_none()
    })
    .await;
}

/// The kubelet probe's source: the agent watches its node's Lease in
/// `kube-node-lease` (the packaged read-only Role) and sees it renewed.
pub async fn node_lease_watch<C: Cluster>(c: &C) {
    fixtures::node(c, "s12-n1").await;
    let api: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(c.agent().client().clone(), "kube-node-lease");
    let (mut rx, task) = nodewarden::act::kube::watch_one(
        api,
        "s12-n1",
        Duration::from_secs(6),
        c.agent().pulse().clone(),
    );
    let renew = |rx: &tokio::sync::watch::Receiver<
        nodewarden::act::kube::Watched<k8s_openapi::api::coordination::v1::Lease>,
    >| {
        rx.borrow()
            .obj
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.renew_time.clone())
    };
    let first = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(t) = renew(&rx) {
                break t;
            }
            rx.changed().await.expect("watch alive");
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the Lease is seen on {}", c.name()));
    tokio::time::sleep(Duration::from_millis(20)).await;
    super::kubelet::renew_lease(&c.admin(), "s12-n1").await;
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if renew(&rx).is_some_and(|t| t.0 > first.0) {
                break;
            }
            rx.changed().await.expect("watch alive");
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the renewal is seen on {}", c.name()));
    assert!(!rx.borrow().stale);
    task.abort();
}

/// The agent's Node watch resumes after the server forgot its
/// resourceVersion (410 Expired): it lists again and follows the node.
pub async fn watch_resumed_after_410<C: Cluster>(c: &C) {
    fixtures::node(c, "s10-n1").await;
    let api: Api<Node> = Api::all(c.agent().client().clone());
    let list = api
        .list(&ListParams::default().fields("metadata.name=s10-n1"))
        .await
        .expect("list");
    let rv = list.metadata.resource_version.clone().expect("rv");
    fixtures::patch_node(
        c,
        "s10-n1",
        serde_json::json!({"metadata": {"labels": {"x": "1"}}}),
        false,
    )
    .await;
    if !c.compact().await {
        eprintln!(
            "SKIP watch_resumed_after_410 on {}: cannot force a 410 here",
            c.name()
        );
        return;
    }
    // A raw watch from the old resourceVersion: the server says 410.
    let wp = WatchParams::default()
        .fields("metadata.name=s10-n1")
        .timeout(5);
    let mut stream = api.watch(&wp, &rv).await.expect("watch").boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event");
    match first {
        Some(Ok(WatchEvent::Error(e))) => assert_eq!(e.code, 410, "{e:?}"),
        other => panic!("expected 410 on {}: {other:?}", c.name()),
    }
    // The agent's watch recovers: it sees the cordon made after the compaction.
    let node = NodeClient::new(c.agent(), "s10-n1");
    let (mut rx, task) = node.spawn_watch(Duration::from_secs(6), c.agent().pulse().clone());
    fixtures::patch_node(
        c,
        "s10-n1",
        serde_json::json!({"spec": {"unschedulable": true}}),
        false,
    )
    .await;
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if rx.borrow().view().is_some_and(|v| v.unschedulable) {
                break;
            }
            rx.changed().await.expect("watch alive");
        }
    })
    .await
    .expect("the watch follows the node");
    task.abort();
}
