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
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn usage(avail_pct: u64, inodes_free_pct: u64) -> Usage {
        Usage {
            total_bytes: 100 * GIB,
            avail_bytes: avail_pct * GIB,
            total_inodes: 1_000_000,
            free_inodes: inodes_free_pct * 10_000,
        }
    }

    #[test]
    fn quantities_parse_like_the_kubelet_writes_them() {
        assert_eq!(Quantity::parse("10%"), Some(Quantity::Percent(10.0)));
        assert_eq!(Quantity::parse("\"20%\""), Some(Quantity::Percent(20.0)));
        assert_eq!(Quantity::parse("1Gi"), Some(Quantity::Absolute(GIB)));
        assert_eq!(
            Quantity::parse("500Mi"),
            Some(Quantity::Absolute(500 << 20))
        );
        assert_eq!(Quantity::parse("100000"), Some(Quantity::Absolute(100_000)));
        assert_eq!(
            Quantity::parse("2G"),
            Some(Quantity::Absolute(2_000_000_000))
        );
        assert_eq!(Quantity::parse("120%"), None);
        assert_eq!(Quantity::parse("lots"), None);
    }

    #[test]
    fn defaults_warn_five_points_before_the_kubelet_evicts() {
        let t = default_thresholds();
        // nodefs: 10% + 5 points
        assert!(!judge_one("/var/lib/kubelet", "nodefs", usage(16, 50), &t, 5).0);
        let (near, line) = judge_one("/var/lib/kubelet", "nodefs", usage(14, 50), &t, 5);
        assert!(near);
        assert!(
            line.contains("nodefs.available 14.0% free, within 5 points of <10%"),
            "{line}"
        );
        // imagefs: 15% + 5 points
        assert!(judge_one("/var/lib/containerd", "imagefs", usage(19, 50), &t, 5).0);
        // inodes: 5% + 5 points
        let (near, line) = judge_one("/var/lib/kubelet", "nodefs", usage(50, 9), &t, 5);
        assert!(
            near && line.contains("nodefs.inodesFree 9.0% free"),
            "{line}"
        );
        // a filesystem without inode accounting (btrfs reports 0) is judged on bytes only
        let mut u = usage(50, 0);
        u.total_inodes = 0;
        assert!(!judge_one("/var/lib/kubelet", "nodefs", u, &t, 5).0);
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
    fn a_set_eviction_hard_replaces_the_defaults() {
        let cfg = include_str!("drift_fixtures/kubelet-config-cgroupfs.yaml");
        let t = thresholds(&inv(&["kubelet"], Some(cfg)));
        assert!(t.source.contains("config.yaml:"), "{}", t.source);
        assert_eq!(t.signals["imagefs.available"], Quantity::Percent(20.0));
        assert_eq!(t.signals["nodefs.available"], Quantity::Absolute(GIB));
        assert!(!t.signals.contains_key("nodefs.inodesFree"));
        // 1Gi of 100Gi + 5 points: 5.5% free is clear, 5% is not
        let mut u = usage(6, 50);
        assert!(!judge_one("/var/lib/kubelet", "nodefs", u, &t, 5).0);
        u.avail_bytes = 5 * GIB;
        assert!(judge_one("/var/lib/kubelet", "nodefs", u, &t, 5).0);
        // unlisted inodesFree: no threshold, only the margin
        assert!(!judge_one("/var/lib/kubelet", "nodefs", usage(50, 6), &t, 5).0);
        // the flag wins
        let t = thresholds(&inv(
            &[
                "kubelet",
                "--eviction-hard=memory.available<100Mi,nodefs.available<30%",
            ],
            Some(cfg),
        ));
        assert_eq!(t.signals["nodefs.available"], Quantity::Percent(30.0));
        assert!(t.source.contains("--eviction-hard"));
        // kubeadm's config sets none: the defaults
        let sd = include_str!("drift_fixtures/kubelet-config-systemd.yaml");
        assert_eq!(
            thresholds(&inv(&["kubelet"], Some(sd))),
            default_thresholds()
        );
    }

    #[tokio::test]
    async fn statvfs_reads_a_real_filesystem_and_absent_paths() {
        let d = tempfile::tempdir().unwrap();
        let u = statvfs(d.path().into(), Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        assert!(u.total_bytes > 0 && u.avail_bytes <= u.total_bytes);
        let none = statvfs(d.path().join("nope"), Duration::from_secs(5)).await;
        assert_eq!(none, Ok(None));
    }
}
