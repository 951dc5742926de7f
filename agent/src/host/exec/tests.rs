use super::*;

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn success_and_failure_are_reported_with_output() {
    let ok = run_argv(
        &argv(&["/bin/sh", "-c", "echo upgraded; echo done"]),
        Dur::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(ok, "/bin/sh exited 0: upgraded | done");
    let e = run_argv(
        &argv(&["/bin/sh", "-c", "echo nope >&2; exit 3"]),
        Dur::from_secs(10),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("exit status: 3: nope"), "{e}");
}

#[tokio::test]
async fn a_hung_command_and_its_children_are_killed_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("child.pid");
    let script = format!("sleep 300 & echo $! > {}; wait", marker.display());
    let e = run_argv(&argv(&["/bin/sh", "-c", &script]), Dur::from_millis(500))
        .await
        .unwrap_err();
    assert!(matches!(e, ExecError::Timeout { .. }), "{e}");
    let pid: i32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The grandchild dies with the group (signal delivery is asynchronous: wait for it).
    let dead = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.is_empty() || stat.split_whitespace().nth(2) == Some("Z")
    };
    for _ in 0..100 {
        if dead() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(dead(), "grandchild {pid} survived the deadline");
}

#[tokio::test]
async fn a_missing_program_is_a_clear_error() {
    let e = run_argv(&argv(&["/nonexistent/fix"]), Dur::from_secs(1))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot start"), "{e}");
}
