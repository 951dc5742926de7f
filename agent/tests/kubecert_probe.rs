//! The KubeletCertificateInvalid probe (issue 16, seed 000) end to end on files: generated
//! certificates with chosen windows, the API server's time from a fixed source, CSRs from
//! a counting source (they are listed only when there is a reason, and not often).

#[path = "cluster/pki.rs"]
mod pki;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use nodewarden::domain::{Dur, Problem, Timestamp};
use nodewarden::health::Verdict;
use nodewarden::host::systemd::Systemd;
use nodewarden::probe::certs::{CsrSource, CsrView, Policy, SIGNER_CLIENT};
use nodewarden::probe::kubecert::{CertSettings, KubeletCertCheck, Locate};
use nodewarden::probe::testing::FakeSystemd;
use nodewarden::probe::{ApiFuture, LeaseSource, Probe, ProbeEnv, ServerClock};
use nodewarden::runbook::default_runbook;
use serde_json::json;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

struct ServerAt(Option<Timestamp>);
impl ServerClock for ServerAt {
    fn date(&self) -> ApiFuture<'_, (Timestamp, Dur)> {
        let t = self.0;
        Box::pin(async move {
            t.map(|t| (t, Dur::from_millis(2)))
                .ok_or("unreachable".into())
        })
    }
}

struct LeaseAt(Option<Timestamp>);
impl LeaseSource for LeaseAt {
    fn lease_renew_time(&self) -> ApiFuture<'_, Option<Timestamp>> {
        let t = self.0;
        Box::pin(async move { Ok(t) })
    }
}

#[derive(Default)]
struct Csrs {
    calls: AtomicUsize,
    items: Vec<CsrView>,
}
impl CsrSource for Csrs {
    fn this_node(&self) -> ApiFuture<'_, Vec<CsrView>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let v = self.items.clone();
        Box::pin(async move { Ok(v) })
    }
}

fn pending_csr(name: &str, created: &str) -> CsrView {
    let mut c: CertificateSigningRequest = serde_json::from_value(json!({
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"request": "", "signerName": SIGNER_CLIENT, "username": "system:node:k8s-vm02",
                 "usages": ["client auth"]},
    }))
    .expect("csr");
    c.spec.request = k8s_openapi::ByteString(pki::csr_pem("system:node:k8s-vm02").into_bytes());
    CsrView::of(&c)
}

struct Node {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

/// A host tree: the client certificate behind the kubelet's absolute symlink, and a
/// self-signed serving certificate (kubeadm's default).
fn node(client: (&str, &str), serving: Option<(&str, &str)>) -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    let pki_dir = root.join("var/lib/kubelet/pki");
    std::fs::create_dir_all(&pki_dir).expect("mkdir");
    std::fs::write(
        pki_dir.join("kubelet-client-2026.pem"),
        pki::cert_pem("system:node:k8s-vm02", client.0, client.1),
    )
    .expect("write");
    std::os::unix::fs::symlink(
        "/var/lib/kubelet/pki/kubelet-client-2026.pem",
        pki_dir.join("kubelet-client-current.pem"),
    )
    .expect("symlink");
    if let Some((nb, na)) = serving {
        std::fs::write(
            pki_dir.join("kubelet.crt"),
            pki::self_signed_pem("k8s-vm02@1", nb, na),
        )
        .expect("write");
    }
    Node { _dir: dir, root }
}

fn check(n: &Node, server: Option<&str>, lease: Option<&str>, csrs: Arc<Csrs>) -> KubeletCertCheck {
    let under = |p: &str| n.root.join(p.trim_start_matches('/'));
    KubeletCertCheck::new(
        CertSettings {
            policy: Policy::default(),
            csr_interval: Dur::from_secs(600),
            lease_stale_after: Dur::from_secs(60),
            timeout: Dur::from_secs(10),
        },
        Locate::Fixed {
            client: vec![under("/var/lib/kubelet/pki/kubelet-client-current.pem")],
            serving: vec![
                under("/var/lib/kubelet/pki/kubelet-server-current.pem"),
                under("/var/lib/kubelet/pki/kubelet.crt"),
            ],
        },
        Some(n.root.clone()),
        Arc::new(ServerAt(server.map(ts))),
        Arc::new(LeaseAt(lease.map(ts))),
        csrs,
    )
}

#[tokio::test]
async fn seed_000_not_yet_valid_with_pending_csrs_and_the_command() {
    let n = node(
        ("2026-01-02", "2027-01-02"),
        Some(("2025-06-01", "2026-06-01")),
    );
    let csrs = Arc::new(Csrs {
        items: vec![
            pending_csr("csr-8x2lq", "2025-12-29T20:00:00Z"),
            pending_csr("csr-b7k4w", "2025-12-29T22:00:00Z"),
            pending_csr("csr-young", "2025-12-29T23:55:00Z"),
        ],
        ..Default::default()
    });
    let c = check(
        &n,
        Some("2025-12-30T00:00:00Z"),
        Some("2025-12-29T23:00:00Z"),
        csrs.clone(),
    );
    assert_eq!(c.problem(), Problem::KubeletCertificateInvalid);
    let o = c.run(ts("2025-12-30T00:00:01Z")).await;
    assert_eq!(o.verdict, Verdict::Failing, "{o:?}");
    assert_eq!(
        o.evidence["clientCert"],
        "client cert /var/lib/kubelet/pki/kubelet-client-current.pem valid 2026-01-02..2027-01-02, API server time 2025-12-30 (before notBefore)"
    );
    assert!(o.evidence["servingCert"].contains("self-signed"), "{o:?}");
    assert_eq!(
        o.evidence["approve"],
        "kubectl certificate approve csr-8x2lq csr-b7k4w"
    );
    assert!(
        o.summary.contains("not valid for another 3d"),
        "{}",
        o.summary
    );
    assert!(
        o.summary.contains("nodewarden never approves"),
        "{}",
        o.summary
    );
    assert_eq!(csrs.calls.load(Ordering::SeqCst), 1);
    // the next look within csrInterval uses the answer it has
    let o = c.run(ts("2025-12-30T00:05:00Z")).await;
    assert!(o.evidence["csr"].contains("asked"), "{o:?}");
    assert_eq!(csrs.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_healthy_node_asks_for_no_csr() {
    let n = node(
        ("2026-01-02", "2027-01-02"),
        Some(("2026-01-02", "2027-01-02")),
    );
    let csrs = Arc::new(Csrs::default());
    let c = check(
        &n,
        Some("2026-03-01T00:00:00Z"),
        Some("2026-02-28T23:59:50Z"),
        csrs.clone(),
    );
    for _ in 0..3 {
        let o = c.run(ts("2026-03-01T00:00:00Z")).await;
        assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
        assert!(o.evidence["csrLookup"].starts_with("not needed"), "{o:?}");
    }
    assert_eq!(csrs.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_silent_kubelet_or_a_warning_makes_it_look_at_csrs() {
    // certificates fine, but the kubelet's Lease is 10 minutes old
    let n = node(
        ("2026-01-02", "2027-01-02"),
        Some(("2026-01-02", "2027-01-02")),
    );
    let csrs = Arc::new(Csrs::default());
    let c = check(
        &n,
        Some("2026-03-01T00:10:00Z"),
        Some("2026-03-01T00:00:00Z"),
        csrs.clone(),
    );
    let o = c.run(ts("2026-03-01T00:10:00Z")).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    assert_eq!(o.evidence["kubeletLeaseAge"], "10m");
    assert!(o.evidence["csr"].starts_with("0 of this node"), "{o:?}");
    assert_eq!(csrs.calls.load(Ordering::SeqCst), 1);

    // 20 days left: a warning (healthy), and a reason to look
    let csrs = Arc::new(Csrs::default());
    let c = check(
        &n,
        Some("2026-12-13T00:00:00Z"),
        Some("2026-12-13T00:00:00Z"),
        csrs.clone(),
    );
    let o = c.run(ts("2026-12-13T00:00:00Z")).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    assert!(o.summary.starts_with("warning: "), "{}", o.summary);
    assert!(o.evidence["warning"].contains("expires in 20d"), "{o:?}");
    assert_eq!(csrs.calls.load(Ordering::SeqCst), 1);

    // 5 days left: failing
    let c = check(
        &n,
        Some("2026-12-28T00:00:00Z"),
        None,
        Arc::new(Csrs::default()),
    );
    let o = c.run(ts("2026-12-28T00:00:00Z")).await;
    assert_eq!(o.verdict, Verdict::Failing, "{o:?}");
}

#[tokio::test]
async fn without_the_server_it_judges_on_the_local_clock_and_says_so() {
    let n = node(("2026-01-02", "2027-01-02"), None);
    let c = check(&n, None, None, Arc::new(Csrs::default()));
    let o = c.run(ts("2027-02-01T00:00:00Z")).await;
    assert_eq!(o.verdict, Verdict::Failing, "{o:?}");
    assert!(
        o.evidence["apiServerTime"].starts_with("unknown (unreachable)"),
        "{o:?}"
    );
    assert!(o.evidence["clientCert"].contains("local time"), "{o:?}");
    assert!(o.evidence["servingCert"].starts_with("none"), "{o:?}");
}

#[tokio::test]
async fn no_certificate_file_is_unknown_not_a_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = Node {
        root: dir.path().to_path_buf(),
        _dir: dir,
    };
    let csrs = Arc::new(Csrs::default());
    let c = check(&n, Some("2026-03-01T00:00:00Z"), None, csrs.clone());
    let o = c.run(ts("2026-03-01T00:00:00Z")).await;
    assert_eq!(o.verdict, Verdict::Unknown, "{o:?}");
    assert!(
        o.summary.contains("no kubelet client certificate"),
        "{}",
        o.summary
    );
    // credentials inline in the kubelet's kubeconfig: no reason to list CSRs
    assert_eq!(csrs.calls.load(Ordering::SeqCst), 0);
    // a client certificate but no serving one: the kubelet may wait for a serving CSR
    let n = node(("2026-01-02", "2027-01-02"), None);
    let csrs = Arc::new(Csrs::default());
    let c = check(&n, Some("2026-03-01T00:00:00Z"), None, csrs.clone());
    let o = c.run(ts("2026-03-01T00:00:00Z")).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    assert_eq!(csrs.calls.load(Ordering::SeqCst), 1);
}

// ------------------------------------------------------------------ where the files are

/// A worker laid out as Kubernetes the Hard Way leaves it (kelseyhightower/
/// kubernetes-the-hard-way: units/kubelet.service runs `kubelet
/// --config=/var/lib/kubelet/kubelet-config.yaml --kubeconfig=/var/lib/kubelet/kubeconfig`;
/// configs/kubelet-config.yaml sets `tlsCertFile: "/var/lib/kubelet/kubelet.crt"`; the
/// node's kubeconfig is made with `kubectl config set-credentials system:node:node-0
/// --embed-certs=true`): no /var/lib/kubelet/pki at all, so kubeadm's paths find nothing.
/// The pod's view: the host's / under a host root, the host's kubelet in its /proc.
struct HardWay {
    _dir: tempfile::TempDir,
    root: PathBuf,
    proc_root: PathBuf,
}

fn hard_way(client: (&str, &str), serving: (&str, &str)) -> HardWay {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("host");
    let kubelet = root.join("var/lib/kubelet");
    std::fs::create_dir_all(&kubelet).expect("mkdir");
    std::fs::write(
        kubelet.join("kubelet-config.yaml"),
        "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\ncgroupDriver: systemd\ntlsCertFile: \"/var/lib/kubelet/kubelet.crt\"\ntlsPrivateKeyFile: \"/var/lib/kubelet/kubelet.key\"\n",
    )
    .expect("write");
    let pem = pki::cert_pem("system:node:node-0", client.0, client.1);
    let data = serde_json::to_value(k8s_openapi::ByteString(pem.into_bytes())).expect("b64");
    std::fs::write(
        kubelet.join("kubeconfig"),
        format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: AAAA\n    server: https://server.kubernetes.local:6443\n  name: kubernetes-the-hard-way\ncontexts:\n- context:\n    cluster: kubernetes-the-hard-way\n    user: system:node:node-0\n  name: default\ncurrent-context: default\nkind: Config\npreferences: {{}}\nusers:\n- name: system:node:node-0\n  user:\n    client-certificate-data: {}\n    client-key-data: AAAA\n",
            data.as_str().expect("str")
        ),
    )
    .expect("write");
    std::fs::write(
        kubelet.join("kubelet.crt"),
        pki::cert_pem("node-0", serving.0, serving.1),
    )
    .expect("write");
    let proc_root = dir.path().join("proc");
    std::fs::create_dir_all(proc_root.join("4321")).expect("mkdir");
    std::fs::write(proc_root.join("4321/comm"), "kubelet\n").expect("write");
    std::fs::write(
        proc_root.join("4321/cmdline"),
        "/usr/local/bin/kubelet\0--config=/var/lib/kubelet/kubelet-config.yaml\0--kubeconfig=/var/lib/kubelet/kubeconfig\0--v=2\0",
    )
    .expect("write");
    HardWay {
        _dir: dir,
        root,
        proc_root,
    }
}

fn from_kubelet(n: &HardWay, client: Option<&str>, csrs: Arc<Csrs>) -> KubeletCertCheck {
    let probes = default_runbook().runbook.spec.probes;
    let env = ProbeEnv {
        proc_root: n.proc_root.clone(),
        ..ProbeEnv::on_host(Some(&n.root))
    };
    let sd: Arc<dyn Systemd> =
        Arc::new(FakeSystemd::new().with_active("kubelet.service", Timestamp::now(), Some(4321)));
    KubeletCertCheck::new(
        CertSettings {
            policy: Policy::default(),
            csr_interval: Dur::from_secs(600),
            lease_stale_after: Dur::from_secs(60),
            timeout: Dur::from_secs(10),
        },
        Locate::Kubelet {
            detector: Arc::new(env.runtime_detector(&probes, &sd)),
            client: client.map(String::from),
            serving: None,
        },
        Some(n.root.clone()),
        Arc::new(ServerAt(Some(ts("2026-03-01T00:00:00Z")))),
        Arc::new(LeaseAt(Some(ts("2026-03-01T00:00:00Z")))),
        csrs,
    )
}

#[tokio::test]
async fn a_hard_way_node_is_judged_where_its_kubelet_keeps_the_certificates() {
    let n = hard_way(("2026-01-02", "2027-01-02"), ("2026-01-02", "2027-01-02"));
    let csrs = Arc::new(Csrs::default());
    let o = from_kubelet(&n, None, csrs.clone())
        .run(ts("2026-03-01T00:00:00Z"))
        .await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:#?}");
    assert_eq!(
        o.evidence["clientCert"],
        "client cert client-certificate-data (/var/lib/kubelet/kubeconfig:18) valid 2026-01-02..2027-01-02, API server time 2026-03-01 (expires in 307d)"
    );
    assert!(
        o.evidence["clientCertFrom"].starts_with(
            "client-certificate-data (/var/lib/kubelet/kubeconfig:18) of user \"system:node:node-0\" of --kubeconfig=/var/lib/kubelet/kubeconfig (kubelet (pid 4321) command line)"
        ),
        "{o:#?}"
    );
    assert!(
        o.evidence["servingCert"].starts_with("serving cert /var/lib/kubelet/kubelet.crt valid"),
        "{o:#?}"
    );
    let from = &o.evidence["servingCertFrom"];
    assert!(
        from.starts_with("KubeletConfiguration tlsCertFile=/var/lib/kubelet/kubelet.crt (")
            && from.ends_with("var/lib/kubelet/kubelet-config.yaml:4)"),
        "{o:#?}"
    );
    assert_eq!(csrs.calls.load(Ordering::SeqCst), 0);

    // the embedded certificate expired: failing, said with its kubeconfig line
    let n = hard_way(("2025-01-02", "2026-01-02"), ("2026-01-02", "2027-01-02"));
    let o = from_kubelet(&n, None, Arc::new(Csrs::default()))
        .run(ts("2026-03-01T00:00:00Z"))
        .await;
    assert_eq!(o.verdict, Verdict::Failing, "{o:#?}");
    assert!(
        o.summary.contains("client certificate expired"),
        "{}",
        o.summary
    );
    assert!(
        o.evidence["clientCert"]
            .starts_with("client cert client-certificate-data (/var/lib/kubelet/kubeconfig:18)"),
        "{o:#?}"
    );
}

#[tokio::test]
async fn the_runbooks_explicit_path_wins_and_says_so() {
    let n = hard_way(("2026-01-02", "2027-01-02"), ("2026-01-02", "2027-01-02"));
    let o = from_kubelet(
        &n,
        Some("/var/lib/kubelet/pki/kubelet-client-current.pem"),
        Arc::new(Csrs::default()),
    )
    .run(ts("2026-03-01T00:00:00Z"))
    .await;
    // the override names a file this node lacks: the client part is missing, the serving
    // certificate (still the kubelet's own) judged
    assert_eq!(
        o.evidence["clientCertFrom"],
        "the runbook's clientCert (explicit; the kubelet's own settings not consulted)"
    );
    assert_eq!(
        o.evidence["clientCert"],
        "none at /var/lib/kubelet/pki/kubelet-client-current.pem"
    );
    assert!(
        o.evidence["servingCertFrom"].starts_with("KubeletConfiguration tlsCertFile="),
        "{o:#?}"
    );
    assert_eq!(o.verdict, Verdict::Healthy, "{o:#?}");
}

#[tokio::test]
async fn a_kubeconfig_that_is_a_fifo_or_garbage_is_unknown_not_a_hang() {
    let n = hard_way(("2026-01-02", "2027-01-02"), ("2026-01-02", "2027-01-02"));
    let kc = n.root.join("var/lib/kubelet/kubeconfig");
    std::fs::remove_file(&kc).expect("rm");
    nix::unistd::mkfifo(&kc, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let o = from_kubelet(&n, None, Arc::new(Csrs::default()))
        .run(ts("2026-03-01T00:00:00Z"))
        .await;
    assert!(
        o.evidence["clientCert"].starts_with(
            "unknown: the kubelet's kubeconfig (--kubeconfig=/var/lib/kubelet/kubeconfig"
        ),
        "{o:#?}"
    );
    assert!(o.evidence["clientCert"].contains("FIFO"), "{o:#?}");
    // the serving certificate still judged; the unreadable client is a reason to look at CSRs
    assert_eq!(o.verdict, Verdict::Healthy, "{o:#?}");
    assert!(o.evidence.contains_key("csr"), "{o:#?}");

    std::fs::remove_file(&kc).expect("rm");
    std::fs::write(&kc, "current-context: [\n").expect("write");
    std::fs::remove_file(n.root.join("var/lib/kubelet/kubelet.crt")).expect("rm");
    let o = from_kubelet(&n, None, Arc::new(Csrs::default()))
        .run(ts("2026-03-01T00:00:00Z"))
        .await;
    assert_eq!(o.verdict, Verdict::Unknown, "{o:#?}");
    assert!(o.summary.contains("not a kubeconfig"), "{}", o.summary);
    assert!(
        o.evidence["servingCert"].starts_with("none (no /var/lib/kubelet/kubelet.crt"),
        "{o:#?}"
    );
}

#[tokio::test]
async fn a_kubeconfig_behind_an_absolute_link_is_read_inside_the_host_root() {
    // config management leaves /var/lib/kubelet/kubeconfig a link to its own copy; in a pod
    // that link must lead into the host root, never to the pod's /etc
    let n = hard_way(("2026-01-02", "2027-01-02"), ("2026-01-02", "2027-01-02"));
    let kc = n.root.join("var/lib/kubelet/kubeconfig");
    let managed = n.root.join("etc/kubelet-managed/kubeconfig");
    std::fs::create_dir_all(managed.parent().expect("parent")).expect("mkdir");
    std::fs::rename(&kc, &managed).expect("mv");
    std::os::unix::fs::symlink("/etc/kubelet-managed/kubeconfig", &kc).expect("symlink");
    let o = from_kubelet(&n, None, Arc::new(Csrs::default()))
        .run(ts("2026-03-01T00:00:00Z"))
        .await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:#?}");
    assert!(
        o.evidence["clientCert"].starts_with("client cert client-certificate-data"),
        "{o:#?}"
    );
}
