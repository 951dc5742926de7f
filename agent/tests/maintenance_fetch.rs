//! The impact report from a real kube client against the fake API server.

use std::time::Duration;

use nodewarden::maintenance::{Options, Verdict, fetch, impact};
use nodewarden_fakeapi::{Budget, FakeApi, Mode, pod};

fn client(api: &FakeApi) -> kube::Client {
    let mut cfg = kube::Config::new(api.url().parse().unwrap());
    cfg.default_retry = false;
    kube::Client::try_from(cfg).unwrap()
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

    let objs = fetch(&client(&api), "n1", Duration::from_secs(5))
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
    assert_eq!(v("solo-1-a").verdict, Verdict::Disruptive);
    assert_eq!(v("solo-1-a").owner, "Deployment/solo");
    let db = v("db-0");
    assert_eq!(db.verdict, Verdict::Blocked, "{db:?}");
    assert!(
        db.pdbs[0].starts_with("db-pdb (disruptionsAllowed 0)"),
        "{db:?}"
    );
    assert_eq!(db.local_data, ["local PV pv-local (claim data-db-0)"]);
    assert_eq!(v("debug").verdict, Verdict::Blocked);
    assert_eq!(v("fluentd-n1").verdict, Verdict::Stays);
    assert_eq!(r.verdict, Verdict::Blocked);
    assert_eq!(r.pods.len(), 4);
}

#[tokio::test]
async fn a_hung_api_is_a_timeout_not_a_hang() {
    let api = FakeApi::start().await;
    api.set_mode(Mode::Hang).await;
    let e = fetch(&client(&api), "n1", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("did not answer list pods on n1"),
        "{e}"
    );
}
