use super::*;

/// A kubeconfig as kubeadm writes it (admin.conf's shape), with relative file references
/// added, and a context that names them.
const KUBECONFIG: &str = "\
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: pki/ca.crt
    server: https://10.0.0.1:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
preferences: {}
users:
- name: kubernetes-admin
  user:
    client-certificate: pki/admin.crt
    client-key: /etc/kubernetes/pki/admin.key
    tokenFile: token
- name: exec-bare
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: aws
      args: [eks, get-token]
- name: exec-relative
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: bin/cred
";

#[test]
fn relative_references_are_made_absolute_against_the_files_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.conf");
    std::fs::write(&path, KUBECONFIG).unwrap();
    let kc = read_from(&path).unwrap();
    let d = dir.path().display();
    assert_eq!(
        kc.current_context.as_deref(),
        Some("kubernetes-admin@kubernetes")
    );
    let cluster = kc.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(cluster.server.as_deref(), Some("https://10.0.0.1:6443"));
    assert_eq!(
        cluster.certificate_authority.as_deref(),
        Some(format!("{d}/pki/ca.crt").as_str())
    );
    let user = |i: usize| kc.auth_infos[i].auth_info.as_ref().unwrap();
    assert_eq!(
        user(0).client_certificate.as_deref(),
        Some(format!("{d}/pki/admin.crt").as_str())
    );
    assert_eq!(
        user(0).client_key.as_deref(),
        Some("/etc/kubernetes/pki/admin.key")
    );
    assert_eq!(
        user(0).token_file.as_deref(),
        Some(format!("{d}/token").as_str())
    );
    let command = |i: usize| user(i).exec.as_ref().unwrap().command.clone();
    assert_eq!(command(1).as_deref(), Some("aws"), "a bare command stays");
    assert_eq!(
        command(2).as_deref(),
        Some(format!("{d}/bin/cred").as_str())
    );
}

/// kube builds its client configuration from what was read: the server, and the context's
/// user.
#[tokio::test]
async fn kube_builds_its_configuration_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubelet.conf");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n    insecure-skip-tls-verify: true\ncontexts:\n- name: x\n  context: {cluster: c, user: u, namespace: kube-system}\ncurrent-context: x\nusers:\n- name: u\n  user: {token: abc}\n",
    )
    .unwrap();
    let kc = read_from(&path).unwrap();
    let c = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    assert_eq!(c.cluster_url.to_string(), "https://127.0.0.1:6443/");
    assert_eq!(c.default_namespace, "kube-system");
    assert!(c.accept_invalid_certs);
}

#[test]
fn bad_files_are_errors_that_name_them() {
    let dir = tempfile::tempdir().unwrap();
    // two documents
    let two = dir.path().join("two");
    std::fs::write(&two, "kind: Config\n---\nkind: Config\n").unwrap();
    let e = read_from(&two).unwrap_err();
    assert!(e.starts_with(&two.display().to_string()), "{e}");
    // not YAML of a kubeconfig's shape
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "clusters: 7\n").unwrap();
    let e = read_from(&bad).unwrap_err();
    assert!(
        e.contains("not a kubeconfig") && e.contains("line 1"),
        "{e}"
    );
    // a FIFO in its place: refused at once, not waited on
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    assert!(read_from(&fifo).is_err());
    // absent
    assert!(read_from(&dir.path().join("none")).is_err());
    // an empty file is an empty kubeconfig, as kube reads it
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    assert!(read_from(&empty).unwrap().clusters.is_empty());
}

#[test]
fn utf16_with_its_mark_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("utf16");
    let mut bytes = vec![0xFF, 0xFE];
    for u in "current-context: x\n".encode_utf16() {
        bytes.extend_from_slice(&u.to_le_bytes());
    }
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(
        read_from(&path).unwrap().current_context.as_deref(),
        Some("x")
    );
}
