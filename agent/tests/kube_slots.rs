//! Disruption slots (Lease semaphore) and the storm gate's fleet count,
//! against the fake API server with the real kube client.

use std::time::Duration;

use nodewarden::act::ActError;
use nodewarden::act::fleet::FleetCounter;
use nodewarden::act::kube::Kube;
use nodewarden::act::slots::{SLOT_LABEL, SlotConfig, SlotError, Slots};
use nodewarden::plan::{FleetView, SlotView};
use nodewarden_fakeapi::{FakeApi, Kind};
use serde_json::{Value, json};

const NS: &str = "nodewarden";

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test took longer than 30 s");
}

fn slots(api: &FakeApi, holder: &str, n: u32) -> Slots {
    let kube = Kube::from_url(&api.url(), Duration::from_secs(2)).expect("client");
    Slots::new(
        kube,
        SlotConfig {
            namespace: NS.into(),
            holder: holder.into(),
            slots: n,
            lease_duration: Duration::from_secs(60),
        },
    )
}

fn holder(api: &FakeApi, lease: &str) -> Option<String> {
    api.get(Kind::Lease, NS, lease)?
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn micro(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn lease_fixture(api: &FakeApi, name: &str, holder: &str, renewed_secs_ago: i64, duration: i64) {
    let renewed = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(renewed_secs_ago);
    api.create(
        Kind::Lease,
        NS,
        json!({
            "metadata": {"name": name, "labels": {SLOT_LABEL: "true"}},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": duration,
                "acquireTime": micro(renewed),
                "renewTime": micro(renewed),
                "leaseTransitions": 3,
            },
        }),
    );
}

/// Two agents race for one slot, many times: exactly one wins each round.
#[tokio::test]
async fn two_agents_racing_for_one_slot_exactly_one_wins() {
    bounded(async {
        let api = FakeApi::start().await;
        let a = slots(&api, "node-a", 1);
        let b = slots(&api, "node-b", 1);
        for round in 0..20 {
            let (ra, rb) = tokio::join!(a.acquire(), b.acquire());
            let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
            assert_eq!(wins, 1, "round {round}: {ra:?} {rb:?}");
            let (winner, loser) = if ra.is_ok() { ("node-a", &rb) } else { ("node-b", &ra) };
            assert!(matches!(loser, Err(SlotError::Busy { .. })), "{loser:?}");
            assert_eq!(holder(&api, "nodewarden-slot-0").as_deref(), Some(winner));
            let (va, vb) = (a.view().await.expect("view"), b.view().await.expect("view"));
            let (held, other) = if winner == "node-a" { (va, vb) } else { (vb, va) };
            assert_eq!(held, SlotView::Held);
            assert!(matches!(other, SlotView::Busy { ref holders } if holders == &vec![winner.to_string()]));
            // Alternate how the slot becomes free again: released or deleted.
            if round % 2 == 0 {
                let w = if winner == "node-a" { &a } else { &b };
                w.release("nodewarden-slot-0").await.expect("release");
                assert_eq!(holder(&api, "nodewarden-slot-0"), None);
            } else {
                api.remove(Kind::Lease, NS, "nodewarden-slot-0");
            }
        }
        // The race really happened at the API server: losers got 409s.
        let conflicts = api.requests().iter().filter(|r| r.resource == "leases" && r.status == 409).count();
        assert!(conflicts > 0, "no concurrent write was ever refused");
    })
    .await;
}

#[tokio::test]
async fn slots_are_a_semaphore() {
    bounded(async {
        let api = FakeApi::start().await;
        let a = slots(&api, "node-a", 2);
        let b = slots(&api, "node-b", 2);
        let c = slots(&api, "node-c", 2);
        assert_eq!(c.view().await, Ok(SlotView::Free));
        let la = a.acquire().await.expect("a");
        let lb = b.acquire().await.expect("b");
        assert_ne!(la, lb);
        // Acquiring again is idempotent (an agent restart keeps its slot).
        assert_eq!(a.acquire().await.as_ref(), Ok(&la));
        let e = c.acquire().await.expect_err("full");
        let SlotError::Busy { ref holders } = e else {
            panic!("{e:?}")
        };
        assert_eq!(holders, &vec!["node-a".to_string(), "node-b".to_string()]);
        assert!(matches!(ActError::from(e), ActError::SlotBusy(ref h) if h == "node-a, node-b"));
        b.release(&lb).await.expect("release");
        // Releasing a slot that is not ours is a no-op.
        a.release(&lb).await.expect("no-op");
        assert_eq!(c.acquire().await, Ok(lb));
    })
    .await;
}

/// An expired holder's slot is taken over; a live holder's slot never is.
#[tokio::test]
async fn expired_slot_taken_over_live_one_never() {
    bounded(async {
        let api = FakeApi::start().await;
        lease_fixture(&api, "nodewarden-slot-0", "node-live", 5, 60);
        lease_fixture(&api, "nodewarden-slot-1", "node-dead", 600, 60);
        let one = slots(&api, "node-a", 1);
        let e = one.acquire().await.expect_err("live holder");
        assert_eq!(e, SlotError::Busy { holders: vec!["node-live".into()] });
        assert_eq!(holder(&api, "nodewarden-slot-0").as_deref(), Some("node-live"));
        assert_eq!(one.view().await, Ok(SlotView::Busy { holders: vec!["node-live".into()] }));

        let two = slots(&api, "node-a", 2);
        assert_eq!(two.view().await, Ok(SlotView::Free));
        assert_eq!(two.acquire().await.as_deref(), Ok("nodewarden-slot-1"));
        let l = api.get(Kind::Lease, NS, "nodewarden-slot-1").expect("lease");
        assert_eq!(l["spec"]["holderIdentity"], "node-a");
        assert_eq!(l["spec"]["leaseTransitions"], 4);
        assert_eq!(l["spec"]["leaseDurationSeconds"], 60);
        assert_eq!(holder(&api, "nodewarden-slot-0").as_deref(), Some("node-live"), "live one untouched");

        // The dead holder comes back: its slot is gone, renewing says so.
        let dead = slots(&api, "node-dead", 2);
        let e = dead.renew("nodewarden-slot-1").await.expect_err("lost");
        assert!(matches!(e, SlotError::Lost { ref now_held_by, .. } if now_held_by.as_deref() == Some("node-a")), "{e:?}");
        // The winner renews fine.
        two.renew("nodewarden-slot-1").await.expect("renew");
    })
    .await;
}

#[tokio::test]
async fn background_renewal_keeps_the_slot() {
    bounded(async {
        let api = FakeApi::start().await;
        let kube = Kube::from_url(&api.url(), Duration::from_secs(2)).expect("client");
        let s = Slots::new(
            kube,
            SlotConfig {
                namespace: NS.into(),
                holder: "node-a".into(),
                slots: 1,
                lease_duration: Duration::from_secs(3),
            },
        );
        let lease = s.acquire().await.expect("acquire");
        let renewal = s.keep_renewed(&lease);
        api.clear_log();
        tokio::time::sleep(Duration::from_millis(4200)).await;
        assert!(
            api.count("update", "leases") >= 3,
            "renewed every second: {}",
            api.count("update", "leases")
        );
        assert_eq!(
            s.view().await,
            Ok(SlotView::Held),
            "still live after its first duration"
        );
        assert!(renewal.lost.borrow().is_none());
        drop(renewal);
    })
    .await;
}

#[tokio::test]
async fn fleet_count_for_the_storm_gate() {
    bounded(async {
        let api = FakeApi::start().await;
        for i in 0..7 {
            api.add_node(&format!("n{i}"));
        }
        // n1 NotReady, n2 cordoned by nodewarden, n3 remediating, n4 cordoned by an admin (healthy).
        api.modify(Kind::Node, "", "n1", |n| {
            for c in n["status"]["conditions"]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                if c["type"] == "Ready" {
                    c["status"] = json!("Unknown");
                }
            }
        });
        api.modify(Kind::Node, "", "n2", |n| {
            n["metadata"]["annotations"] = json!({"nodewarden.io/cordoned-by": "nodewarden"});
            n["spec"]["unschedulable"] = json!(true);
        });
        api.modify(Kind::Node, "", "n3", |n| {
            if let Some(c) = n["status"]["conditions"].as_array_mut() {
                c.push(json!({"type": "NodewardenRemediating", "status": "True"}));
            }
        });
        api.modify(Kind::Node, "", "n4", |n| {
            n["spec"]["unschedulable"] = json!(true)
        });
        // Our own node is not counted, even when NotReady.
        api.modify(Kind::Node, "", "n0", |n| {
            n["status"]["conditions"] = json!([])
        });
        let kube = Kube::from_url(&api.url(), Duration::from_secs(2)).expect("client");
        api.clear_log();
        let fleet = FleetCounter::new(kube, "n0")
            .with_page(2)
            .count()
            .await
            .expect("count");
        assert_eq!(
            fleet,
            FleetView {
                other_nodes: 6,
                other_unhealthy: 3
            }
        );
        assert_eq!(api.count("list", "nodes"), 4, "7 nodes in pages of 2");
    })
    .await;
}
