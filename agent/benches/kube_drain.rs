//! Drain and pod list/watch cost against the in-process fake API server.
//!
//! `cargo bench -p nodewarden --bench kube_drain` prints:
//! 1. a drain of 300 pods on one node: wall time and API requests by verb
//!    (target from act/drain/mod.rs: the evictions, one list, one watch;
//!    kubectl drain made 622 on a real apiserver);
//! 2. the pod-list/watch path of one node in a cluster of 5,000 pods: the
//!    node's LIST by `spec.nodeName` and the time to open its WATCH, against
//!    an unfiltered LIST of all pods for comparison.
//!
//! The fake answers from memory, so absolute times measure the agent and the
//! client more than an apiserver; request counts are what carries over.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchParams};
use nodewarden::act::drain::Drainer;
use nodewarden::act::kube::Kube;
use nodewarden::domain::Dur;
use nodewarden::runbook::{Drain, DrainMode};
use nodewarden_fakeapi::{FakeApi, pod};

fn by_verb(api: &FakeApi) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in api.requests() {
        *m.entry(format!("{} {}", r.verb, r.resource_path()))
            .or_default() += 1;
    }
    m
}

async fn drain_300(concurrency: u32, latency: Duration) {
    let api = FakeApi::start().await;
    api.set_latency(latency);
    api.add_node("n1");
    // 30 s grace → 30 ms: the kubelet side is not what is measured.
    api.set_grace_scale(0.001);
    for i in 0..300 {
        api.add_pod(
            pod(&format!("ns{}", i % 10), &format!("web-{i}"))
                .node("n1")
                .replicaset(&format!("rs{}", i % 10))
                .label("app", "web"),
        );
    }
    let kube = match Kube::from_url(&api.url(), Duration::from_secs(10)) {
        Ok(k) => k,
        Err(e) => panic!("client: {e}"),
    };
    let d = Drainer::new(kube, "n1");
    let spec = Drain {
        mode: DrainMode::Evict,
        timeout: Dur::from_secs(120),
        delete_empty_dir_data: true,
        force: false,
        ignore_daemon_sets: true,
        grace_period: Dur::ZERO,
        delete_after_deadline: false,
        skip_wait_for_delete_timeout: Dur::ZERO,
        concurrency,
    };
    api.clear_log();
    let start = Instant::now();
    let report = match d.drain(&spec).await {
        Ok(r) => r,
        Err(e) => panic!("drain: {e}"),
    };
    let took = start.elapsed();
    let total = api.requests().len();
    println!(
        "drain 300 pods, concurrency {concurrency:>2}, {:>2} ms per request: {:>7.1} ms, {total} requests, {} evicted, {} pass(es)",
        latency.as_millis(),
        took.as_secs_f64() * 1000.0,
        report.evicted.len(),
        report.passes
    );
    for (k, n) in by_verb(&api) {
        println!("    {n:>4} {k}");
    }
}

async fn list_watch_5000() {
    let api = FakeApi::start().await;
    let nodes = 100;
    for n in 0..nodes {
        api.add_node(&format!("n{n}"));
    }
    for i in 0..5000 {
        api.add_pod(
            pod(&format!("ns{}", i % 50), &format!("p-{i}"))
                .node(&format!("n{}", i % nodes))
                .replicaset("rs")
                .label("app", "x"),
        );
    }
    let kube = match Kube::from_url(&api.url(), Duration::from_secs(30)) {
        Ok(k) => k,
        Err(e) => panic!("client: {e}"),
    };
    let pods: Api<Pod> = Api::all(kube.client().clone());
    let lp = ListParams::default().fields("spec.nodeName=n7");
    let runs = 20;
    api.clear_log();
    let mut rv = String::new();
    let start = Instant::now();
    let mut count = 0;
    for _ in 0..runs {
        let l = match pods.list(&lp).await {
            Ok(l) => l,
            Err(e) => panic!("list: {e}"),
        };
        count = l.items.len();
        rv = l.metadata.resource_version.unwrap_or_default();
    }
    let per = start.elapsed() / runs;
    println!(
        "5,000 pods in the cluster: LIST spec.nodeName=n7 → {count} pods, {:.2} ms per list ({} request per list)",
        per.as_secs_f64() * 1000.0,
        api.requests().len() / runs as usize
    );
    let start = Instant::now();
    let wp = WatchParams::default().fields("spec.nodeName=n7").timeout(5);
    let mut stream = match pods.watch(&wp, &rv).await {
        Ok(s) => s.boxed(),
        Err(e) => panic!("watch: {e}"),
    };
    let opened = start.elapsed();
    // One change on the node arrives through the watch.
    api.set_pod_phase("ns7", "p-7", "Succeeded");
    let got = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
    println!(
        "5,000 pods in the cluster: WATCH spec.nodeName=n7 opened in {:.2} ms, first event after {:.2} ms ({})",
        opened.as_secs_f64() * 1000.0,
        start.elapsed().as_secs_f64() * 1000.0,
        if matches!(got, Ok(Some(Ok(_)))) {
            "ok"
        } else {
            "missing"
        }
    );
    let start = Instant::now();
    let all = match pods.list(&ListParams::default()).await {
        Ok(l) => l.items.len(),
        Err(e) => panic!("list all: {e}"),
    };
    println!(
        "5,000 pods in the cluster: unfiltered LIST → {all} pods, {:.2} ms (what a per-node agent must never do)",
        start.elapsed().as_secs_f64() * 1000.0
    );
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: keep it quick then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    rt.block_on(async {
        drain_300(10, Duration::ZERO).await;
        if !quick {
            drain_300(1, Duration::ZERO).await;
            drain_300(50, Duration::ZERO).await;
            // A real apiserver answers an eviction in a few ms: concurrency matters then.
            drain_300(1, Duration::from_millis(5)).await;
            drain_300(10, Duration::from_millis(5)).await;
            list_watch_5000().await;
        }
    });
}
