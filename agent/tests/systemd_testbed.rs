//! `act::systemd` against a real systemd (the project testbed, `tests/testbed/`), plus the
//! deadline behaviour against a bus that never answers (no testbed needed).
//!
//! The testbed tests SKIP without a rootfs unless `NODEWARDEN_REQUIRE_TESTBED` is set; see
//! `support/testbed.rs`.

mod support;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nodewarden::host::systemd::{DbusOptions, DbusSystemd, JobResult, Systemd, SystemdError};
use support::testbed::{Testbed, TestbedConfig};

fn client(tb: &Testbed) -> DbusSystemd {
    DbusSystemd::new(DbusOptions {
        address: Some(tb.bus_address()),
        connect_timeout: Duration::from_secs(5),
        call_timeout: Duration::from_secs(5),
        ..DbusOptions::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_version_presence_and_signals() {
    let Some(tb) = Testbed::boot_or_skip("status", TestbedConfig::default()) else {
        return;
    };
    let sd = client(&tb);

    let t = Instant::now();
    let st = sd
        .unit_status("kubelet.service")
        .await
        .expect("kubelet status");
    eprintln!(
        "[timing] first unit_status (connect + 3 calls): {:?}",
        t.elapsed()
    );
    assert_eq!(st.name, "kubelet.service");
    assert_eq!(st.load_state, "loaded");
    assert!(st.is_active(), "{st:?}");
    assert_eq!(st.sub_state, "running");
    let inv = st.invocation_id.clone().expect("an InvocationID");
    assert_eq!(inv.len(), 32, "{inv}");
    assert_eq!(
        inv,
        tb.exec_ok(&["systemctl", "show", "-P", "InvocationID", "kubelet.service"])
    );
    let pid = st.main_pid.expect("a MainPID");
    assert_eq!(
        pid.to_string(),
        tb.exec_ok(&["systemctl", "show", "-P", "MainPID", "kubelet.service"])
    );
    let now = jiff::Timestamp::now();
    let entered = st.active_enter.expect("ActiveEnterTimestamp");
    let exited = st.inactive_exit.expect("InactiveExitTimestamp");
    assert!(exited <= entered && entered <= now, "{st:?}");
    assert!(
        now.duration_since(exited) < jiff::SignedDuration::from_secs(60),
        "{st:?}"
    );
    assert_eq!(st.n_restarts, Some(0));
    let t = Instant::now();
    sd.unit_status("kubelet.service").await.unwrap();
    eprintln!(
        "[timing] unit_status on an open connection: {:?}",
        t.elapsed()
    );

    // a target has no Service properties
    let tgt = sd.unit_status("multi-user.target").await.unwrap();
    assert!(
        tgt.is_active() && tgt.main_pid.is_none() && tgt.n_restarts.is_none(),
        "{tgt:?}"
    );

    match sd.unit_status("nope.service").await {
        Err(e @ SystemdError::NotFound { .. }) => {
            assert_eq!(e.to_string(), "nope.service not found")
        }
        other => panic!("expected NotFound, got {other:?}"),
    }

    let v = sd.manager_version().await.expect("Manager.Version");
    let major: u32 = v
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unparsable systemd version {v:?}"));
    assert!(major >= 219, "{v}");
    eprintln!("systemd version in the testbed: {v}");

    let present = sd
        .units_present(&[
            "chronyd.service",
            "systemd-timesyncd.service",
            "ntpd.service",
            "ntp.service",
            "containerd.service",
            "docker.service",
        ])
        .await
        .expect("units_present");
    let existing: Vec<&str> = present
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(
        existing,
        ["chronyd.service", "docker.service"],
        "{present:?}"
    );
    assert_eq!(present[1].load_state, "not-found");
    assert_eq!(present[0].active_state, "active");

    // SIGUSR1 to dockerd's main process: stacks dumped, no restart
    let d0 = sd.unit_status("docker.service").await.unwrap();
    sd.kill_unit_signal("docker.service", Signal::SIGUSR1)
        .await
        .expect("KillUnit");
    assert!(
        tb.wait_journal(
            "docker.service",
            "goroutine stacks written to",
            Duration::from_secs(5)
        ),
        "{}",
        tb.journal("docker.service")
    );
    let d1 = sd.unit_status("docker.service").await.unwrap();
    assert!(d1.is_active() && d1.invocation_id == d0.invocation_id && d1.main_pid == d0.main_pid);
    match sd.kill_unit_signal("nope.service", Signal::SIGUSR1).await {
        Err(SystemdError::NotFound { unit }) => assert_eq!(unit, "nope.service"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_success_failure_and_hang() {
    let cfg = TestbedConfig {
        extra_units: vec![(
            "kubelet.service.d/50-test.conf".into(),
            "[Service]\nTimeoutStartSec=5\n".into(),
        )],
        ..TestbedConfig::default()
    };
    let Some(tb) = Testbed::boot_or_skip("restart", cfg) else {
        return;
    };
    let sd = client(&tb);

    // success: done, a new invocation, a new process
    let out = sd
        .restart_unit("kubelet.service", Duration::from_secs(30))
        .await
        .expect("restart kubelet");
    eprintln!(
        "[timing] restart kubelet (first, incl. connect): {:?}",
        out.elapsed
    );
    assert_eq!(out.result, JobResult::Done);
    assert!(
        out.job.starts_with("/org/freedesktop/systemd1/job/"),
        "{}",
        out.job
    );
    assert!(out.after.is_active());
    assert_ne!(out.before.invocation_id, out.after.invocation_id);
    assert_ne!(out.before.main_pid, out.after.main_pid);
    assert_eq!(
        out.after.invocation_id.as_deref().unwrap(),
        tb.exec_ok(&["systemctl", "show", "-P", "InvocationID", "kubelet.service"])
    );
    let out = sd
        .restart_unit("kubelet.service", Duration::from_secs(30))
        .await
        .expect("restart again");
    eprintln!(
        "[timing] restart kubelet (open connection): {:?}",
        out.elapsed
    );

    // the time-sync stand-in (Type=simple) and the runtime
    let out = sd
        .restart_unit("chronyd.service", Duration::from_secs(10))
        .await
        .expect("restart chronyd");
    assert_ne!(out.before.invocation_id, out.after.invocation_id);
    let out = sd
        .restart_unit("docker.service", Duration::from_secs(10))
        .await
        .expect("restart docker");
    assert_ne!(out.before.invocation_id, out.after.invocation_id);

    match sd
        .restart_unit("nope.service", Duration::from_secs(10))
        .await
    {
        Err(SystemdError::NotFound { unit }) => assert_eq!(unit, "nope.service"),
        other => panic!("expected NotFound, got {other:?}"),
    }

    // start-up fails: JobRemoved result=failed, quickly
    tb.set_mode("kubelet", "start-fail");
    let t = Instant::now();
    let err = sd
        .restart_unit("kubelet.service", Duration::from_secs(30))
        .await
        .expect_err("start-fail");
    let took = t.elapsed();
    eprintln!("[timing] restart with start-fail -> {err} after {took:?}");
    assert!(
        matches!(
            &err,
            SystemdError::JobFailed {
                result: JobResult::Failed,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");

    // start-up hangs, our deadline (3 s) before TimeoutStartSec (5 s): our typed timeout
    tb.set_mode("kubelet", "start-hang");
    let t = Instant::now();
    let err = sd
        .restart_unit("kubelet.service", Duration::from_secs(3))
        .await
        .expect_err("start-hang");
    let took = t.elapsed();
    eprintln!("[timing] restart with start-hang, 3 s deadline -> {err} after {took:?}");
    assert!(matches!(&err, SystemdError::Timeout { .. }), "{err:?}");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_millis(3500),
        "{took:?}"
    );

    // start-up hangs, TimeoutStartSec (5 s) before our deadline (20 s): result=failed
    let t = Instant::now();
    let err = sd
        .restart_unit("kubelet.service", Duration::from_secs(20))
        .await
        .expect_err("start-hang");
    let took = t.elapsed();
    eprintln!("[timing] restart with start-hang, 20 s deadline -> {err} after {took:?}");
    assert!(
        matches!(
            &err,
            SystemdError::JobFailed {
                result: JobResult::Failed,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        took >= Duration::from_millis(4500) && took < Duration::from_secs(10),
        "{took:?}"
    );

    // and back
    tb.set_mode("kubelet", "ok");
    let out = sd
        .restart_unit("kubelet.service", Duration::from_secs(30))
        .await
        .expect("recovered");
    assert!(out.after.is_active());
    let journal = tb.journal("kubelet.service");
    assert!(journal.contains("simulated start-up failure"), "{journal}");
    assert!(journal.contains("start-hang: not listening"), "{journal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboot_via_login1_and_reconnect() {
    let Some(tb) = Testbed::boot_or_skip("reboot", TestbedConfig::default()) else {
        return;
    };
    let sd = client(&tb);
    let boot0 = tb.boot_id();
    let inv0 = sd
        .unit_status("kubelet.service")
        .await
        .unwrap()
        .invocation_id;

    let t = Instant::now();
    sd.reboot().await.expect("login1 Reboot");
    let boot1 = tb.wait_for_reboot(&boot0, Duration::from_secs(60));
    eprintln!(
        "[timing] reboot via login1 until systemd is up again: {:?}",
        t.elapsed()
    );
    assert_ne!(boot0, boot1);
    assert_eq!(tb.boots(), 2);

    // the same client notices the dead connection and reconnects by itself
    let st = sd
        .unit_status("kubelet.service")
        .await
        .expect("status after the reboot");
    assert!(st.is_active());
    assert_ne!(st.invocation_id, inv0);
    let boots = tb.exec_ok(&["journalctl", "--list-boots", "--no-pager", "-q"]);
    assert_eq!(boots.lines().count(), 2, "{boots}");
}

#[tokio::test]
async fn missing_bus_is_a_connect_error() {
    let sd = DbusSystemd::new(DbusOptions {
        address: Some("unix:path=/nonexistent/nodewarden/bus".into()),
        ..DbusOptions::default()
    });
    let t = Instant::now();
    let err = sd.unit_status("kubelet.service").await.expect_err("no bus");
    assert!(matches!(err, SystemdError::Connect { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(
            "cannot connect to the system bus at unix:path=/nonexistent/nodewarden/bus"
        )
    );
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn silent_bus_times_out() {
    // a socket that accepts connections (backlog) but never says a word
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus");
    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let sd = DbusSystemd::new(DbusOptions {
        address: Some(format!("unix:path={}", path.display())),
        connect_timeout: Duration::from_millis(500),
        ..DbusOptions::default()
    });
    let t = Instant::now();
    let err = sd
        .unit_status("kubelet.service")
        .await
        .expect_err("silent bus");
    assert!(matches!(err, SystemdError::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string().contains("connecting to the system bus"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // the restart deadline covers connecting too
    let sd = DbusSystemd::new(DbusOptions {
        address: Some(format!("unix:path={}", path.display())),
        connect_timeout: Duration::from_secs(30),
        ..DbusOptions::default()
    });
    let t = Instant::now();
    let err = sd
        .restart_unit("kubelet.service", Duration::from_millis(700))
        .await
        .expect_err("silent bus");
    assert!(matches!(err, SystemdError::Timeout { .. }), "{err:?}");
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
}
