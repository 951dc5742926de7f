//! The probes in a pod (`--host-root`), against a fixture host root laid out like a
//! kubeadm node on Debian: `/var/run` → `/run` (absolute), the kubelet started with
//! `--config` naming a KubeletConfiguration whose `containerRuntimeEndpoint` is a
//! `unix:///var/run/...` URL, and `kubelet-client-current.pem` an absolute link to its
//! dated file, as the kubelet's certificate manager writes it
//! (k8s.io/client-go/util/certificate: `os.Symlink(<pki dir>/kubelet-client-<ts>.pem, …current.pem)`).
//! Every one of those host paths must resolve inside the host root, never in the pod's
//! own tree: nothing of it exists outside the fixture.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nodewarden::domain::{Dur, Problem, Timestamp};
use nodewarden::health::Verdict;
use nodewarden::probe::testing::{FakeSystemd, FixedApi, Mode, cri_server};
use nodewarden::probe::{ProbeEnv, ProbeSet};
use nodewarden::runbook::{RuntimeKind, default_runbook};

fn write(p: &Path, content: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// The host root, the pod's view of the host's /proc, and the CRI socket's path.
fn node() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("host");
    std::fs::create_dir_all(root.join("run/containerd")).unwrap();
    std::fs::create_dir_all(root.join("var")).unwrap();
    symlink("/run", root.join("var/run")).unwrap();
    // kubelet 1.28 on kubeadm: the flags file names only --config; the endpoint is in the
    // KubeletConfiguration (not at kubeadm's default path, so no default can stand in)
    write(
        &root.join("etc/kubernetes/kubelet/config-v2.yaml"),
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\ncontainerRuntimeEndpoint: unix:///var/run/containerd/k8s-containerd.sock\n",
    );
    // the config file itself an absolute link, as config-management tools leave it
    symlink(
        "/etc/kubernetes/kubelet/config-v2.yaml",
        root.join("etc/kubernetes/kubelet.yaml"),
    )
    .unwrap();
    let pki = root.join("var/lib/kubelet/pki");
    std::fs::create_dir_all(&pki).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/probe_fixtures/kubelet-client-current.pem"),
        pki.join("kubelet-client-2020-01-01-00-00-00.pem"),
    )
    .unwrap();
    symlink(
        "/var/lib/kubelet/pki/kubelet-client-2020-01-01-00-00-00.pem",
        pki.join("kubelet-client-current.pem"),
    )
    .unwrap();
    // hostPID: the pod's /proc lists the host's kubelet
    let proc_root = d.path().join("proc");
    write(&proc_root.join("4321/comm"), "kubelet\n");
    write(
        &proc_root.join("4321/cmdline"),
        "/usr/bin/kubelet\0--config=/etc/kubernetes/kubelet.yaml\0--kubeconfig=/etc/kubernetes/kubelet.conf\0",
    );
    let sock = root.join("run/containerd/k8s-containerd.sock");
    (d, proc_root, sock)
}

#[tokio::test]
async fn the_kubelets_config_endpoint_and_certificate_resolve_inside_the_host_root() {
    let (d, proc_root, sock) = node();
    let root = d.path().join("host");
    let _cri = cri_server(&sock, Mode::Ok).await.unwrap();
    let mut probes = default_runbook().runbook.spec.probes;
    assert_eq!(probes.runtime.runtime, RuntimeKind::Auto);
    for t in [&mut probes.runtime.timing, &mut probes.clock.timing] {
        t.timeout = Dur::from_millis(1500);
    }
    let env = ProbeEnv {
        proc_root,
        dbus_address: Some("unix:path=/nonexistent/nodewarden-test-bus".into()),
        ..ProbeEnv::on_host(Some(&root))
    };
    let sd = FakeSystemd::new().with_active("kubelet.service", Timestamp::now(), Some(4321));
    let api = FixedApi::default().sources();
    let set = ProbeSet::new(&probes, &env, Arc::new(sd), api);
    let obs = set.run_once(Timestamp::now()).await;
    let get = |p: Problem| obs.iter().find(|o| o.problem == p).unwrap().clone();

    let rt = get(Problem::ContainerRuntimeUnresponsive);
    assert_eq!(rt.verdict, Verdict::Healthy, "{rt:#?}");
    // --config=/etc/kubernetes/kubelet.yaml, an absolute link: read where it leads in the root
    let cfg = root.join("etc/kubernetes/kubelet/config-v2.yaml");
    assert_eq!(
        rt.evidence
            .get(&format!("source {}", cfg.display()))
            .map(String::as_str),
        Some("containerRuntimeEndpoint: unix:///var/run/containerd/k8s-containerd.sock"),
        "{rt:#?}"
    );
    assert!(
        rt.evidence["detected"].starts_with("containerd decided by"),
        "{rt:#?}"
    );
    assert!(
        rt.evidence["socket"].contains("ListPodSandbox ok"),
        "{rt:#?}"
    );

    let clock = get(Problem::ClockSkewed);
    assert!(
        clock.evidence["kubeletCert"].starts_with("valid 2020-01-01T00:00:00Z"),
        "the certificate behind the absolute link, inside the host root: {clock:#?}"
    );
}

#[tokio::test]
async fn without_the_endpoints_socket_the_runtime_is_not_found_in_the_pods_own_tree() {
    // the same node with containerd down: the probe says where it looked, under the root
    let (d, proc_root, _sock) = node();
    let root = d.path().join("host");
    let mut probes = default_runbook().runbook.spec.probes;
    probes.runtime.timing.timeout = Dur::from_millis(1500);
    let env = ProbeEnv {
        proc_root,
        ..ProbeEnv::on_host(Some(&root))
    };
    let sd = FakeSystemd::new().with_active("kubelet.service", Timestamp::now(), Some(4321));
    let set = ProbeSet::new(&probes, &env, Arc::new(sd), FixedApi::default().sources());
    let obs = set.run_once(Timestamp::now()).await;
    let rt = obs
        .iter()
        .find(|o| o.problem == Problem::ContainerRuntimeUnresponsive)
        .unwrap();
    assert_eq!(rt.verdict, Verdict::Failing, "{rt:#?}");
    let want = root.join("run/containerd/k8s-containerd.sock");
    assert!(
        rt.evidence["socket"].contains(&want.display().to_string()),
        "{rt:#?}"
    );
}

/// cri-dockerd (kubelet ≥ 1.24 on docker): the runtime probe checks the CRI socket the
/// kubelet names, then dockerd's own socket, both under the host root. Here dockerd's socket
/// is itself an absolute link (a relocated socket left behind a link: the kernel follows
/// it on connect, so the probe must follow it too, inside the host root, never into the
/// pod's own /run).
#[tokio::test]
async fn cri_dockerd_and_a_linked_dockerd_socket_resolve_inside_the_host_root() {
    use nodewarden::probe::testing::docker_server;
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("host");
    std::fs::create_dir_all(root.join("run/docker")).unwrap();
    std::fs::create_dir_all(root.join("var")).unwrap();
    symlink("/run", root.join("var/run")).unwrap();
    symlink("/run/docker/engine.sock", root.join("run/docker.sock")).unwrap();
    let proc_root = d.path().join("proc");
    write(&proc_root.join("4321/comm"), "kubelet\n");
    write(
        &proc_root.join("4321/cmdline"),
        "/usr/bin/kubelet\0--container-runtime-endpoint=unix:///var/run/cri-dockerd.sock\0",
    );
    let _cri = cri_server(&root.join("run/cri-dockerd.sock"), Mode::Ok)
        .await
        .unwrap();
    let _docker = docker_server(&root.join("run/docker/engine.sock"), Mode::Ok)
        .await
        .unwrap();
    let mut probes = default_runbook().runbook.spec.probes;
    probes.runtime.timing.timeout = Dur::from_millis(1500);
    let env = ProbeEnv {
        proc_root,
        dbus_address: Some("unix:path=/nonexistent/nodewarden-test-bus".into()),
        ..ProbeEnv::on_host(Some(&root))
    };
    let sd = FakeSystemd::new().with_active("kubelet.service", Timestamp::now(), Some(4321));
    let set = ProbeSet::new(&probes, &env, Arc::new(sd), FixedApi::default().sources());
    let obs = set.run_once(Timestamp::now()).await;
    let rt = obs
        .iter()
        .find(|o| o.problem == Problem::ContainerRuntimeUnresponsive)
        .unwrap();
    assert!(
        rt.evidence["detected"].starts_with("docker (cri-dockerd) decided by"),
        "{rt:#?}"
    );
    assert_eq!(rt.verdict, Verdict::Healthy, "{rt:#?}");
    assert!(rt.evidence["socket"].contains("dockerd"), "{rt:#?}");
}
