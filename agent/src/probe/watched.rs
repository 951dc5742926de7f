//! The API-backed sources the probes read, fed by the watches the daemon
//! keeps (the node and its Lease) and by the API server's `Date`: no request
//! per probe round.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::act::kube::{Kube, Watched};
use crate::act::node::NodeSnapshot;
pub use crate::act::seen_date::parse_http_date;
use crate::domain::{Dur, Timestamp};
use crate::probe::{ApiFuture, LeaseSource, ReadyConditionSource, ServerClock};

/// The node's Lease (`kube-node-lease/<node>`) from a watch: no request per probe.
pub struct WatchedLease(pub watch::Receiver<Watched<Lease>>);

impl LeaseSource for WatchedLease {
    fn lease_renew_time(&self) -> ApiFuture<'_, Option<Timestamp>> {
        let snap = self.0.borrow().clone();
        Box::pin(async move {
            if snap.stale {
                return Err("the Lease watch is not current".into());
            }
            Ok(snap
                .obj
                .and_then(|l| l.spec)
                .and_then(|s| s.renew_time)
                .map(|t| t.0))
        })
    }
}

/// The two watches' own state, for the reachability probe (no request).
pub struct WatchedReach {
    pub node: watch::Receiver<NodeSnapshot>,
    pub lease: watch::Receiver<Watched<Lease>>,
}

impl crate::probe::ReachSource for WatchedReach {
    fn watches(&self) -> Result<Vec<crate::probe::apireach::WatchHealth>, String> {
        use crate::probe::apireach::WatchHealth;
        Ok(vec![
            WatchHealth::of("node watch", &self.node.borrow()),
            WatchHealth::of("Lease watch", &self.lease.borrow()),
        ])
    }
}

/// The Ready condition's message, from the node watch (no API call).
pub struct WatchedReady(pub watch::Receiver<NodeSnapshot>);

impl ReadyConditionSource for WatchedReady {
    fn ready_message(&self) -> ApiFuture<'_, Option<String>> {
        let snap = self.0.borrow().clone();
        Box::pin(async move {
            if snap.stale {
                return Err("the node watch is not current".into());
            }
            let node = snap.obj.ok_or("the node has not been seen")?;
            Ok(node
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .into_iter()
                .find(|c| c.type_ == "Ready")
                .and_then(|c| c.message))
        })
    }
    fn node_info(&self) -> ApiFuture<'_, (String, String)> {
        let snap = self.0.borrow().clone();
        Box::pin(async move {
            if snap.stale {
                return Err("the node watch is not current".into());
            }
            let info = snap
                .obj
                .and_then(|n| n.status)
                .and_then(|s| s.node_info)
                .ok_or("the node has not been seen")?;
            Ok((info.container_runtime_version, info.kubelet_version))
        })
    }
}

/// The API server's time from the `Date` header of the responses the client
/// already gets (watch opens and resumptions, LISTs, patches:
/// [`crate::act::seen_date`]), else from a `GET /version` of its own (any
/// status carries `Date`).
///
/// Between readings the server's time is the last `Date` plus the monotonic
/// time since, so a local clock that jumps is still seen at once (the
/// monotonic clock does not jump with it). A reading is used for
/// [`DATE_REFRESH`] at most: longer than the NodeCondition heartbeat (a
/// `nodes/status` PATCH every 5 min), and the watches resume every 5 to 10
/// min, so while the API answers no request is made for the clock. While the clocks disagree
/// by more than the reading's own error, every probe asks the server again.
pub struct ApiDate {
    kube: Kube,
}

/// How long one `Date` reading is extrapolated.
pub const DATE_REFRESH: Duration = Duration::from_secs(360);

impl ApiDate {
    pub fn new(kube: Kube) -> Self {
        ApiDate { kube }
    }

    fn extrapolated(&self) -> Option<(Timestamp, Dur)> {
        let r = self.kube.seen_dates().latest()?;
        let since = r.at.elapsed();
        if since >= DATE_REFRESH {
            return None;
        }
        let server_now = Dur::from_std(since).after(r.date);
        let off = server_now
            .duration_since(Timestamp::now())
            .as_secs_f64()
            .abs();
        // Date has 1 s resolution; within that (plus the round trip) they agree.
        (off < 1.0 + r.rtt.std().as_secs_f64()).then_some((server_now, r.rtt))
    }

    async fn measure(&self) -> Result<(Timestamp, Dur), String> {
        let req = http::Request::get("/version")
            .body(kube::client::Body::empty())
            .map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let timeout = self.kube.call_timeout();
        let resp = tokio::time::timeout(timeout, self.kube.client().send(req))
            .await
            .map_err(|_| format!("GET /version: no answer within {timeout:?}"))?
            .map_err(|e| format!("GET /version: {e}"))?;
        let rtt = Dur::from_std(t0.elapsed());
        let date = resp
            .headers()
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .ok_or("the API server sent no Date header")?;
        let at = parse_http_date(date).ok_or_else(|| format!("unreadable Date header {date:?}"))?;
        Ok((at, rtt))
    }
}

impl ServerClock for ApiDate {
    fn date(&self) -> ApiFuture<'_, (Timestamp, Dur)> {
        Box::pin(async move {
            match self.extrapolated() {
                Some(v) => Ok(v),
                None => self.measure().await,
            }
        })
    }
}

#[cfg(test)]
mod tests;
