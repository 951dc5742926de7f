//! Which container runtime layout the kubelet uses, decided from authoritative
//! sources, in this order (pure: the caller reads the sources):
//!
//! 1. the kubelet's own configuration: its command line (`--container-runtime`,
//!    `--container-runtime-endpoint`), the env files its unit reads
//!    (`/var/lib/kubelet/kubeadm-flags.env`, `/etc/sysconfig/kubelet`,
//!    `/etc/default/kubelet`), and `containerRuntimeEndpoint` in the
//!    KubeletConfiguration that `--config` names;
//! 2. the Node's `status.nodeInfo.containerRuntimeVersion` (`docker://`,
//!    `containerd://`, `cri-o://`), which the kubelet itself reports, with the
//!    kubelet version: below 1.24 docker means dockershim (the default, so a
//!    kubeadm docker node names no endpoint at all); from 1.24 dockershim is
//!    gone and docker is only reachable through cri-dockerd;
//! 3. only then which sockets exist, reported as a guess.
//!
//! docker-ce ≥ 18.09 installs containerd.io, whose `config.toml` ships
//! `disabled_plugins = ["cri"]`: on a docker node both sockets exist and the
//! containerd socket answers CRI calls with *Unimplemented*. Guessing
//! containerd there restarts the wrong daemon; so the socket guess prefers
//! docker when both exist, and the first two sources decide whenever they
//! say anything.

use std::path::PathBuf;

/// A runtime layout in the field, with its probe and its units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// kubelet ≤ 1.23 with its built-in dockershim: docker's Engine API.
    Dockershim,
    /// cri-dockerd in front of dockerd: its CRI socket and dockerd's `/_ping`.
    CriDockerd,
    /// containerd's CRI plugin.
    Containerd,
    /// CRI-O.
    CriO,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Dockershim => "docker (dockershim)",
            Layout::CriDockerd => "docker (cri-dockerd)",
            Layout::Containerd => "containerd",
            Layout::CriO => "cri-o",
        }
    }
    /// The units a runtime restart restarts, in order (cri-dockerd's first,
    /// then the dockerd behind it).
    pub fn units(self) -> &'static [&'static str] {
        match self {
            Layout::Dockershim => &["docker.service"],
            Layout::CriDockerd => &["cri-docker.service", "docker.service"],
            Layout::Containerd => &["containerd.service"],
            Layout::CriO => &["crio.service"],
        }
    }
    /// The CRI socket a layout is usually reached on (when no source named one).
    pub fn default_cri_socket(self) -> Option<&'static str> {
        match self {
            Layout::Dockershim => None,
            Layout::CriDockerd => Some("/var/run/cri-dockerd.sock"),
            Layout::Containerd => Some("/run/containerd/containerd.sock"),
            Layout::CriO => Some("/var/run/crio/crio.sock"),
        }
    }
}

/// What one source said.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Said {
    /// `kubelet (pid 812) command line`, `/var/lib/kubelet/kubeadm-flags.env`, `Node nodeInfo`, …
    pub source: String,
    /// What it said, or why it said nothing.
    pub said: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
    /// The CRI endpoint it named, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<PathBuf>,
}

impl Said {
    pub fn nothing(source: impl Into<String>, why: impl Into<String>) -> Said {
        Said {
            source: source.into(),
            said: why.into(),
            layout: None,
            endpoint: None,
        }
    }
}

/// The decision and every source's word, for `check`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decided {
    pub layout: Option<Layout>,
    pub endpoint: Option<PathBuf>,
    /// The source that decided.
    pub by: String,
    /// Decided from sockets alone.
    pub guess: bool,
    pub sources: Vec<Said>,
}

/// Map a CRI endpoint to its layout.
pub fn classify_endpoint(ep: &str) -> Option<(Layout, PathBuf)> {
    let path = ep.strip_prefix("unix://").unwrap_or(ep);
    let layout = if path.contains("cri-dockerd") || path.contains("cri-docker") {
        Layout::CriDockerd
    } else if path.contains("dockershim") {
        Layout::Dockershim
    } else if path.contains("crio") {
        Layout::CriO
    } else if path.contains("containerd") {
        Layout::Containerd
    } else {
        return None;
    };
    Some((layout, PathBuf::from(path)))
}

/// The value of `--flag` in a kubelet argument list (`--flag=v` or `--flag v`).
pub fn flag<'a>(args: &[&'a str], name: &str) -> Option<&'a str> {
    let eq = format!("{name}=");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let a = a.trim_matches('"');
        if let Some(v) = a.strip_prefix(&eq) {
            return Some(v.trim_matches('"'));
        }
        if a == name {
            return it.next().map(|v| v.trim_matches('"'));
        }
    }
    None
}

/// The arguments in a systemd `EnvironmentFile` (`KUBELET_KUBEADM_ARGS="…"`,
/// `KUBELET_EXTRA_ARGS=…`): every value split on whitespace; comments skipped.
pub fn env_file_args(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .flat_map(|(_, v)| {
            v.trim()
                .trim_matches(|c| c == '"' || c == '\'')
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What a kubelet argument list says about the runtime.
pub fn from_args(source: &str, args: &[&str]) -> Said {
    if let Some(ep) = flag(args, "--container-runtime-endpoint")
        && let Some((layout, path)) = classify_endpoint(ep)
    {
        return Said {
            source: source.into(),
            said: format!("--container-runtime-endpoint={ep}"),
            layout: Some(layout),
            endpoint: Some(path),
        };
    }
    match flag(args, "--container-runtime") {
        Some("docker") => Said {
            source: source.into(),
            said: "--container-runtime=docker (dockershim)".into(),
            layout: Some(Layout::Dockershim),
            endpoint: None,
        },
        Some(other) => Said::nothing(
            source,
            format!("--container-runtime={other} without a known endpoint"),
        ),
        None => Said::nothing(source, "names no runtime"),
    }
}

/// `containerRuntimeEndpoint` in a KubeletConfiguration (kubelet ≥ 1.27).
pub fn from_kubelet_config(source: &str, yaml: &str) -> Said {
    let ep = yaml.lines().find_map(|l| {
        let v = l.strip_prefix("containerRuntimeEndpoint:")?;
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
        (!v.is_empty()).then(|| v.to_string())
    });
    match ep.as_deref().and_then(classify_endpoint) {
        Some((layout, path)) => Said {
            source: source.into(),
            said: format!("containerRuntimeEndpoint: {}", ep.unwrap_or_default()),
            layout: Some(layout),
            endpoint: Some(path),
        },
        None => Said::nothing(source, "no containerRuntimeEndpoint"),
    }
}

/// `(major, minor)` of a kubelet version like `v1.23.17` or `v1.28.2-eks-1`.
pub(crate) fn minor_version(v: &str) -> Option<(u32, u32)> {
    let mut it = v.trim().trim_start_matches('v').split('.');
    let major = it.next()?.parse().ok()?;
    let minor: String = it
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

/// The Node's `nodeInfo.containerRuntimeVersion` and `kubeletVersion`.
pub fn from_node(runtime_version: &str, kubelet_version: &str) -> Said {
    let source = "Node status.nodeInfo";
    let said =
        format!("containerRuntimeVersion {runtime_version}, kubeletVersion {kubelet_version}");
    let (scheme, _) = runtime_version
        .split_once("://")
        .unwrap_or((runtime_version, ""));
    let layout = match scheme {
        "docker" => match minor_version(kubelet_version) {
            Some(v) if v < (1, 24) => Some(Layout::Dockershim),
            Some(_) => Some(Layout::CriDockerd),
            None => None,
        },
        "containerd" => Some(Layout::Containerd),
        "cri-o" => Some(Layout::CriO),
        _ => None,
    };
    Said {
        source: source.into(),
        said,
        layout,
        endpoint: None,
    }
}

/// Which sockets exist (the last resort).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sockets {
    pub docker: bool,
    pub containerd: bool,
    pub crio: bool,
    pub cri_dockerd: bool,
}

fn from_sockets(s: Sockets) -> Said {
    let mut seen = Vec::new();
    for (there, name) in [
        (s.docker, "docker"),
        (s.containerd, "containerd"),
        (s.crio, "crio"),
        (s.cri_dockerd, "cri-dockerd"),
    ] {
        if there {
            seen.push(name);
        }
    }
    // docker brings containerd.io (CRI disabled): docker wins over containerd.
    let layout = if s.crio {
        Some(Layout::CriO)
    } else if s.cri_dockerd {
        Some(Layout::CriDockerd)
    } else if s.docker {
        Some(Layout::Dockershim)
    } else if s.containerd {
        Some(Layout::Containerd)
    } else {
        None
    };
    Said {
        source: "sockets".into(),
        said: if seen.is_empty() {
            "none of the runtime sockets exists".into()
        } else {
            format!("{} socket(s) exist", seen.join(", "))
        },
        layout,
        endpoint: None,
    }
}

/// Decide: the kubelet's sources first (in the order given), then the Node,
/// then the sockets as a guess. Every source is kept for the evidence.
pub fn decide(kubelet: Vec<Said>, node: Option<Said>, sockets: Sockets) -> Decided {
    let mut sources = kubelet;
    if let Some(n) = node {
        sources.push(n);
    }
    sources.push(from_sockets(sockets));
    let pick = sources
        .iter()
        .take(sources.len() - 1)
        .find(|s| s.layout.is_some());
    let (chosen, guess) = match pick {
        Some(s) => (s, false),
        None => (&sources[sources.len() - 1], true),
    };
    let layout = chosen.layout;
    // An endpoint named by any agreeing source is where the layout answers.
    let endpoint = sources
        .iter()
        .filter(|s| s.layout == layout)
        .find_map(|s| s.endpoint.clone())
        .or_else(|| {
            layout
                .and_then(Layout::default_cri_socket)
                .map(PathBuf::from)
        });
    Decided {
        layout,
        endpoint,
        by: if guess {
            format!("guess from sockets ({})", chosen.said)
        } else {
            format!("{}: {}", chosen.source, chosen.said)
        },
        guess,
        sources,
    }
}

#[cfg(test)]
mod tests;
