//! One switch for both sides of the test node's kubelet: the testbed's fake
//! kubelet (`ctl/kubelet.mode`, `ctl/kubelet.pleg`) and the fake API server's
//! kubelet for the node (Lease renewals, status, finishing terminating pods).
//!
//! The ctl files are the switch: a test sets them (`Testbed::set_mode`,
//! `set_ctl`), the fake kubelet changes them itself when a restart or a
//! reboot fixes the fault, and this link mirrors them into the fake API
//! every 200 ms. A kubelet that is hung, failing or not running (the node
//! rebooting) renews nothing and finishes no pod; one whose PLEG is stuck
//! still renews its Lease and posts `Ready=False` but finishes no pod
//! (docs/platform-facts.md "A node whose kubelet or runtime is stuck"). After a
//! reboot that fixes the fault, both sides come back together.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nodewarden_fakeapi::{FakeApi, NodeKubelet};

/// The fake API's kubelet for `node` follows the testbed in `dir`.
pub struct KubeletLink {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KubeletLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// What the testbed's kubelet does now, as the API server would see it.
pub fn testbed_kubelet(dir: &Path) -> NodeKubelet {
    // Between a boot's exit and the next start the node is down.
    let boots = read(&dir.join("state/boots.log"));
    let up = boots.lines().last().is_some_and(|l| l.ends_with(" start"));
    let mode = read(&dir.join("ctl/kubelet.mode"));
    let pleg = read(&dir.join("ctl/kubelet.pleg"));
    if !up || !(mode.is_empty() || mode == "ok") {
        NodeKubelet::Hung
    } else if matches!(pleg.as_str(), "on" | "until-restart" | "until-reboot") {
        NodeKubelet::PlegStuck
    } else {
        NodeKubelet::Healthy
    }
}

impl KubeletLink {
    pub fn start(api: Arc<FakeApi>, dir: PathBuf, node: &'static str) -> KubeletLink {
        let task = tokio::spawn(async move {
            let mut last: Option<NodeKubelet> = None;
            let mut beat = Instant::now() - Duration::from_secs(60);
            let t0 = Instant::now();
            loop {
                let now = testbed_kubelet(&dir);
                if last != Some(now) {
                    eprintln!(
                        "[{:>6.1}s] kubelet of {node}: {now:?} (testbed and fake API)",
                        t0.elapsed().as_secs_f64()
                    );
                    api.set_node_kubelet(node, now);
                    last = Some(now);
                }
                // A real kubelet renews every 10 s; the e2e runbook's leaseStaleAfter is 10 s.
                if beat.elapsed() >= Duration::from_secs(2) {
                    api.kubelet_heartbeat(node);
                    beat = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        KubeletLink { task }
    }
}
