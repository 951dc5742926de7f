//! The probes' D-Bus, healthz, Docker-socket and journal parts against the real systemd of
//! the testbed (`tests/testbed/`): fake kubelet/docker units a test can make fail or hang,
//! a real journald with kubelet's real PLEG line formats, systemd's own Manager.Version.
//!
//! SKIPs without a rootfs or root unless `NODEWARDEN_REQUIRE_TESTBED` is set (see
//! `support/testbed.rs`); one testbed at a time (its lock), so everything is in one test.

mod support;

use std::sync::Arc;
use std::time::Duration;

use nodewarden::domain::{Dur, Problem, Timestamp};
use nodewarden::health::Verdict;
use nodewarden::host::systemd::{DbusOptions, DbusSystemd, Systemd};
use nodewarden::probe::kubelet::KubeletCheck;
use nodewarden::probe::pleg::PlegCheck;
use nodewarden::probe::runtime::{Detector, RuntimeCheck};
use nodewarden::probe::systemd::SystemdCheck;
use nodewarden::probe::testing::FixedApi;
use nodewarden::probe::{ProbeEnv, node_facts, run_probe};
use nodewarden::runbook::{RuntimeKind, default_runbook};
use support::testbed::{Testbed, TestbedConfig};

async fn until<F: Future<Output = bool>>(mut f: impl FnMut() -> F, timeout: Duration) -> bool {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < timeout {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_against_a_real_systemd() {
    let Some(tb) = Testbed::boot_or_skip("probes", TestbedConfig::default()) else {
        return;
    };
    let sd: Arc<dyn Systemd> = Arc::new(DbusSystemd::new(DbusOptions {
        address: Some(tb.bus_address()),
        connect_timeout: Duration::from_secs(5),
        call_timeout: Duration::from_secs(5),
        ..DbusOptions::default()
    }));
    assert!(tb.wait_active("kubelet.service", Duration::from_secs(30)));
    let mut probes = default_runbook().runbook.spec.probes;
    probes.kubelet.timing.timeout = Dur::from_secs(3);
    probes.pleg.timing.timeout = Dur::from_secs(8);
    probes.runtime.timing.timeout = Dur::from_secs(3);
    let fresh = FixedApi {
        lease: Some(Timestamp::now()),
        ..Default::default()
    };

    // kubelet: active unit + healthz on 127.0.0.1:10248 (shared network namespace)
    let k = KubeletCheck {
        settings: probes.kubelet.clone(),
        systemd: sd.clone(),
        lease: fresh.clone().sources().lease,
    };
    let ok = until(
        || async {
            run_probe(&k, k.settings.timing.timeout, Timestamp::now())
                .await
                .verdict
                == Verdict::Healthy
        },
        Duration::from_secs(20),
    )
    .await;
    let o = run_probe(&k, k.settings.timing.timeout, Timestamp::now()).await;
    assert!(ok, "{o:?}");
    assert_eq!(o.evidence["unit"], "active/running");
    assert!(o.evidence.contains_key("uptime"), "{o:?}");

    // a hung healthz is a failure that says it timed out
    tb.set_mode("kubelet", "hang");
    let o = run_probe(&k, k.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing, "{o:?}");
    assert!(o.summary.contains("timed out"), "{}", o.summary);
    tb.set_mode("kubelet", "ok");

    // a unit that does not exist is said plainly
    let mut s = probes.kubelet.clone();
    s.unit = "no-such-kubelet.service".into();
    let k2 = KubeletCheck {
        settings: s,
        systemd: sd.clone(),
        lease: fresh.clone().sources().lease,
    };
    let o = run_probe(&k2, k2.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Unknown);
    assert!(
        o.summary.starts_with("no-such-kubelet.service not found"),
        "{}",
        o.summary
    );

    // a stopped kubelet: the unit state says so
    tb.exec_ok(&["systemctl", "stop", "kubelet.service"]);
    let o = run_probe(&k, k.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing, "{o:?}");
    assert!(
        o.summary.contains("kubelet.service is inactive/dead"),
        "{}",
        o.summary
    );
    tb.exec_ok(&["systemctl", "start", "kubelet.service"]);
    assert!(tb.wait_active("kubelet.service", Duration::from_secs(30)));

    // docker over the Engine API socket, answering and hanging
    let dsock = tb.docker_socket();
    let mut rs = probes.runtime.clone();
    rs.runtime = RuntimeKind::Docker;
    rs.docker_socket = dsock.display().to_string();
    let empty = tempfile::tempdir().unwrap();
    let r = RuntimeCheck::new(
        rs,
        Arc::new(Detector {
            setting: RuntimeKind::Docker,
            docker_socket: dsock.clone(),
            containerd_socket: empty.path().join("c.sock"),
            kubelet_unit: "kubelet.service".into(),
            proc_root: empty.path().into(),
            kubeadm_flags: empty.path().join("x"),
            kubelet_config: empty.path().join("x"),
            systemd: sd.clone(),
            kubelet_env_files: Vec::new(),
            crio_socket: "/nonexistent/crio.sock".into(),
            cri_dockerd_socket: "/nonexistent/cri-dockerd.sock".into(),
            node: None,
            host_root: None,
            invocation_cache: Default::default(),
        }),
        empty.path().into(),
        empty.path().join("kmsg-none"),
    );
    let ok = until(
        || async {
            run_probe(&r, r.settings.timing.timeout, Timestamp::now())
                .await
                .verdict
                == Verdict::Healthy
        },
        Duration::from_secs(20),
    )
    .await;
    assert!(
        ok,
        "{:?}",
        run_probe(&r, r.settings.timing.timeout, Timestamp::now()).await
    );
    tb.set_mode("docker", "hang");
    let o = run_probe(&r, r.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing, "{o:?}");
    assert!(o.summary.contains("docker hangs"), "{}", o.summary);
    tb.set_mode("docker", "ok");

    // systemd's own version, the testbed's os-release and dpkg database
    let root = tb.root();
    let c = SystemdCheck {
        settings: probes.systemd.clone(),
        systemd: sd.clone(),
        os_release: root.join("etc/os-release"),
        dpkg_status: root.join("var/lib/dpkg/status"),
        rpm: "rpm".into(),
        host_root: None,
    };
    let o = run_probe(&c, c.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    assert!(o.evidence["managerVersion"].starts_with("252"), "{o:?}");
    assert!(o.evidence["distro"].starts_with("debian"), "{o:?}");
    assert!(o.evidence["package"].starts_with("252"), "{o:?}");

    // PLEG lines in the real journal (both kubelet formats), since the unit last started
    tb.set_ctl("kubelet.pleg", "on");
    let p = PlegCheck {
        settings: probes.pleg.clone(),
        unit: "kubelet.service".into(),
        systemd: sd.clone(),
        ready: FixedApi::default().sources().ready,
        journalctl: "journalctl".into(),
        journal_dir: Some(root.join("var/log/journal")),
        host_root: None,
        journal: Default::default(),
    };
    // the same through --host-root, as a DaemonSet pod sees the node: the testbed's own
    // journalctl, run chrooted into the testbed's root (fork → chroot → exec), on its
    // journal; os-release and dpkg's database read under that root
    let on_host = ProbeEnv::on_host(Some(&root));
    let ph = PlegCheck {
        settings: p.settings.clone(),
        unit: p.unit.clone(),
        systemd: sd.clone(),
        ready: FixedApi::default().sources().ready,
        journalctl: "journalctl".into(),
        journal_dir: None,
        host_root: on_host.host_root.clone(),
        journal: Default::default(),
    };
    let ch = SystemdCheck {
        settings: probes.systemd.clone(),
        systemd: sd.clone(),
        os_release: on_host.os_release.clone(),
        dpkg_status: on_host.dpkg_status.clone(),
        rpm: on_host.rpm.clone(),
        host_root: on_host.host_root.clone(),
    };
    assert_eq!(on_host.dpkg_status, root.join("var/lib/dpkg/status"));
    let o = run_probe(&ch, ch.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    assert!(o.evidence["package"].starts_with("252"), "{o:?}");
    let failing = until(
        || async {
            run_probe(&p, p.settings.timing.timeout, Timestamp::now())
                .await
                .verdict
                == Verdict::Failing
        },
        Duration::from_secs(30),
    )
    .await;
    let o = run_probe(&p, p.settings.timing.timeout, Timestamp::now()).await;
    assert!(failing, "{o:?}");
    assert!(
        o.summary.contains("PLEG last seen active 3m"),
        "{}",
        o.summary
    );
    let oh = run_probe(&ph, ph.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(oh.verdict, Verdict::Failing, "through --host-root: {oh:?}");
    assert!(oh.summary.contains("PLEG last seen active 3m"), "{oh:?}");
    // a restart ends the stall (the fake stops logging) and the journal since then is clean
    tb.set_ctl("kubelet.pleg", "off");
    tb.exec_ok(&["systemctl", "restart", "kubelet.service"]);
    assert!(tb.wait_active("kubelet.service", Duration::from_secs(30)));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let o = run_probe(&p, p.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");

    // node facts: units of the default runbook that exist in the testbed, boot ID
    let mut rb = default_runbook().runbook;
    rb.spec.probes.runtime.docker_socket = dsock.display().to_string();
    rb.spec.probes.runtime.containerd_socket = empty.path().join("c.sock").display().to_string();
    let env = ProbeEnv {
        proc_root: empty.path().into(),
        ..ProbeEnv::default()
    };
    let f = node_facts(&rb, &env, sd.clone(), Duration::from_secs(10)).await;
    let units = f.units.expect("systemd answered");
    assert!(units.contains_key("kubelet.service"), "{units:?}");
    assert!(units.contains_key("docker.service"), "{units:?}");
    assert!(units.contains_key("chronyd.service"), "{units:?}");
    assert!(!units.contains_key("containerd.service"), "{units:?}");
    assert!(units["kubelet.service"].is_some(), "{units:?}");
    assert_eq!(f.runtime_unit.as_deref(), Some("docker.service"));
    let _ = Problem::ALL;
}
