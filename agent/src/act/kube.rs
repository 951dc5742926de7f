//! The agent's Kubernetes client: how it is built and how every call is made.
//!
//! Two kube 5 defaults are wrong for a remediation agent (docs/platform-facts.md):
//!
//! - `Client::try_from(Config)` adds `RetryLayer::new(RetryPolicy::server_retry())`
//!   whenever `Config::default_retry` is true, which `Config::new`, `infer`,
//!   `incluster` and the kubeconfig loaders all set. That layer retries
//!   429/503/504 up to 15 times with backoff and honours `Retry-After`, so a
//!   PodDisruptionBudget refusal (429) would stall inside the client for
//!   minutes and never reach the drain's report. [`Kube`] always builds its
//!   client with `default_retry = false`: every retry in nodewarden is explicit
//!   (eviction 429 → ≥ 5 s, conflicts → bounded re-read), and the planner's
//!   loop retries everything else on its next tick.
//! - There is no read timeout (`Config::read_timeout` is `None`, and setting it
//!   would cut long-running watches). Every call goes through [`Kube::call`],
//!   which wraps it in `tokio::time::timeout`.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use kube::{Client, Config};

use super::ActError;
use super::kubeconfig;
use super::seen_date::{DateLayer, SeenDates};
use super::watch::ApiPulse;
use crate::domain::Dur;

/// Deadline of one API call unless the caller gives another.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP (and TLS) connect deadline.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the client configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// In-cluster service account when available, else `$KUBECONFIG` / `~/.kube/config`
    /// ([`super::kubeconfig::read_default`]).
    Infer,
    /// The pod's service account (`KUBERNETES_SERVICE_HOST`, token and CA files).
    InCluster,
    /// A kubeconfig file (`None`: `$KUBECONFIG` or `~/.kube/config`), optionally a context.
    Kubeconfig {
        path: Option<PathBuf>,
        context: Option<String>,
    },
    /// A plain URL, no credentials (tests against the fake API server).
    Url(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeOptions {
    pub source: Source,
    /// Deadline of one call (a watch: of opening it).
    pub call_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for KubeOptions {
    fn default() -> Self {
        KubeOptions {
            source: Source::Infer,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// A failed API call, classified for the caller's retry decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeError {
    /// The client could not be configured (no kubeconfig, bad URL, unreadable token).
    #[error("Kubernetes client configuration: {0}")]
    Config(String),
    /// The API server URL (flag or kubeconfig `server:`) is not one a client
    /// can call. A misconfiguration that never heals: start-up stops on it.
    #[error("{0}")]
    BadServerUrl(String),
    /// The call did not finish within its deadline (a hung API server or network).
    #[error("{what}: no answer from the API server within {after:?}")]
    Timeout { what: String, after: Duration },
    /// The connection failed (refused, reset, TLS, DNS).
    #[error("{what}: the API server is unreachable: {detail}")]
    Unreachable { what: String, detail: String },
    /// The API server answered with an error status.
    #[error("{what}: {code} {reason}: {message}")]
    Api {
        what: String,
        code: u16,
        reason: String,
        message: String,
    },
    /// The answer could not be decoded.
    #[error("{what}: unexpected answer: {detail}")]
    Decode { what: String, detail: String },
}

impl KubeError {
    /// Turns a kube error into a classified one; `what` names the call.
    pub fn from_kube(what: impl Into<String>, e: kube::Error) -> KubeError {
        let what = what.into();
        match e {
            kube::Error::Api(s) => KubeError::Api {
                what,
                code: s.code,
                reason: s.reason.clone(),
                message: s.message.clone(),
            },
            kube::Error::HyperError(e) => KubeError::Unreachable {
                what,
                detail: e.to_string(),
            },
            kube::Error::Service(e) => KubeError::Unreachable {
                what,
                detail: source_chain(&*e),
            },
            kube::Error::SerdeError(e) => KubeError::Decode {
                what,
                detail: e.to_string(),
            },
            kube::Error::FromUtf8(e) => KubeError::Decode {
                what,
                detail: e.to_string(),
            },
            kube::Error::ReadEvents(e) => KubeError::Unreachable {
                what,
                detail: e.to_string(),
            },
            other => KubeError::Unreachable {
                what,
                detail: source_chain(&other),
            },
        }
    }

    /// The HTTP status of an API error.
    pub fn code(&self) -> Option<u16> {
        match self {
            KubeError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    /// 409: a stale `resourceVersion` (Conflict) or a create that lost (AlreadyExists).
    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409)
    }

    /// Worth trying again later: no answer, a refused connection, 409, 429 or a 5xx.
    /// Not: 400/401/403/404/422 (asking again gives the same answer), decoding.
    pub fn is_retriable(&self) -> bool {
        match self {
            KubeError::Timeout { .. } | KubeError::Unreachable { .. } => true,
            KubeError::Api { code, .. } => matches!(code, 409 | 429 | 500..=599),
            KubeError::Config(_) | KubeError::BadServerUrl(_) | KubeError::Decode { .. } => false,
        }
    }

    /// The API server did not answer at all (as opposed to answering an error).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            KubeError::Timeout { .. } | KubeError::Unreachable { .. }
        )
    }
}

impl From<KubeError> for ActError {
    fn from(e: KubeError) -> ActError {
        match e {
            KubeError::Timeout { what, after } => ActError::Timeout {
                what,
                after: Dur::from_std(after),
            },
            e @ KubeError::Unreachable { .. } => ActError::ApiUnreachable(e.to_string()),
            e => ActError::Failed(e.to_string()),
        }
    }
}

fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// The agent's client: kube's retry layer off, a deadline on every call.
#[derive(Clone)]
pub struct Kube {
    client: Client,
    call_timeout: Duration,
    /// The server's `Date` from every response this client gets.
    dates: SeenDates,
    /// When the server last showed life (responses, watch events).
    pulse: ApiPulse,
}

impl fmt::Debug for Kube {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kube")
            .field("call_timeout", &self.call_timeout)
            .finish_non_exhaustive()
    }
}

/// Whether `url` can be an API server URL: `http://` or `https://` with a host.
pub fn check_server_url(url: &str) -> Result<http::Uri, String> {
    let bad = |why: &str| {
        format!(
            "API server URL {url:?} {why}; expected https://HOST[:PORT] (or http:// for a local proxy)"
        )
    };
    let uri: http::Uri = url.parse().map_err(|_| bad("is not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(_) => return Err(bad("has an unsupported scheme")),
        None => return Err(bad("has no scheme")),
    }
    match uri.host() {
        Some(h) if !h.is_empty() => Ok(uri),
        _ => Err(bad("has no host")),
    }
}

impl Kube {
    /// Loads the configuration from `opts.source` (under `opts.call_timeout`)
    /// and builds the client.
    pub async fn connect(opts: &KubeOptions) -> Result<Kube, KubeError> {
        let load = async {
            // kubeconfig files are read by act::kubeconfig, not kube's loaders (why there),
            // on a blocking thread: the deadline below then bounds a read on a hung mount
            let read = |path: Option<PathBuf>| async move {
                tokio::task::spawn_blocking(move || match path {
                    Some(p) => kubeconfig::read_from(&p),
                    None => kubeconfig::read_default(),
                })
                .await
                .map_err(|e| format!("reading the kubeconfig failed: {e}"))?
            };
            let from_file = |kc: Result<kube::config::Kubeconfig, String>, context| async move {
                let o = kube::config::KubeConfigOptions {
                    context,
                    ..Default::default()
                };
                Config::from_custom_kubeconfig(kc?, &o)
                    .await
                    .map_err(|e| e.to_string())
            };
            match &opts.source {
                Source::Infer => match Config::incluster() {
                    Ok(c) => Ok(c),
                    Err(in_cluster) => from_file(read(None).await, None)
                        .await
                        .map_err(|e| format!("not in a cluster ({in_cluster}); {e}")),
                },
                Source::InCluster => Config::incluster().map_err(|e| e.to_string()),
                Source::Kubeconfig { path, context } => {
                    from_file(read(path.clone()).await, context.clone()).await
                }
                Source::Url(u) => check_server_url(u).map(Config::new),
            }
        };
        // Loading can run an exec credential plugin: bound it too.
        let config = tokio::time::timeout(opts.call_timeout, load)
            .await
            .map_err(|_| KubeError::Config("loading the configuration timed out".into()))?
            .map_err(KubeError::Config)?;
        Kube::from_config(config, opts.call_timeout, opts.connect_timeout)
    }

    /// A client for a plain URL (tests against the fake API server).
    pub fn from_url(url: &str, call_timeout: Duration) -> Result<Kube, KubeError> {
        let uri = check_server_url(url).map_err(KubeError::BadServerUrl)?;
        Kube::from_config(Config::new(uri), call_timeout, DEFAULT_CONNECT_TIMEOUT)
    }

    /// Builds the client from a loaded configuration, turning kube's retry layer off.
    pub fn from_config(
        mut config: Config,
        call_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Kube, KubeError> {
        // kube's client panics on a URL without a scheme; say so in one line instead.
        check_server_url(&config.cluster_url.to_string()).map_err(KubeError::BadServerUrl)?;
        config.default_retry = false;
        config.connect_timeout = Some(connect_timeout);
        // A plain-http URL (kubectl proxy, the test server) never uses TLS, but
        // the client still builds a TLS config, which without a CA falls back to
        // the OS trust store and fails on a node without CA certificates.
        if config.cluster_url.scheme_str() == Some("http") && config.root_cert.is_none() {
            config.root_cert = Some(Vec::new());
        }
        // No read timeout: it would cut watches. `call` bounds each request instead.
        config.read_timeout = None;
        let dates = SeenDates::default();
        let pulse = ApiPulse::default();
        let client = kube::client::ClientBuilder::try_from(config)
            .map_err(|e| KubeError::Config(source_chain(&e)))?
            .with_layer(&DateLayer {
                seen: dates.clone(),
                pulse: pulse.clone(),
            })
            .build();
        Ok(Kube {
            client,
            call_timeout,
            dates,
            pulse,
        })
    }

    /// The underlying client (retry layer off). Calls made on it directly must
    /// be bounded by the caller; prefer [`Kube::call`].
    /// The latest `Date` the API server sent on any response of this client.
    pub fn seen_dates(&self) -> &SeenDates {
        &self.dates
    }

    /// When the API server last answered or sent a watch event: the watches
    /// of this client share it ([`super::watch`]).
    pub fn pulse(&self) -> &ApiPulse {
        &self.pulse
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// Runs one API call under the default deadline.
    pub async fn call<T>(
        &self,
        what: impl Into<String>,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, KubeError> {
        self.call_within(what, self.call_timeout, fut).await
    }

    /// Runs one API call under `deadline`.
    pub async fn call_within<T>(
        &self,
        what: impl Into<String>,
        deadline: Duration,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, KubeError> {
        match tokio::time::timeout(deadline, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(KubeError::from_kube(what, e)),
            Err(_) => Err(KubeError::Timeout {
                what: what.into(),
                after: deadline,
            }),
        }
    }
}

pub use super::watch::{WatchTimes, Watched, watch_one};

/// `d` scaled by a random factor in `[lo, hi)`, so that agents that started
/// waiting together (an API outage, a correlated failure) do not ask together.
/// The one jitter of the crate.
pub fn jitter(d: Duration, lo: f64, hi: f64) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    d.mul_f64(lo + (hi - lo) * (r % 10_000) as f64 / 10_000.0)
}

#[cfg(test)]
mod tests;
