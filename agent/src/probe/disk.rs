//! `DiskNearlyFull`: free bytes and inodes on the filesystems the kubelet (`nodefs`) and
//! the runtime (`imagefs`) live on, against the kubelet's own hard-eviction thresholds plus a
//! margin, so the operator acts before pods are evicted (seed 003: a full disk is the first
//! cause of a node going unavailable). statvfs(2) on a hung NFS mount blocks, so each call
//! runs on the blocking pool under the probe's deadline.
//!
//! The thresholds, as the kubelet applies them (kubernetes.io "Node-pressure Eviction"):
//! defaults `nodefs.available<10%`, `nodefs.inodesFree<5%`, `imagefs.available<15%`; an
//! `evictionHard` that is set replaces the defaults — a signal it does not list has no
//! threshold (zero). `--eviction-hard` on the command line wins over the file. Free space
//! is `f_bavail` (what cAdvisor reports as available), inodes `f_ffree`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::{Problem, Timestamp};
use crate::health::{Observation, Verdict};
use crate::runbook::DiskProbe as Settings;

use super::kubelet_invocation::Invocation;
use super::runtime::Detector;
use super::swap::fmt_kib;
use super::{Probe, ProbeFuture, budget, elapsed_since};

/// An eviction threshold's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantity {
    Percent(f64),
    /// Bytes, or a count for inodes.
    Absolute(u64),
}

impl Quantity {
    /// `10%`, `1Gi`, `500Mi`, `100000`, `2G`.
    pub fn parse(s: &str) -> Option<Quantity> {
        let s = s.trim().trim_matches('"');
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p.trim().parse().ok()?;
            return (0.0..=100.0).contains(&v).then_some(Quantity::Percent(v));
        }
        const UNITS: [(&str, u64); 12] = [
            ("Ki", 1 << 10),
            ("Mi", 1 << 20),
            ("Gi", 1 << 30),
            ("Ti", 1 << 40),
            ("Pi", 1 << 50),
            ("Ei", 1 << 60),
            ("k", 1_000),
            ("M", 1_000_000),
            ("G", 1_000_000_000),
            ("T", 1_000_000_000_000),
            ("P", 1_000_000_000_000_000),
            ("E", 1_000_000_000_000_000_000),
        ];
        for (u, m) in UNITS {
            if let Some(n) = s.strip_suffix(u) {
                return n
                    .parse::<u64>()
                    .ok()?
                    .checked_mul(m)
                    .map(Quantity::Absolute);
            }
        }
        s.parse().ok().map(Quantity::Absolute)
    }

    /// The amount of `total` this is.
    fn of(self, total: u64) -> f64 {
        match self {
            Quantity::Percent(p) => total as f64 * p / 100.0,
            Quantity::Absolute(v) => v as f64,
        }
    }
}

/// The kubelet's hard-eviction thresholds for the filesystem signals, and where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// `nodefs.available` … `imagefs.inodesFree` → threshold; a missing signal has none.
    pub signals: BTreeMap<String, Quantity>,
    pub source: String,
}

/// The kubelet's defaults (pkg/kubelet/apis/config/v1beta1 `DefaultEvictionHard`, Linux).
pub fn default_thresholds() -> Thresholds {
    let mut signals = BTreeMap::new();
    signals.insert("nodefs.available".into(), Quantity::Percent(10.0));
    signals.insert("nodefs.inodesFree".into(), Quantity::Percent(5.0));
    signals.insert("imagefs.available".into(), Quantity::Percent(15.0));
    Thresholds {
        signals,
        source: "the kubelet's default evictionHard".into(),
    }
}

/// `memory.available<100Mi,nodefs.available<10%` (the `--eviction-hard` flag).
fn parse_flag(v: &str) -> BTreeMap<String, Quantity> {
    v.split(',')
        .filter_map(|kv| {
            let (k, q) = kv.split_once('<')?;
            Some((k.trim().to_string(), Quantity::parse(q)?))
        })
        .collect()
}

/// The thresholds the kubelet runs with: the flag, else the KubeletConfiguration's
/// `evictionHard`, else the defaults.
pub fn thresholds(inv: &Invocation) -> Thresholds {
    if let Some(f) = inv.flag("--eviction-hard") {
        return Thresholds {
            signals: parse_flag(&f.value),
            source: f.source,
        };
    }
    if let Ok(c) = inv.config()
        && let Some(e) = c.eviction_hard
    {
        return Thresholds {
            signals: e
                .value
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), Quantity::parse(v)?)))
                .collect(),
            source: format!("KubeletConfiguration evictionHard ({})", inv.at(&e)),
        };
    }
    default_thresholds()
}

/// One filesystem's numbers (statvfs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub total_bytes: u64,
    pub avail_bytes: u64,
    pub total_inodes: u64,
    pub free_inodes: u64,
}

/// Whether `u` is nearly full for the kubelet's filesystem `fs` (`nodefs` or `imagefs`),
/// with a line of evidence.
pub fn judge_one(path: &str, fs: &str, u: Usage, t: &Thresholds, margin: u32) -> (bool, String) {
    let pct = |a: u64, b: u64| {
        if b == 0 {
            100.0
        } else {
            a as f64 * 100.0 / b as f64
        }
    };
    let mut near = Vec::new();
    let check = |signal: &str, free: u64, total: u64, near: &mut Vec<String>| {
        if total == 0 {
            return;
        }
        let key = format!("{fs}.{signal}");
        let th = t
            .signals
            .get(&key)
            .copied()
            .unwrap_or(Quantity::Absolute(0));
        let limit = th.of(total) + total as f64 * f64::from(margin) / 100.0;
        if (free as f64) < limit {
            let th_text = match th {
                Quantity::Percent(p) => format!("{p}%"),
                Quantity::Absolute(v) if signal == "available" => fmt_kib(v / 1024),
                Quantity::Absolute(v) => v.to_string(),
            };
            near.push(format!(
                "{key} {:.1}% free, within {margin} points of <{th_text}",
                pct(free, total)
            ));
        }
    };
    check("available", u.avail_bytes, u.total_bytes, &mut near);
    check("inodesFree", u.free_inodes, u.total_inodes, &mut near);
    let line = format!(
        "{path} ({fs}): {:.1}% free ({} of {}), inodes {:.1}% free",
        pct(u.avail_bytes, u.total_bytes),
        fmt_kib(u.avail_bytes / 1024),
        fmt_kib(u.total_bytes / 1024),
        pct(u.free_inodes, u.total_inodes),
    );
    if near.is_empty() {
        (false, line)
    } else {
        (true, format!("{line}: {}", near.join(", ")))
    }
}

/// statvfs(2) of `path` on the blocking pool under `deadline`; `Ok(None)`: it does not exist.
async fn statvfs(path: PathBuf, deadline: Duration) -> Result<Option<Usage>, String> {
    let call = tokio::task::spawn_blocking(move || match nix::sys::statvfs::statvfs(&path) {
        Ok(s) => {
            let frsize = s.fragment_size();
            Ok(Some(Usage {
                total_bytes: s.blocks().saturating_mul(frsize),
                avail_bytes: s.blocks_available().saturating_mul(frsize),
                total_inodes: s.files(),
                free_inodes: s.files_free(),
            }))
        }
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(e) => Err(e.desc().to_string()),
    });
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "statvfs hung for {}",
            super::io::fmt_secs(deadline)
        )),
    }
}

/// The probe.
pub struct DiskCheck {
    pub settings: Settings,
    /// Paths are looked up under the host root (`ProbeEnv::host_path`); the evidence shows
    /// the host's names.
    pub host_path: Arc<dyn Fn(&str) -> PathBuf + Send + Sync>,
    pub kubelet: Arc<Detector>,
}

impl DiskCheck {
    async fn run_inner(&self, now: Timestamp) -> Observation {
        let started = tokio::time::Instant::now();
        let deadline = budget(self.settings.timing.timeout);
        let t = thresholds(&self.kubelet.invocation().await);
        let mut o = Observation::new(Problem::DiskNearlyFull, now, Verdict::Unknown, "")
            .with("thresholds", &t.source);
        let paths = self
            .settings
            .nodefs_paths
            .iter()
            .map(|p| (p, "nodefs", true))
            .chain(
                self.settings
                    .imagefs_paths
                    .iter()
                    .map(|p| (p, "imagefs", false)),
            );
        let mut near = Vec::new();
        let mut unknown = Vec::new();
        let mut seen = 0;
        for (p, fs, required) in paths {
            let left = deadline.saturating_sub(started.elapsed());
            match statvfs((self.host_path)(p), left).await {
                Ok(Some(u)) => {
                    seen += 1;
                    let (is_near, line) = judge_one(p, fs, u, &t, self.settings.margin_percent);
                    if is_near {
                        near.push(line.clone());
                    }
                    o = o.with(p, line);
                }
                Ok(None) if required => {
                    o = o.with(p, "absent");
                }
                Ok(None) => {}
                Err(e) => {
                    unknown.push(format!("{p}: {e}"));
                    o = o.with(p, format!("unknown: {e}"));
                }
            }
        }
        (o.verdict, o.summary) = if !near.is_empty() {
            (Verdict::Failing, near.join("; "))
        } else if !unknown.is_empty() {
            (Verdict::Unknown, unknown.join("; "))
        } else if seen == 0 {
            (Verdict::Unknown, "none of the paths exists".into())
        } else {
            (
                Verdict::Healthy,
                format!("{seen} filesystem path(s) clear of the eviction thresholds"),
            )
        };
        o.took(elapsed_since(started))
    }
}

impl Probe for DiskCheck {
    fn problem(&self) -> Problem {
        Problem::DiskNearlyFull
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
