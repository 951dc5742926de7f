use super::*;
use k8s_openapi::api::core::v1::NodeSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn node(unsched: Option<bool>, ann: &[(&str, &str)]) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some("n1".into()),
            annotations: Some(
                ann.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            unschedulable: unsched,
            ..Default::default()
        }),
        status: None,
    }
}

#[test]
fn view_from_node() {
    assert_eq!(
        node_view(&node(None, &[])),
        NodeView {
            unschedulable: false,
            cordon_annotation: false
        }
    );
    assert_eq!(
        node_view(&node(Some(true), &[(CORDONED_BY, OWNER)])),
        NodeView {
            unschedulable: true,
            cordon_annotation: true
        }
    );
    // Somebody else's value is not ours.
    assert!(!node_view(&node(Some(true), &[(CORDONED_BY, "kured")])).cordon_annotation);
}

#[test]
fn heartbeat() {
    let t0: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap_or_default();
    let t1 = t0 + jiff::SignedDuration::from_secs(301);
    assert!(heartbeat_due(t0, t1, Duration::from_secs(300)));
    assert!(!heartbeat_due(t1, t0, Duration::from_secs(300)));
}
