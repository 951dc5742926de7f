//! One scenario suite, two API servers (issue 18).
//!
//! Every scenario of `cluster/suite.rs` runs on the fake API server (one
//! `#[tokio::test]` each, a fresh fake per test) and on the real
//! kube-apiserver of `shared/realk8s` (one test, `real_apiserver`, that starts
//! the control plane once, runs every scenario in turn as the packaged
//! ServiceAccount, applies the packaged manifests, and always stops it).
//! Where the control plane cannot run it prints SKIP and why
//! (`NODEWARDEN_REQUIRE_REALK8S=1` makes that a failure); see
//! `cluster/control_plane.rs` for the variables that locate it.

mod cluster;

use std::time::{Duration, Instant};

use cluster::Cluster;
use cluster::control_plane::{self, ControlPlane};
use cluster::fake::FakeCluster;
use cluster::real::RealCluster;
use cluster::suite;
use futures::FutureExt;

async fn on_fake(name: &str) {
    let c = FakeCluster::start().await;
    tokio::time::timeout(Duration::from_secs(60), suite::run(&c, name))
        .await
        .unwrap_or_else(|_| panic!("{name} on the fake took longer than 60 s"));
}

macro_rules! fake_tests {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            on_fake(stringify!($name)).await;
        }
    )*};
}

mod fake {
    use super::on_fake;
    fake_tests!(
        drain_pdb_at_limit_then_relaxed,
        stuck_kubelet_pods_stay_terminating,
        statefulset_same_name_replacement,
        admin_cordon_kept,
        slot_race_between_two_agents,
        fleet_count_lease,
        conditions_coexist_with_the_kubelets,
        events_on_the_node,
        maintenance_plan_start_end,
        delete_after_deadline,
        node_lease_watch,
        watch_resumed_after_410,
        kubelet_csrs_listed_never_approved,
        api_unreachable_hang_and_restart,
    );
}

#[test]
fn every_scenario_runs_on_the_fake() {
    // The macro list above and suite::ALL must not drift apart.
    let src = include_str!("realk8s.rs");
    for name in suite::ALL {
        assert!(
            src.contains(&format!("        {name},\n")),
            "{name} missing from fake_tests!"
        );
    }
}

/// The real tier: control plane up once, every scenario, the manifests, down.
#[test]
fn real_apiserver() {
    let scripts = match control_plane::locate() {
        Ok(s) => s,
        Err(why) => {
            assert!(!control_plane::required(), "realk8s required but: {why}");
            eprintln!("SKIP real_apiserver: {why}");
            return;
        }
    };
    let cp = match ControlPlane::up(scripts) {
        Ok(cp) => cp,
        // Not required (a developer machine): ports taken by another control
        // plane, say. Required (CI): a failure.
        Err(why) if !control_plane::required() => {
            eprintln!("SKIP real_apiserver: {why}");
            return;
        }
        Err(why) => panic!("{why}"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let only = std::env::var("REALK8S_SCENARIOS").ok();
    let failures = rt.block_on(async {
        let c = RealCluster::start(&cp).await;
        let mut failures = Vec::new();
        for name in suite::ALL {
            if only
                .as_deref()
                .is_some_and(|o| !o.split(',').any(|x| x == *name))
            {
                continue;
            }
            let t0 = Instant::now();
            let run = std::panic::AssertUnwindSafe(tokio::time::timeout(
                Duration::from_secs(90),
                suite::run(&c, name),
            ))
            .catch_unwind()
            .await;
            let verdict = match run {
                Ok(Ok(())) => "ok".to_string(),
                Ok(Err(_)) => "FAILED: took longer than 90 s".to_string(),
                Err(p) => format!(
                    "FAILED: {}",
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                ),
            };
            eprintln!(
                "realk8s: {name} ... {verdict} ({:.1}s)",
                t0.elapsed().as_secs_f64()
            );
            if verdict != "ok" {
                failures.push(format!("{name}: {verdict}"));
            }
        }
        if only
            .as_deref()
            .is_none_or(|o| o.split(',').any(|x| x == "manifests"))
        {
            failures.extend(cluster::manifests::check(&c.admin()).await);
        }
        failures
    });
    drop(rt);
    if !failures.is_empty() {
        eprintln!(
            "kube-apiserver log tail:\n{}",
            cp.log_tail("kube-apiserver", 20)
        );
    }
    drop(cp);
    assert!(
        failures.is_empty(),
        "on the real apiserver:\n{}",
        failures.join("\n")
    );
}
