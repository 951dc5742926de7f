//! Faithful local fakes for the probes' tests and benchmarks: a kubelet healthz server, a
//! Docker Engine API on a unix socket, a CRI (gRPC over HTTP/2) server on a unix socket, each
//! of which can answer, fail or hang after accepting; a systemd fake; fixed API sources.
//!
//! Every server runs on the caller's tokio runtime and stops when dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use nix::sys::signal::Signal;
use tokio::task::JoinHandle;

use crate::domain::{Dur, Timestamp};
use crate::host::systemd::{
    RestartOutcome, SdFuture, Systemd, SystemdError, UnitPresence, UnitStatus,
};

use super::{ApiFuture, LeaseSource, ReadyConditionSource, ServerClock};

/// How a fake server behaves, switchable at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answer like the real thing.
    Ok,
    /// Answer with an error (HTTP 500, or gRPC `UNAVAILABLE`).
    Fail,
    /// Accept the connection, then never answer.
    Hang,
    /// CRI only: `runtime.v1` is unimplemented (containerd < 1.7), `v1alpha2` answers.
    OnlyV1alpha2,
    /// CRI only: as `Ok`, and `RuntimeConfig` states the cgroup driver, as containerd 2.x
    /// and CRI-O ≥ 1.28 do (`Ok` answers it `Unimplemented`, as older runtimes do).
    StatesCgroupDriver(CgroupDriver),
}

/// The driver a CRI fake states in `RuntimeConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    Systemd,
    Cgroupfs,
}

/// A running fake server; dropping it stops it.
pub struct FakeServer {
    mode: Arc<Mutex<Mode>>,
    task: JoinHandle<()>,
    /// The TCP address (healthz) …
    pub addr: Option<SocketAddr>,
    /// … or the unix socket (Docker, CRI).
    pub socket: Option<PathBuf>,
}

impl FakeServer {
    pub fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = m;
    }
    /// `http://ADDR/healthz` for a healthz fake.
    pub fn url(&self) -> String {
        format!(
            "http://{}/healthz",
            self.addr.map(|a| a.to_string()).unwrap_or_default()
        )
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(p) = &self.socket {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn mode_of(m: &Arc<Mutex<Mode>>) -> Mode {
    *m.lock().unwrap_or_else(|p| p.into_inner())
}

type Body = http_body_util::combinators::BoxBody<&'static [u8], std::convert::Infallible>;

fn plain(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(body.as_bytes()).boxed());
    *r.status_mut() = status;
    r
}

/// Park a connection that must never be answered (holds the socket open).
async fn hold<T>(_conn: T) {
    std::future::pending::<()>().await
}

/// A kubelet healthz fake on 127.0.0.1 (a free port): `ok`, HTTP 500 with kubelet's
/// `[-]syncloop failed` body, or hang.
pub async fn healthz_server(mode: Mode) -> std::io::Result<FakeServer> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let m = Arc::new(Mutex::new(mode));
    let mm = m.clone();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let mode = mode_of(&mm);
            tokio::spawn(async move {
                if mode == Mode::Hang {
                    return hold(s).await;
                }
                let svc = service_fn(move |_req: Request<Incoming>| async move {
                    Ok::<_, std::convert::Infallible>(match mode {
                        Mode::Fail => plain(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "[+]ping ok\n[+]log ok\n[-]syncloop failed: reason withheld\nhealthz check failed\n",
                        ),
                        _ => plain(StatusCode::OK, "ok"),
                    })
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    Ok(FakeServer {
        mode: m,
        task,
        addr: Some(addr),
        socket: None,
    })
}

/// A Docker Engine API fake on a unix socket: `GET /_ping` → `OK`, `GET /containers/json` →
/// `[]` (with an optional `/v1.xx` prefix); `Fail` → 500 with a JSON message; `Hang` →
/// accept and never answer.
pub async fn docker_server(socket: &Path, mode: Mode) -> std::io::Result<FakeServer> {
    let _ = std::fs::remove_file(socket);
    let l = tokio::net::UnixListener::bind(socket)?;
    let m = Arc::new(Mutex::new(mode));
    let mm = m.clone();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let mode = mode_of(&mm);
            tokio::spawn(async move {
                if mode == Mode::Hang {
                    return hold(s).await;
                }
                let svc = service_fn(move |req: Request<Incoming>| async move {
                    let path = req.uri().path();
                    let path = match path.strip_prefix("/v1.") {
                        Some(rest) => rest.find('/').map(|i| &rest[i..]).unwrap_or("/"),
                        None => path,
                    };
                    Ok::<_, std::convert::Infallible>(match (mode, path) {
                        (Mode::Fail, _) => plain(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "{\"message\":\"Cannot connect to the containerd daemon\"}",
                        ),
                        (_, "/_ping") => plain(StatusCode::OK, "OK"),
                        (_, "/containers/json") => plain(StatusCode::OK, "[]"),
                        // a real dockerd's `GET /info` (drift_fixtures/README.md)
                        (_, "/info") => plain(
                            StatusCode::OK,
                            include_str!("drift_fixtures/docker-info.json"),
                        ),
                        _ => plain(StatusCode::NOT_FOUND, "{\"message\":\"page not found\"}"),
                    })
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    Ok(FakeServer {
        mode: m,
        task,
        addr: None,
        socket: Some(socket.to_path_buf()),
    })
}

fn grpc_reply(status: u32, message: &'static [u8]) -> Response<Body> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(status));
    if status != 0 {
        trailers.insert("grpc-message", HeaderValue::from_static("fake%20error"));
    }
    let body = Full::new(message)
        .with_trailers(async move { Some(Ok(trailers)) })
        .boxed();
    let mut r = Response::new(body);
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    r
}

/// A CRI fake: gRPC over HTTP/2 (prior knowledge) on a unix socket, answering
/// `RuntimeService/Version` and `ListPodSandbox` with a framed message and `grpc-status: 0`
/// in the trailers; `Fail` → `grpc-status: 14` (UNAVAILABLE); `Hang` → accept, never answer;
/// `OnlyV1alpha2` → `runtime.v1` is UNIMPLEMENTED (12).
pub async fn cri_server(socket: &Path, mode: Mode) -> std::io::Result<FakeServer> {
    // Version reply: version "0.1.0", runtime_name "containerd" (fields 1 and 2)
    static VERSION: &[u8] = &[
        0, 0, 0, 0, 19, 0x0a, 5, b'0', b'.', b'1', b'.', b'0', 0x12, 10, b'c', b'o', b'n', b't',
        b'a', b'i', b'n', b'e', b'r', b'd',
    ];
    static EMPTY: &[u8] = &[0, 0, 0, 0, 0];
    // RuntimeConfigResponse{linux: {cgroup_driver: CGROUPFS (1)}}; SYSTEMD (0) is the
    // proto3 default, left out: an empty `linux` message
    static CGROUPFS: &[u8] = &[0, 0, 0, 0, 4, 0x0a, 2, 0x08, 1];
    static SYSTEMD: &[u8] = &[0, 0, 0, 0, 2, 0x0a, 0];
    let _ = std::fs::remove_file(socket);
    let l = tokio::net::UnixListener::bind(socket)?;
    let m = Arc::new(Mutex::new(mode));
    let mm = m.clone();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let mode = mode_of(&mm);
            tokio::spawn(async move {
                if mode == Mode::Hang {
                    return hold(s).await;
                }
                let svc = service_fn(move |req: Request<Incoming>| async move {
                    let path = req.uri().path().to_string();
                    // read the request message like a server would
                    let _ = req.into_body().collect().await;
                    let r = match mode {
                        Mode::Fail => grpc_reply(14, b""),
                        Mode::OnlyV1alpha2 if path.starts_with("/runtime.v1.") => {
                            grpc_reply(12, b"")
                        }
                        _ if path.ends_with("/Version") => grpc_reply(0, VERSION),
                        _ if path.ends_with("/ListPodSandbox") => grpc_reply(0, EMPTY),
                        Mode::StatesCgroupDriver(d) if path.ends_with("/RuntimeConfig") => {
                            grpc_reply(
                                0,
                                match d {
                                    CgroupDriver::Cgroupfs => CGROUPFS,
                                    CgroupDriver::Systemd => SYSTEMD,
                                },
                            )
                        }
                        _ => grpc_reply(12, b""),
                    };
                    Ok::<_, std::convert::Infallible>(r)
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    Ok(FakeServer {
        mode: m,
        task,
        addr: None,
        socket: Some(socket.to_path_buf()),
    })
}

/// A systemd fake for the probes: unit states by name, a manager version, or a bus that
/// never answers.
#[derive(Default)]
pub struct FakeSystemd {
    pub units: Mutex<HashMap<String, UnitStatus>>,
    pub version: Mutex<Option<String>>,
    pub hang: std::sync::atomic::AtomicBool,
}

impl FakeSystemd {
    pub fn new() -> Self {
        Self::default()
    }
    /// A loaded service in `active/running` since `since`, with main pid `pid`.
    pub fn with_active(self, unit: &str, since: Timestamp, pid: Option<u32>) -> Self {
        self.set(unit, "active", "running", Some(since), pid);
        self
    }
    /// A loaded service that is not running (`inactive/dead`).
    pub fn with_inactive(self, unit: &str) -> Self {
        self.set(unit, "inactive", "dead", None, None);
        self
    }
    pub fn with_version(self, v: &str) -> Self {
        *self.version.lock().unwrap_or_else(|p| p.into_inner()) = Some(v.to_string());
        self
    }
    pub fn set(
        &self,
        unit: &str,
        active: &str,
        sub: &str,
        since: Option<Timestamp>,
        pid: Option<u32>,
    ) {
        self.units.lock().unwrap_or_else(|p| p.into_inner()).insert(
            unit.to_string(),
            UnitStatus {
                name: unit.to_string(),
                load_state: "loaded".into(),
                active_state: active.into(),
                sub_state: sub.into(),
                invocation_id: Some("0123456789abcdef0123456789abcdef".into()),
                main_pid: pid,
                active_enter: since,
                inactive_exit: since,
                n_restarts: Some(0),
            },
        );
    }
    async fn maybe_hang(&self) {
        if self.hang.load(std::sync::atomic::Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    }
    fn unsupported<T>(what: &str) -> Result<T, SystemdError> {
        Err(SystemdError::Protocol {
            what: what.into(),
            detail: "not supported by the probe fake".into(),
        })
    }
}

impl Systemd for FakeSystemd {
    fn unit_status<'a>(&'a self, unit: &'a str) -> SdFuture<'a, UnitStatus> {
        Box::pin(async move {
            self.maybe_hang().await;
            self.units
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(unit)
                .cloned()
                .ok_or_else(|| SystemdError::NotFound {
                    unit: unit.to_string(),
                })
        })
    }
    fn restart_unit<'a>(
        &'a self,
        _unit: &'a str,
        _timeout: std::time::Duration,
    ) -> SdFuture<'a, RestartOutcome> {
        Box::pin(async { Self::unsupported("RestartUnit") })
    }
    fn manager_version(&self) -> SdFuture<'_, String> {
        Box::pin(async move {
            self.maybe_hang().await;
            self.version
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .ok_or_else(|| SystemdError::Protocol {
                    what: "Get(Manager.Version)".into(),
                    detail: "no version set in the fake".into(),
                })
        })
    }
    fn reboot(&self) -> SdFuture<'_, ()> {
        Box::pin(async { Self::unsupported("Reboot") })
    }
    fn kill_unit_signal<'a>(&'a self, _unit: &'a str, _signal: Signal) -> SdFuture<'a, ()> {
        Box::pin(async { Self::unsupported("KillUnit") })
    }
    fn units_present<'a>(&'a self, units: &'a [&'a str]) -> SdFuture<'a, Vec<UnitPresence>> {
        Box::pin(async move {
            self.maybe_hang().await;
            let map = self.units.lock().unwrap_or_else(|p| p.into_inner());
            Ok(units
                .iter()
                .map(|u| match map.get(*u) {
                    Some(s) => UnitPresence {
                        name: u.to_string(),
                        load_state: s.load_state.clone(),
                        active_state: s.active_state.clone(),
                    },
                    None => UnitPresence {
                        name: u.to_string(),
                        load_state: "not-found".into(),
                        active_state: "inactive".into(),
                    },
                })
                .collect())
        })
    }
}

/// API sources answering fixed values (or hanging).
#[derive(Clone, Default)]
pub struct FixedApi {
    pub lease: Option<Timestamp>,
    pub ready: Option<String>,
    /// Offset of the fake server clock from the local clock, and the round trip to report.
    pub clock_offset: Option<(jiff::SignedDuration, Dur)>,
    pub hang: bool,
}

impl FixedApi {
    pub fn sources(self) -> super::ApiSources {
        let a = Arc::new(self);
        let none = Arc::new(super::NotConfigured("not in this fake".into()));
        super::ApiSources {
            lease: a.clone(),
            ready: a.clone(),
            clock: a,
            csrs: none.clone(),
            reach: none,
        }
    }
}

impl LeaseSource for FixedApi {
    fn lease_renew_time(&self) -> ApiFuture<'_, Option<Timestamp>> {
        Box::pin(async move {
            if self.hang {
                std::future::pending::<()>().await;
            }
            Ok(self.lease)
        })
    }
}
impl ReadyConditionSource for FixedApi {
    fn ready_message(&self) -> ApiFuture<'_, Option<String>> {
        Box::pin(async move {
            if self.hang {
                std::future::pending::<()>().await;
            }
            Ok(self.ready.clone())
        })
    }
}
impl ServerClock for FixedApi {
    fn date(&self) -> ApiFuture<'_, (Timestamp, Dur)> {
        Box::pin(async move {
            if self.hang {
                std::future::pending::<()>().await;
            }
            let (off, rtt) = self.clock_offset.ok_or("no server clock in the fake")?;
            // Date has 1 s resolution, like the real header
            let t = Timestamp::now()
                .checked_add(off)
                .map_err(|e| e.to_string())?;
            let t = Timestamp::from_second(t.as_second()).map_err(|e| e.to_string())?;
            Ok((t, rtt))
        })
    }
}

/// A kernel clock that says what it is told.
pub struct FixedKernelClock(pub Result<super::KernelClock, String>);

impl super::KernelClockSource for FixedKernelClock {
    fn read(&self) -> Result<super::KernelClock, String> {
        self.0.clone()
    }
}
