//! `KernelPrerequisitesMissing`: the sysctls kubeadm's preflight requires (seed 004's
//! `/etc/sysctl.d/k8s.conf`), read from `/proc/sys`. The `net.bridge.*` files exist only
//! while `br_netfilter` is loaded, so an absent one says the module is missing. `/proc/sys/net`
//! is per network namespace: the DaemonSet runs with `hostNetwork` and sees the host's.

use std::path::{Path, PathBuf};

use crate::domain::{Problem, Timestamp};
use crate::health::{Observation, Verdict};
use crate::runbook::Sysctl;

use super::runtime::blocking;
use super::{Probe, ProbeFuture, elapsed_since};

/// What one sysctl read gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Value(String),
    /// The file does not exist.
    Absent,
    /// It exists but could not be read (permissions, a timeout).
    Unreadable(String),
}

/// `/proc/sys/net/ipv4/ip_forward` for `net.ipv4.ip_forward` under `proc_root`.
pub fn sysctl_path(proc_root: &Path, name: &str) -> PathBuf {
    let mut p = proc_root.join("sys");
    for c in name.split('.') {
        p.push(c);
    }
    p
}

/// One sysctl's line of evidence and whether it is wrong (`None`: could not tell).
pub fn judge_one(s: &Sysctl, read: &Read) -> (Option<bool>, String) {
    match read {
        Read::Value(v) if v.trim() == s.value => {
            (Some(false), format!("{} = {}", s.name, v.trim()))
        }
        Read::Value(v) => (
            Some(true),
            format!("{} = {}, want {}", s.name, v.trim(), s.value),
        ),
        Read::Absent if s.name.starts_with("net.bridge.") => (
            Some(true),
            format!("{} absent: br_netfilter is not loaded", s.name),
        ),
        Read::Absent => (Some(true), format!("{} absent: no such sysctl", s.name)),
        Read::Unreadable(e) => (None, format!("{} unreadable: {e}", s.name)),
    }
}

/// The verdict over every sysctl: failing when one is wrong, unknown when none is wrong but
/// one could not be read.
pub fn judge(lines: &[(Option<bool>, String)]) -> (Verdict, String) {
    let wrong: Vec<&str> = lines
        .iter()
        .filter(|(w, _)| *w == Some(true))
        .map(|(_, l)| l.as_str())
        .collect();
    if !wrong.is_empty() {
        return (Verdict::Failing, wrong.join("; "));
    }
    if let Some((_, l)) = lines.iter().find(|(w, _)| w.is_none()) {
        return (Verdict::Unknown, l.clone());
    }
    (Verdict::Healthy, "kernel prerequisites set".into())
}

async fn read_sysctl(path: PathBuf) -> Read {
    match blocking(move || match std::fs::read_to_string(&path) {
        Ok(v) => Ok(Read::Value(v)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Read::Absent),
        Err(e) => Ok(Read::Unreadable(e.to_string())),
    })
    .await
    {
        Ok(r) => r,
        Err(e) => Read::Unreadable(e.to_string()),
    }
}

/// The probe.
pub struct SysctlCheck {
    pub sysctls: Vec<Sysctl>,
    /// procfs (`/proc`).
    pub proc_root: PathBuf,
}

impl SysctlCheck {
    async fn run_inner(&self, now: Timestamp) -> Observation {
        let started = tokio::time::Instant::now();
        let reads = futures::future::join_all(
            self.sysctls
                .iter()
                .map(|s| read_sysctl(sysctl_path(&self.proc_root, &s.name))),
        )
        .await;
        let mut o = Observation::new(
            Problem::KernelPrerequisitesMissing,
            now,
            Verdict::Unknown,
            "",
        );
        let mut lines = Vec::new();
        for (s, r) in self.sysctls.iter().zip(&reads) {
            let (wrong, line) = judge_one(s, r);
            o = o.with(&s.name, &line);
            lines.push((wrong, line));
        }
        let (v, summary) = judge(&lines);
        o.verdict = v;
        o.summary = summary;
        o.took(elapsed_since(started))
    }
}

impl Probe for SysctlCheck {
    fn problem(&self) -> Problem {
        Problem::KernelPrerequisitesMissing
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
