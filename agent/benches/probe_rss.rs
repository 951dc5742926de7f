//! Resident memory of the probes running as the daemon runs them: every probe as its own
//! task, every 10 s (the default kubelet/runtime interval; PLEG 30 s, clock 1 m, systemd 1 h
//! as in the default runbook, but all forced to 10 s here), against local fakes. Prints
//! VmRSS/VmHWM every 10 s. Not a criterion benchmark: `harness = false`.
//!
//! `NODEWARDEN_RSS_SECS=120 cargo bench -p nodewarden --bench probe_rss` (default 60 s).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nodewarden::domain::{Dur, Timestamp};
use nodewarden::probe::testing::{FakeSystemd, FixedApi, Mode, docker_server, healthz_server};
use nodewarden::probe::{ProbeEnv, ProbeSet};
use nodewarden::runbook::{RuntimeKind, default_runbook};

fn status(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len()..].trim().to_string())
        .unwrap_or_default()
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that does not match means "not me"
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"probe_rss".contains(&a))
    {
        return;
    }
    let secs: u64 = std::env::var("NODEWARDEN_RSS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("start: VmRSS {}", status("VmRSS:"));
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let dsock = dir.path().join("docker.sock");
        let hz = healthz_server(Mode::Ok).await.expect("healthz fake");
        let _docker = docker_server(&dsock, Mode::Ok).await.expect("docker fake");
        let mut p = default_runbook().runbook.spec.probes;
        p.kubelet.healthz_url = hz.url();
        p.runtime.runtime = RuntimeKind::Docker;
        p.runtime.docker_socket = dsock.display().to_string();
        for t in [
            &mut p.kubelet.timing,
            &mut p.pleg.timing,
            &mut p.runtime.timing,
            &mut p.clock.timing,
            &mut p.systemd.timing,
        ] {
            t.interval = Dur::from_secs(10);
        }
        let env = ProbeEnv {
            kubelet_client_cert: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/probe_fixtures/kubelet-client-current.pem"),
            dbus_address: Some("unix:path=/nonexistent/bus".into()),
            ..ProbeEnv::default()
        };
        let sd = FakeSystemd::new()
            .with_active("kubelet.service", Timestamp::now(), Some(1))
            .with_version("252.33-1~deb12u1");
        let api = FixedApi {
            lease: Some(Timestamp::now()),
            clock_offset: Some((jiff::SignedDuration::ZERO, Dur::from_millis(2))),
            ..Default::default()
        };
        let set = ProbeSet::new(&p, &env, Arc::new(sd), api.sources());
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let _tasks = set.spawn(tx);
        let t0 = Instant::now();
        let mut next = Duration::from_secs(10);
        let mut n = 0u64;
        while t0.elapsed() < Duration::from_secs(secs) {
            match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
                Ok(Some(_)) => n += 1,
                Ok(None) => break,
                Err(_) => {}
            }
            if t0.elapsed() >= next {
                println!(
                    "t={:>4}s observations={n:>4} VmRSS {} VmHWM {}",
                    next.as_secs(),
                    status("VmRSS:"),
                    status("VmHWM:")
                );
                next += Duration::from_secs(10);
            }
        }
    });
}
