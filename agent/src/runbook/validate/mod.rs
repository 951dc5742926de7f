//! Semantic validation: `schema::RunbookDoc` → `model::Runbook`.
//! `probes` (each problem's settings), `steps` (the ladder and its actions)
//! and `safety` (gates, blackouts, the reboot cap) are checked in their own files.
//!
//! Every rule reports where it was broken (line, column) and what was
//! expected; all problems are collected, not just the first.

use crate::yaml::Location;

mod probes;
pub use probes::{DEFAULT_IMAGEFS_PATHS, DEFAULT_NODEFS_PATHS, DEFAULT_SYSCTLS};
mod safety;
mod steps;

use super::model::*;
use super::schema::*;
use super::{Diagnostic, Severity};
use crate::domain::{Dur, Problem};

pub(super) struct Ctx {
    diags: Vec<Diagnostic>,
}

impl Ctx {
    fn err(&mut self, at: Location, message: impl Into<String>) {
        self.push(at, Severity::Error, message.into());
    }
    fn warn(&mut self, at: Location, message: impl Into<String>) {
        self.push(at, Severity::Warning, message.into());
    }
    fn push(&mut self, at: Location, severity: Severity, message: String) {
        self.diags.push(Diagnostic {
            line: at.line(),
            column: at.column(),
            severity,
            message,
        });
    }
}

pub(super) fn at<T>(s: &S<T>) -> Location {
    s.referenced
}

pub(super) fn opt_dur(v: &Option<S<Dur>>, default: Dur) -> Dur {
    v.as_ref().map(|s| s.value).unwrap_or(default)
}

/// Default timing per problem (docs/platform-facts.md: kubelet numbers and the peers).
pub fn default_timing(p: Problem) -> Timing {
    let (interval, timeout, fail_for, ok_for) = match p {
        Problem::KubeletUnhealthy => (10, 10, 60, 60),
        // okFor past the kubelet's 3m threshold: a restarted kubelet reports a
        // stall only 3m after it restarts (README.md "Runbook reference").
        Problem::PlegUnhealthy => (10, 10, 30, 200),
        Problem::ContainerRuntimeUnresponsive => (10, 10, 60, 60),
        Problem::ClockSkewed => (60, 10, 120, 300),
        Problem::SystemdOutdated => (3600, 10, 0, 0),
        // #16's readiness drift: configuration that changes rarely, looked at
        // every minute; a moment's state (a swapon during a test, a sysctl
        // being re-applied) is not reported until it lasts.
        Problem::SwapOn | Problem::KernelPrerequisitesMissing => (60, 10, 120, 60),
        Problem::CgroupDriverMismatch => (300, 10, 0, 0),
        // Disk use moves both ways around a threshold: okFor keeps the
        // condition from flapping while logs rotate.
        Problem::DiskNearlyFull => (60, 10, 120, 300),
        Problem::KubeletCertificateInvalid => (300, 10, 0, 0),
        // The kubelet's Lease grace period is 40s; a shorter outage is the
        // API side's own business (a restart, a leader change).
        Problem::ApiServerUnreachable => (10, 10, 60, 60),
    };
    Timing {
        enabled: true,
        interval: Dur::from_secs(interval),
        timeout: Dur::from_secs(timeout),
        fail_for: Dur::from_secs(fail_for),
        ok_for: Dur::from_secs(ok_for),
    }
}

/// `skipWaitForDeleteTimeout` when a drain step does not set it: 30 s
/// past the pod's `deletionTimestamp` (which the API server sets to the
/// eviction time plus the grace period). It applies only while the findings
/// say the kubelet or runtime cannot finish the pod, so a longer wait proves
/// nothing more; README.md "Runbook reference" says why.
pub const DEFAULT_SKIP_WAIT_FOR_DELETE: Dur = Dur::from_secs(30);
/// The detected layout's unit is chosen first (`probe::layout`); these are the candidates.
pub const DEFAULT_RUNTIME_UNITS: [&str; 4] = [
    "containerd.service",
    "docker.service",
    "crio.service",
    "cri-docker.service",
];

/// The longest `report.message`.
pub(super) const MAX_REPORT_MESSAGE: usize = 1024;

/// The shortest timeout a probe or a step may have.
pub(super) const MIN_TIMEOUT: Dur = Dur::from_secs(1);

/// The running one is restarted, none is ever started (`act::timesync`).
pub const DEFAULT_TIME_SYNC_UNITS: [&str; 6] = [
    "chronyd.service",
    "chrony.service",
    "systemd-timesyncd.service",
    "ntpd.service",
    "ntp.service",
    "openntpd.service",
];

/// Whether `name` is a well-formed systemd unit name with a type suffix.
pub fn valid_unit_name(name: &str) -> bool {
    const SUFFIXES: [&str; 11] = [
        ".service",
        ".socket",
        ".target",
        ".timer",
        ".mount",
        ".path",
        ".scope",
        ".slice",
        ".device",
        ".swap",
        ".automount",
    ];
    let Some(suffix) = SUFFIXES.iter().find(|s| name.ends_with(*s)) else {
        return false;
    };
    let stem = &name[..name.len() - suffix.len()];
    !stem.is_empty()
        && name.len() <= 255
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":_.\\@-".contains(c))
}

pub(super) fn step_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !n.starts_with('-')
        && !n.ends_with('-')
}

pub fn validate(doc: RunbookDoc) -> (Option<Runbook>, Vec<Diagnostic>) {
    let mut cx = Ctx { diags: Vec::new() };

    if doc.api_version.value != API_VERSION {
        cx.err(
            at(&doc.api_version),
            format!(
                "apiVersion {:?} is not supported; expected {API_VERSION:?}",
                doc.api_version.value
            ),
        );
    }
    if doc.kind.value != KIND {
        cx.err(
            at(&doc.kind),
            format!(
                "kind {:?} is not supported; expected {KIND:?}",
                doc.kind.value
            ),
        );
    }
    let name = doc
        .metadata
        .as_ref()
        .and_then(|m| m.name.as_ref())
        .map(|n| n.value.clone())
        .unwrap_or_else(|| "unnamed".to_string());

    let probes = probes::probes(&mut cx, &doc.spec.probes);
    let steps = steps::steps(&mut cx, &doc.spec.steps, &probes);
    let safety = safety::safety(&mut cx, doc.spec.safety.unwrap_or_default());

    // Problems that are detected but have no step: only reported.
    for p in Problem::ALL {
        if probes.timing(p).enabled
            && !p.report_only()
            && !steps.iter().any(|s| s.when.contains(&p))
        {
            cx.warn(
                at(&doc.spec.steps),
                format!("{p} is detected but no step answers it: it will only be reported"),
            );
        }
    }
    if safety.reboots.max == 0
        && let Some(s) = steps.iter().find(|s| matches!(s.action, Action::Reboot(_)))
    {
        cx.warn(
            at(&doc.spec.steps),
            format!(
                "safety.reboots.max is 0: step {:?} will never run and episodes that reach it end exhausted",
                s.name
            ),
        );
    }

    let ok = !cx.diags.iter().any(|d| d.severity == Severity::Error);
    let rb = ok.then(|| Runbook {
        api_version: API_VERSION.to_string(),
        kind: KIND.to_string(),
        metadata: Metadata { name },
        spec: Spec {
            probes,
            steps,
            safety,
        },
    });
    (rb, cx.diags)
}

pub(super) fn check_unit(cx: &mut Ctx, s: &S<String>) {
    if !valid_unit_name(&s.value) {
        cx.err(
            at(s),
            format!(
                "{:?} is not a valid systemd unit name; expected a name with its type, like kubelet.service",
                s.value
            ),
        );
    }
}

pub(super) fn unit_list(cx: &mut Ctx, v: &Option<S<Vec<String>>>, def: &[&str]) -> Vec<String> {
    match v {
        None => def.iter().map(|s| s.to_string()).collect(),
        Some(list) => {
            if list.value.is_empty() {
                cx.err(at(list), "units must name at least one unit");
            }
            for u in &list.value {
                if !valid_unit_name(u) {
                    cx.err(
                        at(list),
                        format!("{u:?} is not a valid systemd unit name; expected e.g. containerd.service"),
                    );
                }
            }
            list.value.clone()
        }
    }
}
