use super::*;
use crate::runbook::default_runbook;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}
fn settings() -> Settings {
    default_runbook().runbook.spec.probes.kubelet
}
fn unit(active: &str, sub: &str, since: Option<Timestamp>) -> Result<UnitStatus, SystemdError> {
    Ok(UnitStatus {
        name: "kubelet.service".into(),
        load_state: "loaded".into(),
        active_state: active.into(),
        sub_state: sub.into(),
        invocation_id: None,
        main_pid: Some(42),
        active_enter: since,
        inactive_exit: since,
        n_restarts: Some(0),
    })
}
fn ok() -> Healthz {
    Healthz::Ok {
        took: Dur::from_millis(3),
    }
}

#[test]
fn healthy_kubelet() {
    let o = judge(
        &settings(),
        t(100),
        &ok(),
        &unit("active", "running", Some(t(0))),
        &Ok(Some(t(95))),
    );
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    assert_eq!(o.evidence["uptime"], "1m40s");
    assert_eq!(o.evidence["leaseAge"], "5s");
}

#[test]
fn stale_lease_while_active_is_a_stall() {
    let o = judge(
        &settings(),
        t(100),
        &ok(),
        &unit("active", "running", Some(t(0))),
        &Ok(Some(t(50))),
    );
    assert_eq!(o.verdict, Verdict::Failing);
    assert!(
        o.summary.contains("Lease not renewed for 50s"),
        "{}",
        o.summary
    );
}

#[test]
fn not_found_is_said_plainly_and_is_not_a_failure() {
    let st = Err(SystemdError::NotFound {
        unit: "kubelet.service".into(),
    });
    let o = judge(
        &settings(),
        t(0),
        &Healthz::Failed(CallError::Refused),
        &st,
        &Err("x".into()),
    );
    assert_eq!(o.verdict, Verdict::Unknown);
    assert_eq!(o.summary, "kubelet.service not found");
}

#[test]
fn a_probe_that_cannot_run_as_configured_is_unknown() {
    let o = judge(
        &settings(),
        t(0),
        &Healthz::Failed(CallError::Config(
            "\"https://x\": only plain http://".into(),
        )),
        &unit("active", "running", Some(t(-10))),
        &Ok(None),
    );
    assert_eq!(o.verdict, Verdict::Unknown, "{o:?}");
    assert!(
        o.summary.contains("cannot probe as configured"),
        "{}",
        o.summary
    );
}

#[test]
fn failed_unit_and_bad_healthz_fail() {
    let o = judge(
        &settings(),
        t(0),
        &Healthz::Failed(CallError::Refused),
        &unit("failed", "failed", None),
        &Err("n/a".into()),
    );
    assert_eq!(o.verdict, Verdict::Failing);
    assert!(o.summary.contains("kubelet.service is failed/failed"));
    let o = judge(
        &settings(),
        t(0),
        &Healthz::Status {
            code: 500,
            body: "[-]syncloop failed".into(),
        },
        &unit("active", "running", Some(t(-10))),
        &Ok(None),
    );
    assert_eq!(o.verdict, Verdict::Failing);
    assert!(o.summary.contains("HTTP 500"));
    let o = judge(
        &settings(),
        t(0),
        &Healthz::Failed(CallError::Timeout {
            what: "waiting for the reply",
            after: std::time::Duration::from_secs(9),
        }),
        &unit("active", "running", Some(t(-10))),
        &Ok(None),
    );
    assert_eq!(o.verdict, Verdict::Failing);
    assert!(
        o.summary.contains("healthz hangs: timed out after 9s"),
        "{}",
        o.summary
    );
}
