use super::*;

const GIB: u64 = 1 << 30;

fn usage(avail_pct: u64, inodes_free_pct: u64) -> Usage {
    Usage {
        total_bytes: 100 * GIB,
        avail_bytes: avail_pct * GIB,
        total_inodes: 1_000_000,
        free_inodes: inodes_free_pct * 10_000,
    }
}

#[test]
fn quantities_parse_like_the_kubelet_writes_them() {
    assert_eq!(Quantity::parse("10%"), Some(Quantity::Percent(10.0)));
    assert_eq!(Quantity::parse("\"20%\""), Some(Quantity::Percent(20.0)));
    assert_eq!(Quantity::parse("1Gi"), Some(Quantity::Absolute(GIB)));
    assert_eq!(
        Quantity::parse("500Mi"),
        Some(Quantity::Absolute(500 << 20))
    );
    assert_eq!(Quantity::parse("100000"), Some(Quantity::Absolute(100_000)));
    assert_eq!(
        Quantity::parse("2G"),
        Some(Quantity::Absolute(2_000_000_000))
    );
    assert_eq!(Quantity::parse("120%"), None);
    assert_eq!(Quantity::parse("lots"), None);
}

#[test]
fn defaults_warn_five_points_before_the_kubelet_evicts() {
    let t = default_thresholds();
    // nodefs: 10% + 5 points
    assert!(!judge_one("/var/lib/kubelet", "nodefs", usage(16, 50), &t, 5).0);
    let (near, line) = judge_one("/var/lib/kubelet", "nodefs", usage(14, 50), &t, 5);
    assert!(near);
    assert!(
        line.contains("nodefs.available 14.0% free, within 5 points of <10%"),
        "{line}"
    );
    // imagefs: 15% + 5 points
    assert!(judge_one("/var/lib/containerd", "imagefs", usage(19, 50), &t, 5).0);
    // inodes: 5% + 5 points
    let (near, line) = judge_one("/var/lib/kubelet", "nodefs", usage(50, 9), &t, 5);
    assert!(
        near && line.contains("nodefs.inodesFree 9.0% free"),
        "{line}"
    );
    // a filesystem without inode accounting (btrfs reports 0) is judged on bytes only
    let mut u = usage(50, 0);
    u.total_inodes = 0;
    assert!(!judge_one("/var/lib/kubelet", "nodefs", u, &t, 5).0);
}

fn inv(args: &[&str], config: Option<&str>) -> Invocation {
    Invocation {
        args: vec![(
            "kubelet (pid 7) command line".into(),
            Ok(args.iter().map(|s| s.to_string()).collect()),
        )],
        config_path: "/var/lib/kubelet/config.yaml".into(),
        config: config.map(str::to_string),
    }
}

#[test]
fn a_set_eviction_hard_replaces_the_defaults() {
    let cfg = include_str!("../drift_fixtures/kubelet-config-cgroupfs.yaml");
    let t = thresholds(&inv(&["kubelet"], Some(cfg)));
    assert!(t.source.contains("config.yaml:"), "{}", t.source);
    assert_eq!(t.signals["imagefs.available"], Quantity::Percent(20.0));
    assert_eq!(t.signals["nodefs.available"], Quantity::Absolute(GIB));
    assert!(!t.signals.contains_key("nodefs.inodesFree"));
    // 1Gi of 100Gi + 5 points: 5.5% free is clear, 5% is not
    let mut u = usage(6, 50);
    assert!(!judge_one("/var/lib/kubelet", "nodefs", u, &t, 5).0);
    u.avail_bytes = 5 * GIB;
    assert!(judge_one("/var/lib/kubelet", "nodefs", u, &t, 5).0);
    // unlisted inodesFree: no threshold, only the margin
    assert!(!judge_one("/var/lib/kubelet", "nodefs", usage(50, 6), &t, 5).0);
    // the flag wins
    let t = thresholds(&inv(
        &[
            "kubelet",
            "--eviction-hard=memory.available<100Mi,nodefs.available<30%",
        ],
        Some(cfg),
    ));
    assert_eq!(t.signals["nodefs.available"], Quantity::Percent(30.0));
    assert!(t.source.contains("--eviction-hard"));
    // kubeadm's config sets none: the defaults
    let sd = include_str!("../drift_fixtures/kubelet-config-systemd.yaml");
    assert_eq!(
        thresholds(&inv(&["kubelet"], Some(sd))),
        default_thresholds()
    );
}

#[tokio::test]
async fn statvfs_reads_a_real_filesystem_and_absent_paths() {
    let d = tempfile::tempdir().unwrap();
    let u = statvfs(d.path().into(), Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert!(u.total_bytes > 0 && u.avail_bytes <= u.total_bytes);
    let none = statvfs(d.path().join("nope"), Duration::from_secs(5)).await;
    assert_eq!(none, Ok(None));
}
