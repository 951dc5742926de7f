use super::*;
use crate::domain::Dur;
use crate::runbook::DrainMode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn spec(skip: u64) -> Drain {
    Drain {
        mode: DrainMode::Evict,
        timeout: Dur::from_secs(600),
        delete_empty_dir_data: true,
        force: false,
        ignore_daemon_sets: true,
        grace_period: Dur::ZERO,
        delete_after_deadline: false,
        skip_wait_for_delete_timeout: Dur::from_secs(skip),
        concurrency: 10,
    }
}

fn terminating(at: Timestamp) -> Pod {
    let mut p = Pod::default();
    p.metadata.deletion_timestamp = Some(Time(at));
    p
}

#[test]
fn all_three_conditions_are_needed() {
    // No reason (a healthy kubelet, planned maintenance): never skipped.
    assert_eq!(SkipWait::new(&spec(60), None), None);
    // The runbook turned the skip off.
    assert_eq!(SkipWait::new(&spec(0), Some("kubelet down")), None);
    let Some(s) = SkipWait::new(&spec(60), Some("kubelet down")) else {
        panic!("skip expected")
    };
    assert_eq!(s.because(), "kubelet down");
    // Not terminating: never awaited, always evicted first.
    assert_eq!(s.skip_at(&Pod::default()), None);
    let t0 = Timestamp::from_second(1_800_000_000).unwrap();
    let p = terminating(t0);
    assert_eq!(
        s.skip_at(&p),
        Some(Timestamp::from_second(1_800_000_060).unwrap())
    );
    let mono = Instant::now();
    // 10 s after the deletionTimestamp: 50 s left.
    let now = Timestamp::from_second(1_800_000_010).unwrap();
    assert_eq!(
        s.skip_instant(&p, now, mono),
        Some(mono + Duration::from_secs(50))
    );
    // Long past: due at once.
    let now = Timestamp::from_second(1_800_001_000).unwrap();
    assert_eq!(s.skip_instant(&p, now, mono), Some(mono));
}
