use super::*;
use crate::probe::kubelet_invocation::Invocation;

#[test]
fn real_proc_swaps_parse() {
    assert!(parse_swaps(include_str!("../drift_fixtures/swaps-none")).is_empty());
    let two = parse_swaps(include_str!("../drift_fixtures/swaps-two"));
    assert_eq!(two.len(), 2);
    assert_eq!(two[0].name, "/swap.img");
    assert_eq!(two[0].kind, "file");
    assert_eq!(two[0].size_kib, 2097148);
    assert_eq!(two[1].used_kib, 1024);
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
fn swap_with_fail_swap_on_fails_with_the_settings_line() {
    let areas = parse_swaps(include_str!("../drift_fixtures/swaps-two"));
    let cfg = include_str!("../drift_fixtures/kubelet-config-cgroupfs.yaml");
    let f = inv(&["/usr/bin/kubelet"], Some(cfg)).fail_swap_on();
    assert!(f.value);
    let line = cfg
        .lines()
        .position(|l| l.starts_with("failSwapOn:"))
        .unwrap()
        + 1;
    assert_eq!(
        f.source,
        format!("KubeletConfiguration failSwapOn=true (/var/lib/kubelet/config.yaml:{line})")
    );
    let (v, s) = judge(&areas, &f);
    assert_eq!(v, Verdict::Failing);
    assert!(
        s.starts_with(
            "swap 3.0 GiB on /swap.img (file, 2.0 GiB), /dev/sda3 (partition, 1024.0 MiB)"
        ),
        "{s}"
    );
    assert!(s.contains("config.yaml:"), "{s}");
}

#[test]
fn the_flag_wins_and_unset_means_true() {
    let cfg = include_str!("../drift_fixtures/kubelet-config-cgroupfs.yaml");
    let f = inv(&["kubelet", "--fail-swap-on=false"], Some(cfg)).fail_swap_on();
    assert!(!f.value);
    assert!(f.source.contains("--fail-swap-on=false"), "{}", f.source);
    let areas = parse_swaps(include_str!("../drift_fixtures/swaps-two"));
    assert_eq!(judge(&areas, &f).0, Verdict::Healthy);
    // kubeadm's config has no failSwapOn: the kubelet's default (true) applies
    let sd = include_str!("../drift_fixtures/kubelet-config-systemd.yaml");
    let f = inv(&["kubelet"], Some(sd)).fail_swap_on();
    assert!(f.value);
    assert!(f.source.contains("default is true"));
    assert_eq!(judge(&[], &f).0, Verdict::Healthy);
}
