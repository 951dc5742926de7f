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
    assert_eq!(containerd_systemd_cgroup(v2, "runc"), Some((true, line)));
    let v3 = include_str!("../drift_fixtures/containerd-config-v3.toml");
    assert_eq!(
        containerd_systemd_cgroup(v3, "runc").map(|x| x.0),
        Some(false)
    );
    // SystemdCgroup of another table (or commented out) is not runc's
    assert_eq!(
        containerd_systemd_cgroup(
            "[plugins.x]\nSystemdCgroup = true\n# SystemdCgroup = true\n",
            "runc"
        ),
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
fn containerd_pods_run_under_the_default_handler() {
    let gpu = include_str!("../drift_fixtures/containerd-config-nvidia.toml");
    assert_eq!(
        containerd_default_runtime(gpu).map(|x| x.0),
        Some("nvidia".into())
    );
    assert_eq!(
        containerd_systemd_cgroup(gpu, "nvidia").map(|x| x.0),
        Some(true)
    );
    assert_eq!(containerd_systemd_cgroup(gpu, "runc"), None);
    let v2 = include_str!("../drift_fixtures/containerd-config.toml");
    assert_eq!(
        containerd_default_runtime(v2).map(|x| x.0),
        Some("runc".into())
    );
    // a default_runtime_name outside the CRI plugin's containerd table is not it
    assert_eq!(
        containerd_default_runtime("[plugins.x]\ndefault_runtime_name = \"kata\"\n"),
        None
    );
}

#[test]
fn crio_drop_ins_override_the_main_file_in_lexical_order() {
    let main = (
        PathBuf::from("/etc/crio/crio.conf"),
        "[crio.runtime]\ncgroup_manager = \"cgroupfs\"\n".to_string(),
    );
    let d10 = (
        PathBuf::from("/etc/crio/crio.conf.d/10-crio.conf"),
        "[crio.image]\npause_image = \"x\"\n".to_string(),
    );
    let d20 = (
        PathBuf::from("/etc/crio/crio.conf.d/20-cgroup.conf"),
        "[crio.runtime]\n\ncgroup_manager = \"systemd\"\n".to_string(),
    );
    assert_eq!(
        crio_effective_manager(&[main.clone(), d10.clone(), d20.clone()]),
        Some((
            "systemd".into(),
            "/etc/crio/crio.conf.d/20-cgroup.conf:3".into()
        ))
    );
    assert_eq!(
        crio_effective_manager(&[main.clone(), d10.clone()]).map(|x| x.0),
        Some("cgroupfs".into())
    );
    assert_eq!(crio_effective_manager(&[d10]), None);
}

#[tokio::test]
async fn crio_files_are_read_as_crio_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc/crio");
    std::fs::create_dir_all(etc.join("crio.conf.d")).unwrap();
    // packages of CRI-O ≥ 1.28: no crio.conf, only drop-ins
    std::fs::write(
        etc.join("crio.conf.d/10-crio.conf"),
        "[crio.runtime]\ncgroup_manager = \"cgroupfs\"\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("crio.conf.d/02-early.conf"),
        "[crio.runtime]\ncgroup_manager = \"systemd\"\n",
    )
    .unwrap();
    std::fs::create_dir(etc.join("crio.conf.d/not-a-file")).unwrap();
    let files = read_crio_files(&etc.join("crio.conf")).await.unwrap();
    let names: Vec<_> = files
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["02-early.conf", "10-crio.conf"]);
    assert_eq!(
        crio_effective_manager(&files).map(|x| x.0),
        Some("cgroupfs".into())
    );
    // nothing there at all: an error, so the verdict is Unknown
    let err = read_crio_files(&dir.path().join("none/crio.conf"))
        .await
        .unwrap_err();
    assert!(err.contains("neither"), "{err}");
}

#[test]
fn a_runtime_that_states_its_driver_outranks_files_and_the_gate_decides() {
    let s = |v: &str| -> Result<Setting<String>, String> {
        Ok(Setting {
            value: v.into(),
            source: format!("src {v}"),
        })
    };
    let fs = CriAnswer::Driver("cgroupfs");
    // the kubelet takes the runtime's: no mismatch can exist
    let (v, m) = judge(
        &s("systemd"),
        &s("systemd"),
        Some(&fs),
        &Gate::On("1.31".into()),
    );
    assert_eq!(v, Verdict::Healthy, "{m}");
    assert!(m.contains("takes the runtime's driver over CRI"), "{m}");
    // the kubelet keeps its own: the runtime's own answer is compared, not its files
    let (v, m) = judge(
        &s("systemd"),
        &s("systemd"),
        Some(&fs),
        &Gate::Off("1.30".into()),
    );
    assert_eq!(v, Verdict::Failing, "{m}");
    assert!(m.contains("RuntimeConfig over CRI"), "{m}");
    // not known whether the kubelet takes it: a difference is not asserted
    let (v, _) = judge(
        &s("systemd"),
        &s("x"),
        Some(&fs),
        &Gate::Unknown("?".into()),
    );
    assert_eq!(v, Verdict::Unknown);
    let (v, _) = judge(
        &s("cgroupfs"),
        &s("x"),
        Some(&fs),
        &Gate::Unknown("?".into()),
    );
    assert_eq!(v, Verdict::Healthy);
    // an older runtime: the kubelet falls back to its own setting, the files decide
    let (v, _) = judge(
        &s("systemd"),
        &s("cgroupfs"),
        Some(&CriAnswer::Unimplemented),
        &Gate::On("1.31".into()),
    );
    assert_eq!(v, Verdict::Failing);
}

#[test]
fn mismatch_fails_and_unknown_sides_are_unknown() {
    let s = |v: &str| -> Result<Setting<String>, String> {
        Ok(Setting {
            value: v.into(),
            source: format!("src {v}"),
        })
    };
    let off = Gate::Off("off".into());
    assert_eq!(
        judge(&s("systemd"), &s("systemd"), None, &off).0,
        Verdict::Healthy
    );
    let (v, m) = judge(&s("systemd"), &s("cgroupfs"), None, &off);
    assert_eq!(v, Verdict::Failing);
    assert!(m.contains("the kubelet uses systemd"), "{m}");
    assert_eq!(
        judge(&Err("x".into()), &s("systemd"), None, &off).0,
        Verdict::Unknown
    );
    assert_eq!(
        judge(&s("systemd"), &Err("x".into()), None, &off).0,
        Verdict::Unknown
    );
}
