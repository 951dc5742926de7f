use super::*;

const FLAGS_DOCKER: &str = include_str!("../layout_fixtures/kubeadm-flags-docker.env");
const FLAGS_CONTAINERD: &str = include_str!("../layout_fixtures/kubeadm-flags-containerd.env");
const FLAGS_CRI_DOCKERD: &str = include_str!("../layout_fixtures/kubeadm-flags-cri-dockerd.env");
const CONFIG_CRIO: &str = include_str!("../layout_fixtures/kubelet-config-crio.yaml");

fn args(text: &str) -> Vec<String> {
    env_file_args(text)
}
fn said(source: &str, text: &str) -> Said {
    let a = args(text);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    from_args(source, &a)
}

#[test]
fn kubeadm_flag_files_as_kubeadm_writes_them() {
    let d = said("kubeadm-flags.env", FLAGS_DOCKER);
    assert_eq!(d.layout, None, "a dockershim node names no runtime: {d:?}");
    let c = said("kubeadm-flags.env", FLAGS_CONTAINERD);
    assert_eq!(c.layout, Some(Layout::Containerd));
    assert_eq!(
        c.endpoint.as_deref(),
        Some(std::path::Path::new("/var/run/containerd/containerd.sock"))
    );
    let cd = said("kubeadm-flags.env", FLAGS_CRI_DOCKERD);
    assert_eq!(cd.layout, Some(Layout::CriDockerd));
    let crio = from_kubelet_config("/var/lib/kubelet/config.yaml", CONFIG_CRIO);
    assert_eq!(crio.layout, Some(Layout::CriO));
    assert_eq!(
        crio.endpoint.as_deref(),
        Some(std::path::Path::new("/var/run/crio/crio.sock"))
    );
    let old = from_args(
        "kubelet (pid 1) command line",
        &["/usr/bin/kubelet", "--container-runtime", "docker"],
    );
    assert_eq!(old.layout, Some(Layout::Dockershim));
}

#[test]
fn the_layouts_sockets_and_units_match_their_real_config_files() {
    // CRI-O's [crio.api] listen is the socket the CRI-O layout probes.
    let crio = include_str!("../layout_fixtures/crio.conf");
    let listen = crio
        .lines()
        .find_map(|l| l.trim().strip_prefix("listen = "))
        .map(|v| v.trim_matches('"'));
    assert_eq!(listen, Layout::CriO.default_cri_socket());
    // cri-dockerd's unit runs after docker.service: its unit first, then docker's.
    let unit = include_str!("../layout_fixtures/cri-docker.service");
    assert!(
        unit.lines()
            .any(|l| l.starts_with("After=") && l.contains("docker.service"))
    );
    assert!(unit.contains("ExecStart=/usr/bin/cri-dockerd"));
    assert_eq!(
        Layout::CriDockerd.units(),
        ["cri-docker.service", "docker.service"]
    );
    assert_eq!(
        classify_endpoint("unix:///var/run/cri-dockerd.sock").map(|c| c.0),
        Some(Layout::CriDockerd)
    );
    assert_eq!(
        Layout::CriDockerd.default_cri_socket(),
        Some("/var/run/cri-dockerd.sock")
    );
}

#[test]
fn node_info_with_each_runtime_version() {
    for (rt, kv, want) in [
        ("docker://18.9.5", "v1.14.1", Some(Layout::Dockershim)),
        ("docker://20.10.24", "v1.23.17", Some(Layout::Dockershim)),
        ("docker://24.0.7", "v1.28.4", Some(Layout::CriDockerd)),
        (
            "containerd://1.6.28",
            "v1.27.3-eks-a5565ad",
            Some(Layout::Containerd),
        ),
        ("cri-o://1.28.1", "v1.28.2", Some(Layout::CriO)),
        ("remote://unknown", "v1.28.2", None),
    ] {
        assert_eq!(from_node(rt, kv).layout, want, "{rt} {kv}");
    }
}

#[test]
fn a_docker_node_with_containerd_io_is_docker_from_every_source() {
    // Seed 001: kubeadm docker node (dockershim default), containerd.io installed by docker-ce.
    let both = Sockets {
        docker: true,
        containerd: true,
        ..Sockets::default()
    };
    let kubelet = vec![said("/var/lib/kubelet/kubeadm-flags.env", FLAGS_DOCKER)];
    let d = decide(
        kubelet.clone(),
        Some(from_node("docker://18.9.5", "v1.14.1")),
        both,
    );
    assert_eq!(d.layout, Some(Layout::Dockershim));
    assert!(!d.guess);
    assert!(d.by.starts_with("Node status.nodeInfo"), "{}", d.by);
    assert_eq!(d.sources.len(), 3);
    // Without the Node (API down): still docker, but as a guess.
    let d = decide(kubelet, None, both);
    assert_eq!(d.layout, Some(Layout::Dockershim));
    assert!(d.guess);
    assert!(d.by.starts_with("guess from sockets"), "{}", d.by);
}

#[test]
fn the_kubelet_beats_the_node_and_the_node_beats_the_sockets() {
    let crio = from_kubelet_config("config.yaml", CONFIG_CRIO);
    let d = decide(
        vec![crio],
        Some(from_node("containerd://1.7.0", "v1.28.0")),
        Sockets {
            containerd: true,
            ..Sockets::default()
        },
    );
    assert_eq!(d.layout, Some(Layout::CriO));
    assert_eq!(
        d.endpoint.as_deref(),
        Some(std::path::Path::new("/var/run/crio/crio.sock"))
    );
    let d = decide(
        vec![Said::nothing("kubeadm-flags.env", "absent")],
        Some(from_node("containerd://1.7.0", "v1.28.0")),
        Sockets {
            docker: true,
            containerd: true,
            ..Sockets::default()
        },
    );
    assert_eq!(d.layout, Some(Layout::Containerd));
    assert_eq!(
        d.endpoint.as_deref(),
        Some(std::path::Path::new("/run/containerd/containerd.sock"))
    );
    assert_eq!(
        Layout::CriDockerd.units(),
        ["cri-docker.service", "docker.service"]
    );
    let none = decide(Vec::new(), None, Sockets::default());
    assert_eq!(none.layout, None);
    assert!(none.guess);
}
