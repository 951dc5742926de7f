use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::host::systemd::SystemdError;

/// Answers `unit_status` with an invocation id that changes at every call, counting them;
/// `missing` units are not found.
#[derive(Default)]
struct Counting {
    calls: AtomicUsize,
    missing: bool,
}

impl Systemd for Counting {
    fn unit_status<'a>(&'a self, unit: &'a str) -> SdFuture<'a, UnitStatus> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            // an answer takes a round trip, so callers at the same instant overlap
            tokio::time::sleep(Duration::from_millis(10)).await;
            if self.missing {
                return Err(SystemdError::NotFound {
                    unit: unit.to_string(),
                });
            }
            Ok(UnitStatus {
                name: unit.to_string(),
                load_state: "loaded".into(),
                active_state: "active".into(),
                sub_state: "running".into(),
                invocation_id: Some(format!("{n:032x}")),
                main_pid: Some(42),
                active_enter: None,
                inactive_exit: None,
                n_restarts: Some(0),
            })
        })
    }
    fn restart_unit<'a>(&'a self, unit: &'a str, _t: Duration) -> SdFuture<'a, RestartOutcome> {
        Box::pin(async move {
            Err(SystemdError::Protocol {
                what: format!("RestartUnit({unit})"),
                detail: "not in this fake".into(),
            })
        })
    }
    fn manager_version(&self) -> SdFuture<'_, String> {
        Box::pin(async { Ok("252".to_string()) })
    }
    fn reboot(&self) -> SdFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
    fn kill_unit_signal<'a>(&'a self, _u: &'a str, _s: Signal) -> SdFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn units_present<'a>(&'a self, _u: &'a [&'a str]) -> SdFuture<'a, Vec<UnitPresence>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

fn memo(inner: &Arc<Counting>) -> ReadMemo {
    ReadMemo::new(inner.clone(), PROBE_ROUND)
}

#[tokio::test(start_paused = true)]
async fn one_round_asks_systemd_once_per_unit() {
    let inner = Arc::new(Counting::default());
    let m = memo(&inner);
    let a = m.unit_status("kubelet.service").await.expect("status");
    let b = m.unit_status("kubelet.service").await.expect("status");
    assert_eq!(a, b, "the same answer within the round");
    assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
    m.unit_status("docker.service").await.expect("status");
    assert_eq!(
        inner.calls.load(Ordering::SeqCst),
        2,
        "another unit is asked"
    );
}

#[tokio::test(start_paused = true)]
async fn the_next_round_asks_again() {
    let inner = Arc::new(Counting::default());
    let m = memo(&inner);
    let a = m.unit_status("kubelet.service").await.expect("status");
    tokio::time::advance(PROBE_ROUND).await;
    let b = m.unit_status("kubelet.service").await.expect("status");
    assert_ne!(
        a.invocation_id, b.invocation_id,
        "a fresh answer after the round"
    );
    assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn errors_are_never_kept() {
    let inner = Arc::new(Counting {
        missing: true,
        ..Counting::default()
    });
    let m = memo(&inner);
    for _ in 0..3 {
        assert!(matches!(
            m.unit_status("kubelet.service").await,
            Err(SystemdError::NotFound { .. })
        ));
    }
    assert_eq!(inner.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_signal_or_restart_through_it_forgets_the_unit() {
    let inner = Arc::new(Counting::default());
    let m = memo(&inner);
    m.unit_status("docker.service").await.expect("status");
    m.kill_unit_signal("docker.service", Signal::SIGUSR1)
        .await
        .expect("signal");
    m.unit_status("docker.service").await.expect("status");
    assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
    let _ = m.restart_unit("docker.service", PROBE_ROUND).await;
    m.unit_status("docker.service").await.expect("status");
    assert_eq!(inner.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn probes_asking_at_the_same_instant_share_one_read() {
    let inner = Arc::new(Counting::default());
    let m = memo(&inner);
    let (a, b, c) = tokio::join!(
        m.unit_status("kubelet.service"),
        m.unit_status("kubelet.service"),
        m.unit_status("kubelet.service"),
    );
    assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
    assert_eq!(a.expect("a"), b.expect("b"));
    c.expect("c");
}
