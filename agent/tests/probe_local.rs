//! The probes against faithful local fakes (no systemd needed): an HTTP server that answers,
//! fails or never answers (kubelet healthz); a Docker Engine API on a unix socket that can
//! hang after accept; a CRI gRPC-over-HTTP/2 server on a unix socket; journal fixtures in the
//! kubelet's real formats; /proc fixture trees; kmsg fixtures; os-release and package
//! databases; certificates.
//!
//! No wall-clock assertions: verdicts and "timed out" only, with short deadlines.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nodewarden::domain::{Dur, Problem, Timestamp};
use nodewarden::health::Verdict;
use nodewarden::probe::clock::{ClockCheck, cert_validity_pem};
use nodewarden::probe::kubelet::KubeletCheck;
use nodewarden::probe::pleg::PlegCheck;
use nodewarden::probe::runtime::{Detector, KMSG_WINDOW, Runtime, RuntimeCheck};
use nodewarden::probe::systemd::SystemdCheck;
use nodewarden::probe::testing::{
    FakeSystemd, FixedApi, FixedKernelClock, Mode, cri_server, docker_server, healthz_server,
};
use nodewarden::probe::{
    ApiSources, KernelClock, Probe, ProbeEnv, ProbeSet, node_facts, run_probe,
};
use nodewarden::runbook::{RuntimeKind, default_runbook};

fn probes() -> nodewarden::runbook::Probes {
    let mut p = default_runbook().runbook.spec.probes;
    for t in [
        &mut p.kubelet.timing,
        &mut p.pleg.timing,
        &mut p.runtime.timing,
        &mut p.clock.timing,
        &mut p.systemd.timing,
    ] {
        t.timeout = Dur::from_millis(600);
    }
    p
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probe_fixtures")
}

fn ago(s: i64) -> Timestamp {
    Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_secs(s))
        .unwrap()
}

fn write(dir: &Path, rel: &str, content: &str) -> PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, content).unwrap();
    p
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let p = write(dir, name, &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

// ---------------------------------------------------------------------------------------
// kubelet

fn kubelet(url: &str, sd: FakeSystemd, api: FixedApi) -> KubeletCheck {
    let mut s = probes().kubelet;
    s.healthz_url = url.to_string();
    KubeletCheck {
        settings: s,
        systemd: Arc::new(sd),
        lease: api.sources().lease,
    }
}

#[tokio::test]
async fn kubelet_healthz_ok_fail_hang_refused() {
    let srv = healthz_server(Mode::Ok).await.unwrap();
    let fresh = FixedApi {
        lease: Some(ago(3)),
        ..Default::default()
    };
    let sd = || FakeSystemd::new().with_active("kubelet.service", ago(600), Some(1));
    let k = kubelet(&srv.url(), sd(), fresh.clone());
    let o = run_probe(&k, k.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    assert!(o.evidence["healthz"].starts_with("200"), "{o:?}");

    srv.set_mode(Mode::Fail);
    let o = run_probe(&k, k.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing);
    assert!(o.summary.contains("HTTP 500"), "{}", o.summary);
    assert!(o.summary.contains("syncloop failed") || o.evidence["healthz"].contains("[+]ping"));

    srv.set_mode(Mode::Hang);
    let o = run_probe(&k, k.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing);
    assert!(
        o.summary.contains("healthz hangs: timed out"),
        "{}",
        o.summary
    );

    // a port nobody listens on
    drop(srv);
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let k = kubelet(&format!("http://{addr}/healthz"), sd(), fresh);
    let o = run_probe(&k, k.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing);
    assert!(o.summary.contains("connection refused"), "{}", o.summary);
}

#[tokio::test]
async fn kubelet_unit_states_and_lease() {
    let srv = healthz_server(Mode::Ok).await.unwrap();
    // no kubelet unit at all: said plainly, not a failure
    let k = kubelet(&srv.url(), FakeSystemd::new(), FixedApi::default());
    let o = run_probe(&k, k.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Unknown);
    assert!(
        o.summary.starts_with("kubelet.service not found"),
        "{}",
        o.summary
    );

    // the unit claims to be active but the Lease is stale
    let stale = FixedApi {
        lease: Some(ago(300)),
        ..Default::default()
    };
    let sd = FakeSystemd::new().with_active("kubelet.service", ago(600), Some(1));
    let k = kubelet(&srv.url(), sd, stale);
    let o = run_probe(&k, k.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing);
    assert!(o.summary.contains("Lease not renewed"), "{}", o.summary);

    // the unit is failed
    let sd = FakeSystemd::new();
    sd.set("kubelet.service", "activating", "auto-restart", None, None);
    let k = kubelet(&srv.url(), sd, FixedApi::default());
    let o = run_probe(&k, k.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing);
    assert!(
        o.summary.contains("activating/auto-restart"),
        "{}",
        o.summary
    );

    // systemd hangs and the API hangs: healthz alone decides, nothing waits past the budget
    let sd = FakeSystemd::new();
    sd.hang.store(true, std::sync::atomic::Ordering::Relaxed);
    let k = kubelet(
        &srv.url(),
        sd,
        FixedApi {
            hang: true,
            ..Default::default()
        },
    );
    let o = run_probe(&k, k.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    assert!(o.evidence["unit"].contains("timed out"), "{o:?}");
    assert!(o.evidence["lease"].contains("timed out"), "{o:?}");
}

// ---------------------------------------------------------------------------------------
// container runtime

fn runtime_check(
    kind: RuntimeKind,
    docker: &Path,
    containerd: &Path,
    proc_root: &Path,
    kmsg: &Path,
) -> RuntimeCheck {
    let mut s = probes().runtime;
    s.runtime = kind;
    s.docker_socket = docker.display().to_string();
    s.containerd_socket = containerd.display().to_string();
    let det = Arc::new(Detector {
        setting: kind,
        docker_socket: docker.into(),
        containerd_socket: containerd.into(),
        kubelet_unit: "kubelet.service".into(),
        proc_root: proc_root.into(),
        kubeadm_flags: proc_root.join("no-kubeadm-flags"),
        kubelet_config: proc_root.join("no-kubelet-config"),
        systemd: Arc::new(FakeSystemd::new()),
        kubelet_env_files: Vec::new(),
        crio_socket: "/nonexistent/crio.sock".into(),
        cri_dockerd_socket: "/nonexistent/cri-dockerd.sock".into(),
        node: None,
        host_root: None,
        invocation_cache: Default::default(),
    });
    RuntimeCheck::new(s, det, proc_root.into(), kmsg.into())
}

#[tokio::test]
async fn docker_api_ok_fail_hang_missing() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    let srv = docker_server(&sock, Mode::Ok).await.unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let kmsg = write(dir.path(), "kmsg", "");
    let r = runtime_check(
        RuntimeKind::Docker,
        &sock,
        &dir.path().join("c.sock"),
        &empty,
        &kmsg,
    );
    let o = run_probe(&r, r.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    assert!(
        o.evidence["socket"].contains("/containers/json ok"),
        "{o:?}"
    );

    srv.set_mode(Mode::Fail);
    let o = run_probe(&r, r.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing);
    assert!(o.summary.contains("HTTP 500"), "{}", o.summary);

    srv.set_mode(Mode::Hang);
    let o = run_probe(&r, r.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing);
    assert!(o.summary.contains("docker hangs"), "{}", o.summary);
    assert!(o.summary.contains("timed out"), "{}", o.summary);

    drop(srv);
    let o = run_probe(&r, r.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing);
    assert!(o.summary.contains("does not exist"), "{}", o.summary);
}

#[tokio::test]
async fn containerd_cri_ok_fail_hang_and_v1alpha2() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("containerd.sock");
    let srv = cri_server(&sock, Mode::Ok).await.unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let kmsg = write(dir.path(), "kmsg", "");
    let r = runtime_check(
        RuntimeKind::Containerd,
        &dir.path().join("d.sock"),
        &sock,
        &empty,
        &kmsg,
    );
    let o = run_probe(&r, r.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    assert!(
        o.evidence["socket"].starts_with("runtime.v1: Version ok"),
        "{o:?}"
    );
    assert!(o.evidence["socket"].contains("ListPodSandbox ok"), "{o:?}");

    srv.set_mode(Mode::OnlyV1alpha2);
    let o = run_probe(&r, r.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    assert!(
        o.evidence["socket"].starts_with("runtime.v1alpha2:"),
        "{o:?}"
    );

    srv.set_mode(Mode::Fail);
    let o = run_probe(&r, r.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing);
    assert!(o.summary.contains("grpc-status 14"), "{}", o.summary);

    srv.set_mode(Mode::Hang);
    let o = run_probe(&r, r.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing);
    assert!(o.summary.contains("containerd hangs"), "{}", o.summary);
    assert!(o.summary.contains("timed out"), "{}", o.summary);
}

fn stat_line(pid: u32, comm: &str, state: char, start: u64) -> String {
    format!(
        // every field Linux 6.1 writes (procfs requires the first 37)
        "{pid} ({comm}) {state} 1 {pid} {pid} 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 10 0 {start} 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
    )
}

#[tokio::test]
async fn runtime_processes_stuck_in_d_state_for_longer_than_stuck_for() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    let _srv = docker_server(&sock, Mode::Ok).await.unwrap();
    let proc_root = dir.path().join("proc");
    write(
        &proc_root,
        "100/stat",
        &stat_line(100, "dockerd", 'D', 5000),
    );
    write(
        &proc_root,
        "200/stat",
        &stat_line(200, "containerd-shim", 'S', 6000),
    );
    write(&proc_root, "300/stat", &stat_line(300, "nfsd", 'D', 7000));
    write(&proc_root, "self/stat", "ignored");
    let kmsg = write(dir.path(), "kmsg", "");
    let r = runtime_check(
        RuntimeKind::Docker,
        &sock,
        &dir.path().join("c.sock"),
        &proc_root,
        &kmsg,
    );
    let t0 = Timestamp::now();
    let o = run_probe(&r, r.settings.timing.timeout, t0).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    assert!(
        o.evidence["dState"].starts_with("dockerd[100] for 0s"),
        "{o:?}"
    );
    // still in D 2 minutes later: stuckFor (2m) reached
    let t1 = Dur::from_secs(121).after(t0);
    let o = run_probe(&r, r.settings.timing.timeout, t1).await;
    assert_eq!(o.verdict, Verdict::Failing, "{o:?}");
    assert!(
        o.summary
            .contains("dockerd[100] in uninterruptible sleep (D) for 2m1s"),
        "{}",
        o.summary
    );
    // it woke up: forgotten; back in D later counts from then
    write(
        &proc_root,
        "100/stat",
        &stat_line(100, "dockerd", 'S', 5000),
    );
    let o = run_probe(&r, r.settings.timing.timeout, Dur::from_secs(130).after(t0)).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    write(
        &proc_root,
        "100/stat",
        &stat_line(100, "dockerd", 'D', 5000),
    );
    let o = run_probe(&r, r.settings.timing.timeout, Dur::from_secs(200).after(t0)).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    // a reused pid (new start time) is a new process
    write(
        &proc_root,
        "100/stat",
        &stat_line(100, "dockerd", 'D', 9999),
    );
    let o = run_probe(&r, r.settings.timing.timeout, Dur::from_secs(400).after(t0)).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
}

fn kmsg_now() -> Duration {
    Duration::from_secs(10_000)
}

#[tokio::test]
async fn kernel_hung_task_reports_name_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    let _srv = docker_server(&sock, Mode::Ok).await.unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let kmsg = write(
        dir.path(),
        "kmsg",
        "6,1,100000,-;Linux version 6.1.0\n\
         3,2,9800000000,-;INFO: task dockerd:1234 blocked for more than 120 seconds.\n\
         6,3,9800000100,-;      Not tainted 6.1.0-18-amd64 #1 Debian 6.1.76-1\n\
         6,4,9800000200,-;\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.\n",
    );
    let mut r = runtime_check(
        RuntimeKind::Docker,
        &sock,
        &dir.path().join("c.sock"),
        &empty,
        &kmsg,
    );
    r.kmsg_clock = kmsg_now;
    let o = run_probe(&r, r.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing, "{o:?}");
    assert!(
        o.summary
            .contains("task dockerd:1234 blocked for more than 120s"),
        "{}",
        o.summary
    );

    // the real /dev/kmsg reads without blocking (whatever it holds)
    if Path::new("/dev/kmsg").exists() {
        let t = std::time::Instant::now();
        let mut tail = nodewarden::probe::runtime::KmsgTail::new("/dev/kmsg".into());
        // twice: the whole log, then (the device kept open) what was logged since; a
        // device that could be read once reads again
        let first = tail.hung_tasks(kmsg_now(), KMSG_WINDOW);
        let second = tail.hung_tasks(kmsg_now(), KMSG_WINDOW);
        if let Err(e) = &second {
            assert!(first.is_err(), "read once, then failed: {e}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "reading /dev/kmsg blocked"
        );
    }
}

/// The kubelet's invocation is read once and used by every probe that asks until the
/// kubelet unit's MainPID changes (a restart: new flags, a new config) or it is a minute
/// old: a changed file is not seen while the same kubelet runs, and is seen after a
/// restart.
#[tokio::test]
async fn the_kubelet_invocation_is_read_again_when_the_kubelet_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let proc_root = dir.path().join("proc");
    let config = write(dir.path(), "config.yaml", "cgroupDriver: systemd\n");
    for pid in [77, 78] {
        write(
            &proc_root,
            &format!("{pid}/cmdline"),
            &format!("kubelet\0--config={}\0", config.display()),
        );
    }
    let sd = Arc::new(FakeSystemd::new().with_active("kubelet.service", ago(5), Some(77)));
    // the daemon's own construction of the detector
    let env = ProbeEnv {
        proc_root: proc_root.clone(),
        kubeadm_flags: dir.path().join("none"),
        kubelet_config: dir.path().join("none"),
        kubelet_env_files: Vec::new(),
        ..ProbeEnv::default()
    };
    let systemd: Arc<dyn nodewarden::host::systemd::Systemd> = sd.clone();
    let det = env.runtime_detector(&probes(), &systemd);
    let driver = |inv: nodewarden::probe::kubelet_invocation::Invocation| {
        inv.config().unwrap().cgroup_driver.map(|d| d.value)
    };
    assert_eq!(driver(det.invocation().await).as_deref(), Some("systemd"));
    write(dir.path(), "config.yaml", "cgroupDriver: cgroupfs\n");
    // the same kubelet: what it was started with
    assert_eq!(driver(det.invocation().await).as_deref(), Some("systemd"));
    // restarted (a new MainPID): read again
    sd.set(
        "kubelet.service",
        "active",
        "running",
        Some(ago(1)),
        Some(78),
    );
    let inv = det.invocation().await;
    assert_eq!(driver(inv.clone()).as_deref(), Some("cgroupfs"));
    assert!(inv.args[0].0.contains("pid 78"), "{:?}", inv.args.first());
}

#[tokio::test]
async fn runtime_detection_from_kubelet_flags_files_and_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let proc_root = dir.path().join("proc");
    let c = dir.path().join("containerd.sock");
    let d = dir.path().join("docker.sock");
    write(&proc_root, "4321/comm", "kubelet\n");
    write(
        &proc_root,
        "4321/cmdline",
        "/usr/bin/kubelet\0--config=/var/lib/kubelet/config.yaml\0--container-runtime-endpoint=unix:///run/cri-dockerd.sock\0",
    );
    let det = |setting, flags: &Path, config: &Path, sd: FakeSystemd| Detector {
        setting,
        docker_socket: d.clone(),
        containerd_socket: c.clone(),
        kubelet_unit: "kubelet.service".into(),
        proc_root: proc_root.clone(),
        kubeadm_flags: flags.into(),
        kubelet_config: config.into(),
        systemd: Arc::new(sd),
        kubelet_env_files: Vec::new(),
        crio_socket: "/nonexistent/crio.sock".into(),
        cri_dockerd_socket: "/nonexistent/cri-dockerd.sock".into(),
        node: None,
        host_root: None,
        invocation_cache: Default::default(),
    };
    let none = dir.path().join("none");
    // the kubelet's own command line (found by comm; systemd does not know it)
    let x = det(RuntimeKind::Auto, &none, &none, FakeSystemd::new())
        .detect()
        .await;
    assert_eq!(x.kind, Some(Runtime::CriDockerd), "{x:?}");
    assert_eq!(x.socket, Path::new("/run/cri-dockerd.sock"));
    assert!(x.how.contains("pid 4321"), "{x:?}");
    // the main pid systemd reports wins over a scan
    write(
        &proc_root,
        "77/cmdline",
        "kubelet\0--container-runtime-endpoint\0unix:///run/containerd/containerd.sock\0",
    );
    let sd = FakeSystemd::new().with_active("kubelet.service", ago(5), Some(77));
    let x = det(RuntimeKind::Auto, &none, &none, sd).detect().await;
    assert_eq!(x.kind, Some(Runtime::Containerd));
    assert_eq!(x.socket, Path::new("/run/containerd/containerd.sock"));
    // no kubelet process: kubeadm-flags.env, then the kubelet config
    std::fs::remove_dir_all(&proc_root).unwrap();
    std::fs::create_dir_all(&proc_root).unwrap();
    let flags = write(
        dir.path(),
        "kubeadm-flags.env",
        "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9\"\n",
    );
    let x = det(RuntimeKind::Auto, &flags, &none, FakeSystemd::new())
        .detect()
        .await;
    assert_eq!(x.kind, Some(Runtime::Containerd));
    assert!(x.how.contains("kubeadm-flags.env"), "{x:?}");
    let config = write(
        dir.path(),
        "config.yaml",
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncontainerRuntimeEndpoint: unix:///run/containerd/containerd.sock\n",
    );
    let x = det(RuntimeKind::Auto, &none, &config, FakeSystemd::new())
        .detect()
        .await;
    assert_eq!(x.kind, Some(Runtime::Containerd));
    // nothing but sockets
    let x = det(RuntimeKind::Auto, &none, &none, FakeSystemd::new())
        .detect()
        .await;
    assert_eq!(x.kind, None);
    assert!(x.how.starts_with("no container runtime found"), "{x:?}");
    let _srv = docker_server(&d, Mode::Ok).await.unwrap();
    let x = det(RuntimeKind::Auto, &none, &none, FakeSystemd::new())
        .detect()
        .await;
    assert_eq!(x.kind, Some(Runtime::Docker));
    // docker-ce brings containerd.io: both sockets, and nothing else says which.
    // The guess is docker (containerd.io ships with its CRI plugin disabled).
    let _c = cri_server(&c, Mode::Ok).await.unwrap();
    let x = det(RuntimeKind::Auto, &none, &none, FakeSystemd::new())
        .detect()
        .await;
    assert_eq!(x.kind, Some(Runtime::Docker), "{x:?}");
    assert!(x.how.contains("guess from sockets"), "{x:?}");
    // The Node's nodeInfo, as the kubelet reports it, decides before any socket.
    for (rt, kv, want) in [
        ("docker://18.9.5", "v1.14.1", Runtime::Docker),
        ("containerd://1.7.13", "v1.29.1", Runtime::Containerd),
    ] {
        let mut dt = det(RuntimeKind::Auto, &none, &none, FakeSystemd::new());
        dt.node = Some(Arc::new(NodeInfo(rt, kv)));
        let x = dt.detect().await;
        assert_eq!(x.kind, Some(want), "{x:?}");
        assert!(x.how.contains("Node status.nodeInfo"), "{x:?}");
        assert!(x.sources.iter().any(|s| s.source == "sockets"), "{x:?}");
    }
}

/// A node watch that has seen the Node with this nodeInfo.
struct NodeInfo(&'static str, &'static str);
impl nodewarden::probe::ReadyConditionSource for NodeInfo {
    fn ready_message(&self) -> nodewarden::probe::ApiFuture<'_, Option<String>> {
        Box::pin(async { Ok(None) })
    }
    fn node_info(&self) -> nodewarden::probe::ApiFuture<'_, (String, String)> {
        let v = (self.0.to_string(), self.1.to_string());
        Box::pin(async move { Ok(v) })
    }
}

#[tokio::test]
async fn no_runtime_is_said_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let kmsg = write(dir.path(), "kmsg", "");
    let r = runtime_check(
        RuntimeKind::Auto,
        &dir.path().join("docker.sock"),
        &dir.path().join("containerd.sock"),
        &empty,
        &kmsg,
    );
    let o = run_probe(&r, r.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Unknown);
    assert!(
        o.summary.starts_with("no container runtime found"),
        "{}",
        o.summary
    );
}

// ---------------------------------------------------------------------------------------
// PLEG

fn journal_line(at: Timestamp, msg: &str) -> String {
    serde_json::json!({
        "__REALTIME_TIMESTAMP": at.as_microsecond().to_string(),
        "_SYSTEMD_UNIT": "kubelet.service",
        "PRIORITY": "6",
        "MESSAGE": msg,
    })
    .to_string()
}

fn pleg_check(journalctl: &Path, sd: FakeSystemd, api: FixedApi) -> PlegCheck {
    PlegCheck {
        settings: probes().pleg,
        unit: "kubelet.service".into(),
        systemd: Arc::new(sd),
        ready: api.sources().ready,
        journalctl: journalctl.into(),
        journal_dir: None,
        host_root: None,
        journal: Default::default(),
    }
}

#[tokio::test]
async fn pleg_from_the_kubelet_journal_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp::now();
    let klog = |ago: &str| {
        format!(
            r#"E0312 10:15:02.123456    1234 kubelet.go:2408] "Skipping pod synchronization" err="PLEG is not healthy: pleg was last seen active {ago} ago; threshold is 3m0s""#
        )
    };
    let cond = |ago: &str| {
        format!(
            r#"I0312 10:15:03.000001    1234 setters.go:552] "Node became not ready" node="n1" condition={{"type":"Ready","status":"False","lastHeartbeatTime":"2026-03-12T10:15:03Z","lastTransitionTime":"2026-03-12T10:12:00Z","reason":"KubeletNotReady","message":"PLEG is not healthy: pleg was last seen active {ago} ago; threshold is 3m0s"}}"#
        )
    };
    let mut lines = vec![journal_line(
        Dur::from_secs(50).before(now),
        "I0312 kubelet.go:1] ordinary line",
    )];
    for (i, ago) in ["3m0.2s", "3m0.2s", "3m1.2s", "3m2.2s", "3m3.5s"]
        .iter()
        .enumerate()
    {
        let at = Dur::from_secs(10 - i as u64).before(now);
        lines.push(journal_line(at, &klog(ago)));
        lines.push(journal_line(at, &cond(ago)));
    }
    let fixture = write(dir.path(), "journal.json", &(lines.join("\n") + "\n"));
    let args = dir.path().join("args");
    let jc = script(
        dir.path(),
        "journalctl",
        &format!(
            "echo \"$@\" > {}\ncat {}",
            args.display(),
            fixture.display()
        ),
    );
    let started = Dur::from_secs(3600).before(now);
    let sd = || FakeSystemd::new().with_active("kubelet.service", started, Some(1));
    let p = pleg_check(&jc, sd(), FixedApi::default());
    let o = run_probe(&p, p.settings.timing.timeout, now).await;
    assert_eq!(o.verdict, Verdict::Failing, "{o:?}");
    assert!(
        o.summary
            .contains("PLEG last seen active 3m3s500ms ago (threshold 3m)"),
        "{}",
        o.summary
    );
    assert!(
        o.evidence["journal"].starts_with("10 PLEG reports (4 distinct)"),
        "{o:?}"
    );
    let a = std::fs::read_to_string(&args).unwrap();
    // the unit started an hour ago: the 5 m window bounds the search
    let since = Dur::from_secs(300).before(now).as_second();
    assert_eq!(
        a.trim(),
        format!("-u kubelet.service --since @{since} -o json --no-pager -q")
    );

    // a kubelet restarted 20 s ago: only its own run counts
    let p = pleg_check(
        &jc,
        FakeSystemd::new().with_active("kubelet.service", Dur::from_secs(20).before(now), Some(1)),
        FixedApi::default(),
    );
    let _ = run_probe(&p, p.settings.timing.timeout, now).await;
    let a = std::fs::read_to_string(&args).unwrap();
    assert!(
        a.contains(&format!(
            "--since @{}",
            Dur::from_secs(20).before(now).as_second()
        )),
        "{a}"
    );

    // below the threshold: healthy
    let fixture2 = write(
        dir.path(),
        "journal2.json",
        &(journal_line(now, &klog("2m59.9s")) + "\n"),
    );
    let jc2 = script(
        dir.path(),
        "journalctl2",
        &format!("cat {}", fixture2.display()),
    );
    let p = pleg_check(&jc2, sd(), FixedApi::default());
    let o = run_probe(&p, p.settings.timing.timeout, now).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
}

/// The journal is read incrementally (after the last cursor), and only every
/// `JOURNAL_EVERY` while the Ready condition is readable and says nothing of PLEG.
#[tokio::test]
async fn pleg_reads_the_journal_incrementally_and_rarely_while_ready_is_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp::now();
    let mut line: serde_json::Value = serde_json::from_str(&journal_line(
        Dur::from_secs(5).before(now),
        "E0312 kubelet.go:2408] \"Skipping pod synchronization\" err=\"PLEG is not healthy: pleg was last seen active 3m5s ago; threshold is 3m0s\"",
    ))
    .unwrap();
    line["__CURSOR"] = "s=1;i=2;b=3".into();
    let fixture = write(dir.path(), "journal.json", &format!("{line}\n"));
    let args = dir.path().join("args");
    let jc = script(
        dir.path(),
        "journalctl",
        // as journalctl: nothing was logged after the cursor
        &format!(
            "echo \"$@\" >> {}\ncase \"$*\" in *--after-cursor*) exit 0;; esac\ncat {}",
            args.display(),
            fixture.display()
        ),
    );
    let quiet = FixedApi {
        ready: Some("kubelet is posting ready status".into()),
        ..Default::default()
    };
    let sd = FakeSystemd::new().with_active("kubelet.service", ago(3600), Some(1));
    let p = pleg_check(&jc, sd, quiet);
    let o = run_probe(&p, p.settings.timing.timeout, now).await;
    assert_eq!(o.verdict, Verdict::Failing, "{o:?}");
    // The next round: the Ready condition is quiet, the journal was just
    // read: no child, and the stall read before still counts.
    let o = run_probe(&p, p.settings.timing.timeout, now).await;
    assert_eq!(o.verdict, Verdict::Failing, "{o:?}");
    assert!(
        o.evidence["journalRead"].contains("not read this round"),
        "{o:?}"
    );
    let calls = std::fs::read_to_string(&args).unwrap();
    assert_eq!(calls.lines().count(), 1, "{calls}");
    assert!(calls.contains("--since @"), "{calls}");
    // Without the Ready condition, every round reads, after the cursor.
    let p = PlegCheck {
        ready: ApiSources::not_configured("no cluster access").ready,
        ..p
    };
    let o = run_probe(&p, p.settings.timing.timeout, now).await;
    assert_eq!(o.verdict, Verdict::Failing, "{o:?}");
    assert!(o.evidence["journal"].starts_with("1 PLEG reports"), "{o:?}");
    let calls = std::fs::read_to_string(&args).unwrap();
    let last = calls.lines().last().unwrap_or_default();
    assert!(last.contains("--after-cursor s=1;i=2;b=3"), "{calls}");
    assert!(!last.contains("--since"), "{calls}");
}

#[tokio::test]
async fn pleg_from_the_ready_condition_and_a_hung_journal() {
    let dir = tempfile::tempdir().unwrap();
    let hang = script(dir.path(), "journalctl", "exec sleep 30");
    let api = FixedApi {
        ready: Some("container runtime status check may not have completed yet, PLEG is not healthy: pleg was last seen active 4m10.5s ago; threshold is 3m0s".into()),
        ..Default::default()
    };
    let sd = || FakeSystemd::new().with_active("kubelet.service", ago(3600), Some(1));
    let p = pleg_check(&hang, sd(), api);
    let o = run_probe(&p, p.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing, "{o:?}");
    assert!(
        o.summary
            .contains("Ready condition: PLEG last seen active 4m10s500ms ago"),
        "{}",
        o.summary
    );
    assert!(o.evidence["journal"].contains("timed out"), "{o:?}");

    // nothing readable at all: unknown, not failing
    let p = pleg_check(&hang, sd(), FixedApi::default());
    let p = PlegCheck {
        ready: ApiSources::not_configured("no cluster access").ready,
        ..p
    };
    let o = run_probe(&p, p.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Unknown, "{o:?}");
    assert!(
        o.evidence["readyCondition"].contains("no cluster access"),
        "{o:?}"
    );

    // no kubelet unit
    let p = pleg_check(&hang, FakeSystemd::new(), FixedApi::default());
    let o = run_probe(&p, p.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Unknown);
    assert_eq!(o.summary, "kubelet.service not found");
}

// ---------------------------------------------------------------------------------------
// clock

fn kernel(unsync: bool, maxerr_s: f64) -> Arc<FixedKernelClock> {
    Arc::new(FixedKernelClock(Ok(KernelClock {
        state: if unsync { 5 } else { 0 },
        unsynchronised: unsync,
        max_error_us: (maxerr_s * 1e6) as i64,
        est_error_us: 0,
    })))
}

fn clock_check(api: FixedApi, k: Arc<FixedKernelClock>, cert: &str) -> ClockCheck {
    ClockCheck::new(
        probes().clock,
        api.sources().clock,
        k,
        fixtures().join(cert),
        // a bus address nobody listens on: timedated unknown, quickly
        Some("unix:path=/nonexistent/nodewarden-test-bus".into()),
    )
}

#[tokio::test]
async fn clock_against_the_api_server_date() {
    let skewed = |secs: i64| FixedApi {
        clock_offset: Some((jiff::SignedDuration::from_secs(secs), Dur::from_millis(20))),
        ..Default::default()
    };
    let c = clock_check(
        skewed(30),
        kernel(false, 0.01),
        "kubelet-client-current.pem",
    );
    let o = run_probe(&c, c.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing, "{o:?}");
    assert!(
        o.summary.contains("behind the API server's"),
        "{}",
        o.summary
    );
    let c = clock_check(
        skewed(-3600),
        kernel(false, 0.01),
        "kubelet-client-current.pem",
    );
    let o = run_probe(&c, c.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing);
    assert!(
        o.summary.contains("ahead of the API server's"),
        "{}",
        o.summary
    );
    // in sync (Date's 1 s resolution is inside the bound)
    let c = clock_check(skewed(0), kernel(true, 16.0), "kubelet-client-current.pem");
    let o = run_probe(&c, c.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    assert!(o.evidence["apiServer"].contains('±'), "{o:?}");
    assert!(
        o.evidence["kubeletCert"].starts_with("valid 2020-01-01T00:00:00Z"),
        "{o:?}"
    );
    // the API hangs: the probe still answers, from the kernel
    let c = clock_check(
        FixedApi {
            hang: true,
            ..Default::default()
        },
        kernel(false, 0.01),
        "kubelet-client-current.pem",
    );
    let o = run_probe(&c, c.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    assert!(o.evidence["apiServer"].contains("timed out"), "{o:?}");
}

#[tokio::test]
async fn clock_without_the_api_kernel_and_certificate() {
    let none = || FixedApi::default();
    // unsynchronised, even with a 16 s error bound: evidence, not a failure, without the API
    let c = clock_check(none(), kernel(true, 16.0), "kubelet-client-current.pem");
    let o = run_probe(&c, c.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Unknown, "{o:?}");
    assert!(
        o.summary.contains("unsynchronised (maxerror 16.0s)"),
        "{}",
        o.summary
    );
    // a certificate that is not valid yet: the clock is behind
    let c = clock_check(none(), kernel(false, 0.01), "kubelet-client-future.pem");
    let o = run_probe(&c, c.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing, "{o:?}");
    assert!(
        o.summary.contains("not valid until 2099-01-01T00:00:00Z"),
        "{}",
        o.summary
    );
    // no certificate file: said, not failing
    let c = clock_check(none(), kernel(false, 0.01), "nope.pem");
    let o = run_probe(&c, c.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    assert!(o.evidence["kubeletCert"].starts_with("none"), "{o:?}");
}

#[test]
fn certificate_validity_windows() {
    let v = cert_validity_pem(&fixtures().join("kubelet-client-current.pem")).unwrap();
    assert_eq!(v.not_before.to_string(), "2020-01-01T00:00:00Z");
    assert_eq!(v.not_after.to_string(), "2049-12-31T23:59:59Z");
    let v = cert_validity_pem(&fixtures().join("cert-generalizedtime.pem")).unwrap();
    assert_eq!(v.not_after.to_string(), "2060-01-01T00:00:00Z");
    let v = cert_validity_pem(&fixtures().join("kubelet-client-future.pem")).unwrap();
    assert_eq!(v.not_before.to_string(), "2099-01-01T00:00:00Z");
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    assert!(cert_validity_pem(&bad).is_err());
    let key = write(
        dir.path(),
        "key.pem",
        "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
    );
    assert!(
        cert_validity_pem(&key)
            .unwrap_err()
            .to_string()
            .contains("no CERTIFICATE")
    );
}

// ---------------------------------------------------------------------------------------
// systemd outdated

#[tokio::test]
async fn systemd_version_policy_from_os_release_and_package_databases() {
    let dir = tempfile::tempdir().unwrap();
    let el7 = write(
        dir.path(),
        "el7-os-release",
        "NAME=\"CentOS Linux\"\nVERSION=\"7 (Core)\"\nID=\"centos\"\nID_LIKE=\"rhel fedora\"\nVERSION_ID=\"7\"\nPRETTY_NAME=\"CentOS Linux 7 (Core)\"\n",
    );
    let deb = write(
        dir.path(),
        "deb-os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 10 (buster)\"\nID=debian\nVERSION_ID=\"10\"\n",
    );
    let status = write(
        dir.path(),
        "status",
        "Package: systemd\nStatus: install ok installed\nVersion: 241-7~deb10u10\n\n",
    );
    let old_rpm = script(dir.path(), "rpm-old", "echo '(none):219-62.el7_6.9'");
    let new_rpm = script(dir.path(), "rpm-new", "echo '(none):219-78.el7_9.9'");
    let hung_rpm = script(dir.path(), "rpm-hung", "exec sleep 30");
    let check = |os: &Path, rpm: &Path, version: &str| SystemdCheck {
        settings: probes().systemd,
        systemd: Arc::new(FakeSystemd::new().with_version(version)),
        os_release: os.into(),
        dpkg_status: status.clone(),
        rpm: rpm.into(),
        host_root: None,
    };
    let c = check(&el7, &old_rpm, "219");
    let o = run_probe(&c, c.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing, "{o:?}");
    assert_eq!(
        o.summary,
        "systemd package 219-62.el7_6.9 is older than the el7 minimum 219-67.el7"
    );
    let c = check(&el7, &new_rpm, "219");
    let o = run_probe(&c, c.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    let c = check(&el7, &hung_rpm, "219");
    let o = run_probe(&c, c.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Unknown, "{o:?}");
    assert!(o.evidence["package"].contains("timed out"), "{o:?}");
    // Debian 10's 241 is healthy: the default has no generic floor (issue #13).
    let c = check(&deb, &hung_rpm, "241");
    let o = run_probe(&c, c.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    assert_eq!(o.evidence["package"], "241-7~deb10u10");
    let c = check(&deb, &hung_rpm, "252.33-1~deb12u1");
    let o = run_probe(&c, c.settings.timing.timeout, Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
}

// ---------------------------------------------------------------------------------------
// the set, node facts

#[tokio::test]
async fn a_full_round_with_one_hung_runtime_reports_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let hz = healthz_server(Mode::Ok).await.unwrap();
    let dsock = dir.path().join("docker.sock");
    let docker = docker_server(&dsock, Mode::Hang).await.unwrap();
    let mut p = probes();
    p.kubelet.healthz_url = hz.url();
    p.runtime.runtime = RuntimeKind::Docker;
    p.runtime.docker_socket = dsock.display().to_string();
    let empty = dir.path().join("proc");
    std::fs::create_dir(&empty).unwrap();
    let jc = script(dir.path(), "journalctl", "exit 0");
    let env = ProbeEnv {
        proc_root: empty,
        kmsg: write(dir.path(), "kmsg", ""),
        os_release: write(dir.path(), "os-release", "ID=debian\nVERSION_ID=12\n"),
        dpkg_status: write(
            dir.path(),
            "status",
            "Package: systemd\nStatus: install ok installed\nVersion: 252.33-1~deb12u1\n",
        ),
        journalctl: jc,
        kubelet_client_cert: fixtures().join("kubelet-client-current.pem"),
        dbus_address: Some("unix:path=/nonexistent/bus".into()),
        kernel_clock: kernel(false, 0.01),
        ..ProbeEnv::default()
    };
    let sd = FakeSystemd::new()
        .with_active("kubelet.service", ago(600), Some(1))
        .with_version("252.33-1~deb12u1");
    p.certificate.client_cert = Some(dir.path().join("no-client.pem").display().to_string());
    p.certificate.serving_cert = Some(dir.path().join("no-serving.crt").display().to_string());
    let set = ProbeSet::new(
        &p,
        &env,
        Arc::new(sd),
        FixedApi {
            lease: Some(ago(2)),
            clock_offset: Some((jiff::SignedDuration::ZERO, Dur::from_millis(5))),
            ..Default::default()
        }
        .sources(),
    );
    // Every problem has a probe, in Problem::ALL's order.
    assert_eq!(set.problems(), Problem::ALL.to_vec());
    let obs = set.run_once(Timestamp::now()).await;
    // The host-side readiness-drift probes read this machine's /proc and disks:
    // judged in their own tests.
    let host_drift = [
        Problem::SwapOn,
        Problem::KernelPrerequisitesMissing,
        Problem::CgroupDriverMismatch,
        Problem::DiskNearlyFull,
    ];
    let v: Vec<(Problem, Verdict)> = obs
        .iter()
        .filter(|o| !host_drift.contains(&o.problem))
        .map(|o| (o.problem, o.verdict))
        .collect();
    assert_eq!(
        v,
        vec![
            (Problem::KubeletUnhealthy, Verdict::Healthy),
            (Problem::PlegUnhealthy, Verdict::Healthy),
            (Problem::ContainerRuntimeUnresponsive, Verdict::Failing),
            (Problem::ClockSkewed, Verdict::Healthy),
            (Problem::SystemdOutdated, Verdict::Healthy),
            // no kubelet certificate here (paths in the temp dir); no watches in this fake
            (Problem::KubeletCertificateInvalid, Verdict::Unknown),
            (Problem::ApiServerUnreachable, Verdict::Unknown),
        ],
        "{obs:#?}"
    );
    assert!(obs[2].summary.contains("timed out"), "{}", obs[2].summary);
    drop(docker);
}

#[tokio::test]
async fn node_facts_from_systemd_and_procfs() {
    let dir = tempfile::tempdir().unwrap();
    let proc_root = dir.path().join("proc");
    write(
        &proc_root,
        "sys/kernel/random/boot_id",
        "0b5c4f9e-4d7c-4e1a-9f0e-123456789abc\n",
    );
    let dsock = dir.path().join("docker.sock");
    let _d = docker_server(&dsock, Mode::Ok).await.unwrap();
    let mut rb = default_runbook().runbook;
    rb.spec.probes.runtime.docker_socket = dsock.display().to_string();
    rb.spec.probes.runtime.containerd_socket = dir.path().join("c.sock").display().to_string();
    let up = ago(30);
    let sd = FakeSystemd::new()
        .with_active("kubelet.service", up, Some(1))
        .with_active("docker.service", up, Some(2));
    sd.set("chronyd.service", "failed", "failed", Some(ago(99)), None);
    let env = ProbeEnv {
        proc_root,
        kubeadm_flags: dir.path().join("none"),
        kubelet_config: dir.path().join("none"),
        ..ProbeEnv::default()
    };
    let f = node_facts(&rb, &env, Arc::new(sd), Duration::from_secs(5)).await;
    let units = f.units.expect("systemd answered");
    assert_eq!(units.get("kubelet.service"), Some(&Some(up)));
    assert_eq!(units.get("docker.service"), Some(&Some(up)));
    // exists, but not up: no cooldown applies
    assert_eq!(units.get("chronyd.service"), Some(&None));
    assert!(!units.contains_key("containerd.service"));
    assert_eq!(f.runtime_unit.as_deref(), Some("docker.service"));
    assert_eq!(
        f.boot_id.as_deref(),
        Some("0b5c4f9e-4d7c-4e1a-9f0e-123456789abc")
    );

    // systemd hangs: units unknown, the rest still there, within the deadline
    let sd = FakeSystemd::new();
    sd.hang.store(true, std::sync::atomic::Ordering::Relaxed);
    let f = node_facts(&rb, &env, Arc::new(sd), Duration::from_millis(300)).await;
    assert_eq!(f.units, None);
    assert!(f.boot_id.is_some());
}

#[test]
fn probe_trait_objects_are_send_and_sync() {
    fn takes(_: Arc<dyn Probe>) {}
    let _ = takes;
}

#[test]
fn host_root_maps_every_host_path_and_only_those() {
    use nodewarden::probe::ProbeEnv;
    let d = ProbeEnv::default();
    for none in [None, Some(Path::new("/"))] {
        let e = ProbeEnv::on_host(none);
        assert_eq!(e.host_root, None);
        assert_eq!(e.os_release, d.os_release);
        assert_eq!(
            e.host_path("/run/docker.sock"),
            Path::new("/run/docker.sock")
        );
    }
    let e = ProbeEnv::on_host(Some(Path::new("/host")));
    assert_eq!(e.host_root.as_deref(), Some(Path::new("/host")));
    assert_eq!(e.os_release, Path::new("/host/etc/os-release"));
    assert_eq!(e.dpkg_status, Path::new("/host/var/lib/dpkg/status"));
    assert_eq!(
        e.kubelet_client_cert,
        Path::new("/host/var/lib/kubelet/pki/kubelet-client-current.pem")
    );
    assert_eq!(
        e.kubeadm_flags,
        Path::new("/host/var/lib/kubelet/kubeadm-flags.env")
    );
    assert_eq!(
        e.kubelet_config,
        Path::new("/host/var/lib/kubelet/config.yaml")
    );
    assert_eq!(
        e.host_path("/run/containerd/containerd.sock"),
        Path::new("/host/run/containerd/containerd.sock")
    );
    // the pod's own procfs (hostPID) and kmsg; the tools are run chrooted, by name
    assert_eq!(e.proc_root, d.proc_root);
    assert_eq!(e.kmsg, d.kmsg);
    assert_eq!(e.journalctl, d.journalctl);
    assert_eq!(e.rpm, d.rpm);
    assert_eq!(e.host_path("relative"), Path::new("relative"));
}

#[test]
fn host_root_resolves_directory_symlinks_inside_the_root() {
    use nodewarden::probe::ProbeEnv;
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    std::fs::create_dir_all(r.join("run/containerd")).unwrap();
    std::fs::create_dir_all(r.join("var/lib/kubelet")).unwrap();
    // Debian: /var/run -> /run (absolute), an absolute link that must stay in the root
    std::os::unix::fs::symlink("/run", r.join("var/run")).unwrap();
    // a relative link with .., and a loop
    std::os::unix::fs::symlink("../run/containerd", r.join("var/cd")).unwrap();
    std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
    let e = ProbeEnv::on_host(Some(r));
    assert_eq!(
        e.host_path("/var/run/docker.sock"),
        r.join("run/docker.sock")
    );
    assert_eq!(
        e.host_path("/var/cd/containerd.sock"),
        r.join("run/containerd/containerd.sock")
    );
    assert_eq!(e.host_path("/run/x.sock"), r.join("run/x.sock"));
    // the last component is never followed (a socket or a link that may change)
    assert_eq!(e.host_path("/var/run"), r.join("var/run"));
    // a loop ends, inside the root
    assert!(e.host_path("/loop/x").starts_with(r));
    // .. never climbs out of the root
    assert_eq!(
        e.host_path("/../../etc/os-release"),
        r.join("etc/os-release")
    );
}

#[test]
fn the_kubelets_absolute_cert_symlink_resolves_inside_the_host_root() {
    use nodewarden::probe::ProbeEnv;
    use nodewarden::probe::hostfs::follow_under as host_file;
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let pki = r.join("var/lib/kubelet/pki");
    std::fs::create_dir_all(&pki).unwrap();
    std::fs::copy(
        "tests/probe_fixtures/kubelet-client-current.pem",
        pki.join("kubelet-client-2026-01-02-10-00-00.pem"),
    )
    .unwrap();
    // what the kubelet writes: an absolute link, re-pointed at each rotation
    std::os::unix::fs::symlink(
        "/var/lib/kubelet/pki/kubelet-client-2026-01-02-10-00-00.pem",
        pki.join("kubelet-client-current.pem"),
    )
    .unwrap();
    let e = ProbeEnv::on_host(Some(r));
    let resolved = host_file(e.host_root.as_deref(), &e.kubelet_client_cert);
    assert_eq!(resolved, pki.join("kubelet-client-2026-01-02-10-00-00.pem"));
    assert!(cert_validity_pem(&resolved).is_ok());
    // without the resolution the link leads out of the root (into this machine's /var)
    assert!(
        std::fs::read_link(&e.kubelet_client_cert)
            .unwrap()
            .starts_with("/var/lib/kubelet")
    );
    // on the host (no root) the path is left to the kernel
    assert_eq!(
        host_file(
            None,
            Path::new("/var/lib/kubelet/pki/kubelet-client-current.pem")
        ),
        Path::new("/var/lib/kubelet/pki/kubelet-client-current.pem")
    );
}
