use super::*;

pub(crate) fn lease(name: &str, holder: Option<&str>, renewed: Timestamp, secs: i32) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: Some(secs),
            renew_time: Some(MicroTime(renewed)),
            ..Default::default()
        }),
    }
}

#[test]
fn views() {
    let now: Timestamp = "2025-06-01T12:00:00Z".parse().unwrap_or_default();
    let ago = |s: i64| now - jiff::SignedDuration::from_secs(s);
    assert_eq!(slot_view(&[], "a", 1, now), SlotView::Free);
    let live = lease("nodewarden-slot-0", Some("b"), ago(10), 60);
    assert_eq!(
        slot_view(std::slice::from_ref(&live), "a", 1, now),
        SlotView::Busy {
            holders: vec!["b".into()]
        }
    );
    assert_eq!(
        slot_view(std::slice::from_ref(&live), "b", 1, now),
        SlotView::Held
    );
    assert_eq!(
        slot_view(std::slice::from_ref(&live), "a", 2, now),
        SlotView::Free
    );
    let expired = lease("nodewarden-slot-0", Some("b"), ago(61), 60);
    assert_eq!(slot_view(&[expired], "a", 1, now), SlotView::Free);
    let released = lease("nodewarden-slot-0", None, ago(1), 60);
    assert_eq!(slot_view(&[released], "a", 1, now), SlotView::Free);
    // A lease outside the slot range does not count.
    let other = lease("nodewarden-slot-5", Some("c"), ago(1), 60);
    assert_eq!(slot_view(&[other], "a", 1, now), SlotView::Free);
}
