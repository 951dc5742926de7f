use super::*;
use crate::runbook::default_runbook;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}
fn obs(p: Problem, at: i64, v: Verdict) -> Observation {
    Observation::new(p, t(at), v, format!("{v:?}"))
}

#[test]
fn failure_confirms_after_fail_for_and_clears_after_ok_for() {
    let rb = default_runbook().runbook;
    let probes = &rb.spec.probes; // kubelet: failFor 1m, okFor 1m
    let k = Problem::KubeletUnhealthy;
    let mut h = Health::new();
    h.observe(obs(k, 0, Verdict::Failing));
    let f = h.evaluate(probes, t(30));
    assert!(f.active.is_empty());
    assert_eq!(f.pending[&k], t(60));
    assert!(f.failing_now.contains(&k));
    h.observe(obs(k, 60, Verdict::Failing));
    let f = h.evaluate(probes, t(60));
    assert_eq!(f.active[&k].since, t(0));
    h.observe(obs(k, 70, Verdict::Healthy));
    let f = h.evaluate(probes, t(100));
    assert!(f.active.contains_key(&k), "clears only after okFor");
    assert_eq!(f.clearing[&k], t(130));
    assert!(!f.failing_now.contains(&k));
    let f = h.evaluate(probes, t(130));
    assert!(f.active.is_empty());
}

#[test]
fn a_blip_of_health_restarts_fail_for_and_a_blip_of_failure_restarts_ok_for() {
    let rb = default_runbook().runbook;
    let probes = &rb.spec.probes;
    let k = Problem::KubeletUnhealthy;
    let mut h = Health::new();
    h.observe(obs(k, 0, Verdict::Failing));
    h.observe(obs(k, 50, Verdict::Healthy));
    h.observe(obs(k, 55, Verdict::Failing));
    assert!(h.evaluate(probes, t(100)).active.is_empty());
    assert!(!h.evaluate(probes, t(115)).active.is_empty());
    h.observe(obs(k, 120, Verdict::Healthy));
    h.observe(obs(k, 170, Verdict::Failing));
    h.observe(obs(k, 175, Verdict::Healthy));
    assert!(!h.evaluate(probes, t(200)).active.is_empty());
    assert!(h.evaluate(probes, t(235)).active.is_empty());
}

#[test]
fn unknown_changes_nothing() {
    let rb = default_runbook().runbook;
    let probes = &rb.spec.probes;
    let k = Problem::KubeletUnhealthy;
    let mut h = Health::new();
    h.observe(obs(k, 0, Verdict::Failing));
    h.observe(obs(k, 30, Verdict::Unknown));
    assert!(!h.evaluate(probes, t(60)).active.is_empty());
}

#[test]
fn seeded_problems_need_ok_for_before_clearing() {
    let rb = default_runbook().runbook;
    let probes = &rb.spec.probes;
    let k = Problem::KubeletUnhealthy;
    let mut h = Health::new();
    h.seed_active([k], t(0));
    assert!(h.evaluate(probes, t(1)).active.contains_key(&k));
    h.observe(obs(k, 10, Verdict::Healthy));
    assert!(h.evaluate(probes, t(20)).active.contains_key(&k));
    assert!(h.evaluate(probes, t(70)).active.is_empty());
}
