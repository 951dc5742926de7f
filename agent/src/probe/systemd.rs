//! Outdated systemd: `Manager.Version` over D-Bus, the distro family from os-release, the
//! package version (dpkg's database, or `rpm -q` under a deadline), and the runbook's
//! `minimums` (the entry for this distro family, else `default`).
//!
//! A distro entry compares the package version in the distro's own ordering (rpm or dpkg);
//! `default` compares the systemd major version (`252` of `252.33-1~deb12u1`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::domain::{Problem, Timestamp};
use crate::health::{Observation, Verdict};
use crate::host::systemd::{Systemd, SystemdError};
use crate::runbook::{SystemdMinimum, SystemdProbe as Settings};

use super::io;
use super::version::{self, Scheme};
use super::{Probe, ProbeFuture, budget, elapsed_since};

/// `/etc/os-release` as key → value (quotes and escapes removed).
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            let inner = &v[1..v.len() - 1];
            let mut out = String::with_capacity(inner.len());
            let mut esc = false;
            for c in inner.chars() {
                if esc {
                    out.push(c);
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else {
                    out.push(c);
                }
            }
            out
        } else {
            v.to_string()
        };
        m.insert(k.trim().to_string(), v);
    }
    m
}

/// The distro as the runbook names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distro {
    /// `el7`, `el8`, `el9`, `fedora`, `amzn2`, `debian`, `ubuntu`, `suse`, or the raw `ID`.
    pub family: String,
    pub scheme: Option<Scheme>,
    pub pretty: String,
}

/// Map os-release to a distro family: EL clones by `ID`/`ID_LIKE` (`rhel`, `centos`,
/// `fedora`) and the major of `VERSION_ID`; Debian and Ubuntu and their derivatives by
/// `ID`/`ID_LIKE`.
pub fn distro(os: &BTreeMap<String, String>) -> Distro {
    let id = os
        .get("ID")
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    let like: Vec<String> = os
        .get("ID_LIKE")
        .map(|s| {
            s.split_whitespace()
                .map(|w| w.to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    let version = os.get("VERSION_ID").cloned().unwrap_or_default();
    let major = version.split('.').next().unwrap_or("").to_string();
    let is = |x: &str| id == x || like.iter().any(|l| l == x);
    let pretty = os
        .get("PRETTY_NAME")
        .cloned()
        .unwrap_or_else(|| format!("{id} {version}"));
    let (family, scheme) = if id == "amzn" {
        (format!("amzn{major}"), Some(Scheme::Rpm))
    } else if id == "fedora" {
        ("fedora".to_string(), Some(Scheme::Rpm))
    } else if is("rhel") || is("centos") || is("fedora") {
        (format!("el{major}"), Some(Scheme::Rpm))
    } else if id == "ubuntu" || (id != "debian" && is("ubuntu")) {
        ("ubuntu".to_string(), Some(Scheme::Dpkg))
    } else if is("debian") {
        ("debian".to_string(), Some(Scheme::Dpkg))
    } else if is("suse") || id.starts_with("opensuse") || id == "sles" {
        ("suse".to_string(), Some(Scheme::Rpm))
    } else {
        (id, None)
    };
    Distro {
        family,
        scheme,
        pretty,
    }
}

/// The installed version of `package` in dpkg's status database.
pub fn dpkg_installed_version(status: &str, package: &str) -> Option<String> {
    for para in status.split("\n\n") {
        let mut name = None;
        let mut installed = false;
        let mut ver = None;
        for line in para.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status:") {
                installed = v.trim().ends_with(" installed");
            } else if let Some(v) = line.strip_prefix("Version:") {
                ver = Some(v.trim());
            }
        }
        if name == Some(package) && installed {
            return ver.map(str::to_string);
        }
    }
    None
}

/// The highest version `rpm -q --qf '%{EPOCH}:%{VERSION}-%{RELEASE}\n'` printed (one line per
/// installed instance; `(none):` means no epoch).
pub fn rpm_query_version(out: &str) -> Option<String> {
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("not installed"))
        .map(|l| l.strip_prefix("(none):").unwrap_or(l).to_string())
        .max_by(|a, b| version::rpm_evr_cmp(a, b))
}

/// What was found, for the verdict.
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub manager: Option<String>,
    pub distro: Option<Distro>,
    pub package: Option<String>,
}

/// The verdict for what was found against the minimums (pure, for tests).
/// Returns (verdict, summary, the minimum applied).
pub fn judge(found: &Found, minimums: &[SystemdMinimum]) -> (Verdict, String, Option<String>) {
    let family = found.distro.as_ref().map(|d| d.family.as_str());
    let entry = family
        .and_then(|f| minimums.iter().find(|m| m.distro.eq_ignore_ascii_case(f)))
        .map(|m| (m, false))
        .or_else(|| {
            minimums
                .iter()
                .find(|m| m.distro == "default")
                .map(|m| (m, true))
        });
    let Some((min, is_default)) = entry else {
        return (
            Verdict::Healthy,
            format!(
                "no minimum for {} and no default in the runbook",
                family.unwrap_or("this distro")
            ),
            None,
        );
    };
    let applied = Some(format!("{}: {}", min.distro, min.version));
    if !is_default {
        let scheme = found.distro.as_ref().and_then(|d| d.scheme);
        match (&found.package, scheme) {
            (Some(pkg), Some(scheme)) => {
                let ord = scheme.compare(pkg, &min.version);
                if ord.is_lt() {
                    return (
                        Verdict::Failing,
                        format!(
                            "systemd package {pkg} is older than the {} minimum {}",
                            min.distro, min.version
                        ),
                        applied,
                    );
                }
                return (
                    Verdict::Healthy,
                    format!(
                        "systemd package {pkg} meets the {} minimum {}",
                        min.distro, min.version
                    ),
                    applied,
                );
            }
            _ => {
                return (
                    Verdict::Unknown,
                    format!(
                        "the {} minimum {} needs the systemd package version, which could not be read",
                        min.distro, min.version
                    ),
                    applied,
                );
            }
        }
    }
    let have = found
        .manager
        .as_deref()
        .and_then(version::major)
        .or_else(|| found.package.as_deref().and_then(version::major));
    match (have, version::major(&min.version)) {
        (Some(h), Some(m)) if h < m => (
            Verdict::Failing,
            format!("systemd {h} is older than the default minimum {m}"),
            applied,
        ),
        (Some(h), Some(m)) => (
            Verdict::Healthy,
            format!("systemd {h} meets the default minimum {m}"),
            applied,
        ),
        (None, _) => (
            Verdict::Unknown,
            "the systemd version could not be read".into(),
            applied,
        ),
        (_, None) => (
            Verdict::Unknown,
            format!(
                "the default minimum {:?} has no major version number",
                min.version
            ),
            applied,
        ),
    }
}

/// The outdated-systemd probe.
pub struct SystemdCheck {
    pub settings: Settings,
    pub systemd: Arc<dyn Systemd>,
    pub os_release: PathBuf,
    pub dpkg_status: PathBuf,
    pub rpm: PathBuf,
    /// Run `rpm` chrooted into this directory (the host's rpm on the host's database,
    /// `--host-root`).
    pub host_root: Option<PathBuf>,
}

impl SystemdCheck {
    async fn read_os_release(&self) -> Result<String, String> {
        match tokio::fs::read_to_string(&self.os_release).await {
            Ok(s) => Ok(s),
            Err(e) if self.os_release.ends_with("etc/os-release") => {
                // os-release(5): /etc/os-release, else /usr/lib/os-release (same root)
                let fallback = self
                    .os_release
                    .parent()
                    .and_then(Path::parent)
                    .unwrap_or(Path::new("/"))
                    .join("usr/lib/os-release");
                tokio::fs::read_to_string(fallback)
                    .await
                    .map_err(|_| format!("cannot read {}: {e}", self.os_release.display()))
            }
            Err(e) => Err(format!("cannot read {}: {e}", self.os_release.display())),
        }
    }

    async fn package_version(
        &self,
        d: &Distro,
        deadline: std::time::Duration,
    ) -> Result<String, String> {
        match d.scheme {
            Some(Scheme::Dpkg) => {
                let s = tokio::fs::read_to_string(&self.dpkg_status)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", self.dpkg_status.display()))?;
                dpkg_installed_version(&s, "systemd").ok_or_else(|| {
                    format!("no installed systemd in {}", self.dpkg_status.display())
                })
            }
            Some(Scheme::Rpm) => {
                let (f, out) = io::run_output_in(
                    self.host_root.as_deref(),
                    &self.rpm,
                    &["-q", "--qf", "%{EPOCH}:%{VERSION}-%{RELEASE}\\n", "systemd"],
                    deadline,
                )
                .await
                .map_err(|e| format!("rpm -q systemd: {e}"))?;
                if !f.success {
                    return Err(format!(
                        "rpm -q systemd failed: {} {}",
                        out.trim(),
                        f.stderr
                    ));
                }
                rpm_query_version(&out).ok_or_else(|| "rpm -q systemd printed nothing".into())
            }
            None => Err(format!("no package database known for {}", d.family)),
        }
    }

    async fn run_inner(&self, now: Timestamp) -> Observation {
        let started = tokio::time::Instant::now();
        let deadline = budget(self.settings.timing.timeout);
        let manager = async {
            match tokio::time::timeout(deadline, self.systemd.manager_version()).await {
                Ok(r) => r,
                Err(_) => Err(SystemdError::Timeout {
                    what: "no answer to Get(Manager.Version)".into(),
                    after: deadline,
                }),
            }
        };
        let os = async {
            let text = self.read_os_release().await?;
            let d = distro(&parse_os_release(&text));
            let left = deadline.saturating_sub(started.elapsed());
            let pkg = self.package_version(&d, left).await;
            Ok::<_, String>((d, pkg))
        };
        let (manager, os) = tokio::join!(manager, os);
        let mut o = Observation::new(Problem::SystemdOutdated, now, Verdict::Unknown, "");
        let mut found = Found::default();
        match manager {
            Ok(v) => {
                o = o.with("managerVersion", &v);
                found.manager = Some(v);
            }
            Err(e) => o = o.with("managerVersion", format!("unknown: {e}")),
        }
        match os {
            Ok((d, pkg)) => {
                o = o.with("distro", format!("{} ({})", d.family, d.pretty));
                match pkg {
                    Ok(p) => {
                        o = o.with("package", &p);
                        found.package = Some(p);
                    }
                    Err(e) => o = o.with("package", format!("unknown: {e}")),
                }
                found.distro = Some(d);
            }
            Err(e) => o = o.with("distro", format!("unknown: {e}")),
        }
        let (verdict, summary, applied) = judge(&found, &self.settings.minimums);
        if let Some(a) = applied {
            o = o.with("minimum", a);
        }
        o.verdict = verdict;
        o.summary = summary;
        o.took(elapsed_since(started))
    }
}

impl Probe for SystemdCheck {
    fn problem(&self) -> Problem {
        Problem::SystemdOutdated
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
