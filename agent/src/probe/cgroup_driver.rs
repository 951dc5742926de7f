//! `CgroupDriverMismatch`: the kubelet's cgroup driver against the container runtime's
//! (seed 001: kubeadm's `IsDockerSystemdCheck` warning; seed 002: nodes that need cgroupfs
//! on both sides). A mismatch makes the kubelet fail to start or leaves pods in two cgroup
//! trees.
//!
//! The kubelet: `--cgroup-driver`, else the KubeletConfiguration's `cgroupDriver`, else the
//! kubelet's own default `cgroupfs` (kubernetes.io "Configuring a cgroup driver": kubeadm
//! ≥ 1.22 writes `systemd` into the file, the kubelet's default stays `cgroupfs`).
//! The runtime, decided by the layout (`runtime::Detector`): docker's `GET /info`
//! `CgroupDriver`; containerd's `SystemdCgroup` under the runc runtime's options (config
//! version 2 `plugins."io.containerd.grpc.v1.cri"…` and version 3
//! `plugins.'io.containerd.cri.v1.runtime'…`), unset = false = cgroupfs; CRI-O's
//! `cgroup_manager` in `[crio.runtime]`, unset = systemd (crio.conf(5)). Unknown whenever
//! either side cannot be told.
//!
//! As real nodes set them:
//! - containerd's pods run under its CRI plugin's `default_runtime_name` (`runc` unless set;
//!   GPU nodes name `nvidia`), so that handler's `SystemdCgroup` is the one read;
//! - CRI-O reads `crio.conf` (when it exists) and then every file of `crio.conf.d/` beside
//!   it in lexical order, the last setting winning (crio.conf.d(5)); packages of CRI-O
//!   ≥ 1.28 ship only `crio.conf.d/10-crio.conf`;
//! - a runtime that answers CRI `RuntimeConfig` states its driver itself, and a kubelet with
//!   `KubeletCgroupDriverFromCRI` on (the default from 1.31) then uses it ([`cri_cgroup`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::domain::{Problem, Timestamp};
use crate::health::{Observation, Verdict};

use super::cri_cgroup::{self, CriAnswer, Gate};
use super::kubelet_invocation::{Invocation, Setting, read_text};
use super::runtime::{Detector, Runtime};
use super::{Probe, ProbeFuture, budget, elapsed_since, io};

/// The kubelet's driver and where it came from.
pub fn kubelet_driver(inv: &Invocation) -> Result<Setting<String>, String> {
    if let Some(f) = inv.flag("--cgroup-driver") {
        return Ok(f);
    }
    inv.config().map(|c| match c.cgroup_driver {
        Some(d) => Setting {
            value: d.value.clone(),
            source: format!(
                "KubeletConfiguration cgroupDriver={} ({})",
                d.value,
                inv.at(&d)
            ),
        },
        None => Setting {
            value: "cgroupfs".into(),
            source: "cgroupDriver unset: the kubelet's default is cgroupfs".into(),
        },
    })
}

/// docker's `/info` body → its `CgroupDriver`.
pub fn docker_driver(body: &[u8]) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("/info is not JSON: {e}"))?;
    v["CgroupDriver"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "/info has no CgroupDriver".into())
}

/// Strip a TOML comment (outside quotes) and surrounding space.
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') => return line[..i].trim(),
            _ => {}
        }
    }
    line.trim()
}

/// A TOML table header without its brackets and quotes (`plugins."a.b".c` → `plugins.a.b.c`).
fn header(l: &str) -> Option<String> {
    let h = l.strip_prefix('[')?;
    let h = h.trim_start_matches('[').trim_end_matches(']');
    Some(h.chars().filter(|c| *c != '"' && *c != '\'').collect())
}

/// The CRI plugin's `default_runtime_name` (in its `containerd` table) and its line;
/// `None` when unset (containerd's default is `runc`).
pub fn containerd_default_runtime(toml: &str) -> Option<(String, usize)> {
    let mut in_cri = false;
    for (n, raw) in toml.lines().enumerate() {
        let l = strip_comment(raw);
        if let Some(h) = header(l) {
            in_cri = h.ends_with("io.containerd.grpc.v1.cri.containerd")
                || h.ends_with("io.containerd.cri.v1.runtime.containerd");
            continue;
        }
        if in_cri
            && let Some((k, v)) = l.split_once('=')
            && k.trim() == "default_runtime_name"
        {
            return Some((v.trim().trim_matches(['"', '\'']).to_string(), n + 1));
        }
    }
    None
}

/// `SystemdCgroup` of containerd's runtime handler `runtime` (`runc`, `nvidia`…), and its
/// line; `None` when unset.
pub fn containerd_systemd_cgroup(toml: &str, runtime: &str) -> Option<(bool, usize)> {
    let options = format!("containerd.runtimes.{runtime}.options");
    let mut in_options = false;
    for (n, raw) in toml.lines().enumerate() {
        let l = strip_comment(raw);
        if let Some(h) = header(l) {
            in_options = h.ends_with(&options);
            continue;
        }
        if in_options
            && let Some((k, v)) = l.split_once('=')
            && k.trim() == "SystemdCgroup"
        {
            return match v.trim() {
                "true" => Some((true, n + 1)),
                "false" => Some((false, n + 1)),
                _ => None,
            };
        }
    }
    None
}

/// `cgroup_manager` in `[crio.runtime]`, and its line; `None` when unset.
pub fn crio_cgroup_manager(conf: &str) -> Option<(String, usize)> {
    let mut in_runtime = false;
    for (n, raw) in conf.lines().enumerate() {
        let l = strip_comment(raw);
        if l.starts_with('[') {
            in_runtime = l == "[crio.runtime]";
            continue;
        }
        if in_runtime
            && let Some((k, v)) = l.split_once('=')
            && k.trim() == "cgroup_manager"
        {
            return Some((v.trim().trim_matches(['"', '\'']).to_string(), n + 1));
        }
    }
    None
}

/// CRI-O's effective `cgroup_manager` over its files in the order it reads them (the
/// main file, then the drop-ins): the last one that sets it, as `(value, "path:line")`.
pub fn crio_effective_manager(files: &[(PathBuf, String)]) -> Option<(String, String)> {
    files.iter().rev().find_map(|(p, text)| {
        crio_cgroup_manager(text).map(|(m, line)| (m, format!("{}:{line}", p.display())))
    })
}

/// The most drop-ins read from `crio.conf.d/` (a node has a handful).
const MAX_CRIO_DROPINS: usize = 64;

/// `crio.conf` (if it exists) and the files of `crio.conf.d/` beside it, in lexical order.
async fn read_crio_files(main: &Path) -> Result<Vec<(PathBuf, String)>, String> {
    let main = main.to_path_buf();
    let dir = main
        .parent()
        .map(|d| d.join("crio.conf.d"))
        .unwrap_or_else(|| PathBuf::from("crio.conf.d"));
    let mut files = Vec::new();
    if let Some(text) = read_text(main.clone()).await {
        files.push((main.clone(), text));
    }
    let listed = super::runtime::blocking({
        let dir = dir.clone();
        move || {
            let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)?
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.path())
                .collect();
            names.sort();
            Ok(names)
        }
    })
    .await;
    let names = match listed {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    if names.len() > MAX_CRIO_DROPINS {
        return Err(format!(
            "{}: {} files, more than the {MAX_CRIO_DROPINS} read",
            dir.display(),
            names.len()
        ));
    }
    for p in names {
        let text = read_text(p.clone())
            .await
            .ok_or_else(|| format!("{} unreadable", p.display()))?;
        files.push((p, text));
    }
    if files.is_empty() {
        return Err(format!(
            "neither {} nor {} exists",
            main.display(),
            dir.display()
        ));
    }
    Ok(files)
}

/// The probe.
pub struct CgroupCheck {
    pub kubelet: Arc<Detector>,
    /// docker's Engine API socket (the runtime probe's setting, under the host root).
    pub docker_socket: PathBuf,
    pub containerd_config: PathBuf,
    pub crio_config: PathBuf,
    pub timeout: crate::domain::Dur,
}

impl CgroupCheck {
    async fn runtime_driver(&self, rt: Runtime) -> Result<Setting<String>, String> {
        match rt {
            Runtime::Docker | Runtime::CriDockerd => {
                // a socket may be a link: resolved inside the host root, as detect() does
                let sock = super::hostfs::follow_under(
                    self.kubelet.host_root.as_deref(),
                    &self.docker_socket,
                );
                let r = io::unix_http_get(&sock, "/info", budget(self.timeout) / 2)
                    .await
                    .map_err(|e| format!("docker /info: {e}"))?;
                let d = docker_driver(&r.body)?;
                Ok(Setting {
                    source: format!("docker /info CgroupDriver={d}"),
                    value: d,
                })
            }
            Runtime::Containerd => {
                let p = &self.containerd_config;
                let text = read_text(p.clone())
                    .await
                    .ok_or_else(|| format!("{} absent or unreadable", p.display()))?;
                let handler = containerd_default_runtime(&text)
                    .map_or_else(|| "runc".to_string(), |(name, _)| name);
                Ok(match containerd_systemd_cgroup(&text, &handler) {
                    Some((b, line)) => Setting {
                        value: if b { "systemd" } else { "cgroupfs" }.into(),
                        source: format!(
                            "containerd {handler} SystemdCgroup={b} ({}:{line})",
                            p.display()
                        ),
                    },
                    None => Setting {
                        value: "cgroupfs".into(),
                        source: format!(
                            "containerd {handler} SystemdCgroup unset in {}: false, cgroupfs",
                            p.display()
                        ),
                    },
                })
            }
            Runtime::CriO => {
                let files = read_crio_files(&self.crio_config).await?;
                Ok(match crio_effective_manager(&files) {
                    Some((m, at)) => Setting {
                        source: format!("CRI-O cgroup_manager={m} ({at})"),
                        value: m,
                    },
                    None => Setting {
                        value: "systemd".into(),
                        source: format!(
                            "CRI-O cgroup_manager unset in {} and its drop-ins: systemd",
                            self.crio_config.display()
                        ),
                    },
                })
            }
        }
    }

    async fn run_inner(&self, now: Timestamp) -> Observation {
        let started = tokio::time::Instant::now();
        let det = self.kubelet.detect().await;
        let inv = self.kubelet.invocation().await;
        let mut o = Observation::new(Problem::CgroupDriverMismatch, now, Verdict::Unknown, "");
        let kubelet = kubelet_driver(&inv);
        let (cri, runtime) = match det.kind {
            // the CRI runtimes may state their driver themselves (cri-dockerd does not)
            Some(rt @ (Runtime::Containerd | Runtime::CriO)) => (
                Some(cri_cgroup::ask(&det.socket, budget(self.timeout) / 3).await),
                self.runtime_driver(rt).await,
            ),
            Some(rt) => (None, self.runtime_driver(rt).await),
            None => (None, Err(det.how.clone())),
        };
        // whether the kubelet takes the runtime's answer matters only when there is one
        let gate = match &cri {
            Some(CriAnswer::Driver(_)) => {
                let kubelet_version = match &self.kubelet.node {
                    Some(src) => match tokio::time::timeout(
                        std::time::Duration::from_secs(1),
                        src.node_info(),
                    )
                    .await
                    {
                        Ok(Ok((_, kv))) => Some(kv),
                        _ => None,
                    },
                    None => None,
                };
                Some(cri_cgroup::gate(&inv, kubelet_version.as_deref()))
            }
            _ => None,
        };
        o = o.with(
            "kubelet",
            match &kubelet {
                Ok(s) => s.source.clone(),
                Err(e) => format!("unknown: {e}"),
            },
        );
        o = o.with(
            "runtime",
            match &runtime {
                Ok(s) => s.source.clone(),
                Err(e) => format!("unknown: {e}"),
            },
        );
        if let Some(c) = &cri {
            o = o.with(
                "runtime over CRI",
                match c {
                    CriAnswer::Driver(d) => format!("RuntimeConfig: {d}"),
                    CriAnswer::Unimplemented => "RuntimeConfig unimplemented".into(),
                    CriAnswer::Failed(e) => e.clone(),
                },
            );
        }
        if let Some(g) = &gate {
            o = o.with(
                "kubelet takes the runtime's",
                match g {
                    Gate::On(w) => format!("yes: {w}"),
                    Gate::Off(w) => format!("no: {w}"),
                    Gate::Unknown(w) => format!("unknown: {w}"),
                },
            );
        }
        let gate = gate.unwrap_or(Gate::Unknown("no runtime answer over CRI".into()));
        (o.verdict, o.summary) = judge(&kubelet, &runtime, cri.as_ref(), &gate);
        o.took(elapsed_since(started))
    }
}

/// The verdict: failing only when the driver the kubelet runs with and the runtime's are
/// both known and differ. A runtime's own answer over CRI outranks its files; a kubelet that
/// takes its driver from that answer cannot differ.
pub fn judge(
    kubelet: &Result<Setting<String>, String>,
    runtime: &Result<Setting<String>, String>,
    cri: Option<&CriAnswer>,
    gate: &Gate,
) -> (Verdict, String) {
    let stated = match cri {
        Some(CriAnswer::Driver(d)) => Some(*d),
        _ => None,
    };
    if let (Some(d), Gate::On(why)) = (stated, gate) {
        return (
            Verdict::Healthy,
            format!("the kubelet takes the runtime's driver over CRI ({why}): {d}"),
        );
    }
    let runtime = match stated {
        Some(d) => Ok(Setting {
            value: d.to_string(),
            source: format!("RuntimeConfig over CRI: {d}"),
        }),
        None => runtime.clone(),
    };
    match (kubelet, &runtime) {
        (Ok(k), Ok(r)) if k.value == r.value => (Verdict::Healthy, format!("both use {}", k.value)),
        (Ok(k), Ok(r)) => match (stated, gate) {
            (Some(_), Gate::Unknown(why)) => (
                Verdict::Unknown,
                format!(
                    "the kubelet's setting is {} ({}), the runtime's {} ({}), but the kubelet may take the runtime's: {why}",
                    k.value, k.source, r.value, r.source
                ),
            ),
            _ => (
                Verdict::Failing,
                format!(
                    "the kubelet uses {} ({}), the runtime {} ({})",
                    k.value, k.source, r.value, r.source
                ),
            ),
        },
        (Err(e), _) => (
            Verdict::Unknown,
            format!("the kubelet's cgroup driver is unknown: {e}"),
        ),
        (_, Err(e)) => (
            Verdict::Unknown,
            format!("the runtime's cgroup driver is unknown: {e}"),
        ),
    }
}

impl Probe for CgroupCheck {
    fn problem(&self) -> Problem {
        Problem::CgroupDriverMismatch
    }
    fn run(&self, now: Timestamp) -> ProbeFuture<'_> {
        Box::pin(self.run_inner(now))
    }
    fn timeout_verdict(&self) -> Verdict {
        Verdict::Unknown
    }
}

#[cfg(test)]
mod tests;
