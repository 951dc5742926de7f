//! The agent's tests: a tick at a time, on recording actuators and a manual
//! clock. `hostile_disk` holds the ones where the ledger cannot be written.

use std::cell::RefCell;

use super::*;
use crate::act::testing::{Call, ManualClock, RecordingActuators};
use crate::domain::Dur;
use crate::enact::Discard;
use crate::health::Verdict;
use crate::plan::{NodeView, SlotView};
use crate::runbook::default_runbook;

const K: Problem = Problem::KubeletUnhealthy;

fn t0() -> Timestamp {
    "2026-11-23T08:00:00Z".parse().unwrap()
}

/// Keeps every saved ledger, like the file would.
#[derive(Default)]
struct Saved(RefCell<Vec<Ledger>>);
impl LedgerSink for &Saved {
    fn save(&self, l: &Ledger) -> Result<(), String> {
        self.0.borrow_mut().push(l.clone());
        Ok(())
    }
}

fn facts() -> NodeFacts {
    crate::dryrun::assumed_node_facts(&default_runbook().runbook)
}

/// An agent on the default runbook, the one setup every test here shares.
fn new_agent<'c, A: Actuators, L: LedgerSink>(
    ledger: Ledger,
    boot_id: Option<&str>,
    act: A,
    clock: &'c ManualClock,
    store: L,
) -> Agent<A, &'c ManualClock, L> {
    Agent::new(default_runbook(), ledger, boot_id, act, clock, store)
        .expect("the default runbook and a writable store make an agent")
}

fn feed<A: Actuators, L: LedgerSink>(
    agent: &mut Agent<A, &ManualClock, L>,
    clock: &ManualClock,
    p: Problem,
    v: Verdict,
) {
    agent.observe(Observation::new(p, clock.now(), v, format!("{v:?}")));
}

#[tokio::test]
async fn a_stalled_kubelet_is_restarted_once_and_the_episode_closes() {
    let clock = ManualClock::new(t0());
    let act = RecordingActuators::new();
    let saved = Saved::default();
    let mut agent = new_agent(Ledger::default(), Some("boot-0"), &act, &clock, &saved);
    let cluster = ClusterView::calm(10);
    let facts = facts();

    // Failing, but not for failFor (1m) yet: nothing happens.
    for _ in 0..6 {
        feed(&mut agent, &clock, K, Verdict::Failing);
        let t = agent.tick(&cluster, &facts).await.unwrap();
        assert!(
            matches!(t.decision, Decision::Pending { .. }),
            "{}",
            t.decision
        );
        clock.advance(Dur::from_secs(10));
    }
    feed(&mut agent, &clock, K, Verdict::Failing);
    let t = agent.tick(&cluster, &facts).await.unwrap();
    assert!(matches!(t.decision, Decision::Act(_)), "{}", t.decision);
    assert_eq!(act.calls(), ["restart kubelet.service"]);

    // Healthy again; recovery only after okFor (1m).
    for _ in 0..6 {
        clock.advance(Dur::from_secs(10));
        feed(&mut agent, &clock, K, Verdict::Healthy);
        let t = agent.tick(&cluster, &facts).await.unwrap();
        assert!(
            matches!(t.decision, Decision::Verify { .. }),
            "{}",
            t.decision
        );
    }
    clock.advance(Dur::from_secs(10));
    feed(&mut agent, &clock, K, Verdict::Healthy);
    let t = agent.tick(&cluster, &facts).await.unwrap();
    assert!(
        matches!(
            t.decision,
            Decision::Recovered {
                uncordon: false,
                ..
            }
        ),
        "{}",
        t.decision
    );
    assert_eq!(
        act.calls(),
        ["restart kubelet.service"],
        "exactly one restart, no cordon"
    );
    assert!(agent.ledger().episode.is_none());
    assert_eq!(agent.ledger().closed.last().unwrap().result, "recovered");
    let reasons: Vec<String> = act.reports().into_iter().map(|r| r.reason).collect();
    assert_eq!(reasons, ["StepStarted", "StepSucceeded", "Recovered"]);
    // Every transition was persisted.
    assert!(saved.0.borrow().len() >= 4);
}

#[tokio::test]
async fn a_restarted_agent_does_not_declare_recovery_on_its_first_good_probe() {
    let clock = ManualClock::new(t0());
    let mut ledger = Ledger::default();
    ledger.ensure_episode(&[K].into(), t0());
    ledger.begin_attempt(
        "restart-kubelet",
        crate::runbook::ActionKind::RestartUnit,
        t0(),
        None,
    );
    ledger.finish_attempt(crate::ledger::Outcome::Succeeded, None, t0());
    let act = RecordingActuators::new();
    let mut agent = new_agent(ledger, Some("boot-0"), &act, &clock, Discard);
    clock.advance(Dur::from_secs(30));
    feed(&mut agent, &clock, K, Verdict::Healthy);
    let t = agent.tick(&ClusterView::calm(3), &facts()).await.unwrap();
    assert!(
        matches!(t.decision, Decision::Verify { .. }),
        "{}",
        t.decision
    );
    clock.advance(Dur::from_secs(61));
    feed(&mut agent, &clock, K, Verdict::Healthy);
    let t = agent.tick(&ClusterView::calm(3), &facts()).await.unwrap();
    assert!(
        matches!(t.decision, Decision::Recovered { .. }),
        "{}",
        t.decision
    );
    assert!(act.calls().is_empty());
}

#[tokio::test]
async fn a_requested_reboot_is_confirmed_at_start_by_a_new_boot_id() {
    let clock = ManualClock::new(t0());
    let mut ledger = Ledger::default();
    ledger.ensure_episode(&[K].into(), t0());
    ledger.begin_attempt("reboot", crate::runbook::ActionKind::Reboot, t0(), None);
    ledger.record_reboot("boot-0", t0());
    clock.advance(Dur::from_secs(90));
    let agent = new_agent(
        ledger.clone(),
        Some("boot-0"),
        RecordingActuators::new(),
        &clock,
        Discard,
    );
    assert_eq!(
        agent.ledger().reboots[0].confirmed_boot_id,
        None,
        "same boot: not confirmed"
    );
    let agent = new_agent(
        ledger,
        Some("boot-1"),
        RecordingActuators::new(),
        &clock,
        Discard,
    );
    assert_eq!(
        agent.ledger().reboots[0].confirmed_boot_id.as_deref(),
        Some("boot-1")
    );
    let a = &agent.ledger().episode.as_ref().unwrap().attempts[0];
    assert_eq!(a.outcome, crate::ledger::Outcome::Succeeded);
}

#[tokio::test]
async fn an_invalid_runbook_on_reload_keeps_the_last_good_one() {
    let clock = ManualClock::new(t0());
    let mut agent = new_agent(
        Ledger::default(),
        None,
        RecordingActuators::new(),
        &clock,
        Discard,
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("runbook.yaml");
    std::fs::write(
        &p,
        "apiVersion: nodewarden.io/v1alpha1\nkind: Runbook\nspec:\n  steps: [\n",
    )
    .unwrap();
    let e = agent.reload(&p).unwrap_err();
    assert!(
        e.to_string().starts_with(&format!("{}:4:", p.display())),
        "{e}"
    );
    assert_eq!(agent.runbook().source, crate::runbook::DEFAULT_SOURCE);
    let good = crate::runbook::DEFAULT_YAML.replace("name: default", "name: edited");
    std::fs::write(&p, good).unwrap();
    agent.reload(&p).unwrap();
    assert_eq!(agent.runbook().runbook.metadata.name, "edited");
}

#[tokio::test]
async fn a_failed_cordon_holds_and_retries_without_running_the_step() {
    let clock = ManualClock::new(t0());
    let act = RecordingActuators::new();
    act.fail(Call::Cordon, true);
    let mut agent = new_agent(Ledger::default(), None, &act, &clock, Discard);
    let rt = Problem::ContainerRuntimeUnresponsive;
    feed(&mut agent, &clock, rt, Verdict::Failing);
    clock.advance(Dur::from_secs(61));
    feed(&mut agent, &clock, rt, Verdict::Failing);
    let t = agent.tick(&ClusterView::calm(10), &facts()).await.unwrap();
    assert!(
        t.executed
            .error
            .as_deref()
            .unwrap_or("")
            .contains("cordon failed"),
        "{:?}",
        t.executed
    );
    assert_eq!(
        act.count("restart"),
        0,
        "no runtime restart without the cordon"
    );
    assert!(
        agent.ledger().cordon.is_none(),
        "a failed cordon is not recorded as ours"
    );
    // The cordon works next time: the step runs.
    act.fail(Call::Cordon, false);
    let mut cluster = ClusterView::calm(10);
    cluster.slot = SlotView::Held;
    let t = agent.tick(&cluster, &facts()).await.unwrap();
    assert!(matches!(t.decision, Decision::Act(_)), "{}", t.decision);
    assert_eq!(act.count("restart containerd.service"), 1);
    assert!(agent.ledger().cordon.as_ref().unwrap().by_us);
    // Recovered: our cordon is lifted once the node shows our annotation.
    cluster.node = Some(NodeView {
        unschedulable: true,
        cordon_annotation: true,
    });
    clock.advance(Dur::from_secs(10));
    feed(&mut agent, &clock, rt, Verdict::Healthy);
    clock.advance(Dur::from_secs(61));
    feed(&mut agent, &clock, rt, Verdict::Healthy);
    let t = agent.tick(&cluster, &facts()).await.unwrap();
    assert!(
        matches!(t.decision, Decision::Recovered { uncordon: true, .. }),
        "{}",
        t.decision
    );
    assert_eq!(act.count("uncordon"), 1);
    assert_eq!(act.count("release-slot"), 1);
}

struct FixedViews(ClusterView);
impl run::Views for FixedViews {
    fn cluster(&self) -> ClusterView {
        self.0.clone()
    }
    async fn facts(&self, _runbook: &crate::runbook::Runbook) -> NodeFacts {
        facts()
    }
}

#[tokio::test(start_paused = true)]
async fn the_loop_acts_on_observations_reloads_and_stops_cleanly() {
    use run::{Control, Liveness, LoopConfig, run_loop};
    let clock = ManualClock::new(t0());
    let act = RecordingActuators::new();
    let mut agent = new_agent(Ledger::default(), None, &act, &clock, Discard);
    let (obs_tx, mut obs_rx) = tokio::sync::mpsc::channel(16);
    let (ctl_tx, mut ctl_rx) = tokio::sync::mpsc::channel(4);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("runbook.yaml");
    std::fs::write(&bad, "kind: [").unwrap();
    let cfg = LoopConfig {
        tick_every: std::time::Duration::from_secs(5),
        runbook_path: Some(bad.clone()),
    };
    let views = FixedViews(ClusterView::calm(10));
    let notifier = crate::host::notify::Notifier::from_env();
    let liveness = Liveness::default();
    let driver = async {
        obs_tx
            .send(Observation::new(
                K,
                clock.now(),
                Verdict::Failing,
                "healthz timed out",
            ))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        clock.advance(Dur::from_secs(61));
        obs_tx
            .send(Observation::new(
                K,
                clock.now(),
                Verdict::Failing,
                "healthz timed out",
            ))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        ctl_tx.send(Control::Reload).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
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
    res.unwrap();
    assert_eq!(act.calls(), ["restart kubelet.service"]);
    assert_eq!(
        agent.runbook().source,
        crate::runbook::DEFAULT_SOURCE,
        "bad reload kept the default"
    );
    assert!(liveness.is_alive());
}

#[tokio::test]
async fn maintenance_pauses_remediation_and_is_mirrored_into_the_ledger() {
    let clock = ManualClock::new(t0());
    let act = RecordingActuators::new();
    let saved = Saved::default();
    let mut agent = new_agent(Ledger::default(), Some("boot-0"), &act, &clock, &saved);
    let cluster = ClusterView::calm(10);
    let facts = facts();
    let m = crate::ledger::MaintenanceRecord {
        since: t0(),
        by: "alice".into(),
        reason: "kernel upgrade".into(),
    };
    agent.set_maintenance(Some(m.clone())).unwrap();
    assert_eq!(
        saved.0.borrow().last().unwrap().maintenance,
        Some(m.clone())
    );
    let writes = saved.0.borrow().len();
    agent.set_maintenance(Some(m.clone())).unwrap();
    assert_eq!(saved.0.borrow().len(), writes, "unchanged: no write");

    // A kubelet failing for far longer than failFor: paused, nothing done.
    for _ in 0..20 {
        feed(&mut agent, &clock, K, Verdict::Failing);
        let t = agent.tick(&cluster, &facts).await.unwrap();
        assert!(
            matches!(t.decision, Decision::Paused { .. }),
            "{}",
            t.decision
        );
        clock.advance(Dur::from_secs(10));
    }
    assert!(act.calls().is_empty(), "{:?}", act.calls());

    // Maintenance ends: the ladder resumes.
    agent.set_maintenance(None).unwrap();
    assert_eq!(saved.0.borrow().last().unwrap().maintenance, None);
    feed(&mut agent, &clock, K, Verdict::Failing);
    let t = agent.tick(&cluster, &facts).await.unwrap();
    assert!(matches!(t.decision, Decision::Act(_)), "{}", t.decision);
    assert_eq!(act.calls(), ["restart kubelet.service"]);
}

#[tokio::test]
async fn an_outdated_systemd_is_reported_once_and_never_opens_an_episode() {
    let clock = ManualClock::new(t0());
    let act = RecordingActuators::new();
    let saved = Saved::default();
    let mut agent = new_agent(Ledger::default(), Some("boot-0"), &act, &clock, &saved);
    // A storm-gate-closed fleet and no API: neither matters to a report-only problem.
    let mut cluster = ClusterView::calm(10);
    cluster.api_reachable = false;
    let facts = facts();
    for _ in 0..5 {
        feed(
            &mut agent,
            &clock,
            Problem::SystemdOutdated,
            Verdict::Failing,
        );
        let t = agent.tick(&cluster, &facts).await.unwrap();
        assert!(
            matches!(t.decision, Decision::Monitoring { .. }),
            "{}",
            t.decision
        );
        assert!(agent.ledger().episode.is_none());
        clock.advance(Dur::from_secs(3600));
    }
    assert!(act.calls().is_empty(), "{:?}", act.calls());
    let reasons: Vec<String> = act.reports().iter().map(|r| r.reason.clone()).collect();
    assert_eq!(reasons, ["ProblemReported"]);
    assert!(
        agent
            .ledger()
            .reported
            .contains_key(&Problem::SystemdOutdated),
        "status shows it from the ledger"
    );
    assert!(saved.0.borrow().iter().all(|l| l.episode.is_none()));

    feed(
        &mut agent,
        &clock,
        Problem::SystemdOutdated,
        Verdict::Healthy,
    );
    let t = agent.tick(&cluster, &facts).await.unwrap();
    assert_eq!(t.decision, Decision::Idle);
    assert!(agent.ledger().reported.is_empty());
    let reasons: Vec<String> = act.reports().iter().map(|r| r.reason.clone()).collect();
    assert_eq!(reasons, ["ProblemReported", "ProblemCleared"]);
}

mod hostile_disk;

/// Counts the facts reads (each one a dozen D-Bus messages on a node).
struct CountingViews(ClusterView, std::sync::atomic::AtomicUsize);
impl run::Views for CountingViews {
    fn cluster(&self) -> ClusterView {
        self.0.clone()
    }
    async fn facts(&self, _runbook: &crate::runbook::Runbook) -> NodeFacts {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        facts()
    }
}

#[tokio::test(start_paused = true)]
async fn a_quiet_node_reads_its_facts_once_a_minute_and_at_once_when_a_problem_is_active() {
    use run::{Control, Liveness, LoopConfig, run_loop};
    use std::sync::atomic::Ordering::SeqCst;
    use std::time::Duration;
    let clock = ManualClock::new(t0());
    let act = RecordingActuators::new();
    let mut agent = new_agent(Ledger::default(), None, &act, &clock, Discard);
    let (obs_tx, mut obs_rx) = tokio::sync::mpsc::channel(16);
    let (ctl_tx, mut ctl_rx) = tokio::sync::mpsc::channel(4);
    let cfg = LoopConfig {
        tick_every: Duration::from_secs(5),
        runbook_path: None,
    };
    let views = CountingViews(ClusterView::calm(10), Default::default());
    let notifier = crate::host::notify::Notifier::from_env();
    let liveness = Liveness::default();
    let reads_after_quiet = std::sync::Mutex::new(0);
    let driver = async {
        // five quiet minutes: a healthy observation every 10 s, a tick every 5 s
        for _ in 0..30 {
            obs_tx
                .send(Observation::new(K, clock.now(), Verdict::Healthy, "ok"))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
            clock.advance(Dur::from_secs(10));
        }
        *reads_after_quiet.lock().unwrap() = views.1.load(SeqCst);
        // the kubelet fails for longer than failFor: the restart is planned on fresh facts
        obs_tx
            .send(Observation::new(K, clock.now(), Verdict::Failing, "down"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        clock.advance(Dur::from_secs(61));
        let before = views.1.load(SeqCst);
        obs_tx
            .send(Observation::new(K, clock.now(), Verdict::Failing, "down"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            views.1.load(SeqCst) > before,
            "an active problem reads the facts anew"
        );
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
    res.unwrap();
    let quiet = *reads_after_quiet.lock().unwrap();
    // 300 s of iterations (ticks and observations, ~90) read the facts about once a minute
    assert!(
        (5..=7).contains(&quiet),
        "{quiet} reads in five quiet minutes"
    );
    assert_eq!(act.calls(), ["restart kubelet.service"]);
}

/// Counts the loop's iterations (each one asks for the cluster view once).
struct IterationViews(ClusterView, std::sync::atomic::AtomicUsize);
impl run::Views for IterationViews {
    fn cluster(&self) -> ClusterView {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0.clone()
    }
    async fn facts(&self, _runbook: &crate::runbook::Runbook) -> NodeFacts {
        facts()
    }
}

#[tokio::test(start_paused = true)]
async fn the_observations_of_one_round_are_decided_once() {
    use run::{Control, Liveness, LoopConfig, run_loop};
    use std::sync::atomic::Ordering::SeqCst;
    use std::time::Duration;
    let clock = ManualClock::new(t0());
    let act = RecordingActuators::new();
    let mut agent = new_agent(Ledger::default(), None, &act, &clock, Discard);
    let (obs_tx, mut obs_rx) = tokio::sync::mpsc::channel(16);
    let (ctl_tx, mut ctl_rx) = tokio::sync::mpsc::channel(4);
    let cfg = LoopConfig {
        tick_every: Duration::from_secs(5),
        runbook_path: None,
    };
    let views = IterationViews(ClusterView::calm(10), Default::default());
    let notifier = crate::host::notify::Notifier::disabled();
    let liveness = Liveness::default();
    let driver = async {
        // the first iteration runs at start
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = views.1.load(SeqCst);
        // four probes of one round answer a few ms apart
        for p in [
            Problem::KubeletUnhealthy,
            Problem::PlegUnhealthy,
            Problem::ContainerRuntimeUnresponsive,
            Problem::ApiServerUnreachable,
        ] {
            obs_tx
                .send(Observation::new(p, clock.now(), Verdict::Healthy, "ok"))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = views.1.load(SeqCst);
        ctl_tx.send(Control::Stop).await.unwrap();
        after - before
    };
    let (res, iterations) = tokio::join!(
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
    res.unwrap();
    assert_eq!(iterations, 1, "one decision for the round");
    assert!(act.calls().is_empty());
}
