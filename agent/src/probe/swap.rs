//! `SwapOn`: swap in `/proc/swaps` while the kubelet's `failSwapOn` is not false (seed 004:
//! `swapoff -a` and the fstab edit before a join). The kubelet refuses to start with swap on
//! unless `failSwapOn: false`; a node that reboots with swap back on loses its kubelet.
//! `/proc/swaps` is not namespaced: a DaemonSet pod sees the host's.

use std::path::PathBuf;
use std::sync::Arc;

use crate::domain::{Problem, Timestamp};
use crate::health::{Observation, Verdict};

use super::kubelet_invocation::{Setting, read_text};
use super::runtime::Detector;
use super::{Probe, ProbeFuture, elapsed_since};

/// One line of `/proc/swaps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapArea {
    pub name: String,
    pub kind: String,
    pub size_kib: u64,
    pub used_kib: u64,
}

/// The areas in `/proc/swaps` (header skipped; a line that does not parse is skipped).
pub fn parse_swaps(text: &str) -> Vec<SwapArea> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(SwapArea {
                name: f.first()?.to_string(),
                kind: f.get(1)?.to_string(),
                size_kib: f.get(2)?.parse().ok()?,
                used_kib: f.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

/// `2.0 GiB`, `512.0 MiB`.
pub fn fmt_kib(kib: u64) -> String {
    let gib = kib as f64 / (1024.0 * 1024.0);
    if gib >= 1.0 {
        format!("{gib:.1} GiB")
    } else {
        format!("{:.1} MiB", kib as f64 / 1024.0)
    }
}

/// The verdict and its summary. Swap with `failSwapOn=false` is healthy: the operator chose it.
pub fn judge(areas: &[SwapArea], fail_swap_on: &Setting<bool>) -> (Verdict, String) {
    if areas.is_empty() {
        return (Verdict::Healthy, "no swap".into());
    }
    let total: u64 = areas.iter().map(|a| a.size_kib).sum();
    let list = areas
        .iter()
        .map(|a| format!("{} ({}, {})", a.name, a.kind, fmt_kib(a.size_kib)))
        .collect::<Vec<_>>()
        .join(", ");
    let swap = format!("swap {} on {list}", fmt_kib(total));
    if fail_swap_on.value {
        (
            Verdict::Failing,
            format!(
                "{swap}; {}: the kubelet will not start with swap on",
                fail_swap_on.source
            ),
        )
    } else {
        (
            Verdict::Healthy,
            format!("{swap}; allowed by {}", fail_swap_on.source),
        )
    }
}

/// The probe.
pub struct SwapCheck {
    /// `/proc/swaps`.
    pub swaps: PathBuf,
    /// Finds the kubelet's command line and KubeletConfiguration (shared with the runtime probe).
    pub kubelet: Arc<Detector>,
}

impl SwapCheck {
    async fn run_inner(&self, now: Timestamp) -> Observation {
        let started = tokio::time::Instant::now();
        let Some(text) = read_text(self.swaps.clone()).await else {
            return Observation::new(
                Problem::SwapOn,
                now,
                Verdict::Unknown,
                format!("{} unreadable", self.swaps.display()),
            )
            .took(elapsed_since(started));
        };
        let areas = parse_swaps(&text);
        let mut o = Observation::new(Problem::SwapOn, now, Verdict::Unknown, "").with(
            "swaps",
            if areas.is_empty() {
                "none".to_string()
            } else {
                format!("{} area(s) in {}", areas.len(), self.swaps.display())
            },
        );
        // Only when there is swap does the kubelet's setting matter.
        if !areas.is_empty() {
            let inv = self.kubelet.invocation().await;
            let f = inv.fail_swap_on();
            o = o.with("failSwapOn", &f.source);
            let (v, s) = judge(&areas, &f);
            o.verdict = v;
            o.summary = s;
        } else {
            o.verdict = Verdict::Healthy;
            o.summary = "no swap".into();
        }
        o.took(elapsed_since(started))
    }
}

impl Probe for SwapCheck {
    fn problem(&self) -> Problem {
        Problem::SwapOn
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
