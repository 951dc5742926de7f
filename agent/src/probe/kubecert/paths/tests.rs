use super::super::kubeconfig::client_cred;
use super::*;

/// An invocation as `Detector::invocation` returns it: the running kubelet's command line
/// read, and the KubeletConfiguration at `config_path` holding `config`.
fn inv(args: &[&str], config_path: &str, config: Option<&str>) -> Invocation {
    Invocation {
        args: vec![(
            "kubelet (pid 7) command line".into(),
            Ok(std::iter::once("/usr/bin/kubelet")
                .chain(args.iter().copied())
                .map(String::from)
                .collect()),
        )],
        config_path: config_path.into(),
        config: config.map(String::from),
    }
}

fn files(l: &Lookup) -> Vec<String> {
    l.places
        .iter()
        .map(|p| match p {
            Place::File(f) => f.display().to_string(),
            Place::Inline { at, .. } => format!("inline {at}"),
        })
        .collect()
}

fn b64(bytes: &[u8]) -> String {
    serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec()))
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

/// kubeadm's kubelet.conf after the first rotation (kubeadm `join`: the client certificate
/// is the certificate manager's current file, key in the same PEM).
const KUBEADM_CONF: &str = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: AAAA
    server: https://10.0.0.1:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: system:node:k8s-vm02
  name: system:node:k8s-vm02@kubernetes
current-context: system:node:k8s-vm02@kubernetes
kind: Config
preferences: {}
users:
- name: system:node:k8s-vm02
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
";

#[test]
fn kubeadm_layout_is_the_cert_dirs_files() {
    // kubeadm's KubeletConfiguration: rotateCertificates hard-coded true (kubeadm
    // app/componentconfigs/kubelet.go), no tlsCertFile, no serverTLSBootstrap (the
    // self-signed kubelet.crt)
    let cfg = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\nrotateCertificates: true\n";
    let i = inv(
        &[
            "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
            "--kubeconfig=/etc/kubernetes/kubelet.conf",
            "--config=/var/lib/kubelet/config.yaml",
        ],
        "/var/lib/kubelet/config.yaml",
        Some(cfg),
    );
    let f = KubeletCertFacts::of(&i).unwrap();
    let s = serving(&f);
    assert_eq!(files(&s), ["/var/lib/kubelet/pki/kubelet.crt"]);
    assert!(s.from.contains("self-signed kubelet.crt"), "{}", s.from);
    assert!(s.from.contains("--cert-dir unset"), "{}", s.from);
    let cred = client_cred(KUBEADM_CONF, Path::new("/etc/kubernetes/kubelet.conf")).unwrap();
    let c = client(&f, Ok(Some(cred))).unwrap();
    // the current file once (the kubeconfig names it too), then the store's fallback
    assert_eq!(
        files(&c),
        [
            "/var/lib/kubelet/pki/kubelet-client-current.pem",
            "/var/lib/kubelet/pki/kubelet-client.crt"
        ]
    );
    assert!(
        c.from.starts_with(
            "KubeletConfiguration rotateCertificates=true (/var/lib/kubelet/config.yaml:4)"
        ),
        "{}",
        c.from
    );
    assert!(c.from.contains("system:node:k8s-vm02"), "{}", c.from);
}

#[test]
fn a_tls_cert_file_from_the_config_and_the_flag_over_it() {
    // Kubernetes the Hard Way's kubelet-config.yaml (kelseyhightower/kubernetes-the-hard-way
    // configs/kubelet-config.yaml): tlsCertFile in /var/lib/kubelet, no cert dir of its own
    let cfg = "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\nport: 10250\ntlsCertFile: \"/var/lib/kubelet/kubelet.crt\"\ntlsPrivateKeyFile: \"/var/lib/kubelet/kubelet.key\"\n";
    let path = "/var/lib/kubelet/kubelet-config.yaml";
    let i = inv(&["--config", path], path, Some(cfg));
    let s = serving(&KubeletCertFacts::of(&i).unwrap());
    assert_eq!(files(&s), ["/var/lib/kubelet/kubelet.crt"]);
    assert_eq!(
        s.from,
        "KubeletConfiguration tlsCertFile=/var/lib/kubelet/kubelet.crt (/var/lib/kubelet/kubelet-config.yaml:4)"
    );
    // the flag wins over the file, as in the kubelet
    let i = inv(
        &["--config", path, "--tls-cert-file=/etc/kubelet/serving.crt"],
        path,
        Some(cfg),
    );
    let s = serving(&KubeletCertFacts::of(&i).unwrap());
    assert_eq!(files(&s), ["/etc/kubelet/serving.crt"]);
    assert!(
        s.from
            .starts_with("--tls-cert-file=/etc/kubelet/serving.crt (kubelet (pid 7) command line)"),
        "{}",
        s.from
    );
}

#[test]
fn serving_rotation_reads_the_managers_current_file_first() {
    let cfg = "kind: KubeletConfiguration\nserverTLSBootstrap: true\ntlsCertFile: /etc/kubelet/serving.crt\n";
    let i = inv(
        &["--cert-dir=/etc/kubernetes/kubelet-pki"],
        "/var/lib/kubelet/config.yaml",
        Some(cfg),
    );
    let s = serving(&KubeletCertFacts::of(&i).unwrap());
    assert_eq!(
        files(&s),
        [
            "/etc/kubernetes/kubelet-pki/kubelet-server-current.pem",
            "/etc/kubelet/serving.crt",
            "/etc/kubernetes/kubelet-pki/kubelet-server.crt"
        ]
    );
    assert!(
        s.from.starts_with(
            "KubeletConfiguration serverTLSBootstrap=true (/var/lib/kubelet/config.yaml:2)"
        ),
        "{}",
        s.from
    );
    assert!(
        s.from.contains("--cert-dir=/etc/kubernetes/kubelet-pki"),
        "{}",
        s.from
    );
    // the deprecated flag, bare (Go's boolean flag), and =false over the file
    let i = inv(&["--rotate-server-certificates"], "/x", None);
    let f = KubeletCertFacts::of(&i).unwrap();
    assert!(f.server_rotation.value);
    assert_eq!(
        files(&serving(&f)),
        [
            "/var/lib/kubelet/pki/kubelet-server-current.pem",
            "/var/lib/kubelet/pki/kubelet-server.crt"
        ]
    );
    let i = inv(
        &["--rotate-server-certificates=false"],
        "/var/lib/kubelet/config.yaml",
        Some(cfg),
    );
    assert_eq!(
        files(&serving(&KubeletCertFacts::of(&i).unwrap())),
        ["/etc/kubelet/serving.crt"]
    );
}

#[test]
fn an_embedded_client_certificate_is_judged_from_the_kubeconfig() {
    // kubectl config set-credentials --embed-certs (Kubernetes the Hard Way's node kubeconfig)
    let pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts:\n- context:\n    cluster: kubernetes-the-hard-way\n    user: system:node:node-0\n  name: default\ncurrent-context: default\nusers:\n- name: system:node:node-0\n  user:\n    client-certificate-data: {}\n    client-key-data: AAAA\n",
        b64(pem)
    );
    let cred = client_cred(&text, Path::new("/var/lib/kubelet/kubeconfig")).unwrap();
    assert_eq!(
        cred.data,
        Some((pem.to_vec(), "/var/lib/kubelet/kubeconfig:13".into()))
    );
    let i = inv(&["--kubeconfig=/var/lib/kubelet/kubeconfig"], "/x", None);
    let c = client(&KubeletCertFacts::of(&i).unwrap(), Ok(Some(cred))).unwrap();
    assert_eq!(
        c.places,
        [Place::Inline {
            pem: pem.to_vec(),
            at: "/var/lib/kubelet/kubeconfig:13".into()
        }]
    );
    assert!(
        c.from.starts_with("client-certificate-data (/var/lib/kubelet/kubeconfig:13) of user \"system:node:node-0\" of --kubeconfig=/var/lib/kubelet/kubeconfig"),
        "{}",
        c.from
    );
    // with client rotation the embedded one is only the manager's last resort
    let i = inv(
        &[
            "--kubeconfig=/var/lib/kubelet/kubeconfig",
            "--rotate-certificates",
        ],
        "/x",
        None,
    );
    let cred = client_cred(&text, Path::new("/var/lib/kubelet/kubeconfig")).unwrap();
    let c = client(&KubeletCertFacts::of(&i).unwrap(), Ok(Some(cred))).unwrap();
    assert_eq!(
        files(&c),
        [
            "/var/lib/kubelet/pki/kubelet-client-current.pem",
            "/var/lib/kubelet/pki/kubelet-client.crt",
            "inline /var/lib/kubelet/kubeconfig:13"
        ]
    );
}

#[test]
fn a_relative_client_certificate_is_taken_against_the_kubeconfigs_directory() {
    let text = "current-context: k\ncontexts:\n- name: k\n  context: {user: u}\nusers:\n- name: u\n  user:\n    client-certificate: pki/node.crt\n";
    let cred = client_cred(text, Path::new("/etc/kubernetes/kubelet.conf")).unwrap();
    assert_eq!(
        cred.file,
        Some((
            PathBuf::from("/etc/kubernetes/pki/node.crt"),
            "/etc/kubernetes/kubelet.conf:8".into()
        ))
    );
    let i = inv(
        &["--kubeconfig", "/etc/kubernetes/kubelet.conf"],
        "/x",
        None,
    );
    let c = client(&KubeletCertFacts::of(&i).unwrap(), Ok(Some(cred))).unwrap();
    assert_eq!(files(&c), ["/etc/kubernetes/pki/node.crt"]);
}

#[test]
fn exec_credentials_standalone_and_an_absent_kubeconfig() {
    // EKS: the kubelet's kubeconfig user runs aws-iam-authenticator (amazon-eks-ami's
    // kubeconfig template): no client certificate at all
    let text = "apiVersion: v1\nkind: Config\ncurrent-context: kubelet\ncontexts:\n- name: kubelet\n  context:\n    cluster: kubernetes\n    user: kubelet\nusers:\n- name: kubelet\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws-iam-authenticator\n      args: [token, -i, my-cluster]\n";
    let cred = client_cred(text, Path::new("/var/lib/kubelet/kubeconfig")).unwrap();
    let i = inv(&["--kubeconfig=/var/lib/kubelet/kubeconfig"], "/x", None);
    let f = KubeletCertFacts::of(&i).unwrap();
    let c = client(&f, Ok(Some(cred))).unwrap();
    assert!(c.places.is_empty());
    assert!(
        c.from
            .contains("authenticates with exec aws-iam-authenticator"),
        "{}",
        c.from
    );
    // not written yet (TLS bootstrap pending): the store's current file
    let c = client(&f, Ok(None)).unwrap();
    assert_eq!(
        files(&c),
        ["/var/lib/kubelet/pki/kubelet-client-current.pem"]
    );
    assert!(c.from.contains("absent"), "{}", c.from);
    // no --kubeconfig: standalone
    let c = client(
        &KubeletCertFacts::of(&inv(&[], "/x", None)).unwrap(),
        Ok(None),
    )
    .unwrap();
    assert!(c.places.is_empty());
    assert!(c.from.contains("standalone"), "{}", c.from);
}

#[test]
fn hostile_or_invalid_kubeconfigs_are_a_clear_error() {
    let p = Path::new("/etc/kubernetes/kubelet.conf");
    let cases: Vec<(String, &str)> = vec![
        ("users: [".into(), "not a kubeconfig"),
        ("users: 7\ncurrent-context: a\n".into(), "not a kubeconfig"),
        ("apiVersion: v1\n".into(), "no current-context"),
        (
            "current-context: a\ncontexts: []\n".into(),
            "current-context \"a\" is not among its contexts",
        ),
        (
            "current-context: a\ncontexts:\n- name: a\n  context: {user: u}\nusers: []\n".into(),
            "user \"u\" of context \"a\" is not among its users",
        ),
        (
            "current-context: a\ncontexts:\n- name: a\n  context: {user: u}\nusers:\n- name: u\n  user: {client-certificate-data: \"%%%not base64\"}\n".into(),
            "is not base64",
        ),
        // a billion laughs: an error at once, never a hang or a blown memory
        (
            format!(
                "a: &a [{x}]\nb: &b [{a}]\nc: &c [{b}]\nd: &d [{c}]\ne: &e [{d}]\nf: &f [{e}]\ng: &g [{f}]\nh: &h [{g}]\nusers: *h\ncurrent-context: x\n",
                x = ["x"; 10].join(","),
                a = ["*a"; 10].join(","),
                b = ["*b"; 10].join(","),
                c = ["*c"; 10].join(","),
                d = ["*d"; 10].join(","),
                e = ["*e"; 10].join(","),
                f = ["*f"; 10].join(","),
                g = ["*g"; 10].join(","),
            ),
            "not a kubeconfig",
        ),
    ];
    for (text, want) in cases {
        let e = client_cred(&text, p).unwrap_err();
        assert!(e.contains(want), "{text:?}: {e}");
        assert!(e.contains("kubelet.conf") || e.contains("base64"), "{e}");
    }
    // an unreadable kubeconfig makes the client certificate unknown, with why
    let i = inv(&["--kubeconfig=/etc/kubernetes/kubelet.conf"], "/x", None);
    let e = client(
        &KubeletCertFacts::of(&i).unwrap(),
        Err("/etc/kubernetes/kubelet.conf: is a FIFO, not a regular file".into()),
    )
    .unwrap_err();
    assert!(
        e.starts_with("the kubelet's kubeconfig (--kubeconfig=/etc/kubernetes/kubelet.conf"),
        "{e}"
    );
}

proptest::proptest! {
    #[test]
    fn any_text_is_a_kubeconfig_or_an_error_never_a_panic(text in ".{0,300}") {
        let _ = client_cred(&text, Path::new("/k"));
    }
}

#[test]
fn without_the_command_line_the_runbook_defaults_and_why() {
    let i = Invocation {
        args: vec![("kubelet process".into(), Err("not running".into()))],
        config_path: "/var/lib/kubelet/config.yaml".into(),
        config: None,
    };
    let why = KubeletCertFacts::of(&i).unwrap_err();
    assert_eq!(why, "kubelet process: not running");
    let (c, s) = fallback(&why);
    assert_eq!(
        files(&c),
        ["/var/lib/kubelet/pki/kubelet-client-current.pem"]
    );
    assert_eq!(
        files(&s),
        [
            "/var/lib/kubelet/pki/kubelet-server-current.pem",
            "/var/lib/kubelet/pki/kubelet.crt"
        ]
    );
    assert!(
        s.from
            .starts_with("the kubelet's invocation unread (kubelet process: not running)"),
        "{}",
        s.from
    );
    // a KubeletConfiguration that does not parse: its fields unset, and said so
    let i = inv(
        &["--config=/var/lib/kubelet/config.yaml"],
        "/var/lib/kubelet/config.yaml",
        Some("tlsCertFile: [\n"),
    );
    let s = serving(&KubeletCertFacts::of(&i).unwrap());
    assert_eq!(files(&s), ["/var/lib/kubelet/pki/kubelet.crt"]);
    assert!(s.from.contains("KubeletConfiguration unread"), "{}", s.from);
}
