use super::*;
use std::os::unix::fs::symlink;

/// A host root as Debian and kubeadm lay it out: `/var/run` → `/run` (absolute), the
/// kubelet's certificate an absolute link to its dated file, and a relative link.
fn fixture() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    std::fs::create_dir_all(r.join("run/containerd")).unwrap();
    std::fs::create_dir_all(r.join("var/lib/kubelet/pki")).unwrap();
    symlink("/run", r.join("var/run")).unwrap();
    std::fs::write(r.join("var/lib/kubelet/pki/kubelet-client-2026.pem"), "x").unwrap();
    symlink(
        "/var/lib/kubelet/pki/kubelet-client-2026.pem",
        r.join("var/lib/kubelet/pki/kubelet-client-current.pem"),
    )
    .unwrap();
    symlink("../../../../etc/passwd", r.join("var/lib/kubelet/escape")).unwrap();
    symlink("pki", r.join("var/lib/kubelet/certs")).unwrap();
    d
}

#[test]
fn directory_links_resolve_inside_the_root_and_the_last_one_only_when_asked() {
    let d = fixture();
    let r = d.path();
    assert_eq!(
        under_root(r, Path::new("/var/run/containerd/containerd.sock")),
        r.join("run/containerd/containerd.sock")
    );
    let cert = Path::new("/var/lib/kubelet/pki/kubelet-client-current.pem");
    // not followed: the link itself, under the root
    assert_eq!(
        under_root(r, cert),
        r.join("var/lib/kubelet/pki/kubelet-client-current.pem")
    );
    // followed: the absolute target, under the root (not this process's /var/lib/kubelet)
    let want = r.join("var/lib/kubelet/pki/kubelet-client-2026.pem");
    assert_eq!(open_path(Some(r), cert), want);
    assert_eq!(follow_under(Some(r), &under_root(r, cert)), want);
    // relative links and `..` stay inside the root, as under chroot
    assert_eq!(
        open_path(
            Some(r),
            Path::new("/var/lib/kubelet/certs/kubelet-client-current.pem")
        ),
        want
    );
    assert_eq!(
        open_path(Some(r), Path::new("/var/lib/kubelet/escape")),
        r.join("etc/passwd")
    );
    assert_eq!(open_path(Some(r), Path::new("/../../x")), r.join("x"));
}

#[test]
fn without_a_root_paths_are_the_hosts_own() {
    let p = Path::new("/var/lib/kubelet/pki/kubelet-client-current.pem");
    assert_eq!(open_path(None, p), p);
    assert_eq!(follow_under(None, p), p);
    // a path outside the root is not rewritten
    assert_eq!(follow_under(Some(Path::new("/host")), p), p);
}

#[test]
fn a_link_loop_ends_after_the_kernels_hop_limit() {
    let d = tempfile::tempdir().unwrap();
    symlink("/b", d.path().join("a")).unwrap();
    symlink("/a", d.path().join("b")).unwrap();
    let got = open_path(Some(d.path()), Path::new("/a"));
    assert!(got.starts_with(d.path()), "{got:?}");
}
