//! `spec.probes`: each problem's timing and its own settings. A field of
//! another problem never gets here: each problem has its own schema type,
//! so the parser rejects it as an unknown field, with its position.

use std::collections::BTreeSet;

use crate::yaml::Location;

use super::super::model::*;
use super::super::schema::*;
use super::*;
use crate::domain::{Dur, Problem};

/// The common timing of `doc` (or the defaults when the problem is not
/// listed), checked against the rules every probe shares.
fn timing<D: ProbeDoc>(cx: &mut Ctx, p: Problem, doc: Option<&S<D>>) -> Timing {
    let def = default_timing(p);
    let Some(doc) = doc else {
        return def;
    };
    let loc = doc.referenced;
    let d = doc.value.common();
    let dur = |v: Option<&S<Dur>>, default: Dur| v.map(|s| s.value).unwrap_or(default);
    let t = Timing {
        enabled: d.enabled.unwrap_or(def.enabled),
        interval: dur(d.interval, def.interval),
        timeout: dur(d.timeout, def.timeout),
        fail_for: dur(d.fail_for, def.fail_for),
        ok_for: dur(d.ok_for, def.ok_for),
    };
    let iloc = d.interval.map(at).unwrap_or(loc);
    let tloc = d.timeout.map(at).unwrap_or(loc);
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
    t
}

fn loc_of<T>(doc: Option<&S<T>>) -> Location {
    doc.map(|s| s.referenced).unwrap_or(Location::UNKNOWN)
}

pub(super) fn probes(cx: &mut Ctx, docs: &ProbesDoc) -> Probes {
    Probes {
        kubelet: kubelet(cx, docs.kubelet.as_ref()),
        pleg: pleg(cx, docs.pleg.as_ref()),
        runtime: runtime(cx, docs.runtime.as_ref()),
        clock: clock(cx, docs.clock.as_ref()),
        systemd: systemd(cx, docs.systemd.as_ref()),
        swap: SwapProbe {
            timing: timing(cx, Problem::SwapOn, docs.swap.as_ref()),
        },
        kernel: kernel(cx, docs.kernel.as_ref()),
        cgroup: cgroup(cx, docs.cgroup.as_ref()),
        disk: disk(cx, docs.disk.as_ref()),
        certificate: certificate(cx, docs.certificate.as_ref()),
        api_server: api_server(cx, docs.api_server.as_ref()),
    }
}

fn api_server(cx: &mut Ctx, doc: Option<&S<ApiServerDoc>>) -> ApiServerProbe {
    ApiServerProbe {
        timing: timing(cx, Problem::ApiServerUnreachable, doc),
    }
}

fn path_setting(cx: &mut Ctx, v: Option<&S<String>>, def: &str, what: &str) -> String {
    match v {
        Some(s) if !s.value.starts_with('/') => {
            cx.err(
                at(s),
                format!("{what} {:?} must be an absolute path", s.value),
            );
            s.value.clone()
        }
        Some(s) => s.value.clone(),
        None => def.to_string(),
    }
}

fn kubelet(cx: &mut Ctx, doc: Option<&S<KubeletDoc>>) -> KubeletProbe {
    let timing = timing(cx, Problem::KubeletUnhealthy, doc);
    let k = doc.map(|s| &s.value);
    let healthz = k.and_then(|k| k.healthz_url.as_ref());
    if let Some(s) = healthz
        && let Err(e) = crate::domain::check_http_url(&s.value)
    {
        cx.err(
            at(s),
            format!("healthzUrl {e} (the kubelet's healthz is plain HTTP on loopback, like http://127.0.0.1:10248/healthz)"),
        );
    }
    let unit = k.and_then(|k| k.unit.as_ref());
    if let Some(s) = unit {
        check_unit(cx, s);
    }
    let lease = k.and_then(|k| k.lease_stale_after.as_ref());
    if let Some(s) = lease
        && s.value < Dur::from_secs(10)
    {
        cx.err(
            at(s),
            "leaseStaleAfter must be at least 10s (kubelet renews every 10s)",
        );
    }
    KubeletProbe {
        timing,
        healthz_url: healthz
            .map(|s| s.value.clone())
            .unwrap_or_else(|| "http://127.0.0.1:10248/healthz".into()),
        unit: unit
            .map(|s| s.value.clone())
            .unwrap_or_else(|| "kubelet.service".into()),
        lease_stale_after: lease.map(|s| s.value).unwrap_or(Dur::from_secs(40)),
    }
}

fn pleg(cx: &mut Ctx, doc: Option<&S<PlegDoc>>) -> PlegProbe {
    let timing = timing(cx, Problem::PlegUnhealthy, doc);
    let pl = doc.map(|s| &s.value);
    let th = pl.and_then(|p| p.threshold.as_ref());
    let win = pl.and_then(|p| p.window.as_ref());
    if let Some(s) = th
        && s.value < Dur::from_secs(10)
    {
        cx.err(
            at(s),
            "threshold must be at least 10s (kubelet's own default is 3m)",
        );
    }
    let threshold = th.map(|s| s.value).unwrap_or(Dur::from_secs(180));
    let window = win.map(|s| s.value).unwrap_or(Dur::from_secs(300));
    if window < timing.interval {
        let l = win.map(at).unwrap_or(loc_of(doc));
        cx.err(
            l,
            format!("window {window} is shorter than the probe interval: lines would be missed"),
        );
    }
    PlegProbe {
        timing,
        threshold,
        window,
    }
}

fn runtime(cx: &mut Ctx, doc: Option<&S<RuntimeDoc>>) -> RuntimeProbe {
    let timing = timing(cx, Problem::ContainerRuntimeUnresponsive, doc);
    let r = doc.map(|s| &s.value);
    let runtime = match r.and_then(|r| r.runtime.as_ref()).map(|s| s.value) {
        None | Some(RuntimeKindDoc::Auto) => RuntimeKind::Auto,
        Some(RuntimeKindDoc::Docker) => RuntimeKind::Docker,
        Some(RuntimeKindDoc::Containerd) => RuntimeKind::Containerd,
    };
    let mut sock = |v: Option<&S<String>>, def: &str| -> String {
        match v {
            Some(s) if !s.value.starts_with('/') => {
                cx.err(at(s), format!("socket path {:?} must be absolute", s.value));
                s.value.clone()
            }
            Some(s) => s.value.clone(),
            None => def.to_string(),
        }
    };
    let docker_socket = sock(
        r.and_then(|r| r.docker_socket.as_ref()),
        "/var/run/docker.sock",
    );
    let containerd_socket = sock(
        r.and_then(|r| r.containerd_socket.as_ref()),
        "/run/containerd/containerd.sock",
    );
    RuntimeProbe {
        timing,
        runtime,
        docker_socket,
        containerd_socket,
        stuck_for: r
            .and_then(|r| r.stuck_for.as_ref())
            .map(|s| s.value)
            .unwrap_or(Dur::from_secs(120)),
    }
}

fn clock(cx: &mut Ctx, doc: Option<&S<ClockDoc>>) -> ClockProbe {
    let timing = timing(cx, Problem::ClockSkewed, doc);
    let ms = doc.and_then(|s| s.value.max_skew.as_ref());
    if let Some(s) = ms
        && s.value < Dur::from_secs(2)
    {
        cx.err(
            at(s),
            "maxSkew must be at least 2s: the API server's Date header has 1s resolution",
        );
    }
    ClockProbe {
        timing,
        max_skew: ms.map(|s| s.value).unwrap_or(Dur::from_secs(5)),
    }
}

fn systemd(cx: &mut Ctx, doc: Option<&S<SystemdDoc>>) -> SystemdProbe {
    let timing = timing(cx, Problem::SystemdOutdated, doc);
    let minimums = match doc.and_then(|s| s.value.minimums.as_ref()) {
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
    SystemdProbe { timing, minimums }
}

/// kubeadm's preflight (`SystemVerification`/`FileContent--proc-sys-net-…`)
/// requires these; the seed's setup (004) sets them in `/etc/sysctl.d/k8s.conf`.
pub const DEFAULT_SYSCTLS: [(&str, &str); 3] = [
    ("net.bridge.bridge-nf-call-iptables", "1"),
    ("net.bridge.bridge-nf-call-ip6tables", "1"),
    ("net.ipv4.ip_forward", "1"),
];

/// A sysctl name as `/proc/sys` spells it with dots: components of letters,
/// digits, `_` and `-`; nothing that could leave `/proc/sys`.
fn sysctl_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 255
        && n.split('.').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

fn kernel(cx: &mut Ctx, doc: Option<&S<KernelDoc>>) -> KernelProbe {
    let timing = timing(cx, Problem::KernelPrerequisitesMissing, doc);
    let sysctls = match doc.and_then(|s| s.value.sysctls.as_ref()) {
        None => DEFAULT_SYSCTLS
            .iter()
            .map(|(n, v)| Sysctl {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        Some(list) => {
            if list.value.is_empty() && timing.enabled {
                cx.err(
                    at(list),
                    "sysctls must name at least one sysctl (or set enabled: false)",
                );
            }
            let mut seen = BTreeSet::new();
            let mut out = Vec::new();
            for s in &list.value {
                let n = &s.name.value;
                if !sysctl_name_ok(n) {
                    cx.err(
                        at(&s.name),
                        format!("{n:?} is not a sysctl name; expected dotted words like net.ipv4.ip_forward"),
                    );
                } else if !seen.insert(n.clone()) {
                    cx.err(at(&s.name), format!("sysctl {n:?} is listed twice"));
                }
                let v = s.value.value.trim();
                if v.is_empty() || v.contains('\n') {
                    cx.err(
                        at(&s.value),
                        format!("sysctl {n:?}: the value must be one non-empty line"),
                    );
                }
                out.push(Sysctl {
                    name: n.clone(),
                    value: v.to_string(),
                });
            }
            out
        }
    };
    KernelProbe { timing, sysctls }
}

fn cgroup(cx: &mut Ctx, doc: Option<&S<CgroupDoc>>) -> CgroupProbe {
    let timing = timing(cx, Problem::CgroupDriverMismatch, doc);
    let c = doc.map(|s| &s.value);
    CgroupProbe {
        timing,
        containerd_config: path_setting(
            cx,
            c.and_then(|c| c.containerd_config.as_ref()),
            "/etc/containerd/config.toml",
            "containerdConfig",
        ),
        crio_config: path_setting(
            cx,
            c.and_then(|c| c.crio_config.as_ref()),
            "/etc/crio/crio.conf",
            "crioConfig",
        ),
    }
}

/// The kubelet's `nodefs`: its root directory, and the logs beside it.
pub const DEFAULT_NODEFS_PATHS: [&str; 2] = ["/var/lib/kubelet", "/var/log"];
/// The runtimes' roots (`imagefs` when on a filesystem of their own).
pub const DEFAULT_IMAGEFS_PATHS: [&str; 3] = [
    "/var/lib/containerd",
    "/var/lib/docker",
    "/var/lib/containers",
];

fn path_list(cx: &mut Ctx, v: Option<&S<Vec<String>>>, def: &[&str], what: &str) -> Vec<String> {
    match v {
        None => def.iter().map(|s| s.to_string()).collect(),
        Some(list) => {
            for p in &list.value {
                if !p.starts_with('/') {
                    cx.err(at(list), format!("{what}: {p:?} must be an absolute path"));
                }
            }
            list.value.clone()
        }
    }
}

fn disk(cx: &mut Ctx, doc: Option<&S<DiskDoc>>) -> DiskProbe {
    let timing = timing(cx, Problem::DiskNearlyFull, doc);
    let d = doc.map(|s| &s.value);
    let margin = d.and_then(|d| d.margin_percent.as_ref());
    if let Some(m) = margin
        && m.value > 50
    {
        cx.err(
            at(m),
            format!("marginPercent {} must be 0..=50 (percentage points above the kubelet's eviction threshold)", m.value),
        );
    }
    let nodefs_paths = path_list(
        cx,
        d.and_then(|d| d.nodefs_paths.as_ref()),
        &DEFAULT_NODEFS_PATHS,
        "nodefsPaths",
    );
    let imagefs_paths = path_list(
        cx,
        d.and_then(|d| d.imagefs_paths.as_ref()),
        &DEFAULT_IMAGEFS_PATHS,
        "imagefsPaths",
    );
    if nodefs_paths.is_empty() && imagefs_paths.is_empty() && timing.enabled {
        cx.err(
            loc_of(doc),
            "DiskNearlyFull: nodefsPaths and imagefsPaths are both empty; nothing would be checked (set enabled: false instead)",
        );
    }
    DiskProbe {
        timing,
        nodefs_paths,
        imagefs_paths,
        margin_percent: margin.map(|m| m.value).unwrap_or(5),
    }
}

fn certificate(cx: &mut Ctx, doc: Option<&S<CertificateDoc>>) -> CertificateProbe {
    let timing = timing(cx, Problem::KubeletCertificateInvalid, doc);
    let c = doc.map(|s| &s.value);
    let warn = c.and_then(|c| c.warn_days.as_ref());
    let fail = c.and_then(|c| c.fail_days.as_ref());
    let warn_days = warn.map(|s| s.value).unwrap_or(30);
    let fail_days = fail.map(|s| s.value).unwrap_or(7);
    if fail_days > warn_days {
        let l = fail.or(warn).map(at).unwrap_or(loc_of(doc));
        cx.err(
            l,
            format!("failDays {fail_days} is more than warnDays {warn_days}: the warning would never come first"),
        );
    }
    if warn_days > 3650 {
        let l = warn.map(at).unwrap_or(loc_of(doc));
        cx.err(l, "warnDays must be at most 3650");
    }
    CertificateProbe {
        timing,
        // unset: where the kubelet's own invocation says (probe/kubecert/paths.rs)
        client_cert: c
            .and_then(|c| c.client_cert.as_ref())
            .map(|v| path_setting(cx, Some(v), "", "clientCert")),
        serving_cert: c
            .and_then(|c| c.serving_cert.as_ref())
            .map(|v| path_setting(cx, Some(v), "", "servingCert")),
        warn_days,
        fail_days,
        csr_pending_for: c
            .and_then(|c| c.csr_pending_for.as_ref())
            .map(|s| s.value)
            .unwrap_or(Dur::from_secs(600)),
        csr_interval: match c.and_then(|c| c.csr_interval.as_ref()) {
            Some(s) if s.value < Dur::from_secs(60) => {
                cx.err(
                    at(s),
                    format!(
                        "csrInterval {} is less than 1m: every agent of a troubled fleet would list every CSR of the cluster that often",
                        s.value
                    ),
                );
                s.value
            }
            Some(s) => s.value,
            None => Dur::from_secs(600),
        },
    }
}
