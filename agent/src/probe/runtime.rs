//! Container runtime hang: which runtime the kubelet uses, whether it answers on its socket
//! (Docker Engine API `/_ping` then `/containers/json?limit=1`; containerd CRI `Version` then
//! `ListPodSandbox` as raw gRPC over HTTP/2), whether its processes sit in uninterruptible
//! sleep (`D`) for longer than `stuckFor` (procfs, remembered across runs per pid), and
//! whether the kernel reported them as hung tasks (`/dev/kmsg`, read non-blocking).

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::domain::{Dur, Problem, Timestamp};
use crate::health::{Observation, Verdict};
use crate::runbook::RuntimeProbe as Settings;

use super::io;
use super::runtime_procs::RuntimeProcs;
use super::{Probe, ProbeFuture, budget, elapsed_since};

mod detect;
pub use detect::{Detection, Detector, Runtime};

/// Run blocking file reads on a blocking thread, giving up after 2 s (the thread may stay
/// stuck on a hung process; the probe does not).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    match tokio::time::timeout(Duration::from_secs(2), tokio::task::spawn_blocking(f)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(std::io::Error::other(e.to_string())),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "procfs read timed out",
        )),
    }
}

/// The first pid whose `comm` is `name`.
pub fn find_pid_by_comm(proc_root: &Path, name: &str) -> Option<u32> {
    let rd = std::fs::read_dir(proc_root).ok()?;
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(c) = std::fs::read_to_string(e.path().join("comm"))
            && c.trim() == name
        {
            return Some(pid);
        }
    }
    None
}

/// One process from `/proc/PID/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    pub comm: String,
    pub state: char,
    /// Start time in clock ticks since boot (tells a reused pid apart).
    pub start: u64,
}

/// Is this `comm` (at most 15 characters) a process of a container runtime?
pub fn is_runtime_comm(comm: &str) -> bool {
    comm == "dockerd"
        || comm == "containerd"
        || comm.starts_with("containerd-shim")
        || comm.starts_with("docker-containe")
}

/// Runtime processes in `D` state now, from a full listing of `proc_root` (a
/// process that vanishes while we read, or whose `stat` does not parse, is
/// skipped). The probe lists /proc only now and then: [`super::runtime_procs`].
pub fn runtime_processes_in_d(proc_root: &Path) -> std::io::Result<Vec<ProcStat>> {
    let mut all = super::runtime_procs::scan_runtime_processes(proc_root)?;
    all.retain(|p| p.state == 'D');
    Ok(all)
}

/// A kernel hung-task report naming a runtime process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HungTask {
    pub comm: String,
    pub pid: u32,
    pub blocked_secs: u64,
    /// Kernel timestamp (since boot).
    pub at: Duration,
}

/// Parse `/dev/kmsg` records (`PRI,SEQ,USEC,FLAGS;MESSAGE`, continuation lines start with a
/// space) and return the hung-task reports about runtime processes logged within `window`
/// before `now_since_boot`.
pub fn hung_tasks(text: &str, now_since_boot: Duration, window: Duration) -> Vec<HungTask> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with(' ') {
            continue;
        }
        let Some((prefix, msg)) = line.split_once(';') else {
            continue;
        };
        let Some(at) = record_time(prefix) else {
            continue;
        };
        if at + window < now_since_boot {
            continue;
        }
        // "INFO: task dockerd:1234 blocked for more than 120 seconds."
        let Some(rest) = msg.split("task ").nth(1) else {
            continue;
        };
        if !msg.contains("blocked for more than") {
            continue;
        }
        let Some((who, tail)) = rest.split_once(' ') else {
            continue;
        };
        let Some((comm, pid)) = who.rsplit_once(':') else {
            continue;
        };
        if !is_runtime_comm(comm) {
            continue;
        }
        let secs = tail
            .strip_prefix("blocked for more than ")
            .and_then(|t| t.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        out.push(HungTask {
            comm: comm.to_string(),
            pid: pid.parse().unwrap_or(0),
            blocked_secs: secs,
            at,
        });
    }
    out
}

/// A kmsg record's sequence number (`PRI,SEQ,…`).
fn record_seq(record: &str) -> Option<u64> {
    record.split(';').next()?.split(',').nth(1)?.parse().ok()
}

/// When a kmsg record (`PRI,SEQ,USEC,FLAGS;…`) was logged, since boot.
fn record_time(record: &str) -> Option<Duration> {
    let prefix = record.split(';').next()?;
    let usec: u64 = prefix.split(',').nth(2)?.parse().ok()?;
    Some(Duration::from_micros(usec))
}

/// The kernel log read incrementally. `/dev/kmsg` gives each open file its own position,
/// so the device stays open between rounds and each round reads only the records logged
/// since the last one, keeping the hung-task reports among them for the window. Reading
/// the whole ring buffer every 10 s cost one read(2) per record (thousands on a node that
/// has been up for months) and its parse (docs/benchmarks.md, pass 4).
///
/// A regular file (tests, fixtures) is read whole each round, as it may be rewritten.
pub struct KmsgTail {
    path: PathBuf,
    open: Option<std::fs::File>,
    /// Hung-task reports seen, as their kmsg records (first line only), by sequence
    /// number: a device opened again after an error replays its whole buffer, and a
    /// record read twice is kept once.
    kept: std::collections::BTreeMap<u64, String>,
}

/// At most this much of the log is read in one round; the rest is read by the next.
const KMSG_ROUND_BYTES: usize = 4 << 20;

impl KmsgTail {
    pub fn new(path: PathBuf) -> Self {
        KmsgTail {
            path,
            open: None,
            kept: Default::default(),
        }
    }

    /// Read what was logged since the last call without blocking, and return the
    /// hung-task reports about runtime processes within `window` before `now_since_boot`.
    pub fn hung_tasks(
        &mut self,
        now_since_boot: Duration,
        window: Duration,
    ) -> std::io::Result<Vec<HungTask>> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = match self.open.take() {
            Some(f) => f,
            None => {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&self.path)?;
                if f.metadata()?.is_file() {
                    self.kept.clear();
                }
                f
            }
        };
        let mut read = 0usize;
        let mut buf = vec![0u8; 8192];
        while read < KMSG_ROUND_BYTES {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    read += n;
                    // One record per read from the device (continuation lines start
                    // with a space); a regular file gives many.
                    for line in String::from_utf8_lossy(&buf[..n]).lines() {
                        if !line.starts_with(' ')
                            && line.contains("blocked for more than")
                            && let Some(seq) = record_seq(line)
                        {
                            self.kept.insert(seq, line.to_string());
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // EPIPE: records were overwritten while we read; go on with the next
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if !f.metadata().map(|m| m.is_file()).unwrap_or(true) {
            self.open = Some(f);
        }
        let kept: Vec<&str> = self.kept.values().map(String::as_str).collect();
        let found = hung_tasks(&kept.join("\n"), now_since_boot, window);
        // reports older than the window are not needed again
        self.kept
            .retain(|_, r| record_time(r).is_some_and(|at| at + window >= now_since_boot));
        Ok(found)
    }

    #[cfg(test)]
    fn kept_len(&self) -> usize {
        self.kept.len()
    }

    /// Close the device, as a read error does: the next call opens it again.
    #[cfg(test)]
    fn close(&mut self) {
        self.open = None;
    }
}

/// `CLOCK_MONOTONIC`, the clock of kmsg timestamps.
pub fn monotonic_now() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(Duration::from)
        .unwrap_or_default()
}

/// How far back kernel hung-task reports count.
pub const KMSG_WINDOW: Duration = Duration::from_secs(600);

/// The runtime probe.
pub struct RuntimeCheck {
    pub settings: Settings,
    pub detector: Arc<Detector>,
    pub proc_root: PathBuf,
    pub kmsg: Arc<Mutex<KmsgTail>>,
    /// Where the kernel log's clock is now (tests pin it).
    pub kmsg_clock: fn() -> Duration,
    /// First time each (pid, start time) was seen in D, across runs.
    in_d: Mutex<HashMap<(u32, u64), Timestamp>>,
    /// The runtime processes known from the last /proc listing.
    procs: Arc<RuntimeProcs>,
}

/// What the socket checks found.
#[derive(Debug)]
enum SocketResult {
    Ok(String),
    Fail(String, bool),
}

impl RuntimeCheck {
    pub fn new(
        settings: Settings,
        detector: Arc<Detector>,
        proc_root: PathBuf,
        kmsg: PathBuf,
    ) -> Self {
        RuntimeCheck {
            settings,
            detector,
            proc_root,
            kmsg: Arc::new(Mutex::new(KmsgTail::new(kmsg))),
            kmsg_clock: monotonic_now,
            in_d: Mutex::new(HashMap::new()),
            procs: Arc::new(RuntimeProcs::default()),
        }
    }

    async fn docker(&self, socket: &Path, deadline: Duration) -> SocketResult {
        let t0 = tokio::time::Instant::now();
        let left = |d: Duration| d.saturating_sub(t0.elapsed());
        // both requests on one connection (a second one if dockerd closed the first)
        let mut api = io::UnixHttp::new(socket);
        match api.get("/_ping", deadline).await {
            Ok(r) if r.status.as_u16() == 200 => {}
            Ok(r) => {
                return SocketResult::Fail(
                    format!(
                        "GET /_ping: HTTP {} {}",
                        r.status.as_u16(),
                        r.body_excerpt()
                    ),
                    false,
                );
            }
            Err(e) => return SocketResult::Fail(format!("GET /_ping: {e}"), e.is_timeout()),
        }
        let ping = elapsed_since(t0);
        match api.get("/containers/json?limit=1", left(deadline)).await {
            Ok(r) if r.status.as_u16() == 200 => SocketResult::Ok(format!(
                "/_ping ok in {ping}, /containers/json ok in {}",
                elapsed_since(t0)
            )),
            Ok(r) => SocketResult::Fail(
                format!(
                    "GET /containers/json: HTTP {} {}",
                    r.status.as_u16(),
                    r.body_excerpt()
                ),
                false,
            ),
            Err(e) => SocketResult::Fail(
                format!("/_ping ok but GET /containers/json: {e}"),
                e.is_timeout(),
            ),
        }
    }

    async fn cri(&self, socket: &Path, deadline: Duration) -> SocketResult {
        let t0 = tokio::time::Instant::now();
        let mut api = "runtime.v1";
        let mut out = Vec::new();
        for method in ["Version", "ListPodSandbox"] {
            let left = deadline.saturating_sub(t0.elapsed());
            let path = format!("/{api}.RuntimeService/{method}");
            let mut r = io::grpc_unary_unix(socket, &path, left).await;
            // containerd < 1.7 with the v1 API disabled speaks only v1alpha2
            if method == "Version"
                && r.as_ref()
                    .is_ok_and(|g| g.grpc_status == Some(io::GRPC_UNIMPLEMENTED))
            {
                api = "runtime.v1alpha2";
                let path = format!("/{api}.RuntimeService/{method}");
                r = io::grpc_unary_unix(socket, &path, deadline.saturating_sub(t0.elapsed())).await;
            }
            match r {
                Ok(g) if g.ok() => out.push(format!("{method} ok in {}", elapsed_since(t0))),
                Ok(g) => {
                    return SocketResult::Fail(
                        format!(
                            "CRI {method}: HTTP {} grpc-status {} {}",
                            g.http_status,
                            g.grpc_status
                                .map(|s| s.to_string())
                                .unwrap_or("missing".into()),
                            g.grpc_message.unwrap_or_default()
                        ),
                        false,
                    );
                }
                Err(e) => return SocketResult::Fail(format!("CRI {method}: {e}"), e.is_timeout()),
            }
        }
        SocketResult::Ok(format!("{api}: {}", out.join(", ")))
    }

    /// Update the D-state memory with what is in D now; return (process, in D since).
    /// `runtime_failing`: the runtime's API did not answer, so /proc is listed
    /// now rather than at the next periodic rescan.
    async fn stuck(
        &self,
        now: Timestamp,
        runtime_failing: bool,
    ) -> Result<Vec<(ProcStat, Timestamp)>, String> {
        let root = self.proc_root.clone();
        let known = self.procs.clone();
        let mono = std::time::Instant::now();
        let mut procs = blocking(move || known.current(&root, mono, runtime_failing))
            .await
            .map_err(|e| format!("cannot read {}: {e}", self.proc_root.display()))?;
        procs.retain(|p| p.state == 'D');
        let mut mem = self.in_d.lock().unwrap_or_else(|p| p.into_inner());
        mem.retain(|k, _| procs.iter().any(|p| (p.pid, p.start) == *k));
        Ok(procs
            .into_iter()
            .map(|p| {
                let since = *mem.entry((p.pid, p.start)).or_insert(now);
                (p, since)
            })
            .collect())
    }

    async fn run_inner(&self, now: Timestamp) -> Observation {
        let started = tokio::time::Instant::now();
        let deadline = budget(self.settings.timing.timeout);
        let p = Problem::ContainerRuntimeUnresponsive;
        let det = match tokio::time::timeout(deadline / 3, self.detector.detect()).await {
            Ok(d) => d,
            Err(_) => Detection {
                kind: None,
                socket: PathBuf::new(),
                how: "runtime detection timed out".into(),
                sources: Vec::new(),
            },
        };
        let mut o = Observation::new(p, now, Verdict::Healthy, "").with("detected", &det.how);
        let mut failing: Vec<String> = Vec::new();
        let left = deadline.saturating_sub(started.elapsed());
        for s in &det.sources {
            o = o.with(&format!("source {}", s.source), &s.said);
        }
        let sock = match det.kind {
            Some(Runtime::Docker) => Some(self.docker(&det.socket, left).await),
            Some(Runtime::Containerd | Runtime::CriO) => Some(self.cri(&det.socket, left).await),
            // cri-dockerd's CRI socket, then dockerd itself
            Some(Runtime::CriDockerd) => Some(match self.cri(&det.socket, left).await {
                SocketResult::Ok(c) => {
                    let left = deadline.saturating_sub(started.elapsed());
                    // a socket may be a link: resolved inside the host root, as detect() does
                    let dockerd = super::hostfs::follow_under(
                        self.detector.host_root.as_deref(),
                        &self.detector.docker_socket,
                    );
                    match self.docker(&dockerd, left).await {
                        SocketResult::Ok(d) => SocketResult::Ok(format!("{c}; dockerd {d}")),
                        SocketResult::Fail(e, h) => SocketResult::Fail(format!("dockerd {e}"), h),
                    }
                }
                fail => fail,
            }),
            None => None,
        };
        if let (Some(kind), Some(s)) = (det.kind, &sock) {
            o = o.with("runtime", kind.name());
            match s {
                SocketResult::Ok(e) => o = o.with("socket", e),
                SocketResult::Fail(e, hang) => {
                    o = o.with("socket", e);
                    failing.push(if *hang {
                        format!("{} hangs: {e}", kind.name())
                    } else {
                        format!("{} does not answer: {e}", kind.name())
                    });
                }
            }
        }
        let runtime_failing = matches!(sock, Some(SocketResult::Fail(..)));
        match self.stuck(now, runtime_failing).await {
            Ok(v) if v.is_empty() => o = o.with("dState", "none"),
            Ok(v) => {
                let desc: Vec<String> = v
                    .iter()
                    .map(|(ps, since)| {
                        format!("{}[{}] for {}", ps.comm, ps.pid, Dur::between(*since, now))
                    })
                    .collect();
                o = o.with("dState", desc.join(", "));
                for (ps, since) in &v {
                    let d = Dur::between(*since, now);
                    if d >= self.settings.stuck_for {
                        failing.push(format!(
                            "{}[{}] in uninterruptible sleep (D) for {d} (stuckFor {})",
                            ps.comm, ps.pid, self.settings.stuck_for
                        ));
                    }
                }
            }
            Err(e) => o = o.with("dState", e),
        }
        let kmsg = self.kmsg.clone();
        let now_boot = (self.kmsg_clock)();
        let hung = blocking(move || match kmsg.try_lock() {
            Ok(mut tail) => tail.hung_tasks(now_boot, KMSG_WINDOW),
            // a read stuck past its deadline still holds it: say so, do not queue
            Err(_) => Err(std::io::Error::other("the previous read has not finished")),
        })
        .await;
        match hung {
            Ok(h) => {
                if h.is_empty() {
                    o = o.with("kernel", "no hung-task reports about the runtime");
                } else {
                    let desc: Vec<String> = h
                        .iter()
                        .map(|t| {
                            format!(
                                "task {}:{} blocked for more than {}s",
                                t.comm, t.pid, t.blocked_secs
                            )
                        })
                        .collect();
                    let d = desc.join(", ");
                    o = o.with("kernel", &d);
                    failing.push(format!("kernel: {d}"));
                }
            }
            Err(e) => o = o.with("kernel", format!("cannot read the kernel log: {e}")),
        }
        if !failing.is_empty() {
            o.verdict = Verdict::Failing;
            o.summary = failing.join("; ");
        } else if det.kind.is_none() {
            o.verdict = Verdict::Unknown;
            o.summary = det.how.clone();
        } else {
            o.summary = format!(
                "{} answers ({})",
                det.kind.map(Runtime::name).unwrap_or("runtime"),
                match &sock {
                    Some(SocketResult::Ok(e)) => e.as_str(),
                    _ => "",
                }
            );
        }
        o.took(elapsed_since(started))
    }
}

impl Probe for RuntimeCheck {
    fn problem(&self) -> Problem {
        Problem::ContainerRuntimeUnresponsive
    }
    fn run(&self, now: Timestamp) -> ProbeFuture<'_> {
        Box::pin(self.run_inner(now))
    }
}

#[cfg(test)]
mod tests;
