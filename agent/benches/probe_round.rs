//! Cost of one full probe round (all five probes, concurrently, as `check` and the daemon
//! run them) against local fakes: a healthz server, a Docker Engine API on a unix socket, a
//! systemd fake and fixed API sources; the real /proc, /dev/kmsg, journalctl, os-release and
//! dpkg database of this machine. Besides criterion's wall time it prints the heap
//! allocations (count and bytes) of one round, counted by a wrapping global allocator.
//!
//! `cargo bench -p nodewarden --bench probe_round`

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use nodewarden::domain::{Dur, Timestamp};
use nodewarden::probe::testing::{FakeSystemd, FixedApi, Mode, docker_server, healthz_server};
use nodewarden::probe::{ProbeEnv, ProbeSet};
use nodewarden::runbook::{RuntimeKind, default_runbook};

/// Counts allocations; everything else is the system allocator's.
struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is `System`'s; the counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(l.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(n as u64, Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let dsock = dir.path().join("docker.sock");
    let (hz, _docker) = rt.block_on(async {
        (
            healthz_server(Mode::Ok).await.expect("healthz fake"),
            docker_server(&dsock, Mode::Ok).await.expect("docker fake"),
        )
    });
    let mut p = default_runbook().runbook.spec.probes;
    p.kubelet.healthz_url = hz.url();
    p.runtime.runtime = RuntimeKind::Docker;
    p.runtime.docker_socket = dsock.display().to_string();
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
        ready: Some("kubelet is posting ready status".into()),
        clock_offset: Some((jiff::SignedDuration::ZERO, Dur::from_millis(2))),
        hang: false,
    };
    let set = ProbeSet::new(&p, &env, Arc::new(sd), api.sources());

    // one round, warmed up, for allocations and a readable summary
    let _ = rt.block_on(set.run_once(Timestamp::now()));
    let (a0, b0) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    let obs = rt.block_on(set.run_once(Timestamp::now()));
    let (a1, b1) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    eprintln!(
        "one probe round: {} allocations, {} KiB allocated",
        a1 - a0,
        (b1 - b0) / 1024
    );
    for o in &obs {
        eprintln!(
            "  {:<30} {:<8?} {:>8}  {}",
            o.problem.as_str(),
            o.verdict,
            o.took.to_string(),
            o.summary
        );
    }

    c.bench_function("probe round (5 probes, local fakes)", |b| {
        b.iter(|| rt.block_on(set.run_once(Timestamp::now())))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
