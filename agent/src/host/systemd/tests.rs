use super::*;

#[test]
fn job_results_round_trip() {
    for s in [
        "done",
        "canceled",
        "timeout",
        "failed",
        "dependency",
        "skipped",
        "weird",
    ] {
        assert_eq!(JobResult::parse(s).as_str(), s);
    }
    assert_eq!(JobResult::parse("failed"), JobResult::Failed);
    assert_eq!(JobResult::parse("x"), JobResult::Other("x".into()));
}

#[test]
fn messages_read_on_their_own() {
    let e = SystemdError::NotFound {
        unit: "kubelet.service".into(),
    };
    assert_eq!(e.to_string(), "kubelet.service not found");
    let e = SystemdError::JobFailed {
        unit: "docker.service".into(),
        job: "/org/freedesktop/systemd1/job/42".into(),
        result: JobResult::Failed,
    };
    assert!(e.to_string().starts_with(
            "restart of docker.service failed: systemd job /org/freedesktop/systemd1/job/42 finished with result 'failed'"
        ));
    let e = SystemdError::Timeout {
        what: "restarting kubelet.service".into(),
        after: Duration::from_secs(3),
    };
    assert_eq!(
        e.to_string(),
        "timed out after 3.0s: restarting kubelet.service"
    );
}
