//! The API-backed sources the probes read, fed by the watches the daemon
//! keeps (the node and its Lease) and by the API server's `Date`: no request
//! per probe round.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::act::kube::{Kube, Watched};
use crate::act::node::NodeSnapshot;
use crate::model::{Dur, Timestamp};
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

/// The API server's `Date` header from `GET /version` (any status carries it).
///
/// One request per [`DATE_REFRESH`] at most while the clocks agree: between
/// requests the server's time is the last `Date` plus the monotonic time
/// since, so a local clock that jumps is still seen at once (the monotonic
/// clock does not jump with it). While the clocks disagree by more than the
/// measurement's own error, every probe asks the server again.
pub struct ApiDate {
    kube: Kube,
    last: Mutex<Option<(Timestamp, Dur, Instant)>>,
}

/// How long one `Date` measurement is extrapolated.
pub const DATE_REFRESH: Duration = Duration::from_secs(300);

impl ApiDate {
    pub fn new(kube: Kube) -> Self {
        ApiDate {
            kube,
            last: Mutex::new(None),
        }
    }

    fn extrapolated(&self) -> Option<(Timestamp, Dur)> {
        let (date, rtt, at) = (*self.last.lock().unwrap_or_else(|e| e.into_inner()))?;
        let since = at.elapsed();
        if since >= DATE_REFRESH {
            return None;
        }
        let server_now = Dur::from_std(since).after(date);
        let off = server_now
            .duration_since(Timestamp::now())
            .as_secs_f64()
            .abs();
        // Date has 1 s resolution; within that (plus the round trip) they agree.
        (off < 1.0 + rtt.std().as_secs_f64()).then_some((server_now, rtt))
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
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((at, rtt, Instant::now()));
        Ok((at, rtt))
    }
}

/// An HTTP-date (RFC 9110 IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn parse_http_date(s: &str) -> Option<Timestamp> {
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(s.trim())
        .ok()
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
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(t.map(|t| t.as_second()), Some(784111777));
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date(""), None);
    }

    #[tokio::test]
    async fn server_date_is_extrapolated_while_the_clocks_agree() {
        let kube = Kube::from_url("http://127.0.0.1:9", Duration::from_secs(1)).unwrap();
        let d = ApiDate::new(kube);
        assert!(d.extrapolated().is_none(), "nothing measured yet");
        let rtt = Dur::from_std(Duration::from_millis(20));
        *d.last.lock().unwrap() = Some((Timestamp::now(), rtt, Instant::now()));
        let (at, r) = d.extrapolated().expect("agrees: no request");
        assert_eq!(r, rtt);
        assert!(at.duration_since(Timestamp::now()).as_secs_f64().abs() < 0.5);
        // The server was 10 s ahead when measured: ask it again every time.
        let ahead = Dur::from_std(Duration::from_secs(10)).after(Timestamp::now());
        *d.last.lock().unwrap() = Some((ahead, rtt, Instant::now()));
        assert!(d.extrapolated().is_none());
        // Too old: measured again.
        let old = Instant::now().checked_sub(DATE_REFRESH + Duration::from_secs(1));
        if let Some(old) = old {
            *d.last.lock().unwrap() = Some((Timestamp::now(), rtt, old));
            assert!(d.extrapolated().is_none());
        }
    }
}
