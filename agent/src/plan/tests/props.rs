//! Property tests: random sequences of findings, API outages, admin cordons,
//! fleet health, failing actions and time, driven through the real planner
//! and executor against a simulated world. The world's actuators check every
//! safety invariant of README.md ("Safety rules") at the moment a side effect happens.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use proptest::prelude::*;

use super::*;
use crate::act::{ActError, Actuators, Clock, Drained, Report};
use crate::enact::{Discard, execute};
use crate::health::Finding;
use crate::runbook::{Drain, Runbook, parse};

const ME: &str = "me";

fn runbook() -> Runbook {
    // The default ladder plus a daily blackout 02:00-04:00 UTC and the storm gate at 20 %.
    let text = crate::runbook::DEFAULT_YAML.replace(
        "blackouts: []",
        "blackouts:\n      - days: [daily]\n        from: \"02:00\"\n        to: \"04:00\"",
    );
    parse("props", &text).unwrap().runbook
}

#[derive(Debug, Default)]
struct World {
    now: i64,
    api: bool,
    unschedulable: bool,
    annotation: bool,
    cordoned_by_admin: bool,
    slot_holder: Option<String>,
    other_slot_busy: bool,
    fleet_unhealthy: u32,
    fail_actions: bool,
    unit_since: BTreeMap<String, i64>,
    restarts: Vec<(String, i64)>,
    reboots: Vec<i64>,
    boot: u32,
    drained: bool,
    /// What the next drain meets on the node.
    drain_kind: DrainKind,
    /// Pods that must leave were refused by a PDB or never evicted, and no
    /// drain has removed them since.
    must_leave_left: bool,
    /// A drain completed while cordoned, and the node stayed cordoned since.
    cordoned_since_drain: bool,
    /// A drain completed during this tick (its episode is noted after it).
    drained_now: bool,
    /// The episode of the most recent completed drain.
    drain_episode: Option<String>,
    violations: Vec<String>,
}

/// What a drain meets on the node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum DrainKind {
    /// Every pod evicted and gone.
    #[default]
    Clean,
    /// A pod evicted but still terminating: only a drain told that this
    /// node's kubelet cannot finish it leaves it to the kubelet.
    Stuck,
    /// A PDB refuses an eviction until the deadline.
    PdbRefused,
    /// A pod cannot be evicted at all (no controller, force off).
    NotEvicted,
}

const FLEET: u32 = 10;

impl World {
    fn ts(&self) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + self.now).unwrap()
    }
    fn check_disruptive(&mut self, rb: &Runbook, what: &str) {
        let mut bad = Vec::new();
        if !self.api {
            bad.push("API unreachable");
        }
        if !self.unschedulable {
            bad.push("node not cordoned");
        }
        if self.slot_holder.as_deref() != Some(ME) {
            bad.push("no disruption slot held");
        }
        if u64::from(self.fleet_unhealthy) * 100
            > u64::from(rb.spec.safety.storm_gate.max_unhealthy_percent) * u64::from(FLEET)
        {
            bad.push("storm gate closed");
        }
        if rb.blackout_at(self.ts()).is_some() {
            bad.push("inside a blackout");
        }
        for b in bad {
            self.violations.push(format!("{what} at {}: {b}", self.now));
        }
    }
}

struct Fake<'a> {
    w: Mutex<World>,
    rb: &'a Runbook,
}

impl Clock for Fake<'_> {
    fn now(&self) -> Timestamp {
        self.w.lock().unwrap().ts()
    }
}

fn unreachable() -> ActError {
    ActError::ApiUnreachable("simulated outage".into())
}

impl Actuators for Fake<'_> {
    async fn cordon(&self, _: &str) -> Result<(), ActError> {
        let mut w = self.w.lock().unwrap();
        if !w.api {
            return Err(unreachable());
        }
        w.unschedulable = true;
        w.annotation = true;
        w.cordoned_by_admin = false;
        Ok(())
    }
    async fn uncordon(&self) -> Result<(), ActError> {
        let mut w = self.w.lock().unwrap();
        if !w.api {
            return Err(unreachable());
        }
        if w.cordoned_by_admin {
            let now = w.now;
            w.violations
                .push(format!("uncordon of an admin's cordon at {now}"));
        }
        if w.annotation {
            w.unschedulable = false;
            w.annotation = false;
            w.drained = false;
            w.cordoned_since_drain = false;
        }
        Ok(())
    }
    async fn disown_cordon(&self) -> Result<(), ActError> {
        let mut w = self.w.lock().unwrap();
        if !w.api {
            return Err(unreachable());
        }
        w.annotation = false;
        Ok(())
    }
    async fn acquire_slot(&self) -> Result<String, ActError> {
        let mut w = self.w.lock().unwrap();
        if !w.api {
            return Err(unreachable());
        }
        if w.other_slot_busy && w.slot_holder.is_none() {
            return Err(ActError::SlotBusy("other".into()));
        }
        w.slot_holder = Some(ME.into());
        Ok("slot-0".into())
    }
    async fn release_slot(&self, _: &str) -> Result<(), ActError> {
        let mut w = self.w.lock().unwrap();
        if !w.api {
            return Err(unreachable());
        }
        w.slot_holder = None;
        Ok(())
    }
    async fn restart_unit(&self, unit: &str, _: Dur, _: bool) -> Result<String, ActError> {
        let mut w = self.w.lock().unwrap();
        let now = w.now;
        let step = self
            .rb
            .spec
            .steps
            .iter()
            .find(|s| match &s.action {
                Action::RestartUnit(r) => r.unit == unit,
                Action::RestartContainerRuntime(r) => r.units.iter().any(|u| u == unit),
                Action::RestartTimeSync(r) => r.units.iter().any(|u| u == unit),
                _ => false,
            })
            .cloned();
        let Some(step) = step else {
            w.violations.push(format!("restart of unknown unit {unit}"));
            return Ok(String::new());
        };
        if step.disruptive {
            w.check_disruptive(self.rb, &format!("restart {unit}"));
        }
        if let Some(since) = w.unit_since.get(unit).copied()
            && now - since < step.cooldown.std().as_secs() as i64
        {
            w.violations.push(format!(
                "{unit} restarted at {now}, only {}s after it started",
                now - since
            ));
        }
        if let Some(rate) = step.max_per {
            let n = w
                .restarts
                .iter()
                .filter(|(u, t)| u == unit && now - t < rate.window.std().as_secs() as i64)
                .count();
            if n >= rate.count as usize {
                w.violations.push(format!(
                    "{unit} restarted {} times within {}",
                    n + 1,
                    rate.window
                ));
            }
        }
        w.restarts.push((unit.to_string(), now));
        w.unit_since.insert(unit.to_string(), now);
        w.now += 5;
        if w.fail_actions {
            Err(ActError::Failed("simulated failure".into()))
        } else {
            Ok("restarted".into())
        }
    }
    async fn drain(&self, _: &Drain, kubelet_down: Option<&str>) -> Result<Drained, ActError> {
        let mut w = self.w.lock().unwrap();
        w.check_disruptive(self.rb, "drain");
        w.now += 60;
        if w.fail_actions || !w.api {
            return Err(ActError::Failed("simulated API failure".into()));
        }
        let done = |w: &mut World, awaiting: Vec<String>| {
            w.drained = true;
            w.must_leave_left = false;
            w.cordoned_since_drain = w.unschedulable;
            w.drained_now = true;
            Ok(Drained {
                summary: "drained".into(),
                awaiting_kubelet: awaiting,
            })
        };
        match w.drain_kind {
            DrainKind::Clean => done(&mut w, Vec::new()),
            DrainKind::Stuck if kubelet_down.is_some() => done(&mut w, vec!["ns/stuck".into()]),
            DrainKind::Stuck => Err(ActError::Failed(
                "ns/stuck still terminating at the deadline".into(),
            )),
            DrainKind::PdbRefused => {
                w.must_leave_left = true;
                Err(ActError::Failed("ns/web blocked by PDB web-pdb".into()))
            }
            DrainKind::NotEvicted => {
                w.must_leave_left = true;
                Err(ActError::Failed(
                    "cannot drain: ns/bare not managed by a controller".into(),
                ))
            }
        }
    }
    async fn boot_id(&self) -> Result<String, ActError> {
        Ok(format!("boot-{}", self.w.lock().unwrap().boot))
    }
    async fn reboot(&self) -> Result<(), ActError> {
        let mut w = self.w.lock().unwrap();
        w.check_disruptive(self.rb, "reboot");
        let now = w.now;
        if !w.drained {
            w.violations
                .push(format!("reboot at {now} without a completed drain"));
        }
        if w.must_leave_left {
            w.violations.push(format!(
                "reboot at {now} with pods refused by a PDB or never evicted"
            ));
        }
        if !w.cordoned_since_drain {
            w.violations.push(format!(
                "reboot at {now} without the node cordoned since the drain"
            ));
        }
        let cap = self.rb.spec.safety.reboots;
        let n = w
            .reboots
            .iter()
            .filter(|t| now - **t < cap.window.std().as_secs() as i64)
            .count();
        if n >= cap.max as usize {
            w.violations.push(format!(
                "reboot at {now} beyond the cap ({n} in {})",
                cap.window
            ));
        }
        w.reboots.push(now);
        w.boot += 1;
        w.now += 120;
        let t = w.now;
        for v in w.unit_since.values_mut() {
            *v = t;
        }
        Ok(())
    }
    async fn exec(&self, _: &[String], _: Dur) -> Result<String, ActError> {
        let mut w = self.w.lock().unwrap();
        w.check_disruptive(self.rb, "exec");
        Ok(String::new())
    }
    async fn report(&self, _: Report) {}
}

#[derive(Debug, Clone)]
struct Tick {
    advance: i64,
    problems: u8,
    runtime_failing: bool,
    api: bool,
    fleet_unhealthy: u32,
    admin_toggle: bool,
    other_slot_busy: bool,
    fail_actions: bool,
    drain_kind: DrainKind,
}

fn drain_kind() -> impl Strategy<Value = DrainKind> {
    prop_oneof![
        3 => Just(DrainKind::Clean),
        3 => Just(DrainKind::Stuck),
        1 => Just(DrainKind::PdbRefused),
        1 => Just(DrainKind::NotEvicted),
    ]
}

fn tick() -> impl Strategy<Value = Tick> {
    (
        1i64..1800,
        0u8..32,
        any::<bool>(),
        prop::bool::weighted(0.8),
        prop_oneof![4 => Just(0u32), 1 => 0u32..5],
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        drain_kind(),
    )
        .prop_map(
            |(
                advance,
                problems,
                runtime_failing,
                api,
                fleet_unhealthy,
                admin_toggle,
                other_slot_busy,
                fail_actions,
                drain_kind,
            )| Tick {
                advance,
                problems,
                runtime_failing,
                api,
                fleet_unhealthy,
                admin_toggle,
                other_slot_busy,
                fail_actions,
                drain_kind,
            },
        )
}

fn run(ticks: &[Tick]) -> (World, Ledger) {
    let rb = runbook();
    let fake = Fake {
        w: Mutex::new(World {
            api: true,
            boot: 1,
            ..World::default()
        }),
        rb: &rb,
    };
    let mut ledger = Ledger::default();
    // Only problems the ladder restarts/drains/reboots for; held across a few ticks each.
    let problems = [
        Problem::KubeletUnhealthy,
        Problem::PlegUnhealthy,
        Problem::ContainerRuntimeUnresponsive,
        Problem::ClockSkewed,
        Problem::SystemdOutdated,
    ];
    let mut node_cache = NodeView {
        unschedulable: false,
        cordon_annotation: false,
    };
    for tk in ticks {
        {
            let mut w = fake.w.lock().unwrap();
            w.api = tk.api;
            w.fleet_unhealthy = tk.fleet_unhealthy;
            w.other_slot_busy = tk.other_slot_busy;
            w.fail_actions = tk.fail_actions;
            w.drain_kind = tk.drain_kind;
            if tk.admin_toggle {
                if !w.unschedulable {
                    w.unschedulable = true;
                    w.annotation = false;
                    w.cordoned_by_admin = true;
                } else if w.cordoned_by_admin {
                    w.unschedulable = false;
                    w.cordoned_by_admin = false;
                    w.drained = false;
                    w.cordoned_since_drain = false;
                }
            }
        }
        let (now, cluster) = {
            let w = fake.w.lock().unwrap();
            if w.api {
                node_cache = NodeView {
                    unschedulable: w.unschedulable,
                    cordon_annotation: w.annotation,
                };
            }
            let slot = if !w.api {
                SlotView::Unknown
            } else if w.slot_holder.as_deref() == Some(ME) {
                SlotView::Held
            } else if w.other_slot_busy {
                SlotView::Busy {
                    holders: vec!["other".into()],
                }
            } else {
                SlotView::Free
            };
            (
                w.ts(),
                ClusterView {
                    api_reachable: w.api,
                    node: Some(node_cache),
                    slot,
                    fleet: w.api.then_some(FleetView {
                        other_nodes: FLEET,
                        other_unhealthy: w.fleet_unhealthy,
                    }),
                },
            )
        };
        let mut findings = Findings::default();
        for (i, p) in problems.iter().enumerate() {
            if tk.problems & (1 << i) != 0 {
                findings.active.insert(
                    *p,
                    Finding {
                        since: now,
                        summary: String::new(),
                    },
                );
                findings.failing_now.insert(*p);
            }
        }
        if tk.runtime_failing {
            findings
                .failing_now
                .insert(Problem::ContainerRuntimeUnresponsive);
        }
        let node = {
            let w = fake.w.lock().unwrap();
            let mut units: BTreeMap<String, Option<Timestamp>> = BTreeMap::new();
            for u in ["kubelet.service", "containerd.service", "chronyd.service"] {
                let since = w
                    .unit_since
                    .get(u)
                    .map(|s| Timestamp::from_second(1_800_000_000 + s).unwrap());
                units.insert(u.to_string(), since);
            }
            NodeFacts {
                units: Some(units),
                runtime_unit: None,
                runtime_then: Vec::new(),
                inactive: Default::default(),
                boot_id: Some(format!("boot-{}", w.boot)),
            }
        };
        let decision = plan(&Inputs {
            findings: &findings,
            ledger: &ledger,
            runbook: &rb,
            cluster: &cluster,
            node: &node,
            now,
        });
        // Decision-level invariants.
        match &decision {
            Decision::Recovered { uncordon: true, .. }
            | Decision::Exhausted { uncordon: true, .. } => {
                let ours = ledger
                    .cordon
                    .as_ref()
                    .is_some_and(|c| c.by_us && !c.handed_over);
                assert!(
                    ours,
                    "uncordon planned without our cordon in the ledger: {decision}"
                );
                assert!(
                    node_cache.cordon_annotation,
                    "uncordon planned without our annotation"
                );
            }
            _ => {}
        }
        let active: BTreeSet<Problem> = findings.active_set();
        let had_episode = ledger.episode.is_some();
        let reboots_before = fake.w.lock().unwrap().reboots.len();
        futures::executor::block_on(execute(
            &decision,
            &active,
            &mut ledger,
            &fake,
            &Discard,
            &fake,
        ))
        .unwrap();
        // Report-only problems never open an episode nor join one.
        if let Some(ep) = &ledger.episode {
            assert!(
                ep.problems.iter().all(|p| !p.report_only()),
                "an episode about a report-only problem: {ep:?}"
            );
            assert!(
                had_episode || !findings.remediable_set().is_empty(),
                "an episode opened for report-only findings alone: {decision}"
            );
        }
        {
            let mut w = fake.w.lock().unwrap();
            let episode = ledger.episode.as_ref().map(|e| e.id.clone());
            if std::mem::take(&mut w.drained_now) {
                w.drain_episode = episode.clone();
            }
            // A reboot happened: the drain that allowed it ran in this episode.
            if w.reboots.len() > reboots_before && (episode.is_none() || w.drain_episode != episode)
            {
                let msg = format!(
                    "reboot at {} without a drain in episode {episode:?} (last drain in {:?})",
                    w.now, w.drain_episode
                );
                w.violations.push(msg);
            }
        }
        let boot = format!("boot-{}", fake.w.lock().unwrap().boot);
        ledger.reconcile_boot(&boot, fake.now());
        fake.w.lock().unwrap().now += tk.advance;
    }
    (fake.w.into_inner().unwrap(), ledger)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn safety_invariants_hold_for_any_sequence(ticks in prop::collection::vec(tick(), 1..80)) {
        let (world, ledger) = run(&ticks);
        prop_assert!(world.violations.is_empty(), "violations: {:#?}\nledger: {:#?}", world.violations, ledger);
        // The ledger never claims a cordon of an admin's as ours.
        if let Some(c) = &ledger.cordon {
            prop_assert!(!(c.by_us && world.cordoned_by_admin), "{c:?}");
        }
    }

    #[test]
    fn plan_is_deterministic(ticks in prop::collection::vec(tick(), 1..40)) {
        let (_, a) = run(&ticks);
        let (_, b) = run(&ticks);
        prop_assert_eq!(a, b);
    }
}

/// The generator can reach every disruptive action (so the invariants above are exercised).
#[test]
fn the_simulation_reaches_reboots_and_holds() {
    let steady = Tick {
        advance: 400,
        problems: 0b001,
        runtime_failing: false,
        api: true,
        fleet_unhealthy: 0,
        admin_toggle: false,
        other_slot_busy: false,
        fail_actions: false,
        drain_kind: DrainKind::Clean,
    };
    // The world starts at 08:00 UTC, outside the 02:00-04:00 blackout.
    let ticks = vec![steady; 20];
    let (world, ledger) = run(&ticks);
    assert!(world.violations.is_empty(), "{:?}", world.violations);
    assert_eq!(world.reboots.len(), 1, "{ledger:#?}");
    assert!(
        world
            .restarts
            .iter()
            .any(|(u, _)| u == "containerd.service")
    );
    assert!(
        ledger
            .episode
            .as_ref()
            .is_some_and(|e| e.exhausted.is_some())
    );
    assert!(world.unschedulable, "exhausted node stays cordoned");
}

/// The seed case: the kubelet is the failure and the drain's pod stays
/// `Terminating`; the ladder still reaches the reboot, naming the pod.
#[test]
fn a_stuck_pod_does_not_keep_the_reboot_away() {
    let steady = Tick {
        advance: 400,
        problems: 0b010, // PLEGUnhealthy
        runtime_failing: false,
        api: true,
        fleet_unhealthy: 0,
        admin_toggle: false,
        other_slot_busy: false,
        fail_actions: false,
        drain_kind: DrainKind::Stuck,
    };
    let (world, ledger) = run(&vec![steady; 20]);
    assert!(world.violations.is_empty(), "{:?}", world.violations);
    assert_eq!(world.reboots.len(), 1, "{ledger:#?}");
    let ep = ledger.episode.as_ref().unwrap();
    let reboot = ep
        .attempts
        .iter()
        .find(|a| a.action == ActionKind::Reboot)
        .unwrap();
    assert_eq!(reboot.awaiting_kubelet, vec!["ns/stuck".to_string()]);
}

/// A PDB that refuses: never a reboot, the episode exhausted naming the PDB.
#[test]
fn a_pdb_refusal_never_reboots() {
    let steady = Tick {
        advance: 400,
        problems: 0b010,
        runtime_failing: false,
        api: true,
        fleet_unhealthy: 0,
        admin_toggle: false,
        other_slot_busy: false,
        fail_actions: false,
        drain_kind: DrainKind::PdbRefused,
    };
    let (world, ledger) = run(&vec![steady; 20]);
    assert!(world.violations.is_empty(), "{:?}", world.violations);
    assert!(world.reboots.is_empty());
    let ex = ledger
        .episode
        .as_ref()
        .and_then(|e| e.exhausted.as_ref())
        .unwrap();
    assert!(ex.reason.contains("web-pdb"), "{}", ex.reason);
}
