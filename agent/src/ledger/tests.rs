use super::store::decode;
use super::*;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

#[test]
fn save_then_open_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sub/ledger.json");
    let (f, mut l, rep) = LedgerFile::open(&p, t(0)).unwrap();
    assert_eq!(rep, OpenReport::Fresh);
    l.ensure_episode(&[Problem::KubeletUnhealthy].into(), t(0));
    l.begin_attempt(
        "restart-kubelet",
        ActionKind::RestartUnit,
        t(1),
        Some("kubelet.service".into()),
    );
    l.finish_attempt(Outcome::Succeeded, None, t(2));
    l.record_reboot("boot-a", t(3));
    f.save(&l).unwrap();
    drop(f);
    let (_f, l2, rep) = LedgerFile::open(&p, t(10)).unwrap();
    assert_eq!(rep, OpenReport::Loaded);
    assert_eq!(l2, l);
    assert!(!dir.path().join("sub/ledger.json.tmp").exists());
}

#[test]
fn second_agent_cannot_take_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ledger.json");
    let _first = LedgerFile::open(&p, t(0)).unwrap();
    let err = LedgerFile::open(&p, t(0)).unwrap_err();
    assert!(matches!(err, LedgerError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("only one agent"));
}

#[test]
fn corrupt_ledger_is_moved_aside_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ledger.json");
    for junk in [&b"{not json"[..], b"", b"{\"schema\": 99}", b"\xff\xfe"] {
        std::fs::write(&p, junk).unwrap();
        let (_f, l, rep) = LedgerFile::open(&p, t(5)).unwrap();
        // Nothing could be salvaged: the reboot cap is spent for a window.
        assert!(l.reboot_history_lost.is_some(), "{l:?}");
        assert!(l.reboot_cap_spent(1, Dur::from_secs(3600), t(5)).is_some());
        assert!(
            l.reboot_cap_spent(1, Dur::from_secs(3600), t(3606))
                .is_none()
        );
        match rep {
            OpenReport::Quarantined {
                moved_to, reason, ..
            } => {
                assert_eq!(std::fs::read(&moved_to).unwrap(), junk);
                assert!(!reason.is_empty());
                std::fs::remove_file(moved_to).unwrap();
            }
            other => panic!("{other:?}"),
        }
        assert!(!p.exists());
    }
}

fn with_one_reboot() -> Ledger {
    let mut l = Ledger::default();
    l.ensure_episode(&[Problem::KubeletUnhealthy].into(), t(0));
    l.cordon = Some(CordonRecord {
        by_us: true,
        was_cordoned_before: false,
        at: t(1),
        reason: "nodewarden step".into(),
        handed_over: false,
    });
    l.begin_attempt("reboot", ActionKind::Reboot, t(2), None);
    l.record_reboot("boot-a", t(2));
    l
}

const WINDOW: Dur = Dur::from_secs(6 * 3600);

#[test]
fn unknown_fields_from_a_newer_version_are_tolerated() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ledger.json");
    let mut v = serde_json::to_value(with_one_reboot()).unwrap();
    v["drainedPods"] = serde_json::json!([{"name": "x"}]);
    v["reboots"][0]["newField"] = serde_json::json!(true);
    v["episode"]["attempts"][0]["extra"] = serde_json::json!("y");
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    let (_f, l, rep) = LedgerFile::open(&p, t(10)).unwrap();
    assert_eq!(rep, OpenReport::Loaded);
    assert_eq!(l, with_one_reboot());
}

#[test]
fn an_oversized_ledger_keeps_its_reboots_and_cordon() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ledger.json");
    let mut v = serde_json::to_value(with_one_reboot()).unwrap();
    v["episode"]["attempts"][0]["detail"] = serde_json::json!("x".repeat(5 << 20));
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    let (_f, l, rep) = LedgerFile::open(&p, t(10)).unwrap();
    assert!(matches!(rep, OpenReport::Quarantined { .. }), "{rep:?}");
    assert_eq!(l.reboots, with_one_reboot().reboots);
    assert_eq!(l.cordon, with_one_reboot().cordon);
    assert!(l.reboot_history_lost.is_none());
    assert_eq!(l.reboots_within(WINDOW, t(10)), 1);
}

/// A write cut off at any byte (a filesystem that does not honour the
/// rename's atomicity, a truncated copy): the reboot cap never re-arms.
#[test]
fn the_reboot_count_never_goes_down_across_a_quarantine_at_any_kill_point() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ledger.json");
    let full = serde_json::to_vec_pretty(&with_one_reboot()).unwrap();
    for cut in 0..=full.len() {
        std::fs::write(&p, &full[..cut]).unwrap();
        let (f, l, rep) = LedgerFile::open(&p, t(100)).unwrap();
        assert!(
            l.reboot_cap_spent(1, WINDOW, t(100)).is_some(),
            "cut at {cut}: {rep:?} {l:?}"
        );
        if let OpenReport::Quarantined { moved_to, .. } = rep {
            std::fs::remove_file(moved_to).unwrap();
        }
        drop(f);
    }
}

#[test]
fn a_symlinked_ledger_path_meets_the_same_lock() {
    let dir = tempfile::tempdir().unwrap();
    let real_dir = dir.path().join("real");
    std::fs::create_dir(&real_dir).unwrap();
    let p = real_dir.join("ledger.json");
    let (first, l, _) = LedgerFile::open(&p, t(0)).unwrap();
    first.save(&l).unwrap();
    // A symlink to the file, and a symlinked directory.
    let link = dir.path().join("alias.json");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    let err = LedgerFile::open(&link, t(0)).unwrap_err();
    assert!(matches!(err, LedgerError::Locked { .. }), "{err}");
    // `status` through the alias reads what the daemon reads.
    assert!(read_only(&link).unwrap().is_some());
    let dlink = dir.path().join("dirlink");
    std::os::unix::fs::symlink(&real_dir, &dlink).unwrap();
    let err = LedgerFile::open(&dlink.join("ledger.json"), t(0)).unwrap_err();
    assert!(matches!(err, LedgerError::Locked { .. }), "{err}");
    // A removed lock file does not let a second agent in either.
    std::fs::remove_file(real_dir.join("ledger.json.lock")).unwrap();
    let err = LedgerFile::open(&p, t(0)).unwrap_err();
    assert!(matches!(err, LedgerError::Locked { .. }), "{err}");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_planted_temp_symlink_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ledger.json");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("ledger.json.tmp")).unwrap();
    let (f, l, _) = LedgerFile::open(&p, t(0)).unwrap();
    f.save(&l).unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(read_only(&p).unwrap(), Some(l));
}

#[test]
fn corrupt_ledgers_within_one_second_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ledger.json");
    let mut moved = Vec::new();
    for i in 0..3 {
        std::fs::write(&p, format!("junk {i}")).unwrap();
        let (_f, _, rep) = LedgerFile::open(&p, t(0)).unwrap();
        match rep {
            OpenReport::Quarantined { moved_to, .. } => moved.push(moved_to),
            other => panic!("{other:?}"),
        }
    }
    for (i, m) in moved.iter().enumerate() {
        assert_eq!(std::fs::read_to_string(m).unwrap(), format!("junk {i}"));
    }
}

#[test]
fn the_agent_cannot_grow_its_own_ledger_past_what_it_reads() {
    let mut l = Ledger::default();
    l.ensure_episode(&[Problem::KubeletUnhealthy].into(), t(0));
    let big = "m".repeat(110 * 1024);
    for i in 0..1000 {
        l.begin_attempt("report", ActionKind::Report, t(i), None);
        l.finish_attempt(Outcome::Succeeded, Some(big.clone()), t(i));
        l.set_hold("x", "Gate", &big, t(i));
    }
    let ep = l.episode.as_ref().unwrap();
    assert!(ep.attempts.len() <= MAX_ATTEMPTS);
    let bytes = serde_json::to_vec_pretty(&l).unwrap();
    assert!(bytes.len() < 512 * 1024, "{}", bytes.len());
    assert!(decode(&bytes).is_ok());
}

#[test]
fn a_fifo_or_device_ledger_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ledger.json");
    nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert!(read_only(&p).unwrap_err().contains("FIFO"));
    let (_f, l, rep) = LedgerFile::open(&p, t(0)).unwrap();
    assert!(matches!(rep, OpenReport::Quarantined { .. }), "{rep:?}");
    assert!(l.reboot_history_lost.is_some());
}

#[test]
fn interrupted_steps_are_closed_but_reboots_and_drains_are_not() {
    let mut l = Ledger::default();
    l.ensure_episode(&[Problem::KubeletUnhealthy].into(), t(0));
    l.begin_attempt("x", ActionKind::Exec, t(1), None);
    l.begin_attempt("d", ActionKind::Drain, t(2), None);
    assert_eq!(l.close_interrupted(t(3)), 1);
    let a = &l.episode.as_ref().unwrap().attempts;
    assert!(matches!(a[0].outcome, Outcome::Interrupted(_)));
    assert_eq!(a[1].outcome, Outcome::InProgress);
}

#[test]
fn read_only_never_moves_anything() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ledger.json");
    assert_eq!(read_only(&p).unwrap(), None);
    std::fs::write(&p, "garbage").unwrap();
    assert!(read_only(&p).unwrap_err().contains("corrupt ledger"));
    assert_eq!(std::fs::read(&p).unwrap(), b"garbage");
}

#[test]
fn reboot_is_confirmed_by_a_new_boot_id_only() {
    let mut l = Ledger::default();
    l.ensure_episode(&[Problem::KubeletUnhealthy].into(), t(0));
    l.begin_attempt("reboot", ActionKind::Reboot, t(1), None);
    l.record_reboot("boot-a", t(1));
    assert!(!l.reconcile_boot("boot-a", t(2)));
    assert_eq!(
        l.episode.as_ref().unwrap().attempts[0].outcome,
        Outcome::InProgress
    );
    assert!(l.reconcile_boot("boot-b", t(60)));
    assert_eq!(
        l.episode.as_ref().unwrap().attempts[0].outcome,
        Outcome::Succeeded
    );
    assert_eq!(l.reboots[0].confirmed_boot_id.as_deref(), Some("boot-b"));
    assert!(!l.reconcile_boot("boot-b", t(61)));
}

#[test]
fn windows_count_reboots_and_starts() {
    let mut l = Ledger::default();
    l.record_reboot("a", t(0));
    l.record_reboot("b", t(3600));
    assert_eq!(l.reboots_within(Dur::from_secs(6 * 3600), t(5 * 3600)), 2);
    assert_eq!(
        l.reboots_within(Dur::from_secs(6 * 3600), t(6 * 3600 + 1)),
        1
    );
    l.begin_attempt("x", ActionKind::RestartUnit, t(0), None);
    l.begin_attempt("x", ActionKind::RestartUnit, t(100), None);
    assert_eq!(l.starts_within("x", Dur::from_secs(60), t(120)).len(), 1);
}

#[test]
fn closed_episodes_are_bounded() {
    let mut l = Ledger::default();
    for i in 0..50 {
        l.ensure_episode(&[Problem::ClockSkewed].into(), t(i));
        l.close_episode("recovered", t(i));
    }
    assert_eq!(l.closed.len(), CLOSED_MAX);
    assert_eq!(l.closed.last().unwrap().started_at, t(49));
}
