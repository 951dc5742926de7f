//! Domain types shared by every layer: problems, durations, timestamps.
//!
//! Nothing here does I/O.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A timestamp. All decision logic takes `now` as an argument of this type.
pub type Timestamp = jiff::Timestamp;

/// Where time comes from. Logic never calls `Timestamp::now()` itself.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// The node failures nodewarden knows how to detect and remedy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Problem {
    /// kubelet healthz fails or hangs, the unit is not active, or its Lease is not renewed.
    KubeletUnhealthy,
    /// kubelet reports `PLEG is not healthy` (journal or Ready condition).
    #[serde(rename = "PLEGUnhealthy")]
    PlegUnhealthy,
    /// docker/containerd do not answer on their sockets, or are stuck in D state.
    ContainerRuntimeUnresponsive,
    /// the local clock is off from the API server's, or the kernel says it is unsynchronised.
    ClockSkewed,
    /// systemd is older than the runbook's policy for this distro.
    SystemdOutdated,
    /// swap is on while the kubelet's `failSwapOn` is not false.
    SwapOn,
    /// `br_netfilter`'s bridge sysctls or `net.ipv4.ip_forward` are off.
    KernelPrerequisitesMissing,
    /// the kubelet's cgroup driver is not the container runtime's.
    CgroupDriverMismatch,
    /// free space or inodes near the kubelet's eviction thresholds. Not
    /// `DiskPressure`: that NodeCondition is the kubelet's own, and the
    /// problem's name is its condition type.
    DiskNearlyFull,
    /// a kubelet certificate outside its validity window or near expiry, or
    /// this node's CSRs left `Pending`.
    KubeletCertificateInvalid,
    /// the API server cannot be reached from the node (the kubelet may be healthy).
    ApiServerUnreachable,
}

impl Problem {
    pub const ALL: [Problem; 11] = [
        Problem::KubeletUnhealthy,
        Problem::PlegUnhealthy,
        Problem::ContainerRuntimeUnresponsive,
        Problem::ClockSkewed,
        Problem::SystemdOutdated,
        Problem::SwapOn,
        Problem::KernelPrerequisitesMissing,
        Problem::CgroupDriverMismatch,
        Problem::DiskNearlyFull,
        Problem::KubeletCertificateInvalid,
        Problem::ApiServerUnreachable,
    ];

    /// A report-only problem is shown — its own NodeCondition, `check`,
    /// `status`, `dry-run`, a `ProblemReported` Event — and never remediated
    /// automatically: it never opens a remediation episode, so it never sets
    /// `NodewardenRemediating` and never counts toward any node's storm gate.
    /// Its fix is a person's (`nodewarden maintenance start`), and a fleet
    /// where many nodes share it (one distro's systemd) must not hold every
    /// other node's repairs. The planner, the executor, the daemon's
    /// conditions and the runbook validation all ask this one function.
    pub const fn report_only(self) -> bool {
        match self {
            // #16: each is a person's fix (the seed's procedure in the runbook reference).
            Problem::SystemdOutdated
            | Problem::SwapOn
            | Problem::KernelPrerequisitesMissing
            | Problem::CgroupDriverMismatch
            | Problem::DiskNearlyFull
            | Problem::KubeletCertificateInvalid
            | Problem::ApiServerUnreachable => true,
            Problem::KubeletUnhealthy
            | Problem::PlegUnhealthy
            | Problem::ContainerRuntimeUnresponsive
            | Problem::ClockSkewed => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Problem::KubeletUnhealthy => "KubeletUnhealthy",
            Problem::PlegUnhealthy => "PLEGUnhealthy",
            Problem::ContainerRuntimeUnresponsive => "ContainerRuntimeUnresponsive",
            Problem::ClockSkewed => "ClockSkewed",
            Problem::SystemdOutdated => "SystemdOutdated",
            Problem::SwapOn => "SwapOn",
            Problem::KernelPrerequisitesMissing => "KernelPrerequisitesMissing",
            Problem::CgroupDriverMismatch => "CgroupDriverMismatch",
            Problem::DiskNearlyFull => "DiskNearlyFull",
            Problem::KubeletCertificateInvalid => "KubeletCertificateInvalid",
            Problem::ApiServerUnreachable => "ApiServerUnreachable",
        }
    }
}

/// A closed safety gate. One name for the planner, the ledger, the logs and
/// the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Gate {
    Maintenance,
    Blackout,
    ApiUnreachable,
    NodeUnknown,
    StormGate,
    DisruptionSlot,
}

impl Gate {
    /// Every gate, in order (the metrics export each one).
    pub const ALL: [Gate; 6] = [
        Gate::Maintenance,
        Gate::Blackout,
        Gate::ApiUnreachable,
        Gate::NodeUnknown,
        Gate::StormGate,
        Gate::DisruptionSlot,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Maintenance => "Maintenance",
            Gate::Blackout => "Blackout",
            Gate::ApiUnreachable => "ApiUnreachable",
            Gate::NodeUnknown => "NodeUnknown",
            Gate::StormGate => "StormGate",
            Gate::DisruptionSlot => "DisruptionSlot",
        }
    }
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Problems as text, in their order, e.g. `KubeletUnhealthy, PLEGUnhealthy`.
pub fn join_problems<'a>(ps: impl IntoIterator<Item = &'a Problem>, sep: &str) -> String {
    ps.into_iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(sep)
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown problem {0:?}; expected one of {names}", names = join_problems(&Problem::ALL, ", "))]
pub struct UnknownProblem(pub String);

impl FromStr for Problem {
    type Err = UnknownProblem;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Problem::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownProblem(s.to_string()))
    }
}

/// A non-negative span of time, written like Go/Kubernetes durations:
/// `90s`, `1m30s`, `2h`, `500ms`. Bounded to 400 days so arithmetic on
/// timestamps can never overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(std::time::Duration);

/// The largest duration a runbook may state.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(400 * 24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurError {
    #[error("empty duration; expected a duration like 30s, 5m or 1h30m")]
    Empty,
    #[error("negative duration {0:?} is not allowed")]
    Negative(String),
    #[error(
        "invalid duration {0:?}; expected a number followed by a unit (ms, s, m, h, d), like 30s, 5m or 1h30m"
    )]
    Syntax(String),
    #[error("duration {0:?} is too long; at most 400d")]
    TooLong(String),
}

/// Whether the probes' HTTP client (`probe::io::http_get`) can call `url`: a
/// plain `http://` URL with a host. Validation uses this too, so a URL that
/// validates is one the probe can call.
pub fn check_http_url(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL ({e})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(format!(
                "{url:?}: only plain http:// URLs are supported, not {other}://"
            ));
        }
        None => {
            return Err(format!(
                "{url:?} has no scheme; expected http://HOST[:PORT]/PATH"
            ));
        }
    }
    match uri.authority() {
        Some(a) if !a.host().is_empty() && !a.as_str().contains('@') => Ok(uri),
        Some(_) => Err(format!(
            "{url:?}: a host without user information is required"
        )),
        None => Err(format!("{url:?} has no host")),
    }
}

/// A Kubernetes node name is a DNS-1123 subdomain: at most 253 characters,
/// dot-separated labels of lowercase letters, digits and '-', each starting
/// and ending with a letter or digit. Anything else (`..`, `/`, `?`, `#`)
/// could change the API path it is put into, so it is refused where it enters.
pub fn check_node_name(name: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() {
        return Err("the node name is empty".into());
    }
    if name.len() > 253 {
        return Err(format!(
            "node name of {} characters is too long; at most 253",
            name.len()
        ));
    }
    if !name.split('.').all(label_ok) {
        return Err(format!(
            "{:?} is not a valid node name: expected a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', like worker-1.example.com)",
            name.escape_debug().to_string()
        ));
    }
    Ok(())
}

impl Dur {
    pub const ZERO: Dur = Dur(std::time::Duration::ZERO);

    pub const fn from_secs(s: u64) -> Dur {
        Dur(std::time::Duration::from_secs(s))
    }
    pub const fn from_millis(ms: u64) -> Dur {
        Dur(std::time::Duration::from_millis(ms))
    }
    pub const fn from_std(d: std::time::Duration) -> Dur {
        Dur(d)
    }
    pub fn std(self) -> std::time::Duration {
        self.0
    }
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0.as_secs_f64()
    }
    /// As a `jiff::SignedDuration` for timestamp arithmetic.
    pub fn signed(self) -> jiff::SignedDuration {
        // MAX_DURATION keeps this far inside i64 seconds.
        jiff::SignedDuration::new(self.0.as_secs() as i64, self.0.subsec_nanos() as i32)
    }
    /// `t + self`, saturating at the far future instead of failing.
    pub fn after(self, t: Timestamp) -> Timestamp {
        t.checked_add(self.signed()).unwrap_or(Timestamp::MAX)
    }
    /// `t - self`, saturating at the far past.
    pub fn before(self, t: Timestamp) -> Timestamp {
        t.checked_sub(self.signed()).unwrap_or(Timestamp::MIN)
    }
    /// The non-negative time from `a` to `b` (zero if `b` is before `a`).
    pub fn between(a: Timestamp, b: Timestamp) -> Dur {
        let d = b.duration_since(a);
        if d.is_negative() {
            Dur::ZERO
        } else {
            Dur(std::time::Duration::new(
                d.as_secs() as u64,
                d.subsec_nanos() as u32,
            ))
        }
    }
}

impl FromStr for Dur {
    type Err = DurError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err(DurError::Empty);
        }
        if t.starts_with('-') {
            return Err(DurError::Negative(s.to_string()));
        }
        if t == "0" {
            return Ok(Dur::ZERO);
        }
        let bytes = t.as_bytes();
        let mut i = 0;
        let mut total: u128 = 0; // nanoseconds
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            let num = &t[start..i];
            let ustart = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let unit = &t[ustart..i];
            if num.is_empty() || unit.is_empty() || num.len() > 20 {
                return Err(DurError::Syntax(s.to_string()));
            }
            let per: u128 = match unit {
                "ns" => 1,
                "us" | "µs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60 * 1_000_000_000,
                "h" => 3600 * 1_000_000_000,
                "d" => 86_400 * 1_000_000_000,
                _ => return Err(DurError::Syntax(s.to_string())),
            };
            let (int, frac) = match num.split_once('.') {
                Some((a, b)) => (a, b),
                None => (num, ""),
            };
            if frac.contains('.') || (int.is_empty() && frac.is_empty()) {
                return Err(DurError::Syntax(s.to_string()));
            }
            let int_v: u128 = if int.is_empty() {
                0
            } else {
                int.parse().map_err(|_| DurError::Syntax(s.to_string()))?
            };
            let mut add = int_v.saturating_mul(per);
            if !frac.is_empty() {
                let digits = frac.len().min(12) as u32;
                let f: u128 = frac[..digits as usize]
                    .parse()
                    .map_err(|_| DurError::Syntax(s.to_string()))?;
                add = add.saturating_add(f.saturating_mul(per) / 10u128.pow(digits));
            }
            total = total.saturating_add(add);
            if total > MAX_DURATION.as_nanos() {
                return Err(DurError::TooLong(s.to_string()));
            }
        }
        let secs = (total / 1_000_000_000) as u64;
        let nanos = (total % 1_000_000_000) as u32;
        Ok(Dur(std::time::Duration::new(secs, nanos)))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total_ms = self.0.as_millis();
        if total_ms == 0 {
            return f.write_str("0s");
        }
        let mut ms = total_ms;
        let d = ms / 86_400_000;
        ms %= 86_400_000;
        let h = ms / 3_600_000;
        ms %= 3_600_000;
        let m = ms / 60_000;
        ms %= 60_000;
        let s = ms / 1000;
        ms %= 1000;
        if d > 0 {
            write!(f, "{d}d")?;
        }
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        if ms > 0 {
            write!(f, "{ms}ms")?;
        }
        Ok(())
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration string like 30s, 5m or 1h30m")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
                let d: Dur = v.parse().map_err(E::custom)?;
                // Written durations have millisecond resolution, the resolution they
                // print with, so what `runbook show` prints reads back the same.
                if !d.0.subsec_nanos().is_multiple_of(1_000_000) {
                    return Err(E::custom(format!(
                        "duration {v:?} is finer than a millisecond; write whole milliseconds, like 1ms or 250ms"
                    )));
                }
                Ok(d)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dur, E> {
                if v == 0 {
                    Ok(Dur::ZERO)
                } else {
                    Err(E::custom(format!(
                        "a bare number {v} is ambiguous; write a unit, like {v}s or {v}m"
                    )))
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
                if v < 0 {
                    Err(E::custom(format!("negative duration {v} is not allowed")))
                } else {
                    self.visit_u64(v as u64)
                }
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "a bare number {v} is ambiguous; write a unit, like 30s or 5m"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests;
