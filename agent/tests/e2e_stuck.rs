//! A really stuck node end to end: the kubelet (or its PLEG) is stuck until
//! the node reboots, so the pods the drain evicts stay `Terminating` until
//! then. `nodewarden run` on the real-systemd testbed, against the fake API
//! whose kubelet for the node follows the testbed's (`e2e/kubelet.rs`).
//! Timings are printed, never asserted.
//!
//! Needs root and the testbed rootfs (`tests/run` builds it); otherwise SKIP.

#[allow(dead_code)]
#[path = "e2e/harness.rs"]
mod harness;
#[path = "e2e/kubelet.rs"]
mod kubelet;
mod support;

use std::time::{Duration, Instant};

use harness::{E2e, NODE, Options};
use nodewarden_fakeapi::{Budget, FakeApi, Kind, NodeKubelet, pod};
use serde_json::Value;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn uid(v: &Value) -> String {
    v["metadata"]["uid"].as_str().unwrap_or("").to_string()
}

fn terminating(e: &E2e, ns: &str, name: &str) -> bool {
    e.api
        .get(Kind::Pod, ns, name)
        .is_some_and(|p| !p["metadata"]["deletionTimestamp"].is_null())
}

fn episode_result(e: &E2e) -> Option<String> {
    e.ledger()["closed"]
        .as_array()
        .and_then(|c| c.last())
        .map(|c| c["result"].as_str().unwrap_or("").to_string())
}

fn event_messages(e: &E2e, reason: &str) -> Vec<String> {
    let mut evs: Vec<Value> = e.api.list(Kind::Event);
    evs.extend(e.api.list(Kind::CoreEvent));
    evs.iter()
        .filter(|v| v["reason"] == reason)
        .map(|v| {
            v["note"]
                .as_str()
                .or_else(|| v["message"].as_str())
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// `nodewarden status` inside the testbed.
fn status(e: &E2e) -> String {
    let out = e.tb.exec(&[
        "/opt/agent/nodewarden",
        "--runbook",
        "/opt/agent/runbook.yaml",
        "status",
    ]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn agent_up(e: &E2e) {
    e.wait_for("nodewarden active", s(30), |e| {
        e.tb.active_state("nodewarden.service") == "active"
    })
    .await;
}

/// A ReplicaSet pod on the node (2 s grace) and a DaemonSet pod.
fn seed_web(api: &FakeApi) {
    api.add_node("worker-2");
    api.add_deployment("default", "web2", 2, &[("app", "web2")]);
    api.add_replicaset("default", "web2", 2, &[("app", "web2")], Some("web2"));
    api.add_pod(
        pod("default", "web2-a")
            .node(NODE)
            .replicaset("web2")
            .label("app", "web2")
            .grace(2),
    );
    api.add_pod(
        pod("default", "web2-b")
            .node("worker-2")
            .replicaset("web2")
            .label("app", "web2"),
    );
    api.add_daemonset("kube-system", "fluentd", &[("app", "fluentd")]);
    api.add_pod(
        pod("kube-system", "fluentd-testbed")
            .node(NODE)
            .daemonset("fluentd"),
    );
}

/// (a) The seed case: PLEG stuck until the node reboots. restart kubelet →
/// restart runtime → drain (the evicted pod stays Terminating: the kubelet
/// cannot finish it) → reboot, naming the pod → the kubelet finishes it →
/// recovered, nodewarden's cordon lifted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sa_pleg_stuck_until_reboot_reaches_the_reboot() {
    let Some(e) = E2e::start("e2e-sa", Options::default(), seed_web).await else {
        return;
    };
    agent_up(&e).await;
    let boot0 = e.tb.boot_id();
    let fault = Instant::now();
    e.tb.set_ctl("kubelet.pleg", "until-reboot");
    e.wait_for("the fake API's kubelet follows: PLEG stuck", s(5), |e| {
        e.api.node_kubelet(NODE) == NodeKubelet::PlegStuck
    })
    .await;
    e.wait_for("web2-a evicted and left Terminating", s(90), |e| {
        terminating(e, "default", "web2-a")
    })
    .await;
    let boot1 = e.tb.wait_for_reboot(&boot0, s(90));
    let to_reboot = fault.elapsed();
    // Terminating until the reboot: never deleted by nodewarden.
    assert_eq!(e.api.count("delete", "pods"), 0, "never a pod deletion");
    e.wait_for(
        "after the reboot: web2-a finished by the kubelet, recovered, uncordoned",
        s(90),
        |e| {
            e.api.get(Kind::Pod, "default", "web2-a").is_none()
                && episode_result(e).as_deref() == Some("recovered")
                && !e.unschedulable()
        },
    )
    .await;
    assert_ne!(boot0, boot1);
    assert_eq!(e.tb.boots(), 2, "exactly one reboot");
    let msgs = event_messages(&e, "RebootingWithTerminatingPods");
    assert!(
        msgs.iter().any(|m| m.contains(
            "rebooting with 1 pod evicted but still terminating because the kubelet is down"
        ) && m.contains("default/web2-a")),
        "{msgs:?}"
    );
    assert!(
        e.agent_log()
            .contains("rebooting with 1 pod evicted but still terminating"),
        "the decision log says it"
    );
    // The fleet is read before the first disruptive step, not held for it.
    assert!(
        !e.agent_log().contains("not known yet"),
        "held for an unread fleet count"
    );
    let closed = e.ledger()["closed"].clone();
    eprintln!(
        "REPORT sa: fault → reboot {:.1}s with web2-a Terminating; closed {closed}",
        to_reboot.as_secs_f64()
    );
}

/// (b) The same stuck node, but a PDB refuses the eviction: never a reboot;
/// exhausted; the PDB named in the Event and in `status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sb_a_pdb_refusal_never_reboots() {
    let runbook = harness::runbook_text().replace(
        "timeout: 30s, deleteEmptyDirData",
        "timeout: 8s, deleteEmptyDirData",
    );
    let opts = Options {
        runbook: Some(runbook),
        ..Options::default()
    };
    let Some(e) = E2e::start("e2e-sb", opts, |api| {
        seed_web(api);
        // Both replicas must stay available: the eviction of web2-a is refused.
        api.add_pdb(
            "default",
            "web2-pdb",
            &[("app", "web2")],
            Budget::MinAvailable(2),
        );
    })
    .await
    else {
        return;
    };
    agent_up(&e).await;
    // `maintenance plan` predicts the refusal.
    let url = e.api.url();
    let out = e.tb.exec(&[
        "/opt/agent/nodewarden",
        "--runbook",
        "/opt/agent/runbook.yaml",
        "maintenance",
        "plan",
        "--api-url",
        url.as_str(),
        "--node-name",
        NODE,
        "--namespace",
        harness::NAMESPACE,
    ]);
    let plan = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{plan}");
    assert!(
        plan.contains("blocked by PDB web2-pdb (allows 0 of the 1 here)"),
        "{plan}"
    );
    e.tb.set_mode("kubelet", "hang-until-reboot");
    e.wait_for("episode exhausted", s(120), |e| {
        !e.ledger()["episode"]["exhausted"].is_null()
    })
    .await;
    // Give it time to do something wrong.
    tokio::time::sleep(s(8)).await;
    assert_eq!(e.tb.boots(), 1, "never a reboot");
    assert!(
        !terminating(&e, "default", "web2-a"),
        "web2-a never evicted"
    );
    assert!(e.unschedulable(), "stays cordoned for a human");
    let msgs = event_messages(&e, "Exhausted");
    assert!(msgs.iter().any(|m| m.contains("web2-pdb")), "{msgs:?}");
    let st = status(&e);
    assert!(st.contains("EXHAUSTED") && st.contains("web2-pdb"), "{st}");
    // Unstick the node by hand so that the testbed stops cleanly.
    e.tb.set_mode("kubelet", "ok");
}

/// (c) A StatefulSet pod stuck Terminating on a hung kubelet: its same-name
/// replacement waits for the reboot; nodewarden never forces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sc_a_statefulset_pod_waits_for_the_reboot() {
    let Some(e) = E2e::start("e2e-sc", Options::default(), |api| {
        api.add_node("worker-2");
        api.set_replacement_node(Some("worker-2"));
        api.add_statefulset("default", "db", 1, &[("app", "db")]);
        api.add_pod(
            pod("default", "db-0")
                .node(NODE)
                .statefulset("db")
                .label("app", "db")
                .grace(2),
        );
    })
    .await
    else {
        return;
    };
    agent_up(&e).await;
    let old = uid(&e.api.get(Kind::Pod, "default", "db-0").expect("db-0"));
    let boot0 = e.tb.boot_id();
    e.tb.set_mode("kubelet", "hang-until-reboot");
    e.wait_for("db-0 evicted and left Terminating", s(90), |e| {
        terminating(e, "default", "db-0")
    })
    .await;
    tokio::time::sleep(s(2)).await;
    let before = e.api.get(Kind::Pod, "default", "db-0").expect("db-0");
    assert_eq!(
        uid(&before),
        old,
        "no replacement while the old pod is Terminating"
    );
    e.tb.wait_for_reboot(&boot0, s(90));
    // Right after the reboot the old object may still be there: it is never forced.
    assert_eq!(e.api.count("delete", "pods"), 0, "never a pod deletion");
    e.wait_for(
        "after the reboot: the replacement db-0 (new UID) on worker-2, recovered",
        s(90),
        |e| {
            e.api
                .get(Kind::Pod, "default", "db-0")
                .is_some_and(|p| uid(&p) != old && p["spec"]["nodeName"] == "worker-2")
                && episode_result(e).as_deref() == Some("recovered")
        },
    )
    .await;
    let ledger = e.ledger();
    let reboot_attempt = ledger["closed"].clone();
    eprintln!("REPORT sc: closed {reboot_attempt}");
    assert!(!e.unschedulable());
    assert_eq!(e.api.count("delete", "pods"), 0, "never a pod deletion");
}
