//! Prometheus metrics in the text exposition format (0.0.4), served on loopback.
//!
//! Hand-rolled: a handful of gauges, counters and one histogram do not need
//! the prometheus crate. The server is a bare hyper HTTP/1 listener that
//! answers `GET /metrics` and refuses to bind anything but a loopback address
//! (node-exporter-style scraping goes through the host network namespace).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `nodewarden_problem_active` | gauge 0/1 | `problem` |
//! | `nodewarden_steps_total` | counter | `action`, `result` |
//! | `nodewarden_probe_duration_seconds` | histogram | `problem` |
//! | `nodewarden_episode_phase` | gauge 0/1 (one per phase) | `phase` |
//! | `nodewarden_hold_gate` | gauge 0/1 (one per gate) | `gate` |
//! | `nodewarden_slot_held` | gauge 0/1 | |
//! | `nodewarden_ledger_write_failing` | gauge 0/1 | |
//! | `nodewarden_last_decision` | gauge 1 | `decision` |
//! | `nodewarden_last_decision_timestamp_seconds` | gauge | |

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::domain::{Gate, Timestamp};

/// Histogram buckets of probe durations, seconds.
pub const PROBE_BUCKETS: [f64; 9] = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 10.0];

/// Episode phases, all exported (0 or 1) so a dashboard sees every series.
pub const PHASES: [&str; 10] = [
    "idle",
    "pending",
    "act",
    "verify",
    "wait",
    "hold",
    "recovered",
    "monitoring",
    "exhausted",
    "paused",
];

#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: [u64; PROBE_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct State {
    problems: BTreeMap<String, bool>,
    steps: BTreeMap<(String, String), u64>,
    probes: BTreeMap<String, Histogram>,
    phase: Option<String>,
    hold_gate: Option<Gate>,
    slot_held: bool,
    ledger_write_failing: bool,
    last_decision: Option<(String, Timestamp)>,
}

/// The agent's metrics. Share it in an `Arc`; every method is cheap.
#[derive(Debug, Default)]
pub struct Metrics {
    state: Mutex<State>,
}

/// Escapes a label value (`\`, `"`, newline).
fn esc(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else if v.is_nan() {
        "NaN".into()
    } else if v > 0.0 {
        "+Inf".into()
    } else {
        "-Inf".into()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Metrics::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A problem is (or stops being) an active finding.
    pub fn set_problem_active(&self, problem: &str, active: bool) {
        self.state().problems.insert(problem.to_string(), active);
    }

    /// A step finished with `result` (`succeeded`, `failed`, `timeout`, …).
    pub fn step(&self, action: &str, result: &str) {
        *self
            .state()
            .steps
            .entry((action.to_string(), result.to_string()))
            .or_default() += 1;
    }

    /// One probe run took `took`.
    pub fn observe_probe(&self, problem: &str, took: Duration) {
        let secs = took.as_secs_f64();
        let mut s = self.state();
        let h = s.probes.entry(problem.to_string()).or_default();
        for (i, b) in PROBE_BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The episode phase (one of [`PHASES`]; another value is exported as is).
    pub fn set_phase(&self, phase: &str) {
        self.state().phase = Some(phase.to_string());
    }

    /// The gate holding the ladder now (`StormGate`, …), or none.
    pub fn set_hold_gate(&self, gate: Option<Gate>) {
        self.state().hold_gate = gate;
    }

    /// The ledger cannot be written (full disk, read-only filesystem): every step is held.
    pub fn set_ledger_write_failing(&self, failing: bool) {
        self.state().ledger_write_failing = failing;
    }

    pub fn set_slot_held(&self, held: bool) {
        self.state().slot_held = held;
    }

    /// The planner's last decision (`idle`, `act`, `hold`, …) and when.
    pub fn set_last_decision(&self, decision: &str, at: Timestamp) {
        self.state().last_decision = Some((decision.to_string(), at));
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let s = self.state();
        let mut o = String::with_capacity(2048);
        let _ = writeln!(
            o,
            "# HELP nodewarden_problem_active Whether a problem is an active finding on this node."
        );
        let _ = writeln!(o, "# TYPE nodewarden_problem_active gauge");
        for (p, a) in &s.problems {
            let _ = writeln!(
                o,
                "nodewarden_problem_active{{problem=\"{}\"}} {}",
                esc(p),
                u8::from(*a)
            );
        }
        let _ = writeln!(
            o,
            "# HELP nodewarden_steps_total Runbook steps finished, by action and result."
        );
        let _ = writeln!(o, "# TYPE nodewarden_steps_total counter");
        for ((a, r), n) in &s.steps {
            let _ = writeln!(
                o,
                "nodewarden_steps_total{{action=\"{}\",result=\"{}\"}} {n}",
                esc(a),
                esc(r)
            );
        }
        let _ = writeln!(
            o,
            "# HELP nodewarden_probe_duration_seconds Time one probe run took."
        );
        let _ = writeln!(o, "# TYPE nodewarden_probe_duration_seconds histogram");
        for (p, h) in &s.probes {
            let p = esc(p);
            for (i, b) in PROBE_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "nodewarden_probe_duration_seconds_bucket{{problem=\"{p}\",le=\"{}\"}} {}",
                    num(*b),
                    h.buckets[i]
                );
            }
            let _ = writeln!(
                o,
                "nodewarden_probe_duration_seconds_bucket{{problem=\"{p}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                o,
                "nodewarden_probe_duration_seconds_sum{{problem=\"{p}\"}} {}",
                num(h.sum)
            );
            let _ = writeln!(
                o,
                "nodewarden_probe_duration_seconds_count{{problem=\"{p}\"}} {}",
                h.count
            );
        }
        let _ = writeln!(
            o,
            "# HELP nodewarden_episode_phase The current episode phase (1) among all phases (0)."
        );
        let _ = writeln!(o, "# TYPE nodewarden_episode_phase gauge");
        let current = s.phase.as_deref();
        for ph in PHASES {
            let _ = writeln!(
                o,
                "nodewarden_episode_phase{{phase=\"{ph}\"}} {}",
                u8::from(current == Some(ph))
            );
        }
        if let Some(c) = current.filter(|c| !PHASES.contains(c)) {
            let _ = writeln!(o, "nodewarden_episode_phase{{phase=\"{}\"}} 1", esc(c));
        }
        let _ = writeln!(
            o,
            "# HELP nodewarden_hold_gate The safety gate holding the next step (1) among all gates (0)."
        );
        let _ = writeln!(o, "# TYPE nodewarden_hold_gate gauge");
        for g in Gate::ALL {
            let _ = writeln!(
                o,
                "nodewarden_hold_gate{{gate=\"{g}\"}} {}",
                u8::from(s.hold_gate == Some(g))
            );
        }
        let _ = writeln!(
            o,
            "# HELP nodewarden_slot_held Whether this node holds a cluster-wide disruption slot."
        );
        let _ = writeln!(o, "# TYPE nodewarden_slot_held gauge");
        let _ = writeln!(o, "nodewarden_slot_held {}", u8::from(s.slot_held));
        let _ = writeln!(
            o,
            "# HELP nodewarden_ledger_write_failing Whether the ledger cannot be written; every step is held until it can."
        );
        let _ = writeln!(o, "# TYPE nodewarden_ledger_write_failing gauge");
        let _ = writeln!(
            o,
            "nodewarden_ledger_write_failing {}",
            u8::from(s.ledger_write_failing)
        );
        if let Some((d, at)) = &s.last_decision {
            let _ = writeln!(
                o,
                "# HELP nodewarden_last_decision The planner's last decision."
            );
            let _ = writeln!(o, "# TYPE nodewarden_last_decision gauge");
            let _ = writeln!(o, "nodewarden_last_decision{{decision=\"{}\"}} 1", esc(d));
            let _ = writeln!(
                o,
                "# HELP nodewarden_last_decision_timestamp_seconds When the planner last decided."
            );
            let _ = writeln!(o, "# TYPE nodewarden_last_decision_timestamp_seconds gauge");
            let _ = writeln!(
                o,
                "nodewarden_last_decision_timestamp_seconds {}",
                num(at.as_millisecond() as f64 / 1000.0)
            );
        }
        o
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("metrics address {0} is not a loopback address")]
    NotLoopback(SocketAddr),
    #[error("binding the metrics listener on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Binds a loopback address (port 0: any free port).
pub async fn bind_loopback(addr: SocketAddr) -> Result<TcpListener, BindError> {
    if !addr.ip().is_loopback() {
        return Err(BindError::NotLoopback(addr));
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError::Bind { addr, source })
}

fn respond(metrics: &Metrics, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        (&Method::GET, _) => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n".to_string(),
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Serves `GET /metrics` on `listener` until the task is aborted. Each
/// connection is bounded (headers within 5 s, the whole connection 30 s).
pub fn serve(listener: TcpListener, metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!("metrics accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let r = respond(&metrics, &req);
                    async move { Ok::<_, Infallible>(r) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(5))
                    .serve_connection(TokioIo::new(stream), svc);
                let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
            });
        }
    })
}

#[cfg(test)]
mod tests;
