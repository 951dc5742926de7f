use super::*;
use crate::act::testing::{Call, ManualClock, RecordingActuators};
use crate::domain::Timestamp;

fn runtime_act() -> Act {
    let rb = crate::runbook::default_runbook().runbook;
    let step = rb
        .spec
        .steps
        .iter()
        .find(|s| matches!(s.action, Action::RestartContainerRuntime(_)))
        .expect("the default runbook restarts the runtime");
    Act {
        step: step.name.clone(),
        index: 0,
        action: step.action.clone(),
        unit: Some("cri-docker.service".into()),
        then_units: vec!["docker.service".into()],
        disruptive: step.disruptive,
        cordon: CordonPlan::NotNeeded,
        acquire_slot: false,
        resume: false,
        final_drain: None,
        kubelet_down: None,
        awaiting_kubelet: Vec::new(),
        problems: [Problem::ContainerRuntimeUnresponsive].into(),
        skipped: Vec::new(),
    }
}

#[tokio::test]
async fn a_layout_is_restarted_in_order() {
    let act = RecordingActuators::new();
    let mut ledger = Ledger::default();
    let clock = ManualClock::new(Timestamp::from_second(1_800_000_000).expect("time"));
    let active = [Problem::ContainerRuntimeUnresponsive].into();
    let d = Decision::Act(runtime_act());
    let out = execute(&d, &active, &mut ledger, &act, &Discard, &clock)
        .await
        .expect("no ledger error");
    assert_eq!(out.error, None, "{out:?}");
    let restarts: Vec<String> = act
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("restart "))
        .collect();
    assert_eq!(
        restarts,
        ["restart cri-docker.service", "restart docker.service"]
    );
}

#[tokio::test]
async fn a_failed_first_restart_stops_the_layout() {
    let act = RecordingActuators::new();
    act.fail(Call::Restart, true);
    let mut ledger = Ledger::default();
    let clock = ManualClock::new(Timestamp::from_second(1_800_000_000).expect("time"));
    let active = [Problem::ContainerRuntimeUnresponsive].into();
    let d = Decision::Act(runtime_act());
    let out = execute(&d, &active, &mut ledger, &act, &Discard, &clock)
        .await
        .expect("no ledger error");
    assert!(out.error.is_some(), "{out:?}");
    assert_eq!(act.count("restart "), 1, "{:?}", act.calls());
}
