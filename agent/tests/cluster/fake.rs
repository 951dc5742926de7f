//! The fake API server as a [`Cluster`]: a fresh one per scenario.

use std::time::Duration;

use nodewarden::act::kube::Kube;
use nodewarden_fakeapi::{FakeApi, Mode};

use super::Cluster;

pub struct FakeCluster {
    pub api: FakeApi,
}

impl FakeCluster {
    pub async fn start() -> FakeCluster {
        let api = FakeApi::start().await;
        // A 30 s grace period takes 30 ms: as soon as the harness kubelet on
        // the real server (which finishes a terminating pod within ~100 ms).
        api.set_grace_scale(0.001);
        FakeCluster { api }
    }
}

impl Cluster for FakeCluster {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn agent(&self) -> Kube {
        Kube::from_url(&self.api.url(), Duration::from_secs(5)).expect("client")
    }
    fn admin(&self) -> kube::Client {
        self.agent().client().clone()
    }
    async fn namespace(&self, _ns: &str) {}
    fn set_kubelet_stuck(&self, node: &str, stuck: bool) {
        self.api.set_node_kubelet_alive(node, !stuck);
    }
    async fn compact(&self) -> bool {
        self.api.compact();
        true
    }
    async fn hang_api(&self, hung: bool) {
        self.api
            .set_mode(if hung { Mode::Hang } else { Mode::Up })
            .await;
    }
    async fn restart_api(&self) {
        self.api.set_mode(Mode::Down).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.api.set_mode(Mode::Up).await;
    }
}
