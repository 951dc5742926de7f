//! The daemon's `Actuators`: systemd over D-Bus for units and reboots, a
//! child process for `exec`, and the Kubernetes side (cordon, slots, drain,
//! Events) behind `KubeSide`, so a node without API access still restarts
//! units while every disruptive step is held.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use super::{ActError, Actuators, Drained, Report};
use crate::domain::Dur;
use crate::host::systemd::Systemd;
use crate::runbook::Drain;

/// What the executor needs from the Kubernetes API.
pub trait KubeSide: Send + Sync {
    fn cordon(&self, reason: &str) -> impl Future<Output = Result<(), ActError>> + Send;
    fn uncordon(&self) -> impl Future<Output = Result<(), ActError>> + Send;
    fn disown_cordon(&self) -> impl Future<Output = Result<(), ActError>> + Send;
    fn acquire_slot(&self) -> impl Future<Output = Result<String, ActError>> + Send;
    fn release_slot(&self, lease: &str) -> impl Future<Output = Result<(), ActError>> + Send;
    fn drain(
        &self,
        spec: &Drain,
        kubelet_down: Option<&str>,
    ) -> impl Future<Output = Result<Drained, ActError>> + Send;
    fn report(&self, report: &Report) -> impl Future<Output = ()> + Send;
}

/// No API configured: everything that needs it fails plainly, so the planner holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoApi;

fn no_api() -> ActError {
    ActError::ApiUnreachable("no Kubernetes API is configured for this agent".into())
}

impl KubeSide for NoApi {
    async fn cordon(&self, _: &str) -> Result<(), ActError> {
        Err(no_api())
    }
    async fn uncordon(&self) -> Result<(), ActError> {
        Err(no_api())
    }
    async fn disown_cordon(&self) -> Result<(), ActError> {
        Err(no_api())
    }
    async fn acquire_slot(&self) -> Result<String, ActError> {
        Err(no_api())
    }
    async fn release_slot(&self, _: &str) -> Result<(), ActError> {
        Err(no_api())
    }
    async fn drain(&self, _: &Drain, _: Option<&str>) -> Result<Drained, ActError> {
        Err(no_api())
    }
    async fn report(&self, _: &Report) {}
}

pub struct RealActuators<K> {
    pub systemd: Arc<dyn Systemd>,
    pub kube: K,
    /// Where the boot ID is read (`/proc/sys/kernel/random/boot_id`).
    pub boot_id_path: PathBuf,
}

/// Units whose main process gets SIGUSR1 before a restart for a stack dump (dockerd).
const DUMP_ON_USR1: [&str; 1] = ["docker.service"];

impl<K: KubeSide> Actuators for RealActuators<K> {
    async fn cordon(&self, reason: &str) -> Result<(), ActError> {
        self.kube.cordon(reason).await
    }
    async fn uncordon(&self) -> Result<(), ActError> {
        self.kube.uncordon().await
    }
    async fn disown_cordon(&self) -> Result<(), ActError> {
        self.kube.disown_cordon().await
    }
    async fn acquire_slot(&self) -> Result<String, ActError> {
        self.kube.acquire_slot().await
    }
    async fn release_slot(&self, lease: &str) -> Result<(), ActError> {
        self.kube.release_slot(lease).await
    }
    async fn restart_time_sync(
        &self,
        planned: &str,
        candidates: &[String],
        timeout: Dur,
    ) -> Result<String, ActError> {
        let unit = super::timesync::running(&*self.systemd, planned, candidates).await?;
        let detail = self.restart_unit(&unit, timeout, false).await?;
        Ok(if unit == planned {
            detail
        } else {
            format!("{detail} ({unit} is the running time-sync daemon, not {planned})")
        })
    }
    async fn restart_unit(
        &self,
        unit: &str,
        timeout: Dur,
        diagnostics: bool,
    ) -> Result<String, ActError> {
        let mut notes = Vec::new();
        if diagnostics && DUMP_ON_USR1.contains(&unit) {
            match self
                .systemd
                .kill_unit_signal(unit, nix::sys::signal::Signal::SIGUSR1)
                .await
            {
                Ok(()) => {
                    notes.push(
                        "SIGUSR1 sent for a goroutine dump (see the unit's journal)".to_string(),
                    );
                    // Give dockerd a moment to write the dump before it is restarted.
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(e) => notes.push(format!("no stack dump: {e}")),
            }
        }
        if diagnostics && let Ok(st) = self.systemd.unit_status(unit).await {
            notes.push(format!(
                "before: {}/{} pid {}",
                st.active_state,
                st.sub_state,
                st.main_pid
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into())
            ));
        }
        let out = self
            .systemd
            .restart_unit(unit, timeout.std())
            .await
            .map_err(ActError::from)?;
        let mut detail = format!(
            "{unit} restarted: job {} {}, invocation {} → {}, {:.1}s",
            out.job,
            out.result.as_str(),
            short(out.before.invocation_id.as_deref()),
            short(out.after.invocation_id.as_deref()),
            out.elapsed.as_secs_f64()
        );
        if !notes.is_empty() {
            detail.push_str(&format!(" ({})", notes.join("; ")));
        }
        Ok(detail)
    }
    async fn drain(&self, spec: &Drain, kubelet_down: Option<&str>) -> Result<Drained, ActError> {
        self.kube.drain(spec, kubelet_down).await
    }
    async fn boot_id(&self) -> Result<String, ActError> {
        let path = self.boot_id_path.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::read_to_string(&path).map(|s| s.trim().to_string())
        })
        .await
        .map_err(|e| ActError::Failed(format!("reading the boot ID: {e}")))?
        .map_err(|e| ActError::Failed(format!("reading the boot ID: {e}")))
    }
    async fn reboot(&self) -> Result<(), ActError> {
        self.systemd.reboot().await.map_err(ActError::from)
    }
    async fn exec(&self, argv: &[String], timeout: Dur) -> Result<String, ActError> {
        crate::host::exec::run_argv(argv, timeout)
            .await
            .map_err(ActError::from)
    }
    async fn report(&self, report: Report) {
        if report.warning {
            tracing::warn!(reason = %report.reason, "{}", report.message);
        } else {
            tracing::info!(reason = %report.reason, "{}", report.message);
        }
        self.kube.report(&report).await;
    }
}

fn short(id: Option<&str>) -> String {
    id.map(|s| s.chars().take(8).collect())
        .unwrap_or_else(|| "-".into())
}
