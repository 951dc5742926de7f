//! Table-style tests: one rule of the planner each.

use std::collections::BTreeMap;

use super::*;
use crate::health::Finding;
use crate::ledger::{CordonRecord, MaintenanceRecord, SlotRecord};
use crate::runbook::{Runbook, default_runbook, parse};

const K: Problem = Problem::KubeletUnhealthy;
const PLEG: Problem = Problem::PlegUnhealthy;
const RT: Problem = Problem::ContainerRuntimeUnresponsive;
const CLOCK: Problem = Problem::ClockSkewed;
const SD: Problem = Problem::SystemdOutdated;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

struct W {
    rb: Runbook,
    findings: Findings,
    ledger: Ledger,
    cluster: ClusterView,
    node: NodeFacts,
    now: Timestamp,
}

impl W {
    fn new() -> W {
        W::with(default_runbook().runbook)
    }
    fn with(rb: Runbook) -> W {
        let node = crate::dryrun::assumed_node_facts(&rb);
        W {
            rb,
            findings: Findings::default(),
            ledger: Ledger::default(),
            cluster: ClusterView::calm(10),
            node,
            now: t(10_000),
        }
    }
    fn active(mut self, ps: &[Problem]) -> W {
        for p in ps {
            self.findings.active.insert(
                *p,
                Finding {
                    since: t(0),
                    summary: "test".into(),
                },
            );
            self.findings.failing_now.insert(*p);
        }
        self
    }
    fn plan(&self) -> Decision {
        plan(&Inputs {
            findings: &self.findings,
            ledger: &self.ledger,
            runbook: &self.rb,
            cluster: &self.cluster,
            node: &self.node,
            now: self.now,
        })
    }
    /// Record that `step` ran and finished at `at` with `outcome`.
    fn ran(mut self, step: &str, at: i64, outcome: Outcome) -> W {
        let kind = self.rb.step(step).unwrap().1.action.kind();
        let problems = self.findings.active_set();
        self.ledger.ensure_episode(&problems, t(at));
        self.ledger.begin_attempt(step, kind, t(at), None);
        if outcome != Outcome::InProgress {
            self.ledger.finish_attempt(outcome, None, t(at));
        }
        self
    }
    fn ours_cordoned(mut self) -> W {
        self.cluster.node = Some(NodeView {
            unschedulable: true,
            cordon_annotation: true,
        });
        self.ledger.cordon = Some(CordonRecord {
            by_us: true,
            was_cordoned_before: false,
            at: t(0),
            reason: "test".into(),
            handed_over: false,
        });
        self.cluster.slot = SlotView::Held;
        self.ledger.slot = Some(SlotRecord {
            lease: "nodewarden-slot-0".into(),
            acquired_at: t(0),
        });
        self
    }
}

fn act(d: Decision) -> Act {
    match d {
        Decision::Act(a) => a,
        other => panic!("expected act, got {other}"),
    }
}

fn hold_gate(d: &Decision) -> Gate {
    match d {
        Decision::Hold { gate, .. } => *gate,
        other => panic!("expected hold, got {other}"),
    }
}

#[test]
fn healthy_node_is_idle_and_failing_node_is_pending() {
    let w = W::new();
    assert_eq!(w.plan(), Decision::Idle);
    let mut w = W::new();
    w.findings.pending.insert(K, t(20_000));
    assert!(matches!(w.plan(), Decision::Pending { .. }));
}

fn reported_only() -> W {
    let mut w = W::new();
    w.findings.active.insert(
        Problem::SwapOn,
        Finding {
            since: t(0),
            summary: "swap".into(),
        },
    );
    w
}

#[test]
fn a_quiet_node_is_decided_without_its_facts() {
    let blind = NodeFacts::default();
    let mut odd = W::new().node;
    odd.boot_id = Some("another-boot".into());
    odd.units = Some(Default::default());
    odd.runtime_unit = Some("crio.service".into());
    let mut pending = W::new();
    pending.findings.pending.insert(K, t(20_000));
    let reported = reported_only();
    assert!(
        !reads_no_facts(&pending.findings, &pending.ledger),
        "pending may turn active by time alone"
    );
    for w in [W::new(), pending, reported] {
        let d = w.plan();
        for facts in [&blind, &odd] {
            let mut w2 = W::with(w.rb.clone());
            w2.findings = w.findings.clone();
            w2.node = facts.clone();
            assert_eq!(w2.plan(), d, "the same decision without the facts");
        }
    }
    assert!(reads_no_facts(&W::new().findings, &W::new().ledger));
    assert!(reads_no_facts(
        &reported_only().findings,
        &Ledger::default()
    ));
    // anything of ours open, or a remediable problem active: the facts are read
    assert!(!reads_no_facts(
        &W::new().active(&[K]).findings,
        &Ledger::default()
    ));
    let w = W::new()
        .active(&[K])
        .ran("restart-kubelet", 9_000, Outcome::Succeeded);
    let calm = Findings::default();
    assert!(!reads_no_facts(&calm, &w.ledger));
    assert!(!reads_no_facts(&calm, &W::new().ours_cordoned().ledger));
}

#[test]
fn kubelet_stall_restarts_kubelet_without_cordon_or_slot() {
    let a = act(W::new().active(&[K]).plan());
    assert_eq!(a.step, "restart-kubelet");
    assert_eq!(a.unit.as_deref(), Some("kubelet.service"));
    assert!(!a.disruptive);
    assert_eq!(a.cordon, CordonPlan::NotNeeded);
    assert!(!a.acquire_slot);
}

#[test]
fn kubelet_restart_needs_no_api() {
    let mut w = W::new().active(&[K]);
    w.cluster.api_reachable = false;
    w.cluster.node = None;
    w.cluster.fleet = None;
    w.cluster.slot = SlotView::Unknown;
    assert_eq!(act(w.plan()).step, "restart-kubelet");
}

#[test]
fn pleg_with_responsive_runtime_restarts_kubelet_first() {
    assert_eq!(act(W::new().active(&[PLEG]).plan()).step, "restart-kubelet");
}

#[test]
fn pleg_with_hung_runtime_restarts_the_runtime_first() {
    // Not yet confirmed as a finding: failing now is enough to skip kubelet.
    let mut w = W::new().active(&[PLEG]);
    w.findings.failing_now.insert(RT);
    let a = act(w.plan());
    assert_eq!(a.step, "restart-container-runtime");
    assert_eq!(a.skipped[0].step, "restart-kubelet");
    assert!(a.skipped[0].reason.contains("ContainerRuntimeUnresponsive"));
    assert!(a.disruptive);
    assert_eq!(a.cordon, CordonPlan::Cordon);
    assert!(a.acquire_slot);
}

#[test]
fn the_detected_runtime_unit_is_restarted() {
    let mut w = W::new().active(&[RT]);
    w.node
        .units
        .as_mut()
        .unwrap()
        .insert("docker.service".into(), None);
    w.node.runtime_unit = Some("docker.service".into());
    assert_eq!(act(w.plan()).unit.as_deref(), Some("docker.service"));
}

#[test]
fn cri_dockerd_restarts_cri_docker_then_docker() {
    // issue #13: on a cri-dockerd node the runtime step restarts cri-dockerd's
    // unit and then the dockerd behind it, never containerd.
    let mut w = W::new().active(&[RT]);
    let units = w.node.units.as_mut().unwrap();
    for u in ["cri-docker.service", "docker.service", "containerd.service"] {
        units.insert(u.into(), None);
    }
    w.node.runtime_unit = Some("cri-docker.service".into());
    w.node.runtime_then = vec!["docker.service".into()];
    let a = act(w.plan());
    assert_eq!(a.unit.as_deref(), Some("cri-docker.service"));
    assert_eq!(a.then_units, vec!["docker.service".to_string()]);
    let shown = w.plan().to_string();
    assert!(
        shown.contains("cri-docker.service, then docker.service"),
        "{shown}"
    );
    // A node without docker.service: only what exists is restarted.
    w.node.units.as_mut().unwrap().remove("docker.service");
    assert!(act(w.plan()).then_units.is_empty());
}

#[test]
fn verify_window_then_next_rung() {
    let w = W::new()
        .active(&[K])
        .ran("restart-kubelet", 9_990, Outcome::Succeeded);
    match w.plan() {
        Decision::Verify { step, until, .. } => {
            assert_eq!(step, "restart-kubelet");
            assert_eq!(until, t(9_990 + 220));
        }
        other => panic!("{other}"),
    }
    let mut w = w;
    w.now = t(9_990 + 220);
    assert_eq!(act(w.plan()).step, "restart-container-runtime");
}

#[test]
fn a_failed_step_moves_up_at_once() {
    let w = W::new().active(&[K]).ran(
        "restart-kubelet",
        9_990,
        Outcome::Failed("job failed".into()),
    );
    assert_eq!(act(w.plan()).step, "restart-container-runtime");
}

#[test]
fn a_unit_younger_than_its_cooldown_is_not_restarted() {
    let mut w = W::new().active(&[K]);
    w.node
        .units
        .as_mut()
        .unwrap()
        .insert("kubelet.service".into(), Some(t(9_970)));
    match w.plan() {
        Decision::Wait {
            step,
            until,
            reason,
        } => {
            assert_eq!(step, "restart-kubelet");
            assert_eq!(until, t(9_970 + 60));
            assert!(reason.contains("cooldown"), "{reason}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn rate_limited_step_is_skipped() {
    let mut w = W::new().active(&[K]);
    for i in 0..3 {
        w.ledger.begin_attempt(
            "restart-kubelet",
            ActionKind::RestartUnit,
            t(8_000 + i),
            None,
        );
    }
    let a = act(w.plan());
    assert_eq!(a.step, "restart-container-runtime");
    assert!(a.skipped[0].reason.contains("maxPer"), "{:?}", a.skipped);
    // Outside the window the budget is back.
    w.now = t(8_000 + 3_601);
    assert_eq!(act(w.plan()).step, "restart-kubelet");
}

fn at_runtime_rung() -> W {
    W::new().active(&[RT])
}

#[test]
fn disruptive_step_is_held_while_the_api_is_unreachable() {
    let mut w = at_runtime_rung();
    w.cluster.api_reachable = false;
    assert_eq!(hold_gate(&w.plan()), Gate::ApiUnreachable);
}

#[test]
fn disruptive_step_is_held_by_the_storm_gate() {
    let mut w = at_runtime_rung();
    w.cluster.fleet = Some(FleetView {
        other_nodes: 10,
        other_unhealthy: 3,
    });
    assert_eq!(hold_gate(&w.plan()), Gate::StormGate);
    w.cluster.fleet = Some(FleetView {
        other_nodes: 10,
        other_unhealthy: 2,
    });
    assert!(
        matches!(w.plan(), Decision::Act(_)),
        "20% exactly is allowed"
    );
    w.cluster.fleet = None;
    assert_eq!(hold_gate(&w.plan()), Gate::StormGate);
}

#[test]
fn storm_gate_absolute_limit() {
    let text = default_runbook_text().replace(
        "maxUnhealthyPercent: 20",
        "maxUnhealthyPercent: 100\n      maxUnhealthyNodes: 2",
    );
    let mut w = W::with(parse("rb", &text).unwrap().runbook).active(&[RT]);
    w.cluster.fleet = Some(FleetView {
        other_nodes: 1000,
        other_unhealthy: 3,
    });
    assert_eq!(hold_gate(&w.plan()), Gate::StormGate);
}

#[test]
fn disruptive_step_is_held_when_every_slot_is_taken() {
    let mut w = at_runtime_rung();
    w.cluster.slot = SlotView::Busy {
        holders: vec!["node-7".into()],
    };
    let d = w.plan();
    assert_eq!(hold_gate(&d), Gate::DisruptionSlot);
    assert!(d.to_string().contains("node-7"));
    w.cluster.slot = SlotView::Unknown;
    assert_eq!(hold_gate(&w.plan()), Gate::DisruptionSlot);
}

fn default_runbook_text() -> String {
    crate::runbook::DEFAULT_YAML.to_string()
}

#[test]
fn disruptive_step_is_held_in_a_blackout_but_kubelet_restart_is_not() {
    let text = default_runbook_text().replace(
        "blackouts: []",
        "blackouts:\n      - name: business-hours\n        days: [daily]\n        from: \"00:00\"\n        to: \"24:00\"",
    );
    let rb = parse("rb", &text).unwrap().runbook;
    let w = W::with(rb.clone()).active(&[RT]);
    assert_eq!(hold_gate(&w.plan()), Gate::Blackout);
    let w = W::with(rb).active(&[K]);
    assert_eq!(act(w.plan()).step, "restart-kubelet");
}

#[test]
fn an_admins_cordon_is_used_but_never_lifted() {
    let mut w = at_runtime_rung();
    w.cluster.node = Some(NodeView {
        unschedulable: true,
        cordon_annotation: false,
    });
    let a = act(w.plan());
    assert_eq!(a.cordon, CordonPlan::AlreadyCordoned { by_us: false });
    // Recovery with the admin's cordon recorded: no uncordon.
    w.ledger.cordon = Some(CordonRecord {
        by_us: false,
        was_cordoned_before: true,
        at: t(0),
        reason: "admin".into(),
        handed_over: false,
    });
    w.ledger.ensure_episode(&[RT].into(), t(0));
    w.findings = Findings::default();
    match w.plan() {
        Decision::Recovered { uncordon, .. } => assert!(!uncordon),
        other => panic!("{other}"),
    }
}

#[test]
fn our_cordon_is_lifted_on_recovery_only_with_our_annotation() {
    let mut w = W::new().ours_cordoned();
    w.ledger.ensure_episode(&[RT].into(), t(0));
    match w.plan() {
        Decision::Recovered {
            uncordon,
            release_slot,
            ..
        } => assert!(uncordon && release_slot),
        other => panic!("{other}"),
    }
    // Someone replaced our cordon with theirs: leave it.
    w.cluster.node = Some(NodeView {
        unschedulable: true,
        cordon_annotation: false,
    });
    match w.plan() {
        Decision::Recovered {
            uncordon, reason, ..
        } => {
            assert!(!uncordon);
            assert!(reason.contains("left alone"), "{reason}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn recovery_waits_for_the_api_to_lift_our_cordon() {
    let mut w = W::new().ours_cordoned();
    w.ledger.ensure_episode(&[RT].into(), t(0));
    w.cluster.api_reachable = false;
    assert_eq!(hold_gate(&w.plan()), Gate::ApiUnreachable);
}

#[test]
fn reboot_needs_a_completed_drain() {
    let w = W::new()
        .active(&[K])
        .ours_cordoned()
        .ran("restart-kubelet", 1_000, Outcome::Succeeded)
        .ran("restart-container-runtime", 2_000, Outcome::Succeeded)
        .ran(
            "drain",
            3_000,
            Outcome::Failed("PDB web-pdb blocks web-0".into()),
        );
    match w.plan() {
        Decision::Exhausted {
            reason,
            hand_over_cordon,
            ..
        } => {
            assert!(reason.contains("completed drain"), "{reason}");
            assert!(hand_over_cordon);
        }
        other => panic!("{other}"),
    }
}

fn at_reboot_rung() -> W {
    W::new()
        .active(&[K])
        .ours_cordoned()
        .ran("restart-kubelet", 1_000, Outcome::Succeeded)
        .ran("restart-container-runtime", 2_000, Outcome::Succeeded)
        .ran("drain", 3_000, Outcome::Succeeded)
}

#[test]
fn reboot_after_a_completed_drain() {
    let a = act(at_reboot_rung().plan());
    assert_eq!(a.step, "reboot");
    assert_eq!(a.cordon, CordonPlan::AlreadyCordoned { by_us: true });
    assert!(!a.acquire_slot);
    // Found by the property test: an admin's uncordon + re-cordon between drain
    // and reboot is invisible to a snapshot, so the reboot drains once more first.
    assert!(a.final_drain.is_some());
}

#[test]
fn the_reboot_cap_ends_the_episode() {
    let mut w = at_reboot_rung();
    w.ledger.record_reboot("boot-0", t(10_000 - 3_600));
    match w.plan() {
        Decision::Exhausted { reason, newly, .. } => {
            assert!(newly);
            assert!(reason.contains("reboot cap reached"), "{reason}");
        }
        other => panic!("{other}"),
    }
    w.now = t(10_000 - 3_600 + 6 * 3_600 + 1);
    assert_eq!(act(w.plan()).step, "reboot");
}

#[test]
fn a_requested_reboot_is_waited_for_then_given_up() {
    let mut w = at_reboot_rung().ran("reboot", 9_900, Outcome::InProgress);
    w.ledger.record_reboot("boot-0", t(9_900));
    assert!(matches!(w.plan(), Decision::Wait { .. }));
    w.now = t(9_900 + 901);
    assert!(matches!(w.plan(), Decision::Exhausted { .. }));
}

#[test]
fn an_interrupted_drain_is_resumed_not_restarted() {
    let w = W::new()
        .active(&[K])
        .ours_cordoned()
        .ran("restart-kubelet", 1_000, Outcome::Succeeded)
        .ran("restart-container-runtime", 2_000, Outcome::Succeeded)
        .ran("drain", 9_000, Outcome::InProgress);
    let a = act(w.plan());
    assert_eq!(a.step, "drain");
    assert!(a.resume);
    assert_eq!(a.cordon, CordonPlan::AlreadyCordoned { by_us: true });
}

#[test]
fn an_interrupted_restart_counts_as_done_and_is_verified() {
    let w = W::new()
        .active(&[K])
        .ran("restart-kubelet", 9_990, Outcome::InProgress);
    assert!(matches!(w.plan(), Decision::Verify { .. }));
}

#[test]
fn an_exhausted_episode_stays_exhausted() {
    let mut w = W::new().active(&[K]);
    w.ledger.ensure_episode(&[K].into(), t(0));
    w.ledger.mark_exhausted("done", t(1));
    match w.plan() {
        Decision::Exhausted { newly, .. } => assert!(!newly),
        other => panic!("{other}"),
    }
}

#[test]
fn a_handed_over_cordon_is_never_lifted() {
    let mut w = W::new().ours_cordoned();
    w.ledger.cordon.as_mut().unwrap().handed_over = true;
    w.ledger.ensure_episode(&[K].into(), t(0));
    w.ledger.mark_exhausted("done", t(1));
    match w.plan() {
        Decision::Recovered { uncordon, .. } => assert!(!uncordon),
        other => panic!("{other}"),
    }
}

#[test]
fn maintenance_pauses_everything() {
    let mut w = W::new().active(&[K]);
    w.ledger.maintenance = Some(MaintenanceRecord {
        since: t(0),
        by: "alice".into(),
        reason: "kernel upgrade".into(),
    });
    assert!(matches!(w.plan(), Decision::Paused { .. }));
}

#[test]
fn clock_skew_restarts_time_sync_and_never_reboots() {
    let a = act(W::new().active(&[CLOCK]).plan());
    assert_eq!(a.step, "restart-time-sync");
    assert!(!a.disruptive);
    let w = W::new()
        .active(&[CLOCK])
        .ran("restart-time-sync", 1_000, Outcome::Succeeded);
    match w.plan() {
        Decision::Exhausted { reason, .. } => assert!(reason.contains("ClockSkewed")),
        other => panic!("{other}"),
    }
}

#[test]
fn outdated_systemd_is_report_only_and_opens_no_episode() {
    // Monitored at once: no step (not even its report step) runs as an episode step.
    let d = W::new().active(&[SD]).plan();
    assert_eq!(
        d,
        Decision::Monitoring {
            problems: [SD].into()
        }
    );
    assert!(d.to_string().contains("report-only"), "{d}");
    // Whatever the storm gate and the slots say: nothing to hold, nothing to take.
    let mut w = W::new().active(&[SD]);
    w.cluster.fleet = Some(FleetView {
        other_nodes: 10,
        other_unhealthy: 10,
    });
    w.cluster.slot = SlotView::Unknown;
    w.cluster.api_reachable = false;
    assert!(matches!(w.plan(), Decision::Monitoring { .. }));
    // A remediable problem that is still pending comes first.
    let mut w = W::new().active(&[SD]);
    w.findings.pending.insert(K, t(20_000));
    assert!(matches!(w.plan(), Decision::Pending { .. }));
}

#[test]
fn a_report_only_problem_beside_a_real_one_is_left_out_of_the_episode() {
    let a = act(W::new().active(&[K, SD]).plan());
    assert_eq!(a.step, "restart-kubelet");
    assert_eq!(a.problems, [K].into());
    // The real problem clears while systemd stays outdated: the episode closes.
    let w = W::new()
        .active(&[K])
        .ran("restart-kubelet", 1_000, Outcome::Succeeded);
    let mut w = W {
        findings: Findings::default(),
        ..w
    }
    .active(&[SD]);
    w.now = t(2_000);
    assert!(
        matches!(w.plan(), Decision::Recovered { .. }),
        "{}",
        w.plan()
    );
}

#[test]
fn a_ladder_step_for_a_report_only_problem_is_rejected() {
    let yaml = crate::runbook::DEFAULT_YAML.replace(
        "      when: [SystemdOutdated]\n      action:\n        report:",
        "      when: [SystemdOutdated]\n      action:\n        exec: {argv: [/usr/bin/yum, -y, update, systemd]}\n        report:",
    );
    assert_ne!(yaml, crate::runbook::DEFAULT_YAML);
    let yaml = yaml.replace(
        "        exec: {argv: [/usr/bin/yum, -y, update, systemd]}\n        report:\n          message: systemd is older than this distro's minimum; schedule an upgrade (nodewarden maintenance start)\n",
        "        exec: {argv: [/usr/bin/yum, -y, update, systemd]}\n      verify: 1m\n",
    );
    let err = match parse("rb.yaml", &yaml) {
        Ok(_) => panic!("a ladder step for SystemdOutdated must be rejected"),
        Err(e) => format!("{e:?}"),
    };
    assert!(err.contains("SystemdOutdated is report-only"), "{err}");
}

#[test]
fn a_missing_time_sync_unit_is_skipped_with_its_reason() {
    let mut w = W::new().active(&[CLOCK]);
    w.node.units = Some(BTreeMap::new());
    match w.plan() {
        Decision::Exhausted { reason, .. } => {
            assert!(reason.contains("not found on this node"), "{reason}")
        }
        other => panic!("{other}"),
    }
}

#[test]
fn problems_escalate_on_their_own_rungs() {
    // Kubelet is past the runtime restart; a new clock skew still starts at its own first step.
    let w = W::new()
        .active(&[K])
        .ours_cordoned()
        .ran("restart-kubelet", 1_000, Outcome::Succeeded)
        .ran("restart-container-runtime", 2_000, Outcome::Succeeded)
        .active(&[CLOCK]);
    assert_eq!(act(w.plan()).step, "restart-time-sync");
}

/// Found by the property test: an admin lifted the cordon between our drain
/// and the reboot, so pods may be back on the node.
#[test]
fn a_drain_is_stale_once_the_node_was_uncordoned() {
    let mut w = at_reboot_rung();
    w.cluster.node = Some(NodeView {
        unschedulable: false,
        cordon_annotation: false,
    });
    let a = act(w.plan());
    assert_eq!(a.step, "drain");
    assert_eq!(a.cordon, CordonPlan::Cordon);
    assert!(
        a.skipped
            .iter()
            .any(|s| s.step == "reboot" && s.reason.contains("draining again"))
    );
}

/// Found by the property test: an older successful drain must not cover a failed re-drain.
#[test]
fn the_most_recent_drain_decides() {
    let w = at_reboot_rung().ran("drain", 9_000, Outcome::Failed("PDB".into()));
    match w.plan() {
        Decision::Exhausted { reason, .. } => {
            assert!(reason.contains("completed drain"), "{reason}")
        }
        other => panic!("{other}"),
    }
}

/// Found by the property test: a reboot decided at 01:59 ran after its final
/// drain, inside a 02:00 blackout.
#[test]
fn a_disruptive_step_must_finish_before_a_blackout_begins() {
    let text = default_runbook_text().replace(
        "blackouts: []",
        "blackouts:\n      - days: [daily]\n        from: \"02:00\"\n        to: \"04:00\"",
    );
    let rb = parse("rb", &text).unwrap().runbook;
    let base = at_reboot_rung();
    let mut w = W::with(rb);
    w.findings = base.findings;
    w.ledger = base.ledger;
    w.cluster = base.cluster;
    // 01:49:30: the final drain (10m deadline) + 1m could reach 02:00.
    w.now = "2027-01-16T01:49:30Z".parse().unwrap();
    assert_eq!(hold_gate(&w.plan()), Gate::Blackout);
    w.now = "2027-01-16T01:48:30Z".parse().unwrap();
    assert_eq!(act(w.plan()).step, "reboot");
    w.now = "2027-01-16T04:00:00Z".parse().unwrap();
    assert_eq!(act(w.plan()).step, "reboot");
}

#[test]
fn time_sync_restarts_the_running_daemon_and_never_starts_one() {
    // EL7: chrony installed but ntpd running.
    let mut w = W::new().active(&[CLOCK]);
    w.node.units = Some(
        [
            ("chronyd.service".to_string(), None),
            ("ntpd.service".to_string(), Some(t(0))),
        ]
        .into(),
    );
    w.node.inactive = ["chronyd.service".to_string()].into();
    let a = act(w.plan());
    assert_eq!(a.unit.as_deref(), Some("ntpd.service"));
    // Neither runs: the step is passed over with its reason, nothing is started.
    w.node.inactive.insert("ntpd.service".into());
    match w.plan() {
        Decision::Exhausted { reason, .. } => {
            assert!(
                reason.contains("no time-sync daemon is running"),
                "{reason}"
            )
        }
        other => panic!("{other}"),
    }
}
