use super::*;

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
fn the_kubelets_driver_from_flag_file_or_default() {
    let sd = include_str!("../drift_fixtures/kubelet-config-systemd.yaml");
    let fs = include_str!("../drift_fixtures/kubelet-config-cgroupfs.yaml");
    let k = kubelet_driver(&inv(&["kubelet"], Some(sd))).unwrap();
    assert_eq!(k.value, "systemd");
    assert!(k.source.contains("config.yaml:15"), "{}", k.source);
    assert_eq!(
        kubelet_driver(&inv(&["kubelet"], Some(fs))).unwrap().value,
        "cgroupfs"
    );
    let f = kubelet_driver(&inv(&["kubelet", "--cgroup-driver=systemd"], Some(fs))).unwrap();
    assert_eq!(f.value, "systemd");
    let d = kubelet_driver(&inv(&["kubelet"], Some("kind: KubeletConfiguration\n"))).unwrap();
    assert_eq!(d.value, "cgroupfs");
    assert!(kubelet_driver(&inv(&["kubelet"], None)).is_err());
}

#[test]
fn the_runtimes_driver_from_real_formats() {
    assert_eq!(
        docker_driver(include_bytes!("../drift_fixtures/docker-info.json")).unwrap(),
        "cgroupfs"
    );
    assert!(docker_driver(b"{}").is_err());
    let v2 = include_str!("../drift_fixtures/containerd-config.toml");
    let line = v2
        .lines()
        .position(|l| l.contains("SystemdCgroup"))
        .unwrap()
        + 1;
    assert_eq!(containerd_systemd_cgroup(v2), Some((true, line)));
    let v3 = include_str!("../drift_fixtures/containerd-config-v3.toml");
    assert_eq!(containerd_systemd_cgroup(v3).map(|x| x.0), Some(false));
    // SystemdCgroup of another table (or commented out) is not runc's
    assert_eq!(
        containerd_systemd_cgroup("[plugins.x]\nSystemdCgroup = true\n# SystemdCgroup = true\n"),
        None
    );
    let crio = include_str!("../drift_fixtures/crio.conf");
    assert_eq!(
        crio_cgroup_manager(crio).map(|x| x.0),
        Some("cgroupfs".into())
    );
    assert_eq!(crio_cgroup_manager("[crio]\n"), None);
}

#[test]
fn mismatch_fails_and_unknown_sides_are_unknown() {
    let s = |v: &str| -> Result<Setting<String>, String> {
        Ok(Setting {
            value: v.into(),
            source: format!("src {v}"),
        })
    };
    assert_eq!(judge(&s("systemd"), &s("systemd")).0, Verdict::Healthy);
    let (v, m) = judge(&s("systemd"), &s("cgroupfs"));
    assert_eq!(v, Verdict::Failing);
    assert!(m.contains("the kubelet uses systemd"), "{m}");
    assert_eq!(judge(&Err("x".into()), &s("systemd")).0, Verdict::Unknown);
    assert_eq!(judge(&s("systemd"), &Err("x".into())).0, Verdict::Unknown);
}
