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

use crate::health::{Observation, Verdict};
use crate::host::systemd::Systemd;
use crate::model::{Dur, Problem, Timestamp};
use crate::runbook::{RuntimeKind, RuntimeProbe as Settings};

use super::io;
use super::{Probe, ProbeFuture, budget, elapsed_since};

/// A runtime nodewarden can probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Docker,
    Containerd,
}

impl Runtime {
    pub fn unit(self) -> &'static str {
        match self {
            Runtime::Docker => "docker.service",
            Runtime::Containerd => "containerd.service",
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
        }
    }
}

/// The outcome of runtime detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    pub kind: Option<Runtime>,
    /// The socket to probe.
    pub socket: PathBuf,
    /// How it was decided, for evidence.
    pub how: String,
}

/// Decides which runtime the kubelet uses.
pub struct Detector {
    pub setting: RuntimeKind,
    pub docker_socket: PathBuf,
    pub containerd_socket: PathBuf,
    pub kubelet_unit: String,
    pub proc_root: PathBuf,
    pub kubeadm_flags: PathBuf,
    pub kubelet_config: PathBuf,
    pub systemd: Arc<dyn Systemd>,
}

/// The CRI endpoint in kubelet flags (`--container-runtime-endpoint[=| ]unix:///…`).
pub fn endpoint_from_args<'a>(args: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let a = a.trim_matches('"');
        // also inside `KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=…`
        const FLAG: &str = "--container-runtime-endpoint=";
        if let Some(i) = a.find(FLAG) {
            return Some(a[i + FLAG.len()..].trim_matches('"').to_string());
        }
        if a == "--container-runtime-endpoint" {
            return it.next().map(|v| v.trim_matches('"').to_string());
        }
    }
    None
}

/// `containerRuntimeEndpoint:` in the kubelet config file (kubelet ≥ 1.27).
pub fn endpoint_from_config(yaml: &str) -> Option<String> {
    yaml.lines().find_map(|l| {
        let v = l.trim().strip_prefix("containerRuntimeEndpoint:")?;
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// Map an endpoint to a runtime and its socket path.
pub fn classify_endpoint(ep: &str) -> Option<(Runtime, PathBuf)> {
    let path = ep.strip_prefix("unix://").unwrap_or(ep);
    let kind = if path.contains("containerd") {
        Runtime::Containerd
    } else if path.contains("dockershim") || path.contains("cri-dockerd") || path.contains("docker")
    {
        Runtime::Docker
    } else {
        return None;
    };
    Some((kind, PathBuf::from(path)))
}

impl Detector {
    pub async fn detect(&self) -> Detection {
        match self.setting {
            RuntimeKind::Docker => {
                return Detection {
                    kind: Some(Runtime::Docker),
                    socket: self.docker_socket.clone(),
                    how: "runbook says docker".into(),
                };
            }
            RuntimeKind::Containerd => {
                return Detection {
                    kind: Some(Runtime::Containerd),
                    socket: self.containerd_socket.clone(),
                    how: "runbook says containerd".into(),
                };
            }
            RuntimeKind::Auto => {}
        }
        // 1. the running kubelet's command line
        let pid = match tokio::time::timeout(
            Duration::from_secs(2),
            self.systemd.unit_status(&self.kubelet_unit),
        )
        .await
        {
            Ok(Ok(st)) => st.main_pid,
            _ => None,
        };
        let pid = match pid {
            Some(p) => Some(p),
            None => {
                let root = self.proc_root.clone();
                blocking(move || Ok(find_pid_by_comm(&root, "kubelet")))
                    .await
                    .ok()
                    .flatten()
            }
        };
        // reading a process's cmdline takes its mmap lock: a stuck kubelet can hang the
        // reader, so it happens on a blocking thread under a deadline
        let cmdline = self
            .proc_root
            .join(pid.unwrap_or(0).to_string())
            .join("cmdline");
        if let Some(pid) = pid
            && let Ok(raw) = blocking(move || std::fs::read(cmdline)).await
        {
            let s = String::from_utf8_lossy(&raw);
            let args: Vec<&str> = s.split('\0').collect();
            if let Some(ep) = endpoint_from_args(args.iter().copied())
                && let Some(d) = self.by_endpoint(&ep, &format!("kubelet (pid {pid}) flag"))
            {
                return d;
            }
            if args.contains(&"--container-runtime=docker") {
                return Detection {
                    kind: Some(Runtime::Docker),
                    socket: self.docker_socket.clone(),
                    how: format!("kubelet (pid {pid}) --container-runtime=docker"),
                };
            }
        }
        // 2. kubeadm's flags file, 3. the kubelet config file
        if let Ok(s) = std::fs::read_to_string(&self.kubeadm_flags)
            && let Some(ep) = endpoint_from_args(s.split_whitespace())
            && let Some(d) = self.by_endpoint(&ep, &self.kubeadm_flags.display().to_string())
        {
            return d;
        }
        if let Ok(s) = std::fs::read_to_string(&self.kubelet_config)
            && let Some(ep) = endpoint_from_config(&s)
            && let Some(d) = self.by_endpoint(&ep, &self.kubelet_config.display().to_string())
        {
            return d;
        }
        // 4. which socket exists
        let c = self.containerd_socket.exists();
        let d = self.docker_socket.exists();
        match (c, d) {
            (true, false) => Detection {
                kind: Some(Runtime::Containerd),
                socket: self.containerd_socket.clone(),
                how: format!("{} exists", self.containerd_socket.display()),
            },
            (false, true) => Detection {
                kind: Some(Runtime::Docker),
                socket: self.docker_socket.clone(),
                how: format!("{} exists", self.docker_socket.display()),
            },
            (true, true) => Detection {
                // docker runs on containerd; kubelets since 1.24 talk CRI to containerd
                kind: Some(Runtime::Containerd),
                socket: self.containerd_socket.clone(),
                how: "both sockets exist and no kubelet flag says which; chose containerd (CRI)"
                    .into(),
            },
            (false, false) => Detection {
                kind: None,
                socket: PathBuf::new(),
                how: format!(
                    "no container runtime found: no kubelet endpoint flag, no {}, no {}",
                    self.docker_socket.display(),
                    self.containerd_socket.display()
                ),
            },
        }
    }

    fn by_endpoint(&self, ep: &str, source: &str) -> Option<Detection> {
        let (kind, socket) = classify_endpoint(ep)?;
        let socket = match kind {
            // cri-dockerd's socket is a CRI shim; docker itself answers on the Engine socket
            Runtime::Docker => self.docker_socket.clone(),
            Runtime::Containerd => socket,
        };
        Some(Detection {
            kind: Some(kind),
            socket,
            how: format!("{source}: --container-runtime-endpoint={ep}"),
        })
    }
}

/// Run blocking file reads on a blocking thread, giving up after 2 s (the thread may stay
/// stuck on a hung process; the probe does not).
async fn blocking<T: Send + 'static>(
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

/// Parse `/proc/PID/stat` (`comm` may contain spaces and parentheses: it ends at the last `)`).
pub fn parse_stat(s: &str) -> Option<ProcStat> {
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let pid = s[..open].trim().parse().ok()?;
    let comm = s.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = s.get(close + 1..)?.split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    // field 22 (starttime) is the 20th after the comm
    let start = rest.get(19).and_then(|v| v.parse().ok()).unwrap_or(0);
    Some(ProcStat {
        pid,
        comm,
        state,
        start,
    })
}

/// Is this `comm` (at most 15 characters) a process of a container runtime?
pub fn is_runtime_comm(comm: &str) -> bool {
    comm == "dockerd"
        || comm == "containerd"
        || comm.starts_with("containerd-shim")
        || comm.starts_with("docker-containe")
}

/// Runtime processes in `D` state now.
pub fn runtime_processes_in_d(proc_root: &Path) -> std::io::Result<Vec<ProcStat>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(proc_root)?.flatten() {
        if !e
            .file_name()
            .to_str()
            .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        // processes come and go while we read: skip what vanished
        let Ok(s) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        if let Some(p) = parse_stat(&s)
            && p.state == 'D'
            && is_runtime_comm(&p.comm)
        {
            out.push(p);
        }
    }
    out.sort_by_key(|p| p.pid);
    Ok(out)
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
        let usec: u64 = match prefix.split(',').nth(2).and_then(|v| v.parse().ok()) {
            Some(u) => u,
            None => continue,
        };
        let at = Duration::from_micros(usec);
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

/// Read everything currently in the kernel log without blocking (a regular file is read to
/// its end, for tests). At most 4 MiB.
pub fn read_kmsg(path: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    while out.len() < (4 << 20) {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if !out.ends_with(b"\n") {
                    out.push(b'\n');
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            // EPIPE: records were overwritten while we read; go on with the next
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
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
    pub kmsg: PathBuf,
    /// Where the kernel log's clock is now (tests pin it).
    pub kmsg_clock: fn() -> Duration,
    /// First time each (pid, start time) was seen in D, across runs.
    in_d: Mutex<HashMap<(u32, u64), Timestamp>>,
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
            kmsg,
            kmsg_clock: monotonic_now,
            in_d: Mutex::new(HashMap::new()),
        }
    }

    async fn docker(&self, socket: &Path, deadline: Duration) -> SocketResult {
        let t0 = tokio::time::Instant::now();
        let left = |d: Duration| d.saturating_sub(t0.elapsed());
        match io::unix_http_get(socket, "/_ping", deadline).await {
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
        match io::unix_http_get(socket, "/containers/json?limit=1", left(deadline)).await {
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
    async fn stuck(&self, now: Timestamp) -> Result<Vec<(ProcStat, Timestamp)>, String> {
        let root = self.proc_root.clone();
        let procs = blocking(move || runtime_processes_in_d(&root))
            .await
            .map_err(|e| format!("cannot read {}: {e}", self.proc_root.display()))?;
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
            },
        };
        let mut o = Observation::new(p, now, Verdict::Healthy, "").with("detected", &det.how);
        let mut failing: Vec<String> = Vec::new();
        let left = deadline.saturating_sub(started.elapsed());
        let sock = match det.kind {
            Some(Runtime::Docker) => Some(self.docker(&det.socket, left).await),
            Some(Runtime::Containerd) => Some(self.cri(&det.socket, left).await),
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
        match self.stuck(now).await {
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
        let hung = blocking(move || read_kmsg(&kmsg)).await;
        match hung {
            Ok(text) => {
                let h = hung_tasks(&text, now_boot, KMSG_WINDOW);
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
            Err(e) => {
                o = o.with(
                    "kernel",
                    format!("cannot read {}: {e}", self.kmsg.display()),
                )
            }
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
mod tests {
    use super::*;

    #[test]
    fn endpoints_from_flags_and_config() {
        let flags = r#"KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9""#;
        let body = flags.split_once('=').unwrap().1;
        assert_eq!(
            endpoint_from_args(body.split_whitespace()).as_deref(),
            Some("unix:///var/run/containerd/containerd.sock")
        );
        assert_eq!(
            endpoint_from_args([
                "kubelet",
                "--container-runtime-endpoint",
                "unix:///run/cri-dockerd.sock"
            ])
            .as_deref(),
            Some("unix:///run/cri-dockerd.sock")
        );
        assert_eq!(
            endpoint_from_config("kind: KubeletConfiguration\ncontainerRuntimeEndpoint: \"unix:///run/containerd/containerd.sock\"\n").as_deref(),
            Some("unix:///run/containerd/containerd.sock")
        );
        assert_eq!(
            classify_endpoint("unix:///run/containerd/containerd.sock"),
            Some((
                Runtime::Containerd,
                "/run/containerd/containerd.sock".into()
            ))
        );
        assert_eq!(
            classify_endpoint("unix:///var/run/cri-dockerd.sock")
                .unwrap()
                .0,
            Runtime::Docker
        );
        assert_eq!(classify_endpoint("unix:///var/run/crio/crio.sock"), None);
    }

    #[test]
    fn stat_lines_parse_with_odd_comms() {
        let s = "1234 (containerd-shim) D 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 10 0 98765 0 0";
        let p = parse_stat(s).unwrap();
        assert_eq!(
            (p.pid, p.comm.as_str(), p.state, p.start),
            (1234, "containerd-shim", 'D', 98765)
        );
        let p = parse_stat("77 (a (b) c) S 1 2 3 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0").unwrap();
        assert_eq!(p.comm, "a (b) c");
        assert_eq!(p.state, 'S');
        assert!(parse_stat("garbage").is_none());
        assert!(is_runtime_comm("dockerd"));
        assert!(is_runtime_comm("containerd-shim"));
        assert!(!is_runtime_comm("kubelet"));
    }

    #[test]
    fn kmsg_hung_task_reports() {
        let text = "\
3,100,5000000,-;INFO: task dockerd:1234 blocked for more than 120 seconds.
 SUBSYSTEM=foo
6,101,5000001,-;      Not tainted 6.1.0 #1
3,102,900000000,-;INFO: task containerd:99 blocked for more than 122 seconds.
3,103,900000001,-;INFO: task nfsd:7 blocked for more than 120 seconds.
6,104,900000002,-;eth0: link up
";
        // now = 905 s since boot; window 10 min: the 5 s report is too old
        let h = hung_tasks(text, Duration::from_secs(905), KMSG_WINDOW);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].comm, "containerd");
        assert_eq!(h[0].pid, 99);
        assert_eq!(h[0].blocked_secs, 122);
        let h = hung_tasks(text, Duration::from_secs(300), KMSG_WINDOW);
        assert_eq!(h.len(), 2);
    }
}
