use super::*;
use crate::act::slots::slot_view;
use crate::act::slots::tests::lease;
use crate::view::SlotView;

#[test]
fn shared_fleet_count() {
    let now: Timestamp = "2025-06-01T12:00:00Z".parse().unwrap_or_default();
    let count = FleetCount {
        nodes: 10,
        unhealthy: 3,
        unhealthy_names: Some(vec!["a".into(), "b".into(), "c".into()]),
    };
    assert_eq!(
        count.view_for("a"),
        FleetView {
            other_nodes: 9,
            other_unhealthy: 2
        }
    );
    assert_eq!(count.view_for("z").other_unhealthy, 3);
    // Without names the reader stays counted as unhealthy: never fewer.
    let blind = FleetCount {
        unhealthy_names: None,
        ..count.clone()
    };
    assert_eq!(blind.view_for("a").other_unhealthy, 3);

    let mut l = lease(FLEET_LEASE, Some("x"), now, 0);
    l.metadata.annotations = Some(
        [
            (ANN_FLEET_NODES.to_string(), "10".to_string()),
            (ANN_FLEET_UNHEALTHY.to_string(), "3".to_string()),
            (ANN_FLEET_NAMES.to_string(), "a,b,c".to_string()),
        ]
        .into(),
    );
    let later = |s: i64| now + jiff::SignedDuration::from_secs(s);
    let age = Duration::from_secs(10);
    assert_eq!(
        shared_fleet(std::slice::from_ref(&l), later(5), age),
        Some(count)
    );
    assert_eq!(shared_fleet(std::slice::from_ref(&l), later(11), age), None);
    // Written "in the future" by a skewed clock: not trusted.
    assert_eq!(shared_fleet(std::slice::from_ref(&l), later(-6), age), None);
    // It is not a slot.
    assert_eq!(slot_view(&[l], "a", 1, now), SlotView::Free);
}

#[test]
fn mini_node_health() {
    let n: MiniNode = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x", "annotations": {CORDONED_BY: OWNER}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "images": [{"names": ["a"]}]},
        }))
        .unwrap_or_default();
    assert!(n.unhealthy());
    let n: MiniNode = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "x"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }))
    .unwrap_or_default();
    assert!(!n.unhealthy());
    let n = MiniNode::default();
    assert!(n.unhealthy(), "no Ready condition = not Ready");
}
