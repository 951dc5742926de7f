//! The daemon end to end on the real control plane: `nodewarden run` as an
//! enabled unit in the real-systemd testbed (tests/testbed), talking to the
//! real kube-apiserver of `shared/realk8s` on loopback as the packaged
//! ServiceAccount (a TokenRequest token in its kubeconfig). The harness
//! kubelet plays the node's API side; the testbed's fake kubelet and docker
//! units play its systemd side.
//!
//! The outage is the kube-apiserver process stopped with SIGSTOP and resumed
//! with SIGCONT: a hung server (connections accepted, no answer), not a
//! refused one. Needs root, the testbed rootfs and the control plane; SKIP
//! otherwise (as e2e.rs and realk8s.rs).

mod cluster;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use cluster::Cluster;
use cluster::control_plane::{self, ControlPlane};
use cluster::real::RealCluster;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::Value;
use support::testbed::{Testbed, TestbedConfig};

const NODE: &str = "testbed";

/// SIGCONT on drop: the apiserver is never left stopped, whatever fails.
struct Stopped(i32);

impl Stopped {
    fn stop(pid: i32) -> Stopped {
        signal(pid, "-STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, "-CONT");
    }
}

fn signal(pid: i32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid}");
}

fn ledger(tb: &Testbed) -> Value {
    std::fs::read(tb.root().join("var/lib/nodewarden/ledger.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

fn journal_count(tb: &Testbed, unit: &str, needle: &str) -> usize {
    tb.journal(unit)
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

fn kubelet_restarts(tb: &Testbed) -> usize {
    journal_count(tb, "kubelet.service", "starting (mode=").saturating_sub(tb.boots())
}

fn episode_result(tb: &Testbed) -> Option<String> {
    ledger(tb)["closed"]
        .as_array()
        .and_then(|c| c.last())
        .map(|c| c["result"].as_str().unwrap_or("").to_string())
}

async fn unschedulable(c: &RealCluster) -> Option<bool> {
    let api: Api<Node> = Api::all(c.admin());
    let n = tokio::time::timeout(Duration::from_secs(2), api.get(NODE))
        .await
        .ok()?
        .ok()?;
    Some(n.spec.and_then(|s| s.unschedulable) == Some(true))
}

async fn wait_for<F, Fut>(tb: &Testbed, t0: Instant, what: &str, secs: u64, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if cond().await {
            eprintln!("[{:>6.1}s] {what}", t0.elapsed().as_secs_f64());
            return;
        }
        if Instant::now() > until {
            let log = tb.journal("nodewarden.service");
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "timed out after {secs}s waiting for: {what}\n--- ledger ---\n{:#}\n--- nodewarden journal (tail, newest first) ---\n{}",
                ledger(tb),
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn real_api_hung_by_sigstop_holds_disruptive_steps_until_sigcont() {
    let test = "e2e-realk8s-outage";
    if support::testbed::rootfs().is_none() || !support::testbed::is_root() {
        // boot_or_skip prints the reason (and fails when the testbed is required)
        let _ = Testbed::boot_or_skip(test, TestbedConfig::default());
        return;
    }
    let scripts = match control_plane::locate() {
        Ok(s) => s,
        Err(why) => {
            assert!(!control_plane::required(), "realk8s required but: {why}");
            eprintln!("SKIP {test}: {why}");
            return;
        }
    };
    let cp = match ControlPlane::up(scripts) {
        Ok(cp) => cp,
        Err(why) if !control_plane::required() => {
            eprintln!("SKIP {test}: {why}");
            return;
        }
        Err(why) => panic!("{why}"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(outage(&cp, test));
    drop(rt);
    drop(cp);
}

async fn outage(cp: &ControlPlane, test: &str) {
    let c = RealCluster::start(cp).await;
    cluster::fixtures::node(&c, NODE).await;
    let agent_dir = tempfile::tempdir().expect("tmp");
    std::fs::copy(
        env!("CARGO_BIN_EXE_nodewarden"),
        agent_dir.path().join("nodewarden"),
    )
    .expect("copy binary");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/runbook.yaml"),
        agent_dir.path().join("runbook.yaml"),
    )
    .expect("runbook");
    std::fs::copy(
        cp.dir().join("agent.kubeconfig"),
        agent_dir.path().join("kubeconfig"),
    )
    .expect("kubeconfig");
    let flags = format!(
        "--node-name {NODE} --kubeconfig /opt/agent/kubeconfig --namespace {}",
        cluster::real::AGENT_NS
    );
    let unit = format!(
        "[Unit]\nDescription=nodewarden (end-to-end test, real apiserver)\nAfter=dbus.service\nStartLimitIntervalSec=0\n\n\
         [Service]\nType=notify\nExecStart=/opt/agent/nodewarden run {flags}\n\
         Environment=NODEWARDEN_RUNBOOK=/opt/agent/runbook.yaml\nEnvironment=RUST_LOG=info\n\
         Restart=always\nRestartSec=1\nWatchdogSec=30\nStateDirectory=nodewarden\n\n\
         [Install]\nWantedBy=multi-user.target\n"
    );
    let cfg = TestbedConfig {
        extra_units: vec![("nodewarden.service".into(), unit)],
        agent_dir: Some(agent_dir.path().to_path_buf()),
        ctl: Vec::new(),
    };
    let Some(tb) = tokio::task::block_in_place(|| Testbed::boot_or_skip(test, cfg)) else {
        return;
    };
    let t0 = Instant::now();
    wait_for(&tb, t0, "nodewarden active", 30, || async {
        tb.active_state("nodewarden.service") == "active"
    })
    .await;
    wait_for(
        &tb,
        t0,
        "the agent's first condition heartbeat",
        30,
        || async {
            let api: Api<Node> = Api::all(c.admin());
            api.get(NODE).await.ok().is_some_and(|n| {
                n.status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "KubeletUnhealthy")
            })
        },
    )
    .await;

    let pid = cp.pid("kube-apiserver").expect("apiserver pid");
    let stopped = Stopped::stop(pid);
    tb.set_mode("kubelet", "hang");
    wait_for(&tb, t0, "kubelet restarted without the API", 60, || async {
        kubelet_restarts(&tb) >= 1
    })
    .await;
    wait_for(
        &tb,
        t0,
        "runtime restart held: ApiUnreachable",
        150,
        || async { ledger(&tb)["episode"]["hold"]["gate"] == "ApiUnreachable" },
    )
    .await;
    assert_eq!(
        journal_count(&tb, "docker.service", "starting (mode="),
        1,
        "no runtime restart while the API hangs"
    );
    // #16: the hung server is its own report-only problem, from the watches' state
    // (the node watch's 60 s liveness, then failFor).
    wait_for(
        &tb,
        t0,
        "ApiServerUnreachable among the findings",
        150,
        || async { journal_count(&tb, "nodewarden.service", "ApiServerUnreachable") >= 1 },
    )
    .await;
    drop(stopped);
    wait_for(
        &tb,
        t0,
        "API back: cordon, then the runtime restart",
        120,
        || async {
            unschedulable(&c).await == Some(true)
                && journal_count(&tb, "docker.service", "starting (mode=") >= 2
        },
    )
    .await;
    let n = Api::<Node>::all(c.admin()).get(NODE).await.expect("node");
    assert_eq!(
        n.metadata
            .annotations
            .unwrap_or_default()
            .get("nodewarden.io/cordoned-by")
            .map(String::as_str),
        Some("nodewarden")
    );
    tb.set_mode("kubelet", "ok");
    wait_for(&tb, t0, "recovered and uncordoned", 90, || async {
        unschedulable(&c).await == Some(false)
            && episode_result(&tb).as_deref() == Some("recovered")
    })
    .await;
    // The Events are best effort and published after the ledger is written.
    let reasons = || async {
        Api::<Event>::namespaced(c.admin(), "default")
            .list(&ListParams::default())
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(NODE))
                    .filter_map(|e| e.reason)
                    .collect::<Vec<String>>()
            })
            .unwrap_or_default()
    };
    wait_for(
        &tb,
        t0,
        "Events StepStarted, Cordoned, Recovered on the node",
        30,
        || async {
            let r = reasons().await;
            ["StepStarted", "Cordoned", "Recovered"]
                .iter()
                .all(|x| r.iter().any(|y| y == x))
        },
    )
    .await;
    eprintln!("events: {:?}", reasons().await);
}
