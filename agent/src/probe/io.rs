//! Calls out of the process for the probes, each under its own deadline: HTTP/1.1 over TCP
//! (kubelet healthz) and over a unix socket (Docker Engine API), unary gRPC over HTTP/2 on a
//! unix socket (CRI), and child processes (`journalctl`, `rpm`) killed when time runs out.
//!
//! Every connection is driven inside the caller's future (never a spawned task), so a
//! deadline that fires drops the socket and nothing lingers behind a hung peer.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

pub use crate::domain::check_http_url;

/// Most a probe reads of any reply body.
pub const MAX_BODY: usize = 4 << 20;

/// Why a call out failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The call cannot be made as configured (a URL this client does not
    /// support): nothing was asked, so nothing is known about the peer.
    #[error("cannot probe as configured: {0}")]
    Config(String),
    /// Nobody listens (TCP RST, or a unix socket with no listener): the daemon is not running.
    #[error("connection refused (not running?)")]
    Refused,
    /// The unix socket file does not exist.
    #[error("{0} does not exist (not running?)")]
    NoSocket(String),
    /// The deadline passed; `what` says which stage was pending.
    #[error("timed out after {} ({what})", fmt_secs(*.after))]
    Timeout { what: &'static str, after: Duration },
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    #[error("{0}")]
    Protocol(String),
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

impl CallError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, CallError::Timeout { .. })
    }
}

/// `1.5s`, `10s`, `250ms`.
pub fn fmt_secs(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// A reply, its body cut at [`MAX_BODY`].
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub trailers: Option<HeaderMap>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body's first line, at most 120 characters, for evidence.
    pub fn body_excerpt(&self) -> String {
        let s = String::from_utf8_lossy(&self.body);
        let line = s.lines().next().unwrap_or("").trim();
        line.chars().take(120).collect()
    }
}

fn connect_error(e: std::io::Error, path: Option<&Path>) -> CallError {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => CallError::Refused,
        std::io::ErrorKind::NotFound => {
            CallError::NoSocket(path.map(|p| p.display().to_string()).unwrap_or_default())
        }
        _ => CallError::Connect(e),
    }
}

async fn within<T>(
    deadline: Duration,
    what: &'static str,
    fut: impl Future<Output = Result<T, CallError>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(deadline, fut).await {
        Ok(r) => r,
        Err(_) => Err(CallError::Timeout {
            what,
            after: deadline,
        }),
    }
}

/// Which stage a call is in, so a timeout names it ("connecting", "waiting for the reply").
struct Stage(std::sync::Mutex<&'static str>);

impl Stage {
    fn new() -> Self {
        Stage(std::sync::Mutex::new("connecting"))
    }
    fn set(&self, s: &'static str) {
        if let Ok(mut g) = self.0.lock() {
            *g = s;
        }
    }
    fn get(&self) -> &'static str {
        self.0.lock().map(|g| *g).unwrap_or("call")
    }
}

async fn staged<T>(
    deadline: Duration,
    stage: &Stage,
    fut: impl Future<Output = Result<T, CallError>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(deadline, fut).await {
        Ok(r) => r,
        Err(_) => Err(CallError::Timeout {
            what: stage.get(),
            after: deadline,
        }),
    }
}

/// A reply's head, trailers and body (at most `MAX_BODY` bytes), for HTTP/1 and
/// HTTP/2 alike; `stage` names the wait (`what`) and so does the error.
async fn collect_reply(
    resp: http::Response<hyper::body::Incoming>,
    stage: &Stage,
    what: &'static str,
) -> Result<Reply, CallError> {
    stage.set(what);
    let (parts, body) = resp.into_parts();
    let collected = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| CallError::Protocol(format!("{what}: {e}")))?;
    let trailers = collected.trailers().cloned();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        trailers,
        body: collected.to_bytes().to_vec(),
    })
}

async fn http1_exchange<IO>(
    io: IO,
    req: Request<Empty<&'static [u8]>>,
    stage: &Stage,
) -> Result<Reply, CallError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    stage.set("HTTP handshake");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| CallError::Protocol(format!("HTTP handshake: {e}")))?;
    tokio::pin!(conn);
    http1_send(&mut sender, &mut conn, req, stage).await.0
}

/// Send `req` on `sender` and read the reply, driving `conn` meanwhile; `true` with the
/// reply when the connection ended (it must not be polled again).
async fn http1_send<C>(
    sender: &mut Http1Sender,
    conn: &mut C,
    req: Request<Empty<&'static [u8]>>,
    stage: &Stage,
) -> (Result<Reply, CallError>, bool)
where
    C: Future<Output = hyper::Result<()>> + Unpin,
{
    // Whether the request went out: a connection that ends before it did never answers
    // it, and `ready()` would wait for a connection that is gone.
    let sent = std::sync::atomic::AtomicBool::new(false);
    let exchange = async {
        stage.set("waiting for the reply");
        sender
            .ready()
            .await
            .map_err(|e| CallError::Protocol(format!("request failed: {e}")))?;
        sent.store(true, std::sync::atomic::Ordering::Relaxed);
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| CallError::Protocol(format!("request failed: {e}")))?;
        collect_reply(resp, stage, "reading the reply body").await
    };
    tokio::pin!(exchange);
    tokio::select! {
        biased;
        r = &mut exchange => (r, false),
        // The connection ends first when the reply is close-delimited (HTTP/1.0,
        // or `Connection: close` without a length): the reply it read is still
        // waiting in `exchange`, which now finishes or says what was missing.
        c = conn => match (c, sent.load(std::sync::atomic::Ordering::Relaxed)) {
            (Ok(()), false) => (
                Err(CallError::Protocol(
                    "the peer closed the connection before the request".into(),
                )),
                true,
            ),
            (c, _) => (closed_first(c, exchange), true),
        },
    }
}

/// The outcome of an exchange whose connection has ended: what the connection read is
/// all there will be, so the exchange is polled once, never awaited (a request still
/// queued when the peer closed would wait for a reply that cannot come).
fn closed_first(
    c: hyper::Result<()>,
    exchange: impl Future<Output = Result<Reply, CallError>>,
) -> Result<Reply, CallError> {
    let closed = || CallError::Protocol("the peer closed the connection before replying".into());
    match c {
        Ok(()) => match futures::FutureExt::now_or_never(exchange) {
            Some(Err(CallError::Protocol(m))) if m.starts_with("request failed") => Err(closed()),
            Some(r) => r,
            None => Err(closed()),
        },
        Err(e) => Err(CallError::Protocol(format!("connection failed: {e}"))),
    }
}

/// `GET url` over plain HTTP/1.1 (TCP), all within `deadline`.
pub async fn http_get(url: &str, deadline: Duration) -> Result<Reply, CallError> {
    let uri = check_http_url(url).map_err(CallError::Config)?;
    let Some(authority) = uri.authority().cloned() else {
        return Err(CallError::Config(format!("no host in {url:?}")));
    };
    let addr = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let req = Request::get(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header(http::header::HOST, authority.as_str())
        .header(http::header::USER_AGENT, "nodewarden")
        .body(Empty::new())
        .map_err(|e| CallError::Protocol(e.to_string()))?;
    let stage = Stage::new();
    staged(deadline, &stage, async {
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| connect_error(e, None))?;
        http1_exchange(TokioIo::new(tcp), req, &stage).await
    })
    .await
}

/// `GET path_and_query` over HTTP/1.1 on a unix socket (the Docker Engine API), within `deadline`.
pub async fn unix_http_get(
    socket: &Path,
    path_and_query: &str,
    deadline: Duration,
) -> Result<Reply, CallError> {
    // a fresh connection, used once
    UnixHttp::new(socket).get(path_and_query, deadline).await
}

type Http1Sender = hyper::client::conn::http1::SendRequest<Empty<&'static [u8]>>;
type Http1Conn =
    hyper::client::conn::http1::Connection<TokioIo<tokio::net::UnixStream>, Empty<&'static [u8]>>;

/// HTTP/1.1 on a unix socket, one connection for several requests in a row (the Docker
/// Engine API's `/_ping` then `/containers/json`: one connect, accept and close a round
/// instead of two; issue 15, docs/benchmarks.md pass 5). The connection is driven only
/// while a request is awaited, inside the caller's future, so a deadline that fires
/// drops it with the caller as [`unix_http_get`] does. A peer that closes after a reply
/// (`Connection: close`) is connected to again for the next request.
pub struct UnixHttp<'a> {
    socket: &'a Path,
    open: Option<(Http1Sender, std::pin::Pin<Box<Http1Conn>>)>,
}

impl<'a> UnixHttp<'a> {
    /// Nothing is connected until the first request.
    pub fn new(socket: &'a Path) -> Self {
        UnixHttp { socket, open: None }
    }

    /// `GET path_and_query` within `deadline`, on the open connection if there is one.
    /// A kept connection that fails short of a timeout (the peer closed it between the
    /// requests) is replaced once by a new one: a GET is safe to ask again.
    pub async fn get(
        &mut self,
        path_and_query: &str,
        deadline: Duration,
    ) -> Result<Reply, CallError> {
        let t0 = tokio::time::Instant::now();
        let reused = self.open.is_some();
        match self.get_once(path_and_query, deadline).await {
            Err(CallError::Protocol(_)) if reused => {
                let left = deadline.saturating_sub(t0.elapsed());
                self.get_once(path_and_query, left).await
            }
            r => r,
        }
    }

    async fn get_once(
        &mut self,
        path_and_query: &str,
        deadline: Duration,
    ) -> Result<Reply, CallError> {
        let req = unix_request(path_and_query)?;
        let stage = Stage::new();
        let socket = self.socket;
        let open = &mut self.open;
        staged(deadline, &stage, async {
            if open.is_none() {
                let s = tokio::net::UnixStream::connect(socket)
                    .await
                    .map_err(|e| connect_error(e, Some(socket)))?;
                stage.set("HTTP handshake");
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                    .await
                    .map_err(|e| CallError::Protocol(format!("HTTP handshake: {e}")))?;
                *open = Some((sender, Box::pin(conn)));
            }
            let Some((sender, conn)) = open.as_mut() else {
                return Err(CallError::Protocol("no connection".into()));
            };
            let (reply, ended) = http1_send(sender, conn, req, &stage).await;
            // an ended connection is never polled again; a failed one is dropped below
            let closed = open.as_ref().is_none_or(|(sender, _)| sender.is_closed());
            if ended || closed {
                *open = None;
            }
            reply
        })
        .await
        .inspect_err(|_| self.open = None)
    }
}

fn unix_request(path_and_query: &str) -> Result<Request<Empty<&'static [u8]>>, CallError> {
    Request::get(path_and_query)
        .header(http::header::HOST, "docker")
        .header(http::header::USER_AGENT, "nodewarden")
        .body(Empty::new())
        .map_err(|e| CallError::Protocol(e.to_string()))
}

/// The outcome of a unary gRPC call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcReply {
    pub http_status: u16,
    /// `grpc-status` (0 = OK), from the trailers or a trailers-only reply; `None` if absent.
    pub grpc_status: Option<u32>,
    pub grpc_message: Option<String>,
    /// The reply message size, without the 5-byte frame prefixes.
    pub message_bytes: usize,
    /// The first reply message (uncompressed frames only; empty otherwise), at most
    /// [`MAX_GRPC_MESSAGE`] bytes: what a caller that decodes the reply reads.
    pub message: Vec<u8>,
}

/// The most of a reply message kept for decoding (the replies decoded are a few bytes).
pub const MAX_GRPC_MESSAGE: usize = 4096;

impl GrpcReply {
    pub fn ok(&self) -> bool {
        self.http_status == 200 && self.grpc_status == Some(0)
    }
}

/// gRPC status code 12.
pub const GRPC_UNIMPLEMENTED: u32 = 12;

/// A unary gRPC call with an empty request message (`/package.Service/Method`) over HTTP/2
/// on a unix socket, within `deadline`. No protobuf is decoded: success is HTTP 200 and
/// `grpc-status: 0`.
pub async fn grpc_unary_unix(
    socket: &Path,
    method: &str,
    deadline: Duration,
) -> Result<GrpcReply, CallError> {
    // An empty message: no compression flag, length 0.
    static EMPTY_FRAME: [u8; 5] = [0, 0, 0, 0, 0];
    let req = Request::post(format!("http://localhost{method}"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .header(http::header::USER_AGENT, "nodewarden")
        .body(Full::new(&EMPTY_FRAME[..]))
        .map_err(|e| CallError::Protocol(e.to_string()))?;
    let stage = Stage::new();
    staged(deadline, &stage, async {
        let s = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| connect_error(e, Some(socket)))?;
        stage.set("HTTP/2 handshake");
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
                .await
                .map_err(|e| CallError::Protocol(format!("HTTP/2 handshake: {e}")))?;
        let exchange = async {
            stage.set("waiting for the reply");
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| CallError::Protocol(format!("request failed: {e}")))?;
            let reply = collect_reply(resp, &stage, "reading the reply").await?;
            let status_from = |h: &HeaderMap| {
                h.get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u32>().ok())
            };
            let message_from = |h: &HeaderMap| {
                h.get("grpc-message")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let grpc_status = reply
                .trailers
                .as_ref()
                .and_then(status_from)
                .or_else(|| status_from(&reply.headers));
            let grpc_message = reply
                .trailers
                .as_ref()
                .and_then(message_from)
                .or_else(|| message_from(&reply.headers));
            Ok(GrpcReply {
                http_status: reply.status.as_u16(),
                grpc_status,
                grpc_message,
                message_bytes: grpc_payload_len(&reply.body),
                message: grpc_first_message(&reply.body),
            })
        };
        tokio::pin!(conn);
        tokio::select! {
            biased;
            r = exchange => r,
            c = &mut conn => Err(CallError::Protocol(match c {
                Ok(()) => "the peer closed the HTTP/2 connection before replying".into(),
                Err(e) => format!("HTTP/2 connection failed: {e}"),
            })),
        }
    })
    .await
}

/// The first length-prefixed gRPC message when it is whole and not compressed (flag 0);
/// else empty.
fn grpc_first_message(b: &[u8]) -> Vec<u8> {
    if b.len() < 5 || b[0] != 0 {
        return Vec::new();
    }
    let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
    match b.get(5..5 + len) {
        Some(m) if len <= MAX_GRPC_MESSAGE => m.to_vec(),
        _ => Vec::new(),
    }
}

/// Sum of the message lengths of length-prefixed gRPC frames.
fn grpc_payload_len(mut b: &[u8]) -> usize {
    let mut n = 0;
    while b.len() >= 5 {
        let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
        n += len.min(b.len() - 5);
        b = &b[(5 + len).min(b.len())..];
    }
    n
}

/// How a child process ended.
#[derive(Debug, Clone)]
pub struct Finished {
    pub success: bool,
    pub code: Option<i32>,
    /// The first 2 KiB of stderr.
    pub stderr: String,
}

/// Run `program args…` (no shell), feeding each stdout line to `on_line`, all within
/// `deadline`. On timeout the child is killed (SIGKILL) and reaped.
pub async fn run_lines(
    program: &Path,
    args: &[&str],
    deadline: Duration,
    on_line: impl FnMut(&str),
) -> Result<Finished, CallError> {
    run_lines_in(None, program, args, deadline, on_line).await
}

/// The PATH a host tool is looked up in inside the host's root (the pod's own PATH
/// describes the image, not the host).
const HOST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// [`run_lines`], with the child chrooted into `root` first when there is one: the host's
/// own tool, reading the host's files (`--host-root`, a DaemonSet; see
/// docs/architecture.md).
pub async fn run_lines_in(
    root: Option<&Path>,
    program: &Path,
    args: &[&str],
    deadline: Duration,
    mut on_line: impl FnMut(&str),
) -> Result<Finished, CallError> {
    let mut cmd = tokio::process::Command::new(program);
    if let Some(r) = root {
        crate::host::sys::chroot_before_exec(&mut cmd, r).map_err(|source| CallError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
        cmd.env("PATH", HOST_PATH);
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("SYSTEMD_PAGER", "")
        .env("LC_ALL", "C")
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| CallError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let work = async {
        let out = async {
            if let Some(o) = stdout {
                let mut lines = BufReader::new(o).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    on_line(&l);
                }
            }
        };
        let err = async {
            let mut buf = Vec::new();
            if let Some(e) = stderr {
                let _ = e.take(2048).read_to_end(&mut buf).await;
            }
            buf
        };
        let ((), err) = tokio::join!(out, err);
        let status = child.wait().await.map_err(|source| CallError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
        Ok(Finished {
            success: status.success(),
            code: status.code(),
            stderr: String::from_utf8_lossy(&err).trim().to_string(),
        })
    };
    let r = within(deadline, "waiting for the child process", work).await;
    if r.as_ref().is_err_and(CallError::is_timeout) {
        let _ = child.start_kill();
        // reap it; SIGKILL cannot be ignored, so this is quick
        let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
    }
    r
}

/// Run `program args…` and return all of stdout (at most 1 MiB) within `deadline`.
pub async fn run_output(
    program: &Path,
    args: &[&str],
    deadline: Duration,
) -> Result<(Finished, String), CallError> {
    run_output_in(None, program, args, deadline).await
}

/// [`run_output`], chrooted into `root` when there is one (see [`run_lines_in`]).
pub async fn run_output_in(
    root: Option<&Path>,
    program: &Path,
    args: &[&str],
    deadline: Duration,
) -> Result<(Finished, String), CallError> {
    let mut out = String::new();
    let f = run_lines_in(root, program, args, deadline, |l| {
        if out.len() < (1 << 20) {
            out.push_str(l);
            out.push('\n');
        }
    })
    .await?;
    Ok((f, out))
}

#[cfg(test)]
mod tests;
