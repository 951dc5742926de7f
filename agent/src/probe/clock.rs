//! Clock skew: the local clock against the API server's `Date` header (corrected by half the
//! round trip, with the error bound stated), the kernel's sync state (adjtimex `STA_UNSYNC`,
//! `maxerror`), timedated's `NTPSynchronized` over D-Bus where present, and the kubelet
//! client certificate's validity window against the local clock (a `notBefore` in the future
//! means the local clock is behind).
//!
//! Failing when:
//! * the measured skew exceeds `maxSkew` even at the edge of its error bound
//!   (`|skew| − (rtt/2 + 1 s) > maxSkew`; `Date` has 1 s resolution), or
//! * the kubelet client certificate is not valid yet by more than `maxSkew` (TLS to the API
//!   server fails then: `x509: certificate has expired or is not yet valid`).
//!
//! The kernel's and timedated's sync state are evidence only: many healthy machines run with
//! `STA_UNSYNC` set (no NTP daemon in a VM whose host keeps time), so they never fail the
//! probe alone; without the API server the verdict is then Unknown, with that evidence.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use zbus::Connection;

use crate::domain::{Dur, Problem, Timestamp};
use crate::health::{Observation, Verdict};
use crate::runbook::ClockProbe as Settings;

pub use super::certs::Validity;
use super::certs::cert_validity_der;
use super::io;
use super::{ApiFuture, Probe, ProbeFuture, budget, elapsed_since};

/// The API server's clock: the `Date` header of a cheap request and the request's round
/// trip. The lead implements this with kube (e.g. `GET /version` or `/livez`).
pub trait ServerClock: Send + Sync {
    fn date(&self) -> ApiFuture<'_, (Timestamp, Dur)>;
}

/// The kernel's view of its clock.
pub type KernelClock = crate::host::sys::Adjtimex;

/// Where the kernel clock state comes from (real: adjtimex; tests: a fake).
pub trait KernelClockSource: Send + Sync {
    fn read(&self) -> Result<KernelClock, String>;
}

/// adjtimex(2), read-only.
#[derive(Debug, Clone, Copy, Default)]
pub struct Adjtimex;

impl KernelClockSource for Adjtimex {
    fn read(&self) -> Result<KernelClock, String> {
        crate::host::sys::adjtimex_read().map_err(|e| format!("adjtimex: {e}"))
    }
}

/// A skew measurement against the server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Skew {
    /// Server minus local, seconds (positive: the local clock is behind).
    pub skew_secs: f64,
    /// ± this many seconds.
    pub bound_secs: f64,
}

impl Skew {
    /// From the server's `Date`, the round trip, and the local time when the reply arrived:
    /// the server stamped `Date` about half a round trip before that.
    pub fn measure(server: Timestamp, rtt: Dur, local_at_reply: Timestamp) -> Skew {
        let half = rtt.as_secs_f64() / 2.0;
        let local_mid = local_at_reply.as_nanosecond() as f64 / 1e9 - half;
        let server = server.as_nanosecond() as f64 / 1e9;
        Skew {
            skew_secs: server - local_mid,
            bound_secs: half + 1.0,
        }
    }
    /// How far past `max` the skew is for certain (≤ 0: within `max`).
    pub fn excess(&self, max: Dur) -> f64 {
        self.skew_secs.abs() - self.bound_secs - max.as_secs_f64()
    }
}

/// Errors reading a certificate.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: no CERTIFICATE block")]
    NoCertificate(String),
    #[error("{0}: malformed certificate ({1})")]
    Malformed(String, &'static str),
}

/// The validity window of the first certificate in a PEM file (the kubelet's
/// `kubelet-client-current.pem` holds the certificate and its key).
pub fn cert_validity_pem(path: &Path) -> Result<Validity, CertError> {
    let p = path.display().to_string();
    let raw = std::fs::read(path).map_err(|source| CertError::Read {
        path: p.clone(),
        source,
    })?;
    let blocks = pem::parse_many(&raw).map_err(|_| CertError::Malformed(p.clone(), "bad PEM"))?;
    let cert = blocks
        .iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .ok_or_else(|| CertError::NoCertificate(p.clone()))?;
    cert_validity_der(cert.contents()).map_err(|why| CertError::Malformed(p, why))
}

/// timedated's `NTPSynchronized`, over the system bus.
pub struct Timedated {
    address: Option<String>,
    conn: Mutex<Option<Connection>>,
}

impl Timedated {
    pub fn new(address: Option<String>) -> Self {
        Timedated {
            address,
            conn: Mutex::new(None),
        }
    }

    async fn connection(&self) -> zbus::Result<Connection> {
        let mut g = self.conn.lock().await;
        if let Some(c) = g.as_ref() {
            return Ok(c.clone());
        }
        let c = match &self.address {
            Some(a) => {
                zbus::connection::Builder::address(a.as_str())
                    .build()
                    .await?
            }
            None => Connection::system().await?,
        };
        *g = Some(c.clone());
        Ok(c)
    }

    /// `Ok(None)` when timedated is not installed.
    pub async fn ntp_synchronized(&self, deadline: Duration) -> Result<Option<bool>, String> {
        let call = async {
            let conn = self.connection().await?;
            let props = zbus::fdo::PropertiesProxy::builder(&conn)
                .destination("org.freedesktop.timedate1")
                .path("/org/freedesktop/timedate1")
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await?;
            let iface = zbus::names::InterfaceName::from_static_str("org.freedesktop.timedate1")?;
            let v = props.get(iface, "NTPSynchronized").await?;
            Ok::<_, zbus::Error>(bool::try_from(v).ok())
        };
        match tokio::time::timeout(deadline, call).await {
            Ok(Ok(Some(b))) => Ok(Some(b)),
            Ok(Ok(None)) => Err("NTPSynchronized is not a boolean".into()),
            Ok(Err(e)) => {
                let name = match &e {
                    zbus::Error::MethodError(n, _, _) => Some(n.as_str().to_string()),
                    zbus::Error::FDO(f) => {
                        use zbus::DBusError as _;
                        Some(f.name().as_str().to_string())
                    }
                    _ => None,
                };
                if name
                    .as_deref()
                    .is_some_and(|n| n.ends_with("ServiceUnknown") || n.ends_with("NameHasNoOwner"))
                {
                    return Ok(None);
                }
                *self.conn.lock().await = None;
                Err(e.to_string())
            }
            Err(_) => {
                *self.conn.lock().await = None;
                Err(format!("timed out after {}", io::fmt_secs(deadline)))
            }
        }
    }
}

/// The clock probe.
pub struct ClockCheck {
    pub settings: Settings,
    pub server: Arc<dyn ServerClock>,
    pub kernel: Arc<dyn KernelClockSource>,
    pub cert: PathBuf,
    pub timedated: Timedated,
    /// The host's root in a pod (`--host-root`): `cert` is under it, and its link (the
    /// kubelet's `kubelet-client-current.pem` is an absolute one) resolves inside it.
    pub host_root: Option<PathBuf>,
}

impl ClockCheck {
    pub fn new(
        settings: Settings,
        server: Arc<dyn ServerClock>,
        kernel: Arc<dyn KernelClockSource>,
        cert: PathBuf,
        dbus_address: Option<String>,
    ) -> Self {
        ClockCheck {
            settings,
            server,
            kernel,
            cert,
            timedated: Timedated::new(dbus_address),
            host_root: None,
        }
    }

    /// Read the certificate under the host's root (`--host-root`), its links resolved there.
    pub fn in_host_root(self, host_root: Option<PathBuf>) -> Self {
        ClockCheck { host_root, ..self }
    }

    async fn run_inner(&self, now: Timestamp) -> Observation {
        let started = tokio::time::Instant::now();
        let deadline = budget(self.settings.timing.timeout);
        let max = self.settings.max_skew;
        let server = async {
            match tokio::time::timeout(deadline, self.server.date()).await {
                Ok(Ok((date, rtt))) => Ok(Skew::measure(date, rtt, Timestamp::now())),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("timed out after {}", io::fmt_secs(deadline))),
            }
        };
        let (skew, ntp) = tokio::join!(server, self.timedated.ntp_synchronized(deadline));
        let kernel = self.kernel.read();
        // resolved at each read: the kubelet moves the link when it rotates the certificate
        let cert = cert_validity_pem(&super::hostfs::follow_under(
            self.host_root.as_deref(),
            &self.cert,
        ));

        let mut o = Observation::new(Problem::ClockSkewed, now, Verdict::Healthy, "");
        let mut failing = Vec::new();
        match &skew {
            Ok(s) => {
                o = o.with(
                    "apiServer",
                    format!(
                        "skew {:+.3}s ±{:.3}s (server minus local)",
                        s.skew_secs, s.bound_secs
                    ),
                );
                if s.excess(max) > 0.0 {
                    failing.push(format!(
                        "local clock is {:.1}s {} the API server's (±{:.1}s), more than maxSkew {max}",
                        s.skew_secs.abs(),
                        if s.skew_secs > 0.0 { "behind" } else { "ahead of" },
                        s.bound_secs
                    ));
                }
            }
            Err(e) => o = o.with("apiServer", format!("unknown: {e}")),
        }
        match &kernel {
            Ok(k) => {
                o = o.with(
                    "kernel",
                    format!(
                        "{}, maxerror {:.3}s, esterror {:.3}s",
                        if k.unsynchronised {
                            "unsynchronised"
                        } else {
                            "synchronised"
                        },
                        k.max_error_us as f64 / 1e6,
                        k.est_error_us as f64 / 1e6
                    ),
                );
            }
            Err(e) => o = o.with("kernel", format!("unknown: {e}")),
        }
        match &ntp {
            Ok(Some(b)) => o = o.with("timedated", format!("NTPSynchronized={b}")),
            Ok(None) => o = o.with("timedated", "not available"),
            Err(e) => o = o.with("timedated", format!("unknown: {e}")),
        }
        match &cert {
            Ok(v) => {
                o = o.with(
                    "kubeletCert",
                    format!("valid {} .. {}", v.not_before, v.not_after),
                );
                if v.not_before > now {
                    let ahead = Dur::between(now, v.not_before);
                    if ahead > max {
                        failing.push(format!(
                            "the kubelet client certificate is not valid until {} ({ahead} from now): the local clock is behind",
                            v.not_before
                        ));
                    }
                }
                if v.not_after < now {
                    o = o.with(
                        "kubeletCertExpired",
                        format!(
                            "expired {} ago (the clock is ahead, or the certificate really expired)",
                            Dur::between(v.not_after, now)
                        ),
                    );
                }
            }
            Err(e @ CertError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                o = o.with("kubeletCert", format!("none ({e})"))
            }
            Err(e) => o = o.with("kubeletCert", format!("unknown: {e}")),
        }
        if !failing.is_empty() {
            o.verdict = Verdict::Failing;
            o.summary = failing.join("; ");
        } else {
            match &skew {
                Ok(s) => {
                    o.summary = format!(
                        "within maxSkew {max} of the API server (skew {:+.1}s ±{:.1}s)",
                        s.skew_secs, s.bound_secs
                    )
                }
                Err(e) => {
                    let synced = kernel.as_ref().is_ok_and(|k| !k.unsynchronised);
                    if synced {
                        o.summary = format!(
                            "the kernel says the clock is synchronised (API server's clock unknown: {e})"
                        );
                    } else {
                        o.verdict = Verdict::Unknown;
                        o.summary = match &kernel {
                            Ok(k) => format!(
                                "cannot compare with the API server's clock ({e}); the kernel says the clock is unsynchronised (maxerror {:.1}s)",
                                k.max_error_us as f64 / 1e6
                            ),
                            Err(_) => format!("cannot compare with the API server's clock: {e}"),
                        };
                    }
                }
            }
        }
        o.took(elapsed_since(started))
    }
}

impl Probe for ClockCheck {
    fn problem(&self) -> Problem {
        Problem::ClockSkewed
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
