//! The kubelet-certificate probe (report-only; issue 16, seed 000): the kubelet's client
//! and serving certificates against the API server's time, and this node's CSRs left
//! `Pending`. Judgements are pure (`certs.rs`); this file reads and asks.
//!
//! **What it costs the API server.** The certificates are local files and the server's
//! time comes from the clock probe's source (one `GET /version` per 5 minutes at most,
//! shared). CSRs are the expensive part: there is no field selector for a CSR's requester
//! (`spec.username`) or subject, so finding this node's means listing every CSR of the
//! cluster. 5,000 agents doing that on every probe would be 5,000 lists a minute. So the
//! agent lists CSRs **only when it has a reason to**: a certificate is not healthy (not
//! valid yet, expired, expiring within `warnDays`, unreadable), a client certificate has no
//! serving one (the kubelet waits for a serving CSR), or the kubelet's heartbeat Lease is older
//! than `leaseStaleAfter` (a kubelet that cannot authenticate cannot renew it; read from
//! the Lease watch, no request) — and then **at most once per `csrInterval`** (default
//! 10 minutes), the answer kept in between. The list asks for `resourceVersion=0`, served
//! from the API server's watch cache, not a quorum read of etcd. A healthy node makes no
//! CSR request at all; a troubled one at most 0.1 a minute.
//!
//! It never approves anything (see `certs.rs`): the report names the command a person runs.
//!
//! **Where the certificates are** is found on each run the way the kubelet finds them, from
//! its own invocation ([`paths`]: `--tls-cert-file`/`tlsCertFile`, `--cert-dir`,
//! `serverTLSBootstrap`, the `--kubeconfig`'s current user, [`kubeconfig`]); a runbook's
//! explicit `clientCert`/`servingCert` wins. The evidence names where each came from.

pub mod kubeconfig;
pub mod paths;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use self::paths::{Lookup, Place};
use super::certs::{
    self, CertInfo, CertJudgement, CsrSource, CsrView, Level, PendingCsr, Policy, Role, TimeRef,
};
use super::hostfs::{self, follow_under as host_file};
use super::io;
use super::runtime::Detector;
use super::{LeaseSource, Probe, ProbeFuture, ServerClock};
use super::{budget, elapsed_since};
use crate::domain::{Dur, Problem, Timestamp};
use crate::health::{Observation, Verdict};
use crate::runbook::{CertificateProbe, KubeletProbe};
use crate::safe_fs::{self, Follow, ReadError};

/// The largest certificate file read (a PEM chain with a key is a few KiB).
const MAX_CERT_FILE: u64 = 1 << 20;

/// Settings of the probe (from the runbook).
#[derive(Debug, Clone, PartialEq)]
pub struct CertSettings {
    pub policy: Policy,
    /// The least time between two CSR lists.
    pub csr_interval: Dur,
    /// The kubelet's Lease older than this: it may be unable to authenticate (look at CSRs).
    pub lease_stale_after: Dur,
    /// The probe's own deadline (its timeout).
    pub timeout: Dur,
}

impl CertSettings {
    /// From the runbook: the probe's settings, and the kubelet probe's `leaseStaleAfter`.
    pub fn of(c: &CertificateProbe, kubelet: &KubeletProbe) -> CertSettings {
        CertSettings {
            policy: Policy {
                warn_before: Dur::from_secs(u64::from(c.warn_days) * 86_400),
                fail_before: Dur::from_secs(u64::from(c.fail_days) * 86_400),
                csr_pending_after: c.csr_pending_for,
            },
            csr_interval: c.csr_interval,
            lease_stale_after: kubelet.lease_stale_after,
            timeout: c.timing.timeout,
        }
    }
}

/// Where the probe looks for the certificates.
pub enum Locate {
    /// These files, as this process opens them, in order (the first that exists is judged).
    Fixed {
        client: Vec<PathBuf>,
        serving: Vec<PathBuf>,
    },
    /// Where the kubelet keeps them, from its invocation on each run ([`paths`]); the
    /// runbook's explicit `clientCert`/`servingCert` (host paths) win.
    Kubelet {
        detector: Arc<Detector>,
        client: Option<String>,
        serving: Option<String>,
    },
}

/// The places of both certificates (as this process opens them) and where they came from;
/// the client's is an error when the kubelet's kubeconfig could not be read.
type Located = (Result<Lookup, String>, Lookup);

/// A CSR answer and when it was asked.
type Asked = (Instant, Result<Vec<CsrView>, String>);

/// One certificate file as read.
#[derive(Debug)]
enum Read {
    Found(CertInfo),
    Missing,
    Bad(String),
    /// The kubelet has no such certificate (a kubeconfig user with `exec` credentials).
    Absent(String),
}

/// The probe.
pub struct KubeletCertCheck {
    pub settings: CertSettings,
    pub locate: Locate,
    pub host_root: Option<PathBuf>,
    pub server: Arc<dyn ServerClock>,
    pub lease: Arc<dyn LeaseSource>,
    pub csrs: Arc<dyn CsrSource>,
    /// The last CSR answer and when it was asked.
    last_csrs: Mutex<Option<Asked>>,
}

impl KubeletCertCheck {
    pub fn new(
        settings: CertSettings,
        locate: Locate,
        host_root: Option<PathBuf>,
        server: Arc<dyn ServerClock>,
        lease: Arc<dyn LeaseSource>,
        csrs: Arc<dyn CsrSource>,
    ) -> Self {
        KubeletCertCheck {
            settings,
            locate,
            host_root,
            server,
            lease,
            csrs,
            last_csrs: Mutex::new(None),
        }
    }

    /// The path shown to a person: the host's, without the pod's mount prefix.
    fn shown(&self, p: &Path) -> String {
        match &self.host_root {
            Some(r) => match p.strip_prefix(r) {
                Ok(rel) => Path::new("/").join(rel).display().to_string(),
                Err(_) => p.display().to_string(),
            },
            None => p.display().to_string(),
        }
    }

    /// `p` as the host names it, as this process opens it (under the host root).
    fn host_path(&self, p: &Path) -> PathBuf {
        match &self.host_root {
            Some(r) if p.is_absolute() => hostfs::under_root(r, p),
            _ => p.to_path_buf(),
        }
    }

    /// Where the certificates are on this run, within `deadline`.
    async fn locate(&self, deadline: Duration) -> Located {
        let (detector, client, serving) = match &self.locate {
            Locate::Fixed { client, serving } => {
                let files = |v: &Vec<PathBuf>, what: &str| Lookup {
                    places: v.iter().cloned().map(Place::File).collect(),
                    from: format!("fixed {what}"),
                };
                return (
                    Ok(files(client, "clientCert")),
                    files(serving, "servingCert"),
                );
            }
            Locate::Kubelet {
                detector,
                client,
                serving,
            } => (detector, client, serving),
        };
        let started = Instant::now();
        let (c, s) = match (client, serving) {
            (Some(c), Some(s)) => (
                Ok(paths::explicit(c, "clientCert")),
                paths::explicit(s, "servingCert"),
            ),
            _ => {
                let inv = tokio::time::timeout(deadline, detector.invocation()).await;
                let facts = match inv {
                    Ok(inv) => paths::KubeletCertFacts::of(&inv),
                    Err(_) => Err(format!("no answer within {}", io::fmt_secs(deadline))),
                };
                let (c, s) = match facts {
                    Ok(f) => {
                        let kc = match (&f.kubeconfig, client) {
                            (Some(k), None) => {
                                let shown = Path::new("/").join(&k.value);
                                let left = deadline.saturating_sub(started.elapsed());
                                // an absolute link (config management) resolved in the root
                                let open = hostfs::open_path(self.host_root.as_deref(), &shown);
                                kubeconfig::read(open, shown, left).await
                            }
                            _ => Ok(None),
                        };
                        (paths::client(&f, kc), paths::serving(&f))
                    }
                    Err(why) => {
                        let (c, s) = paths::fallback(&why);
                        (Ok(c), s)
                    }
                };
                (
                    match client {
                        Some(p) => Ok(paths::explicit(p, "clientCert")),
                        None => c,
                    },
                    match serving {
                        Some(p) => paths::explicit(p, "servingCert"),
                        None => s,
                    },
                )
            }
        };
        let map = |l: Lookup| Lookup {
            places: l
                .places
                .into_iter()
                .map(|p| match p {
                    Place::File(f) => Place::File(self.host_path(&f)),
                    inline => inline,
                })
                .collect(),
            from: l.from,
        };
        (c.map(map), map(s))
    }

    /// The first of `places` that exists, read; `None` when none does.
    async fn first(&self, places: &[Place], deadline: Duration) -> Option<(String, Read)> {
        for p in places {
            match p {
                Place::File(f) => match self.read(f, deadline).await {
                    Read::Missing => continue,
                    r => return Some((self.shown(f), r)),
                },
                Place::Inline { pem, at } => {
                    let r = match certs::cert_info_pem(pem) {
                        Ok(info) => Read::Found(info),
                        Err(why) => Read::Bad(format!("malformed certificate ({why})")),
                    };
                    return Some((format!("client-certificate-data ({at})"), r));
                }
            }
        }
        None
    }

    /// The places shown to a person, for "none at …".
    fn shown_all(&self, places: &[Place]) -> String {
        places
            .iter()
            .map(|p| match p {
                Place::File(f) => self.shown(f),
                Place::Inline { at, .. } => format!("client-certificate-data ({at})"),
            })
            .collect::<Vec<_>>()
            .join(" nor ")
    }

    /// Reads one certificate file (symlinks resolved inside the host root) off the
    /// runtime's threads, under `deadline`.
    async fn read(&self, p: &Path, deadline: Duration) -> Read {
        let path = host_file(self.host_root.as_deref(), p);
        let read = tokio::task::spawn_blocking(move || {
            safe_fs::read_file(&path, MAX_CERT_FILE, Follow::Symlinks)
        });
        match tokio::time::timeout(deadline, read).await {
            Ok(Ok(Ok(bytes))) => match certs::cert_info_pem(&bytes) {
                Ok(info) => Read::Found(info),
                Err(why) => Read::Bad(format!("malformed certificate ({why})")),
            },
            Ok(Ok(Err(ReadError::NotFound))) => Read::Missing,
            Ok(Ok(Err(e))) => Read::Bad(e.to_string()),
            Ok(Err(e)) => Read::Bad(format!("read task failed: {e}")),
            Err(_) => Read::Bad(format!("no answer within {}", io::fmt_secs(deadline))),
        }
    }

    /// This node's CSRs, asked at most once per `csr_interval`.
    async fn csrs(&self, deadline: Duration) -> (Result<Vec<CsrView>, String>, Option<Dur>) {
        let every = self.settings.csr_interval.std();
        if let Some((at, r)) = self
            .last_csrs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            && at.elapsed() < every
        {
            return (r.clone(), Some(Dur::from_std(at.elapsed())));
        }
        let r = match tokio::time::timeout(deadline, self.csrs.this_node()).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {}", io::fmt_secs(deadline))),
        };
        *self.last_csrs.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), r.clone()));
        (r, None)
    }

    async fn run_inner(&self, now: Timestamp) -> Observation {
        let started = Instant::now();
        let deadline = budget(self.settings.timeout);
        let (client_at, serving_at) = self.locate(deadline).await;
        let deadline = deadline.saturating_sub(started.elapsed());
        let time = async {
            match tokio::time::timeout(deadline, self.server.date()).await {
                Ok(Ok((date, _rtt))) => Ok(date),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("no answer within {}", io::fmt_secs(deadline))),
            }
        };
        let lease = async {
            tokio::time::timeout(deadline, self.lease.lease_renew_time())
                .await
                .unwrap_or_else(|_| Err("no answer".into()))
        };
        let client = async {
            match &client_at {
                Err(e) => (String::new(), Read::Bad(e.clone())),
                Ok(l) if l.places.is_empty() => (String::new(), Read::Absent(l.from.clone())),
                Ok(l) => match self.first(&l.places, deadline).await {
                    Some(found) => found,
                    None => (self.shown_all(&l.places), Read::Missing),
                },
            }
        };
        let serving = self.first(&serving_at.places, deadline);
        let (time, lease, client, serving) = tokio::join!(time, lease, client, serving);
        // The server's time moved on since `date` was stamped only by the probe's own run.
        let time_ref = match &time {
            Ok(t) => TimeRef::Server(*t),
            Err(_) => TimeRef::Local(now),
        };
        let lease_age = match &lease {
            Ok(Some(t)) => Some(time_ref.at().as_second() - t.as_second()),
            _ => None,
        };
        let kubelet_silent =
            lease_age.is_some_and(|a| a > self.settings.lease_stale_after.as_secs_f64() as i64);
        let inputs = Inputs {
            client,
            serving,
            serving_none: self.shown_all(&serving_at.places),
            time: time_ref,
            time_error: time.err(),
            lease_age,
        };
        let mut o = judge_files(&self.settings.policy, &inputs, now)
            .with(
                "clientCertFrom",
                match &client_at {
                    Ok(l) => l.from.clone(),
                    Err(_) => "the kubelet's kubeconfig, unreadable (see clientCert)".into(),
                },
            )
            .with("servingCertFrom", &serving_at.from);
        // A reason to look at CSRs: a certificate failing, in its warning window or
        // unreadable; a client certificate without any serving one (the kubelet waits
        // for a serving CSR); or a silent kubelet. A kubelet without a client certificate
        // (its kubeconfig's user runs `exec`, or none is where it keeps one) is no reason
        // by itself.
        let client_found = matches!(inputs.client.1, Read::Found(_));
        let unreadable = matches!(inputs.client.1, Read::Bad(_))
            || matches!(&inputs.serving, Some((_, Read::Bad(_))));
        let want_csrs = o.verdict == Verdict::Failing
            || o.evidence.contains_key("warning")
            || unreadable
            || (client_found && inputs.serving.is_none())
            || kubelet_silent;
        if want_csrs {
            let (r, cached) = self.csrs(deadline).await;
            o = with_csrs(o, &self.settings.policy, time_ref, r, cached);
        } else {
            o = o.with(
                "csrLookup",
                "not needed: certificates healthy and the kubelet's heartbeat current",
            );
        }
        o.took(elapsed_since(started))
    }
}

/// What the probe read, for the pure judgement.
#[derive(Debug)]
struct Inputs {
    client: (String, Read),
    serving: Option<(String, Read)>,
    /// Where the serving certificate was looked for, when none was there.
    serving_none: String,
    time: TimeRef,
    time_error: Option<String>,
    lease_age: Option<i64>,
}

/// The certificates' part of the observation.
fn judge_files(policy: &Policy, i: &Inputs, now: Timestamp) -> Observation {
    let mut o = Observation::new(
        Problem::KubeletCertificateInvalid,
        now,
        Verdict::Healthy,
        "",
    );
    let mut judged: Vec<CertJudgement> = Vec::new();
    let mut unknown = Vec::new();
    let mut one = |o: Observation, key: &str, role: Role, shown: &str, r: &Read| match r {
        Read::Found(info) => {
            let j = certs::judge_cert(role, shown, info, i.time, policy);
            let o = o.with(key, j.evidence.clone());
            judged.push(j);
            o
        }
        Read::Missing => {
            unknown.push(format!(
                "no kubelet {} certificate at {shown}",
                role.as_str()
            ));
            o.with(key, format!("none at {shown}"))
        }
        Read::Bad(e) if shown.is_empty() => {
            unknown.push(format!("kubelet {} certificate: {e}", role.as_str()));
            o.with(key, format!("unknown: {e}"))
        }
        Read::Bad(e) => {
            unknown.push(format!(
                "kubelet {} certificate {shown}: {e}",
                role.as_str()
            ));
            o.with(key, format!("{shown}: {e}"))
        }
        Read::Absent(why) => {
            unknown.push(format!("no kubelet {} certificate ({why})", role.as_str()));
            o.with(key, format!("none: {why}"))
        }
    };
    o = one(o, "clientCert", Role::Client, &i.client.0, &i.client.1);
    o = match &i.serving {
        Some((shown, r)) => one(o, "servingCert", Role::Serving, shown, r),
        None => o.with(
            "servingCert",
            format!("none (no {}: waiting for a serving CSR?)", i.serving_none),
        ),
    };
    if let Some(e) = &i.time_error {
        o = o.with(
            "apiServerTime",
            format!("unknown ({e}); judged on the local clock"),
        );
    }
    if let Some(a) = i.lease_age {
        o = o.with("kubeletLeaseAge", certs::fmt_span(a));
    }
    let failing: Vec<&str> = judged
        .iter()
        .filter(|j| j.level == Level::Fail)
        .filter_map(|j| j.problem.as_deref())
        .collect();
    let warning: Vec<&str> = judged
        .iter()
        .filter(|j| j.level == Level::Warn)
        .filter_map(|j| j.problem.as_deref())
        .collect();
    if !warning.is_empty() {
        o = o.with("warning", warning.join("; "));
    }
    if !failing.is_empty() {
        o.verdict = Verdict::Failing;
        o.summary = failing.join("; ");
    } else if judged.is_empty() {
        o.verdict = Verdict::Unknown;
        o.summary = unknown.join("; ");
    } else if !warning.is_empty() {
        o.summary = format!("warning: {}", warning.join("; "));
    } else {
        o.summary = "the kubelet's certificates are valid".into();
    }
    o
}

/// Adds the CSR part: this node's requests `Pending` past the threshold fail the probe.
fn with_csrs(
    mut o: Observation,
    policy: &Policy,
    time: TimeRef,
    r: Result<Vec<CsrView>, String>,
    cached: Option<Dur>,
) -> Observation {
    let from = match cached {
        Some(age) => format!(" (asked {age} ago)"),
        None => String::new(),
    };
    let csrs = match r {
        Ok(c) => c,
        Err(e) => return o.with("csr", format!("unknown{from}: {e}")),
    };
    let pending: Vec<PendingCsr> = certs::pending(&csrs, time.at(), policy.csr_pending_after);
    if pending.is_empty() {
        let waiting = csrs
            .iter()
            .filter(|c| c.state == certs::CsrState::Pending)
            .count();
        return o.with(
            "csr",
            format!(
                "{} of this node, {waiting} Pending, none for {} or longer{from}",
                csrs.len(),
                policy.csr_pending_after
            ),
        );
    }
    let list = pending
        .iter()
        .map(|p| {
            format!(
                "{} ({}, by {}, {})",
                p.name,
                p.signer.trim_start_matches("kubernetes.io/"),
                p.requester,
                certs::fmt_span(p.age_secs)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let cmd = certs::approve_command(pending.iter().map(|p| p.name.as_str()));
    o = o
        .with(
            "csr",
            format!(
                "Pending for {} or longer: {list}{from}",
                policy.csr_pending_after
            ),
        )
        .with("approve", cmd.clone());
    let line = format!(
        "{} certificate request(s) of this node Pending for up to {}: check each (kubectl get csr NAME -o yaml) and approve with `{cmd}` (nodewarden never approves)",
        pending.len(),
        certs::fmt_span(pending[0].age_secs)
    );
    o.summary = if o.verdict == Verdict::Failing {
        format!("{}; {line}", o.summary)
    } else {
        line
    };
    o.verdict = Verdict::Failing;
    o
}

impl Probe for KubeletCertCheck {
    fn problem(&self) -> Problem {
        Problem::KubeletCertificateInvalid
    }
    fn run(&self, now: Timestamp) -> ProbeFuture<'_> {
        Box::pin(self.run_inner(now))
    }
    fn timeout_verdict(&self) -> Verdict {
        Verdict::Unknown
    }
}
