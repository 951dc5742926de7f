//! Issue 16 (seed 004, "check port 6443"): the API server unreachable from the node,
//! judged from the agent's own watch (no extra request), against the fake API server
//! refusing connections, hanging, and answering errors.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use nodewarden::act::kube::{Kube, watch_one};
use nodewarden::health::Verdict;
use nodewarden::probe::apireach::{self, WatchHealth};
use nodewarden_fakeapi::{FakeApi, Mode};

async fn until(
    rx: &tokio::sync::watch::Receiver<nodewarden::act::kube::Watched<Node>>,
    want: Verdict,
    what: &str,
) -> apireach::Judgement {
    for _ in 0..400 {
        let j = apireach::judge(&[WatchHealth::of("node watch", &rx.borrow())]);
        if j.verdict == want {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let j = apireach::judge(&[WatchHealth::of("node watch", &rx.borrow())]);
    panic!("{what}: still {j:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_hung_and_erroring_servers() {
    let api = FakeApi::start().await;
    api.add_node("n1");
    let kube = Kube::from_url(&api.url(), Duration::from_secs(2)).expect("client");
    let (rx, task) = watch_one(
        Api::<Node>::all(kube.client().clone()),
        "n1",
        Duration::from_secs(2),
        nodewarden::act::watch::ApiPulse::default(),
    );

    until(&rx, Verdict::Healthy, "up").await;
    let requests = api.requests().len();

    // Refused: the listener is closed.
    api.set_mode(Mode::Down).await;
    let j = until(&rx, Verdict::Failing, "down").await;
    assert!(
        j.summary.contains("does not answer this node"),
        "{}",
        j.summary
    );
    assert!(
        j.evidence[0].1.starts_with("no answer: "),
        "{:?}",
        j.evidence
    );

    // Back: current again, nothing more asked than the watch's own requests.
    api.set_mode(Mode::Up).await;
    until(&rx, Verdict::Healthy, "up again").await;
    assert!(api.requests().len() - requests <= 6, "{:?}", api.requests());

    // Answers, with an error: reachable (not this problem).
    api.set_mode(Mode::Error500).await;
    let mut j = apireach::judge(&[]);
    for _ in 0..400 {
        j = apireach::judge(&[WatchHealth::of("node watch", &rx.borrow())]);
        if j.summary.contains("with an error") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(j.verdict, Verdict::Healthy, "{j:?}");
    assert!(j.summary.contains("500"), "{j:?}");

    // Hung: connections accepted, nothing answered; the liveness timeout says so.
    api.set_mode(Mode::Hang).await;
    let j = until(&rx, Verdict::Failing, "hang").await;
    assert!(
        j.summary.contains("no answer from the API server within"),
        "{}",
        j.summary
    );
    api.set_mode(Mode::Up).await;
    until(&rx, Verdict::Healthy, "up at the end").await;
    task.abort();
}
