//! The impact report from a real kube client against the fake API server.

use std::time::Duration;

use nodewarden::act::kube::Kube;
use nodewarden::maintenance::{ImpactVerdict, Options, fetch, impact};
use nodewarden_fakeapi::{Budget, FakeApi, Mode, pod};

fn client(api: &FakeApi, call_timeout: Duration) -> Kube {
    Kube::from_url(&api.url(), call_timeout).expect("the fake API's URL")
}

#[tokio::test]
async fn impact_report_from_the_api() {
    let api = FakeApi::start().await;
    api.add_node("n1");
    api.add_node("n2");
    api.add_deployment("default", "solo", 1, &[("app", "solo")]);
    api.add_replicaset("default", "solo-1", 1, &[("app", "solo")], Some("solo"));
    api.add_pod(
        pod("default", "solo-1-a")
            .node("n1")
            .replicaset("solo-1")
            .label("app", "solo"),
    );
    api.add_statefulset("default", "db", 3, &[("app", "db")]);
    api.add_pv("pv-local", Some("n1"));
    api.add_pvc("default", "data-db-0", "pv-local");
    api.add_pod(
        pod("default", "db-0")
            .node("n1")
            .statefulset("db")
            .label("app", "db")
            .pvc("data", "data-db-0"),
    );
    api.add_pod(
        pod("default", "db-1")
            .node("n2")
            .statefulset("db")
            .label("app", "db"),
    );
    api.add_pod(
        pod("default", "db-2")
            .node("n2")
            .statefulset("db")
            .label("app", "db"),
    );
    api.add_pdb(
        "default",
        "db-pdb",
        &[("app", "db")],
        Budget::MinAvailable(3),
    );
    api.add_pod(pod("default", "debug").node("n1"));
    api.add_daemonset("kube-system", "fluentd", &[("app", "fluentd")]);
    api.add_pod(
        pod("kube-system", "fluentd-n1")
            .node("n1")
            .daemonset("fluentd"),
    );

    let objs = fetch(&client(&api, Duration::from_secs(5)), "n1")
        .await
        .unwrap();
    let r = impact(&objs, Options::default());
    let v = |n: &str| {
        r.pods
            .iter()
            .find(|p| p.name == n)
            .unwrap_or_else(|| panic!("{n}: {r:#?}"))
            .clone()
    };
    assert_eq!(v("solo-1-a").verdict, ImpactVerdict::Disruptive);
    assert_eq!(v("solo-1-a").owner, "Deployment/solo");
    let db = v("db-0");
    assert_eq!(db.verdict, ImpactVerdict::Blocked, "{db:?}");
    assert!(
        db.pdbs[0].starts_with("db-pdb (disruptionsAllowed 0)"),
        "{db:?}"
    );
    assert_eq!(db.local_data, ["local PV pv-local (claim data-db-0)"]);
    assert_eq!(v("debug").verdict, ImpactVerdict::Blocked);
    assert_eq!(v("fluentd-n1").verdict, ImpactVerdict::Stays);
    assert_eq!(r.verdict, ImpactVerdict::Blocked);
    assert_eq!(r.pods.len(), 4);
}

#[tokio::test]
async fn a_hung_api_is_a_timeout_not_a_hang() {
    let api = FakeApi::start().await;
    api.set_mode(Mode::Hang).await;
    let e = fetch(&client(&api, Duration::from_millis(300)), "n1")
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("list pods on n1: no answer from the API server"),
        "{e}"
    );
}

/// Measured on a real apiserver: 3 pods of one ReplicaSet here, a PDB
/// allowing 1 disruption. `start` evicts 1 and is refused on 2: `plan` must
/// say so, per PDB, and that the wait depends on it.
#[tokio::test]
async fn plan_predicts_what_a_pdb_will_refuse() {
    let api = FakeApi::start().await;
    api.add_node("n1");
    api.add_node("n2");
    api.add_deployment("default", "web", 4, &[("app", "web")]);
    api.add_replicaset("default", "web-1", 4, &[("app", "web")], Some("web"));
    for n in ["a", "b", "c"] {
        api.add_pod(
            pod("default", &format!("web-1-{n}"))
                .node("n1")
                .replicaset("web-1")
                .label("app", "web"),
        );
    }
    api.add_pod(
        pod("default", "web-1-d")
            .node("n2")
            .replicaset("web-1")
            .label("app", "web"),
    );
    // 4 healthy, minAvailable 3: disruptionsAllowed 1.
    api.add_pdb(
        "default",
        "web-pdb",
        &[("app", "web")],
        Budget::MinAvailable(3),
    );
    let objs = fetch(&client(&api, Duration::from_secs(5)), "n1")
        .await
        .unwrap();
    let r = impact(&objs, Options::default());
    let blocked: Vec<&str> = r
        .pods
        .iter()
        .filter(|p| p.verdict == ImpactVerdict::Blocked)
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(blocked, ["web-1-b", "web-1-c"], "{r:#?}");
    let b = r.pods.iter().find(|p| p.name == "web-1-b").unwrap();
    assert!(
        b.reasons
            .iter()
            .any(|x| x == "blocked by PDB web-pdb (allows 1 of the 3 here)"),
        "{b:?}"
    );
    assert_eq!(r.verdict, ImpactVerdict::Blocked);
    assert_eq!(r.waits_on_pdbs, ["web-pdb (allows 1 of the 3 here)"]);
    assert!(
        !r.blocked_for_good,
        "they wait for replacements, start may proceed"
    );
    assert!(
        r.summary.contains("2 blocked")
            && r.summary
                .contains("longest expected wait depends on PDB web-pdb (allows 1 of the 3 here)"),
        "{}",
        r.summary
    );
}

/// The report uses the drain's own filters with the runbook's settings: a
/// runbook that keeps emptyDir data makes the plan say the drain refuses it.
#[tokio::test]
async fn plan_and_drain_share_one_filter() {
    use nodewarden::act::drain::Filter;
    let api = FakeApi::start().await;
    api.add_node("n1");
    api.add_deployment("default", "cache", 2, &[("app", "cache")]);
    api.add_replicaset("default", "cache-1", 2, &[("app", "cache")], Some("cache"));
    api.add_pod(
        pod("default", "cache-1-a")
            .node("n1")
            .replicaset("cache-1")
            .label("app", "cache")
            .empty_dir("tmp"),
    );
    let objs = fetch(&client(&api, Duration::from_secs(5)), "n1")
        .await
        .unwrap();
    let keep = Options {
        filter: Filter {
            delete_empty_dir_data: false,
            ..Filter::default()
        },
        ..Options::default()
    };
    let r = impact(&objs, keep);
    assert_eq!(r.pods[0].verdict, ImpactVerdict::Blocked, "{r:#?}");
    assert!(r.pods[0].reasons[0].contains("deleteEmptyDirData is off"));
    // The runbook's default (deleteEmptyDirData: true): it moves, its data is lost.
    let runbook = nodewarden::runbook::parse("d", nodewarden::runbook::DEFAULT_YAML)
        .unwrap()
        .runbook;
    let opts = nodewarden::maintenance::procedure::plan_options(&runbook, false, false);
    let r = impact(&objs, opts);
    assert_eq!(r.pods[0].verdict, ImpactVerdict::Disruptive, "{r:#?}");
}
