//! The daemon's Kubernetes side of the actuators ([`KubeSide`]): the node's
//! cordon, the disruption slots, the drain and Events, through one client
//! with a per-call deadline. Without an API client every call is
//! `ApiUnreachable`, which the planner's gates already hold on.

use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::act::drain::Drainer;
use crate::act::kube::Kube;
use crate::act::node::{CordonOutcome, NodeClient};
use crate::act::real::KubeSide;
use crate::act::slots::{Renewal, Slots};
use crate::act::{ActError, Drained, Report};
use crate::runbook::Drain;

/// The API-backed parts, present when a client could be configured.
pub struct Connected {
    pub kube: Kube,
    pub node: NodeClient,
    pub slots: Slots,
    pub drainer: Drainer,
    /// Events go through a queue to their own task (see `EventSink::spawn`).
    pub events: mpsc::Sender<Report>,
}

/// `KubeSide` for the daemon: the node's cordon, slots, drain and Events.
pub struct ApiSide {
    conn: Option<Connected>,
    /// Why there is no API, for errors.
    no_api: String,
    /// Renews the held slot in the background.
    renewal: Mutex<Option<Renewal>>,
}

impl ApiSide {
    /// `conn` is `None` without an API client; `no_api` then says why.
    pub fn new(conn: Option<Connected>, no_api: String) -> Self {
        ApiSide {
            conn,
            no_api,
            renewal: Mutex::new(None),
        }
    }
    pub fn connected(&self) -> Option<&Connected> {
        self.conn.as_ref()
    }
    /// Keep renewing a slot this node held before a restart.
    pub fn resume_renewal(&self, lease: &str) {
        if let Some(c) = &self.conn {
            self.set_renewal(Some(c.slots.keep_renewed(lease)));
        }
    }
    fn conn(&self) -> Result<&Connected, ActError> {
        self.conn
            .as_ref()
            .ok_or_else(|| ActError::ApiUnreachable(self.no_api.clone()))
    }
    fn set_renewal(&self, r: Option<Renewal>) {
        *self.renewal.lock().unwrap_or_else(|e| e.into_inner()) = r;
    }
}

impl KubeSide for ApiSide {
    async fn cordon(&self, reason: &str) -> Result<(), ActError> {
        let c = self.conn()?;
        match c.node.cordon(reason).await? {
            CordonOutcome::Cordoned | CordonOutcome::AlreadyOurs => Ok(()),
            // Someone cordoned between our look and our patch: it is theirs, so
            // the step must not claim it. The next plan sees their cordon.
            CordonOutcome::AlreadyCordonedByOther => Err(ActError::Failed(
                "the node was cordoned by someone else meanwhile; their cordon is used as is"
                    .into(),
            )),
        }
    }
    async fn uncordon(&self) -> Result<(), ActError> {
        let c = self.conn()?;
        c.node.uncordon().await?;
        // A drain in request mode left a taint/annotation asking the platform to drain.
        if let Err(e) = c.drainer.clear_drain_request().await {
            tracing::warn!(error = %e, "could not clear the drain request after uncordon: {e}");
        }
        Ok(())
    }
    async fn disown_cordon(&self) -> Result<(), ActError> {
        self.conn()?.node.disown_cordon().await?;
        Ok(())
    }
    async fn acquire_slot(&self) -> Result<String, ActError> {
        let c = self.conn()?;
        let lease = c.slots.acquire().await?;
        self.set_renewal(Some(c.slots.keep_renewed(&lease)));
        Ok(lease)
    }
    async fn release_slot(&self, lease: &str) -> Result<(), ActError> {
        self.set_renewal(None);
        self.conn()?.slots.release(lease).await?;
        Ok(())
    }
    async fn drain(&self, spec: &Drain, kubelet_down: Option<&str>) -> Result<Drained, ActError> {
        let report = self.conn()?.drainer.drain_stuck(spec, kubelet_down).await?;
        Ok(Drained {
            summary: report.summary(),
            awaiting_kubelet: report
                .awaiting_kubelet
                .iter()
                .map(ToString::to_string)
                .collect(),
        })
    }
    async fn report(&self, report: &Report) {
        if let Some(c) = &self.conn
            && c.events.try_send(report.clone()).is_err()
        {
            tracing::warn!(reason = %report.reason, "event queue full; event dropped (it is in the log)");
        }
    }
}
