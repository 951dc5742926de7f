//! The daemon end to end: `nodewarden run` as an enabled unit on a real
//! systemd (tests/testbed), against the fake API server. Each scenario is
//! asserted on real systemd state, the API's objects and request log, the
//! ledger and the journal. Timings are printed, never asserted.
//!
//! Needs root and the testbed rootfs (`tests/run` builds it); otherwise SKIP.

#[path = "e2e/harness.rs"]
mod harness;
#[path = "e2e/kubelet.rs"]
mod kubelet;
mod support;

use std::time::{Duration, Instant};

use harness::{E2e, NAMESPACE, NODE, Options};
use nodewarden_fakeapi::{Budget, FakeApi, Kind, Mode, pod};

const CORDON_ANNOTATION: &str = "nodewarden.io/cordoned-by";

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// Pods on the test node: a 3-replica Deployment behind a PDB, a pod with
/// emptyDir, a DaemonSet pod; plus a second node for the replicas elsewhere.
fn seed_workload(api: &FakeApi) {
    api.add_node("worker-2");
    api.add_deployment("default", "web", 3, &[("app", "web")]);
    api.add_replicaset("default", "web-1", 3, &[("app", "web")], Some("web"));
    api.add_pod(
        pod("default", "web-1-a")
            .node(NODE)
            .replicaset("web-1")
            .label("app", "web")
            .grace(5),
    );
    api.add_pod(
        pod("default", "web-1-b")
            .node("worker-2")
            .replicaset("web-1")
            .label("app", "web"),
    );
    api.add_pod(
        pod("default", "web-1-c")
            .node("worker-2")
            .replicaset("web-1")
            .label("app", "web"),
    );
    api.add_pdb(
        "default",
        "web-pdb",
        &[("app", "web")],
        Budget::MinAvailable(2),
    );
    api.add_deployment("default", "cache", 2, &[("app", "cache")]);
    api.add_replicaset("default", "cache-1", 2, &[("app", "cache")], Some("cache"));
    api.add_pod(
        pod("default", "cache-1-a")
            .node(NODE)
            .replicaset("cache-1")
            .label("app", "cache")
            .empty_dir("tmp")
            // deletionTimestamp = eviction + grace: short, so that a drain on a
            // hung kubelet leaves it to the kubelet within the e2e drain timeout.
            .grace(3),
    );
    api.add_daemonset("kube-system", "fluentd", &[("app", "fluentd")]);
    api.add_pod(
        pod("kube-system", "fluentd-testbed")
            .node(NODE)
            .daemonset("fluentd"),
    );
}

fn pod_on_node(e: &E2e, ns: &str, name: &str) -> bool {
    e.api.get(Kind::Pod, ns, name).is_some_and(|p| {
        p["spec"]["nodeName"] == NODE && p["metadata"]["deletionTimestamp"].is_null()
    })
}

fn cordon_patches(e: &E2e) -> usize {
    e.api
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.resource == "nodes" && r.subresource.is_none())
        .filter(|r| r.body.contains("\"unschedulable\":true"))
        .count()
}

fn kubelet_restarts(e: &E2e) -> usize {
    // One "starting" line per start of the fake kubelet; the first is the boot.
    e.journal_count("kubelet.service", "starting (mode=")
        .saturating_sub(e.tb.boots())
}

async fn agent_up(e: &E2e) {
    e.wait_for("nodewarden active", s(30), |e| {
        e.tb.active_state("nodewarden.service") == "active"
    })
    .await;
}

/// The disruption-slot Leases (`nodewarden-slot-N`) in the agent's namespace.
fn slot_leases(e: &E2e) -> Vec<serde_json::Value> {
    e.api
        .list(Kind::Lease)
        .into_iter()
        .filter(|l| {
            l["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("nodewarden-slot-"))
        })
        .collect()
}

fn episode_result(e: &E2e) -> Option<String> {
    e.ledger()["closed"]
        .as_array()
        .and_then(|c| c.last())
        .map(|c| c["result"].as_str().unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_a_hung_kubelet_is_fixed_by_one_restart() {
    let Some(e) = E2e::start("e2e-s1", Options::default(), |_| {}).await else {
        return;
    };
    agent_up(&e).await;
    let fault = Instant::now();
    e.tb.set_mode("kubelet", "hang-until-restart");
    e.wait_for("KubeletUnhealthy raised", s(30), |e| {
        e.condition("KubeletUnhealthy")
            .is_some_and(|c| c.0 == "True")
    })
    .await;
    e.wait_for("kubelet restarted", s(30), |e| {
        e.journal_count("kubelet.service", "fixed by this restart") == 1
    })
    .await;
    let to_restart = fault.elapsed();
    e.wait_for(
        "KubeletUnhealthy cleared and the episode closed",
        s(40),
        |e| {
            e.condition("KubeletUnhealthy")
                .is_some_and(|c| c.0 == "False")
                && episode_result(e).as_deref() == Some("recovered")
        },
    )
    .await;
    assert_eq!(kubelet_restarts(&e), 1, "exactly one RestartUnit");
    assert_eq!(cordon_patches(&e), 0, "no cordon for a kubelet restart");
    assert!(!e.unschedulable());
    let reasons = e.event_reasons();
    for r in ["StepStarted", "StepSucceeded", "Recovered"] {
        assert!(
            reasons.iter().any(|x| x == r),
            "{r} missing from {reasons:?}"
        );
    }
    eprintln!(
        "REPORT s1: fault → first RestartUnit {:.1}s (runbook: failFor 3s + interval 1s + 1s budget = 5s)",
        to_restart.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_the_whole_ladder_then_recovery_after_reboot() {
    let Some(e) = E2e::start("e2e-s2", Options::default(), seed_workload).await else {
        return;
    };
    agent_up(&e).await;
    let boot0 = e.tb.boot_id();
    let fault = Instant::now();
    e.tb.set_mode("kubelet", "hang");
    e.wait_for("kubelet restarted once", s(40), |e| {
        kubelet_restarts(e) >= 1
    })
    .await;
    e.wait_for("cordoned with nodewarden's annotation", s(40), |e| {
        e.unschedulable() && e.annotation(CORDON_ANNOTATION).is_some()
    })
    .await;
    e.wait_for("docker restarted", s(40), |e| {
        e.journal_count("docker.service", "starting (mode=") >= 2
    })
    .await;
    e.wait_for("pods evicted, DaemonSet pod left alone", s(60), |e| {
        !pod_on_node(e, "default", "web-1-a") && !pod_on_node(e, "default", "cache-1-a")
    })
    .await;
    assert!(
        pod_on_node(&e, "kube-system", "fluentd-testbed"),
        "DaemonSet pod must stay"
    );
    assert!(e.api.count("create", "pods/eviction") >= 2);
    // Probing, cordon, two restarts and a drain behind it: the busiest the agent gets here.
    let peak = e.agent_peak_rss_kib();
    let boot1 = e.tb.wait_for_reboot(&boot0, s(120));
    let to_reboot = fault.elapsed();
    // The reboot "fixed" it.
    e.tb.set_mode("kubelet", "ok");
    e.wait_for(
        "healthy after boot: uncordoned, slot released, episode closed",
        s(90),
        |e| {
            !e.unschedulable()
                && e.annotation(CORDON_ANNOTATION).is_none()
                && episode_result(e).as_deref() == Some("recovered")
                && e.ledger()["slot"].is_null()
        },
    )
    .await;
    assert_ne!(boot0, boot1);
    assert_eq!(e.tb.boots(), 2, "exactly one reboot");
    let slots = slot_leases(&e);
    assert!(
        slots.iter().all(|l| l["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or("")
            .is_empty()),
        "slot released: {slots:?}"
    );
    eprintln!(
        "REPORT s2: fault → reboot {:.1}s (runbook: kubelet failFor 3s, two restarts with 8s verify, drain); agent peak RSS before the reboot {} KiB",
        to_reboot.as_secs_f64(),
        peak.map(|k| k.to_string()).unwrap_or_else(|| "?".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_an_admins_cordon_is_never_lifted() {
    let Some(e) = E2e::start("e2e-s3", Options::default(), |api| {
        api.modify(Kind::Node, "", NODE, |n| {
            n["spec"]["unschedulable"] = true.into()
        });
    })
    .await
    else {
        return;
    };
    agent_up(&e).await;
    let boot0 = e.tb.boot_id();
    e.tb.set_mode("kubelet", "hang");
    e.wait_for("docker restarted under the admin's cordon", s(60), |e| {
        e.journal_count("docker.service", "starting (mode=") >= 2
    })
    .await;
    assert_eq!(
        cordon_patches(&e),
        0,
        "no cordon patch: the admin's cordon is used"
    );
    e.tb.wait_for_reboot(&boot0, s(120));
    e.tb.set_mode("kubelet", "ok");
    e.wait_for("episode closed", s(90), |e| {
        episode_result(e).as_deref() == Some("recovered")
    })
    .await;
    assert!(e.unschedulable(), "the admin's cordon stays");
    assert!(e.annotation(CORDON_ANNOTATION).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_api_down_holds_disruptive_steps_until_it_returns() {
    let Some(e) = E2e::start("e2e-s4", Options::default(), |_| {}).await else {
        return;
    };
    agent_up(&e).await;
    e.api.set_mode(Mode::Down).await;
    e.tb.set_mode("kubelet", "hang");
    e.wait_for("kubelet restarted without the API", s(40), |e| {
        kubelet_restarts(e) >= 1
    })
    .await;
    e.wait_for(
        "runtime restart held: ApiUnreachable in the ledger",
        s(40),
        |e| e.ledger()["episode"]["hold"]["gate"] == "ApiUnreachable",
    )
    .await;
    assert!(
        e.agent_log().contains("ApiUnreachable"),
        "hold reason logged"
    );
    assert_eq!(
        e.journal_count("docker.service", "starting (mode="),
        1,
        "no runtime restart"
    );
    e.api.set_mode(Mode::Up).await;
    e.wait_for("ladder resumes: cordon then docker restart", s(60), |e| {
        e.unschedulable() && e.journal_count("docker.service", "starting (mode=") >= 2
    })
    .await;
    e.tb.set_mode("kubelet", "ok");
    e.wait_for("recovered and uncordoned", s(60), |e| {
        !e.unschedulable() && episode_result(e).as_deref() == Some("recovered")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_a_fault_that_survives_the_reboot_ends_exhausted() {
    let Some(e) = E2e::start("e2e-s5", Options::default(), seed_workload).await else {
        return;
    };
    agent_up(&e).await;
    let boot0 = e.tb.boot_id();
    e.tb.set_mode("kubelet", "hang");
    e.tb.wait_for_reboot(&boot0, s(150));
    e.wait_for("episode exhausted", s(90), |e| {
        !e.ledger()["episode"]["exhausted"].is_null()
    })
    .await;
    // Give it time to do something wrong.
    tokio::time::sleep(s(10)).await;
    assert_eq!(e.tb.boots(), 2, "no second reboot inside the cap window");
    assert!(e.unschedulable(), "stays cordoned for a human");
    assert!(e.event_reasons().iter().any(|r| r == "Exhausted"));
    assert_eq!(e.ledger()["cordon"]["handedOver"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s6_sigkill_mid_drain_resumes_without_repeating() {
    let Some(e) = E2e::start("e2e-s6", Options::default(), |api| {
        seed_workload(api);
        // web-pdb needs all 3: the drain blocks on web-1-a until the budget is raised.
        api.remove(Kind::PodDisruptionBudget, "default", "web-pdb");
        api.add_pdb(
            "default",
            "web-pdb",
            &[("app", "web")],
            Budget::MinAvailable(3),
        );
    })
    .await
    else {
        return;
    };
    agent_up(&e).await;
    e.tb.set_mode("kubelet", "hang");
    e.wait_for("drain in progress", s(90), |e| {
        e.ledger()["episode"]["attempts"]
            .as_array()
            .is_some_and(|a| {
                a.iter()
                    .any(|x| x["step"] == "drain" && x["outcome"]["result"] == "inProgress")
            })
    })
    .await;
    e.tb.exec_ok(&["systemctl", "kill", "--signal=KILL", "nodewarden.service"]);
    e.wait_for("agent restarted by systemd", s(30), |e| {
        e.journal_count("nodewarden.service", "resuming the open episode") >= 1
    })
    .await;
    // Unblock the drain.
    e.api
        .remove(Kind::PodDisruptionBudget, "default", "web-pdb");
    e.api.add_pdb(
        "default",
        "web-pdb",
        &[("app", "web")],
        Budget::MinAvailable(2),
    );
    e.wait_for("drain finished", s(60), |e| {
        !pod_on_node(e, "default", "web-1-a")
    })
    .await;
    let ledger = e.ledger();
    let steps: Vec<String> = ledger["episode"]["attempts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["step"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    let n = |name: &str| steps.iter().filter(|s| *s == name).count();
    assert_eq!(n("restart-kubelet"), 1, "{steps:?}");
    assert_eq!(n("restart-container-runtime"), 1, "{steps:?}");
    assert_eq!(n("drain"), 1, "resumed, not started again: {steps:?}");
    assert_eq!(cordon_patches(&e), 1, "not re-cordoned");
    assert_eq!(ledger["cordon"]["byUs"], true, "ownership kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s7_pleg_restarts_kubelet_and_a_hung_docker_is_cordoned_then_restarted() {
    let Some(e) = E2e::start("e2e-s7", Options::default(), |_| {}).await else {
        return;
    };
    agent_up(&e).await;
    e.tb.set_ctl("kubelet.pleg", "until-restart");
    e.wait_for("PLEGUnhealthy raised", s(30), |e| {
        e.condition("PLEGUnhealthy").is_some_and(|c| c.0 == "True")
    })
    .await;
    e.wait_for("kubelet restarted for PLEG", s(40), |e| {
        kubelet_restarts(e) >= 1
    })
    .await;
    assert_eq!(
        cordon_patches(&e),
        0,
        "runtime answers: kubelet restart first, no cordon"
    );
    e.wait_for("PLEG episode closed", s(60), |e| {
        episode_result(e).as_deref() == Some("recovered")
    })
    .await;
    e.tb.set_mode("docker", "hang-until-restart");
    e.wait_for("cordoned, then docker restarted", s(60), |e| {
        cordon_patches(e) >= 1 && e.journal_count("docker.service", "fixed by this restart") == 1
    })
    .await;
    e.wait_for("runtime episode closed and uncordoned", s(60), |e| {
        !e.unschedulable()
            && e.ledger()["closed"]
                .as_array()
                .is_some_and(|c| c.len() >= 2)
            && e.ledger()["episode"].is_null()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s8_clock_skew_restarts_time_sync_and_never_reboots() {
    let Some(e) = E2e::start("e2e-s8", Options::default(), |api| {
        api.set_date_skew(jiff::SignedDuration::from_mins(5));
    })
    .await
    else {
        return;
    };
    agent_up(&e).await;
    e.wait_for("ClockSkewed raised", s(40), |e| {
        e.condition("ClockSkewed").is_some_and(|c| c.0 == "True")
    })
    .await;
    e.wait_for("chronyd restarted", s(40), |e| {
        e.journal_count("chronyd.service", "starting (mode=") >= 2
    })
    .await;
    e.wait_for("exhausted: the skew is not local", s(60), |e| {
        !e.ledger()["episode"]["exhausted"].is_null()
    })
    .await;
    assert_eq!(e.tb.boots(), 1, "never a reboot for clock skew");
    assert_eq!(cordon_patches(&e), 0);
}

/// Two time-sync candidates, only the second one running (EL7: chrony
/// installed, ntpd running): the running one is restarted, the other never
/// started (starting chronyd would stop ntpd through `Conflicts=`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s11_time_sync_restarts_the_running_candidate_and_starts_none() {
    let opts = Options {
        runbook: Some(harness::runbook_text().replace(
            "restartTimeSync: {units: [chronyd.service], timeout: 20s}",
            "restartTimeSync: {units: [chronyd.service, ntpd.service], timeout: 20s}",
        )),
        extra_units: vec![
            (
                "ntpd.service".into(),
                "[Unit]\nDescription=Fake ntpd (the running time-sync daemon)\n\n\
                 [Service]\nType=simple\nExecStart=/usr/local/bin/fake-svc.py ntpd\n\n\
                 [Install]\nWantedBy=multi-user.target\n"
                    .into(),
            ),
            // chrony installed but not running: its unit exists, its condition keeps it down.
            (
                "chronyd.service.d/not-running.conf".into(),
                "[Unit]\nConditionPathExists=/nonexistent/chrony-is-not-configured\n".into(),
            ),
        ],
        ..Options::default()
    };
    assert!(
        opts.runbook
            .as_deref()
            .is_some_and(|r| r.contains("ntpd.service"))
    );
    let Some(e) = E2e::start("e2e-s11", opts, |api| {
        api.set_date_skew(jiff::SignedDuration::from_mins(5));
    })
    .await
    else {
        return;
    };
    agent_up(&e).await;
    e.wait_for("ClockSkewed raised", s(40), |e| {
        e.condition("ClockSkewed").is_some_and(|c| c.0 == "True")
    })
    .await;
    e.wait_for("ntpd restarted", s(40), |e| {
        e.journal_count("ntpd.service", "starting (mode=") >= 2
    })
    .await;
    assert_eq!(
        e.journal_count("chronyd.service", "starting (mode="),
        0,
        "chronyd must never be started"
    );
    let attempts = e.ledger()["episode"]["attempts"].clone();
    assert!(
        attempts.to_string().contains("ntpd.service"),
        "the step acted on ntpd: {attempts}"
    );
}

/// Seed 001's layout: a kubeadm docker node (dockershim, no endpoint flag)
/// with docker-ce's containerd.io beside it, CRI disabled, so both sockets
/// exist and containerd answers every CRI call Unimplemented. The runtime is
/// docker (the Node says so); the healthy node is left alone, and a hung
/// docker gets docker.service restarted, never containerd.service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_docker_with_containerd_io_cri_disabled_is_a_docker_node() {
    let rb = harness::runbook_text()
        .replace(
            "runtime: docker, dockerSocket: /run/docker.sock",
            "runtime: auto, dockerSocket: /run/docker.sock, containerdSocket: /run/containerd/containerd.sock",
        )
        .replace(
            "restartContainerRuntime: {units: [docker.service]",
            "restartContainerRuntime: {units: [containerd.service, docker.service]",
        );
    assert!(rb.contains("runtime: auto") && rb.contains("[containerd.service, docker.service]"));
    let opts = Options {
        runbook: Some(rb),
        extra_units: vec![(
            "containerd.service".into(),
            include_str!("../../tests/testbed/profiles/containerd-io.service").into(),
        )],
        ..Options::default()
    };
    let Some(e) = E2e::start("e2e-s12", opts, |api| {
        api.modify(Kind::Node, "", NODE, |n| {
            n["status"]["nodeInfo"] = serde_json::json!({
                "containerRuntimeVersion": "docker://18.9.5",
                "kubeletVersion": "v1.14.1",
            });
        });
    })
    .await
    else {
        return;
    };
    agent_up(&e).await;
    assert!(e.tb.wait_active("containerd.service", s(20)));
    // Healthy: the probe talks to docker, and nothing is restarted.
    e.wait_for("ContainerRuntimeUnresponsive reported False", s(30), |e| {
        e.condition("ContainerRuntimeUnresponsive")
            .is_some_and(|c| c.0 == "False")
    })
    .await;
    tokio::time::sleep(s(8)).await;
    assert_eq!(
        e.condition("ContainerRuntimeUnresponsive").map(|c| c.0),
        Some("False".to_string()),
        "an Unimplemented CRI on a docker node is not a failure"
    );
    assert_eq!(e.journal_count("containerd.service", "starting (mode="), 1);
    assert_eq!(e.journal_count("docker.service", "starting (mode="), 1);
    assert_eq!(cordon_patches(&e), 0);
    // A hung docker: docker.service is the unit restarted.
    e.tb.set_mode("docker", "hang-until-restart");
    e.wait_for("docker restarted", s(60), |e| {
        e.journal_count("docker.service", "fixed by this restart") == 1
    })
    .await;
    assert_eq!(
        e.journal_count("containerd.service", "starting (mode="),
        1,
        "containerd.service is never restarted on a docker node"
    );
}

/// One CRI runtime layout on the testbed: its fake runtime as `unit`, the
/// Node reporting `runtime_version`. Healthy, nothing is restarted; hung, the
/// layout's own unit is restarted (never another runtime's).
async fn cri_profile(
    test: &str,
    unit: &str,
    unit_text: &str,
    fake: &str,
    runtime_version: &str,
    kubelet_version: &str,
    ctl: Vec<(String, String)>,
) {
    let rb = harness::runbook_text()
        .replace(
            "runtime: docker, dockerSocket: /run/docker.sock",
            "runtime: auto, dockerSocket: /run/docker.sock",
        )
        .replace(
            "restartContainerRuntime: {units: [docker.service]",
            "restartContainerRuntime: {units: [containerd.service, docker.service, crio.service, cri-docker.service]",
        );
    let opts = Options {
        runbook: Some(rb),
        extra_units: vec![(unit.to_string(), unit_text.to_string())],
        ctl,
        ..Options::default()
    };
    let (rt, kv) = (runtime_version.to_string(), kubelet_version.to_string());
    let Some(e) = E2e::start(test, opts, move |api| {
        api.modify(Kind::Node, "", NODE, |n| {
            n["status"]["nodeInfo"] = serde_json::json!({
                "containerRuntimeVersion": rt,
                "kubeletVersion": kv,
            });
        });
    })
    .await
    else {
        return;
    };
    agent_up(&e).await;
    assert!(e.tb.wait_active(unit, s(20)), "{unit} active");
    e.wait_for("ContainerRuntimeUnresponsive reported False", s(30), |e| {
        e.condition("ContainerRuntimeUnresponsive")
            .is_some_and(|c| c.0 == "False")
    })
    .await;
    tokio::time::sleep(s(6)).await;
    assert_eq!(
        e.condition("ContainerRuntimeUnresponsive").map(|c| c.0),
        Some("False".to_string()),
        "a healthy {unit} node is left alone"
    );
    assert_eq!(e.journal_count(unit, "starting (mode="), 1);
    assert_eq!(e.journal_count("docker.service", "starting (mode="), 1);
    assert_eq!(cordon_patches(&e), 0);
    e.tb.set_mode(fake, "hang-until-restart");
    e.wait_for("the layout's unit restarted", s(60), |e| {
        e.journal_count(unit, "fixed by this restart") == 1
    })
    .await;
    if unit != "cri-docker.service" {
        assert_eq!(
            e.journal_count("docker.service", "starting (mode="),
            1,
            "docker.service is not this node's runtime"
        );
    } else {
        // cri-dockerd's layout: its unit, then the dockerd behind it (a
        // restart of cri-docker.service does not restart docker.service).
        e.wait_for("docker.service restarted after cri-docker", s(60), |e| {
            e.journal_count("docker.service", "starting (mode=") == 2
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s13_containerd_only_restarts_containerd() {
    cri_profile(
        "e2e-s13",
        "containerd.service",
        include_str!("../../tests/testbed/profiles/containerd.service"),
        "containerd",
        "containerd://1.7.13",
        "v1.29.1",
        vec![("containerd.cri".into(), "enabled".into())],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s14_cri_o_restarts_crio() {
    cri_profile(
        "e2e-s14",
        "crio.service",
        include_str!("../../tests/testbed/profiles/crio.service"),
        "crio",
        "cri-o://1.28.1",
        "v1.28.2",
        Vec::new(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s15_cri_dockerd_restarts_cri_docker_then_docker() {
    cri_profile(
        "e2e-s15",
        "cri-docker.service",
        include_str!("../../tests/testbed/profiles/cri-docker.service"),
        "cri-dockerd",
        "docker://24.0.7",
        "v1.28.4",
        Vec::new(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s9_an_invalid_runbook_on_sighup_leaves_the_old_one_in_force() {
    let opts = Options {
        // SIGHUP first; the file watch is slower than the test's waits.
        flags: vec!["--runbook-poll".into(), "2s".into()],
        ..Options::default()
    };
    let Some(e) = E2e::start("e2e-s9", opts, |_| {}).await else {
        return;
    };
    agent_up(&e).await;
    e.install_runbook("apiVersion: nodewarden.io/v1alpha1\nkind: Runbook\nspec:\n  steps: [\n");
    e.tb.exec_ok(&["systemctl", "reload", "nodewarden.service"]);
    e.wait_for("rejection logged with file:line:column", s(20), |e| {
        e.agent_log().contains("/opt/agent/runbook.yaml:4:")
    })
    .await;
    assert_eq!(e.tb.active_state("nodewarden.service"), "active");
    // The old runbook still works: a kubelet hang is fixed as before.
    e.tb.set_mode("kubelet", "hang-until-restart");
    e.wait_for("kubelet restarted under the old runbook", s(40), |e| {
        e.journal_count("kubelet.service", "fixed by this restart") == 1
    })
    .await;
    let good = harness::runbook_text().replace("name: e2e-fast", "name: e2e-edited");
    e.install_runbook(&good);
    e.tb.exec_ok(&["systemctl", "reload", "nodewarden.service"]);
    e.wait_for("valid runbook reloaded", s(20), |e| {
        e.agent_log().contains("runbook reloaded")
    })
    .await;
    // A ConfigMap-style update in place, no signal: picked up by the file watch.
    tokio::time::sleep(s(3)).await; // let the watch see the SIGHUP'd file first
    let reloads = |e: &E2e| e.agent_log().matches("runbook reloaded").count();
    let n0 = reloads(&e);
    let edited = harness::runbook_text().replace("name: e2e-fast", "name: e2e-watched");
    e.install_runbook(&edited);
    e.wait_for("changed file reloaded without a signal", s(20), |e| {
        reloads(e) > n0 && e.agent_log().contains("the runbook file changed")
    })
    .await;
}

/// `nodewarden maintenance` from the node shell, as an SRE runs it for a
/// kernel upgrade: start (slot, cordon, drain) → the daemon pauses → reboot →
/// still in maintenance → end (probes healthy → uncordon, release).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s10_maintenance_start_reboot_end() {
    let Some(e) = E2e::start("e2e-s10", Options::default(), seed_workload).await else {
        return;
    };
    agent_up(&e).await;
    let url = e.api.url();
    let maint = |sub: &str, extra: &[&str]| {
        let mut argv = vec![
            "/opt/agent/nodewarden",
            "--runbook",
            "/opt/agent/runbook.yaml",
            "maintenance",
            sub,
        ];
        if sub != "status" {
            argv.extend([
                "--api-url",
                url.as_str(),
                "--node-name",
                NODE,
                "--namespace",
                NAMESPACE,
            ]);
        }
        argv.extend(extra);
        let out = e.tb.exec(&argv);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };

    let (code, plan) = maint("plan", &[]);
    assert_eq!(code, Some(1), "emptyDir data makes it disruptive: {plan}");
    assert!(
        plan.contains("default/cache-1-a") && plan.contains("emptyDir"),
        "{plan}"
    );

    let t0 = Instant::now();
    let (code, out) = maint("start", &["--reason", "kernel 6.1.112", "--timeout", "60s"]);
    assert_eq!(code, Some(0), "{out}");
    let start_took = t0.elapsed();
    assert!(e.unschedulable() && e.annotation(CORDON_ANNOTATION).is_some());
    assert!(!pod_on_node(&e, "default", "web-1-a"));
    assert!(pod_on_node(&e, "kube-system", "fluentd-testbed"));
    assert_eq!(
        e.condition("NodewardenMaintenance").map(|c| c.0).as_deref(),
        Some("True")
    );
    e.wait_for("the daemon pauses", s(20), |e| {
        e.agent_log().contains("automatic remediation paused")
            && !e.ledger()["maintenance"].is_null()
    })
    .await;

    // A kubelet hang while a person works: seen, reported, not acted on.
    e.tb.set_mode("kubelet", "hang-until-restart");
    e.wait_for("KubeletUnhealthy raised while paused", s(30), |e| {
        e.condition("KubeletUnhealthy")
            .is_some_and(|c| c.0 == "True")
    })
    .await;
    tokio::time::sleep(s(5)).await; // past failFor + cooldown of the e2e runbook
    assert_eq!(kubelet_restarts(&e), 0, "no restart during maintenance");
    e.tb.set_mode("kubelet", "ok");

    let (code, st) = maint("status", &[]);
    assert_eq!(code, Some(1), "in force: {st}");
    assert!(
        st.contains("kernel 6.1.112") && st.contains("placed by nodewarden"),
        "{st}"
    );

    // The reboot of the upgrade; maintenance survives it.
    let boot0 = e.tb.boot_id();
    let _ = e.tb.exec(&["systemctl", "reboot"]);
    e.tb.wait_for_reboot(&boot0, s(120));
    agent_up(&e).await;
    assert!(e.unschedulable(), "still cordoned after the reboot");
    let (code, st) = maint("status", &[]);
    assert_eq!(code, Some(1), "still in force after the reboot: {st}");
    e.wait_for("the daemon pauses after the reboot", s(20), |e| {
        !e.ledger()["maintenance"].is_null()
    })
    .await;

    e.wait_for("kubelet healthy again", s(20), |e| {
        e.condition("KubeletUnhealthy")
            .is_some_and(|c| c.0 == "False")
    })
    .await;
    let (code, out) = maint("end", &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("uncordoned"), "{out}");
    assert!(!e.unschedulable());
    assert!(e.annotation(CORDON_ANNOTATION).is_none());
    assert_eq!(
        e.condition("NodewardenMaintenance").map(|c| c.0).as_deref(),
        Some("False")
    );
    assert!(
        slot_leases(&e).iter().all(|l| l["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or("")
            .is_empty()),
        "slot released"
    );
    let (code, _) = maint("end", &[]);
    assert_eq!(code, Some(1), "end with nothing in force");
    e.wait_for("the daemon resumes", s(20), |e| {
        e.ledger()["maintenance"].is_null()
            && e.agent_log().contains("automatic remediation resumes")
    })
    .await;
    eprintln!(
        "REPORT s10: maintenance start (slot, cordon, drain of 2 pods) {:.1}s",
        start_took.as_secs_f64()
    );
}
