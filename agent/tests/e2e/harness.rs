//! End-to-end harness: the real `nodewarden` binary runs as an enabled unit
//! inside the real-systemd testbed, against the fake API server in this test
//! process (the container shares the host's network namespace).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nodewarden_fakeapi::{FakeApi, Kind};
use serde_json::Value;

use crate::kubelet::KubeletLink;
use crate::support::testbed::{Testbed, TestbedConfig};

pub const NODE: &str = "testbed";
pub const NAMESPACE: &str = "nodewarden";

pub struct E2e {
    pub api: Arc<FakeApi>,
    pub tb: Testbed,
    /// The fake API's kubelet for NODE follows the testbed's (`e2e/kubelet.rs`).
    _kubelet: KubeletLink,
    _agent_dir: tempfile::TempDir,
    pub started: Instant,
}

#[derive(Default)]
pub struct Options {
    /// Extra flags for `nodewarden run`.
    pub flags: Vec<String>,
    /// Runbook text (default: tests/e2e/runbook.yaml).
    pub runbook: Option<String>,
    /// Fault files to set before boot (`kubelet.mode`, …).
    pub ctl: Vec<(String, String)>,
    /// More units (or `<unit>.d/` drop-ins) under /etc/systemd/system.
    pub extra_units: Vec<(String, String)>,
}

pub fn runbook_text() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/e2e/runbook.yaml"
    ))
    .unwrap()
}

impl E2e {
    /// Start the fake API (seeded by `seed`), then boot the testbed with nodewarden enabled.
    /// `None` when the testbed is not available here (the harness prints SKIP).
    pub async fn start(test: &str, opts: Options, seed: impl FnOnce(&FakeApi)) -> Option<E2e> {
        let api = Arc::new(FakeApi::start().await);
        api.set_grace_scale(0.02);
        api.add_node(NODE);
        seed(&api);
        let agent_dir = tempfile::tempdir().unwrap();
        let bin = agent_dir.path().join("nodewarden");
        std::fs::copy(env!("CARGO_BIN_EXE_nodewarden"), &bin).unwrap();
        std::fs::write(
            agent_dir.path().join("runbook.yaml"),
            opts.runbook.clone().unwrap_or_else(runbook_text),
        )
        .unwrap();
        let mut flags = vec![
            "--node-name".to_string(),
            NODE.to_string(),
            "--api-url".to_string(),
            api.url(),
            "--namespace".to_string(),
            NAMESPACE.to_string(),
        ];
        flags.extend(opts.flags.iter().cloned());
        let unit = format!(
            "[Unit]\nDescription=nodewarden (end-to-end test)\nAfter=dbus.service\nStartLimitIntervalSec=0\n\n\
             [Service]\nType=notify\nExecStart=/opt/agent/nodewarden run {}\n\
             ExecReload=/bin/kill -HUP $MAINPID\n\
             Environment=NODEWARDEN_RUNBOOK=/opt/agent/runbook.yaml\n\
             Environment=RUST_LOG=info\n\
             Restart=always\nRestartSec=1\nWatchdogSec=30\nStateDirectory=nodewarden\n\n\
             [Install]\nWantedBy=multi-user.target\n",
            flags.join(" ")
        );
        let cfg = TestbedConfig {
            extra_units: std::iter::once(("nodewarden.service".to_string(), unit))
                .chain(opts.extra_units.iter().cloned())
                .collect(),
            agent_dir: Some(agent_dir.path().to_path_buf()),
            ctl: opts.ctl.clone(),
        };
        let tb = Testbed::boot_or_skip(test, cfg)?;
        let kubelet = KubeletLink::start(api.clone(), tb.dir().to_path_buf(), NODE);
        let e = E2e {
            api,
            tb,
            _kubelet: kubelet,
            _agent_dir: agent_dir,
            started: Instant::now(),
        };
        Some(e)
    }

    /// Replace the runbook the agent reads (bind-mounted at /opt/agent/runbook.yaml).
    pub fn install_runbook(&self, text: &str) {
        std::fs::write(self._agent_dir.path().join("runbook.yaml"), text).unwrap();
    }

    pub fn node(&self) -> Value {
        self.api.get(Kind::Node, "", NODE).expect("node exists")
    }

    pub fn unschedulable(&self) -> bool {
        self.node()["spec"]["unschedulable"]
            .as_bool()
            .unwrap_or(false)
    }

    pub fn annotation(&self, key: &str) -> Option<String> {
        self.node()["metadata"]["annotations"][key]
            .as_str()
            .map(str::to_string)
    }

    /// (status, reason, message) of a node condition.
    pub fn condition(&self, ty: &str) -> Option<(String, String, String)> {
        let node = self.node();
        node["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == ty)
            .map(|c| {
                (
                    c["status"].as_str().unwrap_or("").to_string(),
                    c["reason"].as_str().unwrap_or("").to_string(),
                    c["message"].as_str().unwrap_or("").to_string(),
                )
            })
    }

    /// Reasons of the Events recorded about the node, in order.
    pub fn event_reasons(&self) -> Vec<String> {
        let mut evs: Vec<Value> = self.api.list(Kind::Event);
        evs.extend(self.api.list(Kind::CoreEvent));
        evs.iter()
            .filter_map(|e| e["reason"].as_str().map(str::to_string))
            .collect()
    }

    pub fn ledger(&self) -> Value {
        let p = self.ledger_path();
        std::fs::read(&p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.tb.root().join("var/lib/nodewarden/ledger.json")
    }

    /// The running agent's peak resident memory (VmHWM), in KiB.
    pub fn agent_peak_rss_kib(&self) -> Option<u64> {
        let pid = self
            .tb
            .exec_ok(&["systemctl", "show", "-P", "MainPID", "nodewarden.service"]);
        let status = self.tb.exec(&["cat", &format!("/proc/{pid}/status")]);
        String::from_utf8_lossy(&status.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    pub fn agent_log(&self) -> String {
        self.tb.journal("nodewarden.service")
    }

    /// Count of journal lines of `unit` containing `needle`.
    pub fn journal_count(&self, unit: &str, needle: &str) -> usize {
        self.tb
            .journal(unit)
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Poll `cond` every 200 ms until it holds or `timeout` passes; on timeout,
    /// fail with `what` and the agent's recent log.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut(&E2e) -> bool,
    ) {
        let until = Instant::now() + timeout;
        loop {
            if cond(self) {
                eprintln!("[{:>6.1}s] {what}", self.started.elapsed().as_secs_f64());
                return;
            }
            if Instant::now() > until {
                let log = self.agent_log();
                let tail: Vec<&str> = log
                    .lines()
                    .rev()
                    .take(60)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                panic!(
                    "timed out after {timeout:?} waiting for: {what}\n--- ledger ---\n{:#}\n--- nodewarden journal (tail) ---\n{}",
                    self.ledger(),
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
