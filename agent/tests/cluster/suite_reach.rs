//! The API server unreachable (issue 16's ApiServerUnreachable probe), on both
//! servers: judged from the agent's own Node watch, through a hang (the real
//! kube-apiserver SIGSTOPped: connections stay open, nothing is answered) and a
//! restart (refused connections, then a server whose watch cache starts empty).
//! On the real server the watch is the packaged ServiceAccount's.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use nodewarden::act::kube::{Watched, watch_one};
use nodewarden::act::watch::ApiPulse;
use nodewarden::health::Verdict;
use nodewarden::probe::apireach::{self, Judgement, WatchHealth};
use tokio::sync::watch::Receiver;

use super::{Cluster, fixtures};

/// Waits (up to `within`) for the probe's verdict on the watch to be `want`.
async fn until(
    rx: &Receiver<Watched<Node>>,
    want: Verdict,
    within: Duration,
    what: &str,
) -> Judgement {
    let start = Instant::now();
    loop {
        let j = apireach::judge(&[WatchHealth::of("node watch", &rx.borrow())]);
        if j.verdict == want {
            return j;
        }
        assert!(
            start.elapsed() < within,
            "{what}: still {j:?} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn api_unreachable_hang_and_restart<C: Cluster>(c: &C) {
    let node = "reach-n1";
    fixtures::node(c, node).await;
    // A silence limit of 2 s (the agent's is 90 s) keeps the scenario short;
    // the reopen that checks a silent server still waits its own 10 s.
    let (rx, task) = watch_one(
        Api::<Node>::all(c.agent().client().clone()),
        node,
        Duration::from_secs(2),
        ApiPulse::default(),
    );
    until(&rx, Verdict::Healthy, Duration::from_secs(20), "up").await;

    // Hung: nothing answered, so no watch event, no bookmark and no reopen
    // answer; after the silence and the reopen's deadline it is unreachable.
    c.hang_api(true).await;
    let hung = async {
        let j = until(&rx, Verdict::Failing, Duration::from_secs(40), "hung").await;
        assert!(
            j.summary.contains("no answer from the API server within"),
            "{}: {j:?}",
            c.name()
        );
    };
    let r = std::panic::AssertUnwindSafe(hung);
    let outcome = futures::FutureExt::catch_unwind(r).await;
    c.hang_api(false).await;
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
    until(&rx, Verdict::Healthy, Duration::from_secs(30), "resumed").await;

    // Restarted: refused while down, then a new process. The watch resumes
    // (or relists after 410) on its own: the new server answers it and the
    // verdict is Healthy on that answer (not on one from before the restart,
    // which the silence limit has not yet aged out).
    c.restart_api().await;
    let back = Instant::now();
    let start = Instant::now();
    loop {
        let (j, answered_since) = {
            let w = rx.borrow();
            let j = apireach::judge(&[WatchHealth::of("node watch", &w)]);
            (j, !w.stale && w.answered.is_some_and(|t| t >= back))
        };
        if j.verdict == Verdict::Healthy && answered_since {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{}: restarted: still {j:?}, current and answered since the restart: {answered_since}",
            c.name()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    task.abort();
}
