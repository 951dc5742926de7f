use super::*;

#[test]
fn the_flags_scenario_becomes_the_planners_view() {
    let calm = ClusterScenario {
        other_nodes: 10,
        other_unhealthy: 3,
        ..Default::default()
    }
    .view()
    .expect("valid");
    assert!(calm.api_reachable);
    assert_eq!(calm.slot, SlotView::Free);
    assert_eq!(
        calm.fleet,
        Some(FleetView {
            other_nodes: 10,
            other_unhealthy: 3
        })
    );
    let down = ClusterScenario {
        other_nodes: 10,
        api_down: true,
        admin_cordoned: true,
        ..Default::default()
    }
    .view()
    .expect("valid");
    assert!(!down.api_reachable);
    assert_eq!((down.node, down.fleet), (None, None));
    assert_eq!(down.slot, SlotView::Unknown);
    let cordoned = ClusterScenario {
        other_nodes: 1,
        admin_cordoned: true,
        slot_busy: Some("node-7".into()),
        ..Default::default()
    }
    .view()
    .expect("valid");
    assert!(
        cordoned
            .node
            .is_some_and(|n| n.unschedulable && !n.cordon_annotation)
    );
    assert_eq!(
        cordoned.slot,
        SlotView::Busy {
            holders: vec!["node-7".into()]
        }
    );
    let bad = ClusterScenario {
        other_nodes: 2,
        other_unhealthy: 3,
        ..Default::default()
    };
    assert!(bad.view().is_err());
}
