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

use std::path::PathBuf;
use std::sync::Arc;

use crate::domain::{Problem, Timestamp};
use crate::health::{Observation, Verdict};

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

/// `SystemdCgroup` of containerd's runc runtime, and its line; `None` when unset.
pub fn containerd_systemd_cgroup(toml: &str) -> Option<(bool, usize)> {
    let mut in_runc_options = false;
    for (n, raw) in toml.lines().enumerate() {
        let l = strip_comment(raw);
        if let Some(h) = l.strip_prefix('[') {
            let h = h.trim_start_matches('[').trim_end_matches(']');
            let h: String = h.chars().filter(|c| *c != '"' && *c != '\'').collect();
            in_runc_options = h.ends_with("containerd.runtimes.runc.options");
            continue;
        }
        if in_runc_options
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
                let r = io::unix_http_get(&self.docker_socket, "/info", budget(self.timeout) / 2)
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
                Ok(match containerd_systemd_cgroup(&text) {
                    Some((b, line)) => Setting {
                        value: if b { "systemd" } else { "cgroupfs" }.into(),
                        source: format!("containerd SystemdCgroup={b} ({}:{line})", p.display()),
                    },
                    None => Setting {
                        value: "cgroupfs".into(),
                        source: format!(
                            "containerd SystemdCgroup unset in {}: false, cgroupfs",
                            p.display()
                        ),
                    },
                })
            }
            Runtime::CriO => {
                let p = &self.crio_config;
                let text = read_text(p.clone())
                    .await
                    .ok_or_else(|| format!("{} absent or unreadable", p.display()))?;
                Ok(match crio_cgroup_manager(&text) {
                    Some((m, line)) => Setting {
                        source: format!("CRI-O cgroup_manager={m} ({}:{line})", p.display()),
                        value: m,
                    },
                    None => Setting {
                        value: "systemd".into(),
                        source: format!("CRI-O cgroup_manager unset in {}: systemd", p.display()),
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
        let runtime = match det.kind {
            Some(rt) => self.runtime_driver(rt).await,
            None => Err(det.how.clone()),
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
        (o.verdict, o.summary) = judge(&kubelet, &runtime);
        o.took(elapsed_since(started))
    }
}

/// The verdict: failing only when both sides are known and differ.
pub fn judge(
    kubelet: &Result<Setting<String>, String>,
    runtime: &Result<Setting<String>, String>,
) -> (Verdict, String) {
    match (kubelet, runtime) {
        (Ok(k), Ok(r)) if k.value == r.value => (Verdict::Healthy, format!("both use {}", k.value)),
        (Ok(k), Ok(r)) => (
            Verdict::Failing,
            format!(
                "the kubelet uses {} ({}), the runtime {} ({})",
                k.value, k.source, r.value, r.source
            ),
        ),
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
