//! Semantic validation: `schema::RunbookDoc` → `model::Runbook`.
//!
//! Every rule reports where it was broken (line, column) and what was
//! expected; all problems are collected, not just the first.

use std::collections::{BTreeMap, BTreeSet};

use serde_saphyr::Location;

use super::model::*;
use super::schema::*;
use super::units::{TIME_SYNC_UNITS, is_runtime_unit, is_time_sync_unit};
use super::{Diagnostic, Severity};
use crate::model::{Dur, Problem};

struct Ctx {
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

fn at<T>(s: &S<T>) -> Location {
    s.referenced
}

fn opt_dur(v: &Option<S<Dur>>, default: Dur) -> Dur {
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
const MAX_REPORT_MESSAGE: usize = 1024;

/// The shortest timeout a probe or a step may have.
const MIN_TIMEOUT: Dur = Dur::from_secs(1);

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

fn step_name_ok(n: &str) -> bool {
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

    let probes = probes(&mut cx, &doc.spec.probes);
    let steps = steps(&mut cx, &doc.spec.steps, &probes);
    let safety = safety(&mut cx, doc.spec.safety.unwrap_or_default());

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

fn probes(cx: &mut Ctx, docs: &BTreeMap<Problem, S<ProbeDoc>>) -> Probes {
    let empty = ProbeDoc::default();
    let get = |p: Problem| docs.get(&p).map(|s| &s.value).unwrap_or(&empty);
    let loc = |p: Problem| {
        docs.get(&p)
            .map(|s| s.referenced)
            .unwrap_or(Location::UNKNOWN)
    };

    let mut timing = BTreeMap::new();
    for p in Problem::ALL {
        let d = get(p);
        let def = default_timing(p);
        let t = Timing {
            enabled: d.enabled.unwrap_or(true),
            interval: opt_dur(&d.interval, def.interval),
            timeout: opt_dur(&d.timeout, def.timeout),
            fail_for: opt_dur(&d.fail_for, def.fail_for),
            ok_for: opt_dur(&d.ok_for, def.ok_for),
        };
        let iloc = d.interval.as_ref().map(at).unwrap_or(loc(p));
        let tloc = d.timeout.as_ref().map(at).unwrap_or(loc(p));
        if t.interval < Dur::from_secs(1) {
            cx.err(
                iloc,
                format!("{p}: interval {} is too short; at least 1s", t.interval),
            );
        }
        if t.interval > Dur::from_secs(24 * 3600) {
            cx.err(
                iloc,
                format!("{p}: interval {} is too long; at most 24h", t.interval),
            );
        }
        if t.timeout < MIN_TIMEOUT {
            cx.err(
                tloc,
                format!(
                    "{p}: timeout {} is too short; at least {MIN_TIMEOUT} (a probe that cannot finish would read as a sick node)",
                    t.timeout
                ),
            );
        } else if t.timeout > t.interval {
            cx.err(
                tloc,
                format!(
                    "{p}: timeout {} exceeds interval {}; a probe must finish before the next one is due",
                    t.timeout, t.interval
                ),
            );
        }
        // Fields that belong to another problem.
        let foreign: [(&str, Option<Location>, Problem); 12] = [
            (
                "healthzUrl",
                d.healthz_url.as_ref().map(at),
                Problem::KubeletUnhealthy,
            ),
            ("unit", d.unit.as_ref().map(at), Problem::KubeletUnhealthy),
            (
                "leaseStaleAfter",
                d.lease_stale_after.as_ref().map(at),
                Problem::KubeletUnhealthy,
            ),
            (
                "threshold",
                d.threshold.as_ref().map(at),
                Problem::PlegUnhealthy,
            ),
            ("window", d.window.as_ref().map(at), Problem::PlegUnhealthy),
            (
                "runtime",
                d.runtime.as_ref().map(at),
                Problem::ContainerRuntimeUnresponsive,
            ),
            (
                "dockerSocket",
                d.docker_socket.as_ref().map(at),
                Problem::ContainerRuntimeUnresponsive,
            ),
            (
                "containerdSocket",
                d.containerd_socket.as_ref().map(at),
                Problem::ContainerRuntimeUnresponsive,
            ),
            (
                "stuckFor",
                d.stuck_for.as_ref().map(at),
                Problem::ContainerRuntimeUnresponsive,
            ),
            ("maxSkew", d.max_skew.as_ref().map(at), Problem::ClockSkewed),
            (
                "minimums",
                d.minimums.as_ref().map(at),
                Problem::SystemdOutdated,
            ),
            ("", None, p),
        ];
        for (field, l, owner) in foreign {
            if let Some(l) = l
                && owner != p
            {
                cx.err(l, format!("{field} is a setting of {owner}, not of {p}"));
            }
        }
        timing.insert(p, t);
    }

    let k = get(Problem::KubeletUnhealthy);
    let healthz_url = k
        .healthz_url
        .as_ref()
        .map(|s| s.value.clone())
        .unwrap_or_else(|| "http://127.0.0.1:10248/healthz".into());
    if let Some(s) = &k.healthz_url
        && let Err(e) = crate::model::check_http_url(&s.value)
    {
        cx.err(
            at(s),
            format!("healthzUrl {e} (the kubelet's healthz is plain HTTP on loopback, like http://127.0.0.1:10248/healthz)"),
        );
    }
    let unit = k
        .unit
        .as_ref()
        .map(|s| s.value.clone())
        .unwrap_or_else(|| "kubelet.service".into());
    if let Some(s) = &k.unit {
        check_unit(cx, s);
    }
    let lease_stale_after = opt_dur(&k.lease_stale_after, Dur::from_secs(40));
    if let Some(s) = &k.lease_stale_after
        && s.value < Dur::from_secs(10)
    {
        cx.err(
            at(s),
            "leaseStaleAfter must be at least 10s (kubelet renews every 10s)",
        );
    }

    let pl = get(Problem::PlegUnhealthy);
    let threshold = opt_dur(&pl.threshold, Dur::from_secs(180));
    let window = opt_dur(&pl.window, Dur::from_secs(300));
    if let Some(s) = &pl.threshold
        && s.value < Dur::from_secs(10)
    {
        cx.err(
            at(s),
            "threshold must be at least 10s (kubelet's own default is 3m)",
        );
    }
    if window < timing[&Problem::PlegUnhealthy].interval {
        let l = pl
            .window
            .as_ref()
            .map(at)
            .unwrap_or(loc(Problem::PlegUnhealthy));
        cx.err(
            l,
            format!("window {window} is shorter than the probe interval: lines would be missed"),
        );
    }

    let r = get(Problem::ContainerRuntimeUnresponsive);
    let runtime = match r.runtime.as_ref().map(|s| s.value) {
        None | Some(RuntimeKindDoc::Auto) => RuntimeKind::Auto,
        Some(RuntimeKindDoc::Docker) => RuntimeKind::Docker,
        Some(RuntimeKindDoc::Containerd) => RuntimeKind::Containerd,
    };
    let mut sock = |v: &Option<S<String>>, def: &str| -> String {
        match v {
            Some(s) if !s.value.starts_with('/') => {
                cx.err(at(s), format!("socket path {:?} must be absolute", s.value));
                s.value.clone()
            }
            Some(s) => s.value.clone(),
            None => def.to_string(),
        }
    };
    let docker_socket = sock(&r.docker_socket, "/var/run/docker.sock");
    let containerd_socket = sock(&r.containerd_socket, "/run/containerd/containerd.sock");
    let stuck_for = opt_dur(&r.stuck_for, Dur::from_secs(120));

    let c = get(Problem::ClockSkewed);
    let max_skew = opt_dur(&c.max_skew, Dur::from_secs(5));
    if let Some(s) = &c.max_skew
        && s.value < Dur::from_secs(2)
    {
        cx.err(
            at(s),
            "maxSkew must be at least 2s: the API server's Date header has 1s resolution",
        );
    }

    let sd = get(Problem::SystemdOutdated);
    let minimums = match &sd.minimums {
        None => vec![
            // Only minimums behind a known, cited bug (README, runbook reference).
            SystemdMinimum {
                distro: "el7".into(),
                version: "219-67.el7".into(),
            },
        ],
        Some(list) => {
            let mut seen = BTreeSet::new();
            let mut out = Vec::new();
            for m in &list.value {
                if m.distro.value.trim().is_empty() {
                    cx.err(
                        at(&m.distro),
                        "distro must not be empty (use \"default\" for the fallback)",
                    );
                }
                if !seen.insert(m.distro.value.clone()) {
                    cx.err(
                        at(&m.distro),
                        format!("distro {:?} is listed twice", m.distro.value),
                    );
                }
                let v = &m.version.value;
                if v.trim().is_empty()
                    || !v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                {
                    cx.err(
                        at(&m.version),
                        format!("version {v:?} is not a package version"),
                    );
                }
                out.push(SystemdMinimum {
                    distro: m.distro.value.clone(),
                    version: m.version.value.clone(),
                });
            }
            out
        }
    };

    Probes {
        kubelet: KubeletProbe {
            timing: timing[&Problem::KubeletUnhealthy],
            healthz_url,
            unit,
            lease_stale_after,
        },
        pleg: PlegProbe {
            timing: timing[&Problem::PlegUnhealthy],
            threshold,
            window,
        },
        runtime: RuntimeProbe {
            timing: timing[&Problem::ContainerRuntimeUnresponsive],
            runtime,
            docker_socket,
            containerd_socket,
            stuck_for,
        },
        clock: ClockProbe {
            timing: timing[&Problem::ClockSkewed],
            max_skew,
        },
        systemd: SystemdProbe {
            timing: timing[&Problem::SystemdOutdated],
            minimums,
        },
    }
}

fn check_unit(cx: &mut Ctx, s: &S<String>) {
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

fn unit_list(cx: &mut Ctx, v: &Option<S<Vec<String>>>, def: &[&str]) -> Vec<String> {
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

fn steps(cx: &mut Ctx, docs: &S<Vec<StepDoc>>, probes: &Probes) -> Vec<Step> {
    if docs.value.is_empty() {
        cx.err(
            at(docs),
            "steps must not be empty: the ladder needs at least one step",
        );
    }
    let mut names: BTreeMap<String, Location> = BTreeMap::new();
    let mut out: Vec<Step> = Vec::new();
    for d in &docs.value {
        let name = d.name.value.clone();
        if !step_name_ok(&name) {
            cx.err(
                at(&d.name),
                format!("step name {name:?} must be 1-63 lowercase letters, digits or '-'"),
            );
        }
        if let Some(first) = names.get(&name) {
            cx.err(
                at(&d.name),
                format!(
                    "duplicate step name {name:?} (first used at line {})",
                    first.line()
                ),
            );
        } else {
            names.insert(name.clone(), at(&d.name));
        }
        let when: BTreeSet<Problem> = d.when.value.iter().copied().collect();
        if when.is_empty() {
            cx.err(
                at(&d.when),
                format!("step {name:?}: when must name at least one problem"),
            );
        }
        let skip_when: BTreeSet<Problem> = d.skip_when.iter().copied().collect();
        if let Some(p) = when.intersection(&skip_when).next() {
            cx.err(
                at(&d.when),
                format!("step {name:?}: {p} is in both when and skipWhen"),
            );
        }

        let (action, default_disruptive, default_verify) = action(cx, &name, &d.action);
        let kind = action.kind();
        if kind != ActionKind::Report
            && let Some(p) = when.iter().find(|p| p.report_only())
        {
            cx.err(
                at(&d.when),
                format!(
                    "step {name:?}: {p} is report-only: nodewarden never remediates it (no episode, no cordon, no weight in any storm gate), so only a report step may name it; schedule its fix with `nodewarden maintenance start`"
                ),
            );
        }
        let always_disruptive = matches!(kind, ActionKind::Drain | ActionKind::Reboot);
        let disruptive = match &d.disruptive {
            Some(s) if !s.value && always_disruptive => {
                cx.err(
                    at(s),
                    format!("step {name:?}: a {kind} is always disruptive"),
                );
                true
            }
            Some(s) if !s.value && kind == ActionKind::Exec => match &action {
                Action::Exec(Exec {
                    non_disruptive_because: Some(why),
                    ..
                }) => {
                    cx.warn(
                            at(s),
                            format!("step {name:?}: nodewarden cannot judge what a command does; this exec runs without cordon, disruption slot, storm gate or reboot cap because the runbook says: {why}"),
                        );
                    false
                }
                _ => {
                    cx.err(
                            at(s),
                            format!("step {name:?}: an exec step is disruptive unless the runbook says why it is not; add exec.nonDisruptiveBecause or remove disruptive: false"),
                        );
                    true
                }
            },
            Some(s) => {
                if !s.value && kind == ActionKind::RestartContainerRuntime {
                    cx.warn(
                        at(s),
                        format!("step {name:?}: restarting the container runtime kills every container's I/O; running it without cordon is risky"),
                    );
                }
                s.value
            }
            None => default_disruptive,
        };
        let cordon = match &d.cordon {
            Some(s) if !s.value && disruptive => {
                cx.err(
                    at(s),
                    format!(
                        "step {name:?} is disruptive and must cordon first; remove cordon: false"
                    ),
                );
                true
            }
            Some(s) => s.value,
            None => disruptive,
        };
        let verify = opt_dur(&d.verify, default_verify);
        // A step that is meant to fix something must wait long enough to see it fixed.
        if !matches!(kind, ActionKind::Drain | ActionKind::Report) {
            for p in &when {
                let t = probes.timing(*p);
                if !t.enabled {
                    continue;
                }
                let need = Dur::from_std(t.ok_for.std() + t.interval.std());
                if verify < need {
                    let l = d.verify.as_ref().map(at).unwrap_or(at(&d.name));
                    cx.err(
                        l,
                        format!(
                            "step {name:?}: verify {verify} is shorter than {p}'s okFor + interval ({need}); a fix could never be seen to work"
                        ),
                    );
                    break;
                }
            }
        }
        let cooldown = match &d.cooldown {
            Some(s)
                if !s.value.is_zero()
                    && !matches!(
                        kind,
                        ActionKind::RestartUnit
                            | ActionKind::RestartContainerRuntime
                            | ActionKind::RestartTimeSync
                    ) =>
            {
                cx.err(
                    at(s),
                    format!("step {name:?}: cooldown applies only to unit restarts"),
                );
                Dur::ZERO
            }
            Some(s) => s.value,
            None => match kind {
                ActionKind::RestartUnit | ActionKind::RestartTimeSync => Dur::from_secs(60),
                ActionKind::RestartContainerRuntime => Dur::from_secs(120),
                _ => Dur::ZERO,
            },
        };
        let max_per = d.max_per.as_ref().map(|r| {
            if r.value.count == 0 {
                cx.err(
                    at(r),
                    format!("step {name:?}: maxPer.count must be at least 1"),
                );
            }
            if r.value.window.is_zero() {
                cx.err(
                    at(r),
                    format!("step {name:?}: maxPer.window must be longer than 0s"),
                );
            }
            Rate {
                count: r.value.count,
                window: r.value.window,
            }
        });

        // A reboot must come after a drain for the same problems.
        if kind == ActionKind::Reboot {
            for p in &when {
                let drained = out
                    .iter()
                    .any(|s| s.action.kind() == ActionKind::Drain && s.when.contains(p));
                if !drained {
                    cx.err(
                        at(&d.name),
                        format!(
                            "step {name:?} reboots for {p} but no earlier drain step answers {p}: pods would be killed without eviction; put a drain step before it"
                        ),
                    );
                }
            }
        }

        out.push(Step {
            name,
            when,
            skip_when,
            action,
            disruptive,
            cordon,
            verify,
            cooldown,
            max_per,
        });
    }
    out
}

/// Returns the action, whether it is disruptive by default, and its default verify window.
fn action(cx: &mut Ctx, step: &str, a: &S<ActionDoc>) -> (Action, bool, Dur) {
    let secs = Dur::from_secs;
    match &a.value {
        ActionDoc::RestartUnit(r) => {
            check_unit(cx, &r.unit);
            let u = r.unit.value.as_str();
            if valid_unit_name(u) && !u.ends_with(".service") {
                cx.err(
                    at(&r.unit),
                    format!("step {step:?}: restartUnit restarts services only; {u:?} is not a .service unit (a target like reboot.target would act without any safety gate)"),
                );
            } else if is_runtime_unit(u) {
                cx.err(
                    at(&r.unit),
                    format!("step {step:?}: {u:?} is the container runtime; restart it with restartContainerRuntime, which cordons and takes a disruption slot first"),
                );
            } else if is_time_sync_unit(u) {
                cx.err(
                    at(&r.unit),
                    format!("step {step:?}: {u:?} is a time-sync daemon; restart it with restartTimeSync"),
                );
            }
            let timeout = opt_dur(&r.timeout, secs(120));
            positive(cx, step, &r.timeout);
            (
                Action::RestartUnit(RestartUnit {
                    unit: r.unit.value.clone(),
                    timeout,
                }),
                false,
                secs(220),
            )
        }
        ActionDoc::RestartContainerRuntime(r) => {
            positive(cx, step, &r.timeout);
            if let Some(list) = &r.units {
                for u in list.value.iter().filter(|u| valid_unit_name(u)) {
                    if !u.ends_with(".service") {
                        cx.err(
                            at(list),
                            format!("step {step:?}: {u:?} is not a .service unit; a container runtime is a service"),
                        );
                    } else if is_time_sync_unit(u) || u == "kubelet.service" {
                        cx.err(
                            at(list),
                            format!("step {step:?}: {u:?} is not a container runtime; restart it with the action meant for it"),
                        );
                    }
                }
            }
            (
                Action::RestartContainerRuntime(RestartRuntime {
                    units: unit_list(cx, &r.units, &DEFAULT_RUNTIME_UNITS),
                    diagnostics: r.diagnostics.unwrap_or(true),
                    timeout: opt_dur(&r.timeout, secs(180)),
                }),
                true,
                secs(220),
            )
        }
        ActionDoc::RestartTimeSync(r) => {
            positive(cx, step, &r.timeout);
            if let Some(list) = &r.units {
                for u in list.value.iter().filter(|u| valid_unit_name(u)) {
                    if !is_time_sync_unit(u) {
                        cx.err(
                            at(list),
                            format!(
                                "step {step:?}: {u:?} is not a time-sync daemon; restartTimeSync restarts only {}",
                                TIME_SYNC_UNITS.join(", ")
                            ),
                        );
                    }
                }
            }
            (
                Action::RestartTimeSync(RestartTimeSync {
                    units: unit_list(cx, &r.units, &DEFAULT_TIME_SYNC_UNITS),
                    timeout: opt_dur(&r.timeout, secs(60)),
                }),
                false,
                secs(600),
            )
        }
        ActionDoc::Drain(d) => {
            positive(cx, step, &d.timeout);
            let concurrency = d.concurrency.as_ref().map(|c| c.value).unwrap_or(10);
            if let Some(c) = &d.concurrency
                && !(1..=100).contains(&c.value)
            {
                cx.err(
                    at(c),
                    format!("step {step:?}: drain concurrency must be 1..=100"),
                );
            }
            (
                Action::Drain(Drain {
                    mode: match d.mode {
                        None | Some(DrainModeDoc::Evict) => DrainMode::Evict,
                        Some(DrainModeDoc::Request) => DrainMode::Request,
                    },
                    timeout: opt_dur(&d.timeout, secs(600)),
                    delete_empty_dir_data: d.delete_empty_dir_data.unwrap_or(true),
                    force: d.force.unwrap_or(false),
                    ignore_daemon_sets: d.ignore_daemon_sets.unwrap_or(true),
                    grace_period: opt_dur(&d.grace_period, Dur::ZERO),
                    delete_after_deadline: d.delete_after_deadline.unwrap_or(false),
                    skip_wait_for_delete_timeout: opt_dur(
                        &d.skip_wait_for_delete_timeout,
                        DEFAULT_SKIP_WAIT_FOR_DELETE,
                    ),
                    concurrency,
                }),
                true,
                secs(30),
            )
        }
        ActionDoc::Reboot(r) => {
            positive(cx, step, &r.timeout);
            (
                Action::Reboot(Reboot {
                    timeout: opt_dur(&r.timeout, secs(900)),
                }),
                true,
                secs(600),
            )
        }
        ActionDoc::Exec(e) => {
            positive(cx, step, &e.timeout);
            match e.argv.value.first() {
                None => cx.err(at(&e.argv), format!("step {step:?}: exec argv must not be empty")),
                Some(p) if !p.starts_with('/') => cx.err(
                    at(&e.argv),
                    format!("step {step:?}: exec argv[0] {p:?} must be an absolute path (no shell, no PATH lookup)"),
                ),
                Some(_) => {}
            }
            if let Some(i) = e.argv.value.iter().position(|a| a.contains('\0')) {
                cx.err(
                    at(&e.argv),
                    format!("step {step:?}: exec argv[{i}] contains a NUL byte, which no program can receive"),
                );
            }
            if let Some(r) = &e.non_disruptive_because
                && r.value.trim().is_empty()
            {
                cx.err(
                    at(r),
                    format!(
                        "step {step:?}: nonDisruptiveBecause must say why the command is harmless"
                    ),
                );
            }
            (
                Action::Exec(Exec {
                    argv: e.argv.value.clone(),
                    timeout: opt_dur(&e.timeout, secs(600)),
                    non_disruptive_because: e
                        .non_disruptive_because
                        .as_ref()
                        .map(|r| r.value.clone()),
                }),
                true,
                secs(300),
            )
        }
        ActionDoc::Report(r)
            if r.message
                .as_ref()
                .is_some_and(|m| m.len() > MAX_REPORT_MESSAGE) =>
        {
            cx.err(
                at(a),
                format!(
                    "step {step:?}: the report message is {} bytes; at most {MAX_REPORT_MESSAGE} (it goes into Events and the ledger)",
                    r.message.as_ref().map(|m| m.len()).unwrap_or(0)
                ),
            );
            (Action::Report(Report { message: None }), false, Dur::ZERO)
        }
        ActionDoc::Report(r) => (
            Action::Report(Report {
                message: r.message.clone(),
            }),
            false,
            Dur::ZERO,
        ),
    }
}

fn positive(cx: &mut Ctx, step: &str, d: &Option<S<Dur>>) {
    if let Some(s) = d
        && s.value < MIN_TIMEOUT
    {
        cx.err(
            at(s),
            format!(
                "step {step:?}: timeout {} is too short; at least {MIN_TIMEOUT}",
                s.value
            ),
        );
    }
}

fn safety(cx: &mut Ctx, d: SafetyDoc) -> Safety {
    let max_concurrent_disruptions = match &d.max_concurrent_disruptions {
        Some(s) if s.value == 0 || s.value > 1000 => {
            cx.err(at(s), "maxConcurrentDisruptions must be 1..=1000");
            1
        }
        Some(s) => s.value,
        None => 1,
    };
    let disruption_lease_duration = opt_dur(&d.disruption_lease_duration, Dur::from_secs(600));
    if let Some(s) = &d.disruption_lease_duration
        && s.value < Dur::from_secs(60)
    {
        cx.err(at(s), "disruptionLeaseDuration must be at least 1m");
    }
    let sg = d.storm_gate.unwrap_or_default();
    let max_unhealthy_percent = match &sg.max_unhealthy_percent {
        Some(s) if s.value > 100 => {
            cx.err(
                at(s),
                format!("maxUnhealthyPercent {} must be 0..=100", s.value),
            );
            20
        }
        Some(s) => s.value,
        None => 20,
    };
    let require_api_for_disruptive = match &d.require_api_for_disruptive {
        Some(s) if !s.value => {
            cx.err(
                at(s),
                "requireApiForDisruptive: false is not supported in v1alpha1: a disruptive step needs the API to cordon and to hold a disruption slot",
            );
            true
        }
        _ => true,
    };
    let mut blackouts = Vec::new();
    for b in d.blackouts {
        let mut days = Vec::new();
        for s in &b.days.value {
            match s.as_str() {
                "daily" | "*" => days.extend(Weekday::ALL),
                "weekdays" => days.extend(&Weekday::ALL[..5]),
                "weekends" => days.extend(&Weekday::ALL[5..]),
                other => match Weekday::parse(other) {
                    Some(w) => days.push(w),
                    None => cx.err(
                        at(&b.days),
                        format!(
                            "{other:?} is not a day; expected Mon..Sun, weekdays, weekends or daily"
                        ),
                    ),
                },
            }
        }
        days.sort();
        days.dedup();
        if days.is_empty() {
            cx.err(at(&b.days), "a blackout needs at least one day");
        }
        let from = hhmm(cx, &b.from);
        let to = hhmm(cx, &b.to);
        if from == to {
            cx.err(at(&b.to), "a blackout's from and to must differ");
        }
        let tz_name = b
            .time_zone
            .as_ref()
            .map(|s| s.value.clone())
            .unwrap_or_else(|| "UTC".into());
        let tz = match jiff::tz::TimeZone::get(&tz_name) {
            Ok(tz) => tz,
            Err(_) => {
                let l = b.time_zone.as_ref().map(at).unwrap_or(at(&b.from));
                cx.err(
                    l,
                    format!(
                        "unknown time zone {tz_name:?}; expected an IANA name like Europe/Berlin"
                    ),
                );
                jiff::tz::TimeZone::UTC
            }
        };
        blackouts.push(Blackout {
            name: b.name,
            days,
            from,
            to,
            time_zone: tz_name,
            tz,
        });
    }
    let reboots = match d.reboots {
        Some(r) => {
            if r.window.value.is_zero() {
                cx.err(at(&r.window), "reboots.window must be longer than 0s");
            }
            if r.max.value > 100 {
                cx.err(at(&r.max), "reboots.max must be 0..=100");
            }
            RebootCap {
                max: r.max.value,
                window: r.window.value,
            }
        }
        None => RebootCap {
            max: 1,
            window: Dur::from_secs(6 * 3600),
        },
    };
    let ox = d.on_exhausted.unwrap_or_default();
    Safety {
        max_concurrent_disruptions,
        disruption_lease_duration,
        storm_gate: StormGate {
            max_unhealthy_percent,
            max_unhealthy_nodes: sg.max_unhealthy_nodes.map(|s| s.value),
        },
        require_api_for_disruptive,
        blackouts,
        reboots,
        on_exhausted: OnExhausted {
            stay_cordoned: ox.stay_cordoned.unwrap_or(true),
            uncordon_on_recovery: ox.uncordon_on_recovery.unwrap_or(false),
        },
    }
}

fn hhmm(cx: &mut Ctx, s: &S<String>) -> u16 {
    // Exactly two digits each: "+9:00" or " 9:00" is not a time of day.
    let two_digits = |x: &str| x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit());
    let parsed = s.value.split_once(':').and_then(|(h, m)| {
        if !two_digits(h) || !two_digits(m) {
            return None;
        }
        let h: u16 = h.parse().ok()?;
        let m: u16 = m.parse().ok()?;
        (h < 24 && m < 60).then_some(h * 60 + m)
    });
    match parsed {
        Some(v) => v,
        None if s.value == "24:00" => 24 * 60,
        None => {
            cx.err(
                at(s),
                format!(
                    "{:?} is not a time of day; expected HH:MM, like 09:00",
                    s.value
                ),
            );
            0
        }
    }
}
