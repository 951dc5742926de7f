//! A ledger that cannot be written (full disk, read-only filesystem) and a
//! step cut off by a stop: the agent keeps running, holds every step that
//! needs a record, and closes what was cut off.

use std::cell::Cell;
use std::sync::Mutex;

use super::*;
use crate::ledger::Outcome;

/// A disk that is full while `full` is set: every write fails with ENOSPC's
/// text, as `LedgerFile::save` reports it (checked on a tmpfs below).
#[derive(Default)]
struct Disk {
    full: Cell<bool>,
    saves: Cell<usize>,
}
impl LedgerSink for &Disk {
    fn save(&self, _: &Ledger) -> Result<(), String> {
        if self.full.get() {
            return Err(
                "ledger.json: write temp file: No space left on device (os error 28)".into(),
            );
        }
        self.saves.set(self.saves.get() + 1);
        Ok(())
    }
}

#[tokio::test]
async fn a_full_disk_holds_every_step_and_the_agent_resumes_when_it_frees() {
    let clock = ManualClock::new(t0());
    let act = RecordingActuators::new();
    let disk = Disk::default();
    let mut agent = new_agent(Ledger::default(), None, &act, &clock, &disk);
    let cluster = ClusterView::calm(10);
    let facts = facts();
    disk.full.set(true);
    for _ in 0..12 {
        agent.observe(Observation::new(K, clock.now(), Verdict::Failing, "down"));
        let r = agent.tick(&cluster, &facts).await;
        clock.advance(Dur::from_secs(10));
        if r.is_ok() {
            continue;
        }
        assert!(agent.ledger_write_error().is_some());
    }
    assert!(
        act.calls().is_empty(),
        "nothing runs unrecorded: {:?}",
        act.calls()
    );
    assert!(
        agent
            .ledger_write_error()
            .expect("the failed write is reported")
            .contains("No space left")
    );
    // The disk frees up: the pending state is written, then the step runs once.
    disk.full.set(false);
    agent.observe(Observation::new(K, clock.now(), Verdict::Failing, "down"));
    let t = agent
        .tick(&cluster, &facts)
        .await
        .expect("the disk is free again");
    assert!(
        matches!(t.decision, crate::plan::Decision::Act(_)),
        "{}",
        t.decision
    );
    assert_eq!(act.calls(), ["restart kubelet.service"]);
    assert!(agent.ledger_write_error().is_none());
}

/// Counts what the loop reported about the ledger.
#[derive(Default)]
struct Watching(Mutex<Vec<Option<String>>>);
impl run::Views for Watching {
    fn cluster(&self) -> ClusterView {
        ClusterView::calm(10)
    }
    async fn facts(&self, _runbook: &crate::runbook::Runbook) -> crate::plan::NodeFacts {
        facts()
    }
    fn ledger_unwritable(&self, error: Option<&str>) {
        self.0.lock().unwrap().push(error.map(str::to_string));
    }
}

#[tokio::test(start_paused = true)]
async fn the_loop_keeps_running_on_a_full_disk_and_backs_off() {
    use run::{Control, Liveness, LoopConfig, run_loop};
    let clock = ManualClock::new(t0());
    let act = RecordingActuators::new();
    let disk = Disk::default();
    disk.full.set(true);
    let mut agent = new_agent(Ledger::default(), None, &act, &clock, &disk);
    let (obs_tx, mut obs_rx) = tokio::sync::mpsc::channel(16);
    let (ctl_tx, mut ctl_rx) = tokio::sync::mpsc::channel(4);
    let cfg = LoopConfig {
        tick_every: std::time::Duration::from_secs(5),
        runbook_path: None,
    };
    let views = Watching::default();
    let notifier = crate::host::notify::Notifier::from_env();
    let liveness = Liveness::default();
    let driver = async {
        obs_tx
            .send(Observation::new(K, clock.now(), Verdict::Failing, "down"))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        clock.advance(Dur::from_secs(61));
        for _ in 0..50 {
            // A stream of observations must not defeat the backoff.
            obs_tx
                .send(Observation::new(K, clock.now(), Verdict::Failing, "down"))
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
        ctl_tx.send(Control::Stop).await.unwrap();
    };
    let (res, ()) = tokio::join!(
        run_loop(
            &mut agent,
            &views,
            &mut obs_rx,
            &mut ctl_rx,
            &cfg,
            &notifier,
            &liveness
        ),
        driver
    );
    res.expect("the loop keeps running on a full disk and stops when told");
    assert!(act.calls().is_empty(), "{:?}", act.calls());
    let seen = views.0.lock().unwrap();
    // 100 s of failing writes with a backoff of 1, 2, 4, … 60 s: a handful of tries.
    assert!(!seen.is_empty() && seen.len() <= 8, "{seen:?}");
    assert!(
        seen.iter()
            .all(|e| e.as_deref().is_some_and(|e| e.contains("No space")))
    );
}

#[tokio::test]
async fn a_step_cut_off_by_a_stop_is_closed_as_interrupted_at_start() {
    let clock = ManualClock::new(t0());
    let mut ledger = Ledger::default();
    ledger.ensure_episode(&[K].into(), t0());
    ledger.begin_attempt("run-fix", crate::runbook::ActionKind::Exec, t0(), None);
    let act = RecordingActuators::new();
    let disk = Disk::default();
    clock.advance(Dur::from_secs(30));
    let agent = new_agent(ledger, None, &act, &clock, &disk);
    let episode = agent.ledger().episode.as_ref();
    let a = &episode.expect("the cut-off episode stays open").attempts[0];
    assert!(
        matches!(a.outcome, Outcome::Interrupted(_)),
        "{:?}",
        a.outcome
    );
    assert_eq!(a.finished_at, Some(clock.now()));
    assert_eq!(disk.saves.get(), 1, "closed and written at start");
}

/// The real thing: a small tmpfs, filled up. Needs root (mount); skipped otherwise.
#[tokio::test]
async fn a_real_full_tmpfs_leaves_no_temp_file_and_keeps_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIP: cannot mount a tmpfs (not root?)");
        return;
    }
    struct Unmount<'a>(&'a std::path::Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _u = Unmount(&mnt);
    let path = mnt.join("ledger.json");
    let (file, mut ledger, _) =
        crate::ledger::LedgerFile::open(&path, t0()).expect("a fresh ledger on the tmpfs");
    ledger.record_reboot("boot-a", t0());
    file.save(&ledger).expect("the tmpfs still has room");
    let before = std::fs::read(&path).unwrap();
    // Fill the filesystem.
    let filler = mnt.join("filler");
    let _ = std::fs::write(&filler, vec![7u8; 128 * 1024]);
    ledger.ensure_episode(&[K].into(), t0());
    ledger.begin_attempt(
        "x",
        crate::runbook::ActionKind::Report,
        t0(),
        Some("y".repeat(8000)),
    );
    let e = file.save(&ledger).unwrap_err().to_string();
    assert!(
        e.contains("No space left") || e.contains("os error 28"),
        "{e}"
    );
    let left: Vec<String> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "partial temp files left: {left:?}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the old ledger is intact"
    );

    // The agent on this disk keeps running and acts on nothing.
    let clock = ManualClock::new(t0());
    let act = RecordingActuators::new();
    drop(file);
    let (file, ledger, _) = crate::ledger::LedgerFile::open(&path, t0()).unwrap();
    let mut agent = new_agent(ledger, None, &act, &clock, file);
    for _ in 0..8 {
        agent.observe(Observation::new(K, clock.now(), Verdict::Failing, "down"));
        let _ = agent.tick(&ClusterView::calm(10), &facts()).await;
        clock.advance(Dur::from_secs(10));
    }
    assert!(act.calls().is_empty(), "{:?}", act.calls());
    assert!(agent.ledger_write_error().is_some());
    std::fs::remove_file(&filler).unwrap();
    agent.observe(Observation::new(K, clock.now(), Verdict::Failing, "down"));
    agent
        .tick(&ClusterView::calm(10), &facts())
        .await
        .expect("the filler is gone, the ledger writes again");
    assert_eq!(act.calls(), ["restart kubelet.service"]);
}

/// Fails the `n`th save from now (the disk fills between two writes).
struct FailAt {
    n: Cell<usize>,
}
impl LedgerSink for &FailAt {
    fn save(&self, _: &Ledger) -> Result<(), String> {
        let n = self.n.get();
        self.n.set(n.saturating_sub(1));
        if n == 1 {
            Err("No space left on device (os error 28)".into())
        } else {
            Ok(())
        }
    }
}

#[tokio::test]
async fn a_record_that_could_not_be_written_is_taken_back_and_its_step_not_run() {
    // The default ladder's first step for the kubelet saves: episode, then the
    // step start. Fail the step start: the restart must not run, and the ledger
    // must not claim it did.
    let clock = ManualClock::new(t0());
    let act = RecordingActuators::new();
    let disk = FailAt { n: Cell::new(0) };
    let mut agent = new_agent(Ledger::default(), None, &act, &clock, &disk);
    let cluster = ClusterView::calm(10);
    let facts = facts();
    for _ in 0..7 {
        agent.observe(Observation::new(K, clock.now(), Verdict::Failing, "down"));
        clock.advance(Dur::from_secs(10));
    }
    disk.n.set(2);
    agent.observe(Observation::new(K, clock.now(), Verdict::Failing, "down"));
    assert!(agent.tick(&cluster, &facts).await.is_err());
    assert!(act.calls().is_empty(), "{:?}", act.calls());
    let ep = agent
        .ledger()
        .episode
        .as_ref()
        .expect("the episode was written");
    assert!(ep.attempts.is_empty(), "{:?}", ep.attempts);
    assert!(agent.ledger().history.is_empty());
    // Next round the write succeeds and the step runs for real.
    agent
        .tick(&cluster, &facts)
        .await
        .expect("the next write succeeds");
    assert_eq!(act.calls(), ["restart kubelet.service"]);
}
