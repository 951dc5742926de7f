//! A CI-sized fleet: 48 real agents against one fake API server, checking the
//! fleet simulator's requirements (docs/fleet.md) with counts, not clocks.

#[path = "fleet/sim.rs"]
mod fleet;

use std::time::Duration;

use fleet::{Fleet, Scale, Settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_steady_storm_outdated_partition() {
    let settings = Settings {
        agents: 48,
        startup_spread: Duration::from_secs(2),
        partitioned: 24,
    };
    let sc = Scale {
        steady: Duration::from_secs(6),
        storm: Duration::from_secs(12),
        partition: Duration::from_secs(10),
        ..Scale::quick()
    };
    let f = Fleet::start(&settings).await.expect("fleet starts");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let reports = vec![
        f.steady(&sc, fleet::rss_bytes()).await,
        f.storm(&sc).await,
        f.partition(&sc, settings.partitioned).await,
        // Last: a storm's fleet count, shared for a while, rightly holds the
        // next failures, and a calm count, trusted for a few seconds, would
        // let the first storm nodes through; neither is what this one checks.
        f.outdated(&sc).await,
    ];
    f.stop().await;
    let mut failed = Vec::new();
    for r in &reports {
        println!("{}", r.render());
        failed.extend(r.failed());
    }
    assert!(failed.is_empty(), "fleet checks failed: {failed:#?}");
}
