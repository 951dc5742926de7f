use super::*;

fn report(secs: u64) -> PlegReport {
    PlegReport {
        last_seen: Dur::from_secs(secs),
        threshold: None,
    }
}

#[test]
fn cursors_are_found_without_decoding() {
    let line = r#"{"__CURSOR":"s=abc;i=1f;b=99;m=1;t=5;x=7","MESSAGE":"x"}"#;
    assert_eq!(cursor_of(line), Some("s=abc;i=1f;b=99;m=1;t=5;x=7"));
    assert_eq!(cursor_of(r#"{"MESSAGE":"x"}"#), None);
}

#[test]
fn read_every_round_unless_the_ready_condition_is_quiet() {
    let t = Instant::now();
    assert!(journal_due(None, t, true));
    assert!(!journal_due(Some(t), t + Duration::from_secs(119), true));
    assert!(journal_due(Some(t), t + JOURNAL_EVERY, true));
    assert!(journal_due(Some(t), t + Duration::from_secs(10), false));
}

#[test]
fn reports_are_kept_across_reads_and_pruned_by_the_window() {
    let t0 = Timestamp::from_second(1_000_000).unwrap();
    let at = |s: u64| Dur::from_secs(s).after(t0);
    let mut m = JournalMemory::default();
    m.absorb(
        vec![
            (Some(at(0)), report(200)),
            (Some(at(10)), report(190)),
            (Some(at(10)), report(190)),
        ],
        Some(t0),
    );
    m.absorb(vec![(Some(at(20)), report(185))], None);
    let s = m.scan_since(t0);
    assert_eq!(s.lines, 4);
    assert_eq!(s.distinct.len(), 3);
    // a read from `--since` again replaces, never doubles
    m.absorb(vec![(Some(at(10)), report(190))], Some(at(5)));
    assert_eq!(m.scan_since(t0).lines, 2);
    assert_eq!(s.worst.map(|w| w.0), Some(Dur::from_secs(200)));
    // a later `since` (the unit restarted) leaves the old reports out
    let s = m.scan_since(at(5));
    assert_eq!(s.worst.map(|w| w.0), Some(Dur::from_secs(190)));
    m.prune(at(8));
    assert_eq!(m.scan_since(t0).lines, 1);
}
