//! Which container runtime the kubelet uses, and its socket: the runbook's
//! setting, else the layout decided from the kubelet's own sources, the Node's
//! nodeInfo and the sockets present (see [`layout`] for the order).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::host::systemd::Systemd;
use crate::probe::hostfs;
use crate::probe::layout::{self, Layout, Said, Sockets};
use crate::probe::pleg::ReadyConditionSource;
use crate::runbook::RuntimeKind;

/// A runtime nodewarden can probe: the layouts of [`layout::Layout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// docker's Engine API (dockershim).
    Docker,
    Containerd,
    CriO,
    /// cri-dockerd's CRI socket in front of dockerd.
    CriDockerd,
}

impl Runtime {
    /// The unit the ladder restarts first.
    pub fn unit(self) -> &'static str {
        self.layout().units()[0]
    }
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::CriDockerd => "cri-dockerd",
        }
    }
    pub fn layout(self) -> Layout {
        match self {
            Runtime::Docker => Layout::Dockershim,
            Runtime::Containerd => Layout::Containerd,
            Runtime::CriO => Layout::CriO,
            Runtime::CriDockerd => Layout::CriDockerd,
        }
    }
    fn of(l: Layout) -> Runtime {
        match l {
            Layout::Dockershim => Runtime::Docker,
            Layout::Containerd => Runtime::Containerd,
            Layout::CriO => Runtime::CriO,
            Layout::CriDockerd => Runtime::CriDockerd,
        }
    }
}

/// The outcome of runtime detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    pub kind: Option<Runtime>,
    /// The socket to probe: the Engine API for docker, else the CRI socket.
    pub socket: PathBuf,
    /// How it was decided, for evidence.
    pub how: String,
    /// Every source and what it said (`check` shows them).
    pub sources: Vec<Said>,
}

/// Decides which runtime the kubelet uses (see [`layout`] for the order).
pub struct Detector {
    pub setting: RuntimeKind,
    pub docker_socket: PathBuf,
    pub containerd_socket: PathBuf,
    pub kubelet_unit: String,
    pub proc_root: PathBuf,
    pub kubeadm_flags: PathBuf,
    pub kubelet_config: PathBuf,
    pub systemd: Arc<dyn Systemd>,
    /// The kubelet unit's other EnvironmentFiles (`/etc/sysconfig/kubelet`, `/etc/default/kubelet`).
    pub kubelet_env_files: Vec<PathBuf>,
    pub crio_socket: PathBuf,
    pub cri_dockerd_socket: PathBuf,
    /// The Node's nodeInfo, from the daemon's node watch.
    pub node: Option<Arc<dyn ReadyConditionSource>>,
    /// The host's root in a pod (`--host-root`): the paths the kubelet names (`--config`,
    /// its endpoint) and the links on the way are looked up under it ([`hostfs`]).
    pub host_root: Option<PathBuf>,
    /// The kubelet's invocation as last read, shared by every probe that asks
    /// ([`Detector::invocation`]).
    pub invocation_cache: crate::probe::kubelet_invocation::InvocationCache,
}

impl Detector {
    pub async fn detect(&self) -> Detection {
        let fixed = |kind: Runtime, socket: &PathBuf, how: &str| Detection {
            kind: Some(kind),
            socket: hostfs::follow_under(self.host_root.as_deref(), socket),
            how: how.into(),
            sources: Vec::new(),
        };
        match self.setting {
            RuntimeKind::Docker => {
                return fixed(Runtime::Docker, &self.docker_socket, "runbook says docker");
            }
            RuntimeKind::Containerd => {
                return fixed(
                    Runtime::Containerd,
                    &self.containerd_socket,
                    "runbook says containerd",
                );
            }
            RuntimeKind::Auto => {}
        }
        let inv = self.invocation().await;
        let mut kubelet: Vec<Said> = Vec::new();
        // 1. the running kubelet's command line, 2. the EnvironmentFiles of the kubelet unit
        for (source, args) in &inv.args {
            kubelet.push(match args {
                Ok(args) => {
                    let a: Vec<&str> = args.iter().map(String::as_str).collect();
                    layout::from_args(source, &a)
                }
                Err(why) => Said::nothing(source.clone(), why.clone()),
            });
        }
        // 3. the KubeletConfiguration
        let source = inv.config_path.display().to_string();
        kubelet.push(match &inv.config {
            Some(text) => layout::from_kubelet_config(&source, text),
            None => Said::nothing(source, "absent"),
        });
        // 4. the Node's nodeInfo, as the kubelet reported it
        let node = match &self.node {
            None => None,
            Some(src) => Some(
                match tokio::time::timeout(Duration::from_secs(1), src.node_info()).await {
                    Ok(Ok((rt, kv))) => layout::from_node(&rt, &kv),
                    Ok(Err(e)) => Said::nothing("Node status.nodeInfo", e),
                    Err(_) => Said::nothing("Node status.nodeInfo", "timed out"),
                },
            ),
        };
        // 5. sockets, as a guess
        // a socket may be a link (absolute ones resolve inside the host root)
        let there = |p: &PathBuf| hostfs::follow_under(self.host_root.as_deref(), p).exists();
        let sockets = Sockets {
            docker: there(&self.docker_socket),
            containerd: there(&self.containerd_socket),
            crio: there(&self.crio_socket),
            cri_dockerd: there(&self.cri_dockerd_socket),
        };
        let d = layout::decide(kubelet, node, sockets);
        let Some(l) = d.layout else {
            return Detection {
                kind: None,
                socket: PathBuf::new(),
                how: format!(
                    "no container runtime found: no kubelet source names one, no {}, no {}, no {}",
                    self.docker_socket.display(),
                    self.containerd_socket.display(),
                    self.crio_socket.display()
                ),
                sources: d.sources,
            };
        };
        let kind = Runtime::of(l);
        // an endpoint the kubelet names is a host path
        let root = self.host_root.as_deref();
        let endpoint = d.endpoint.as_deref().map(|e| hostfs::open_path(root, e));
        let socket = match kind {
            Runtime::Docker => self.docker_socket.clone(),
            Runtime::Containerd => endpoint.unwrap_or(self.containerd_socket.clone()),
            Runtime::CriO => endpoint.unwrap_or(self.crio_socket.clone()),
            Runtime::CriDockerd => endpoint.unwrap_or(self.cri_dockerd_socket.clone()),
        };
        Detection {
            kind: Some(kind),
            socket: hostfs::follow_under(root, &socket),
            how: format!("{} decided by {}", l.name(), d.by),
            sources: d.sources,
        }
    }
}
