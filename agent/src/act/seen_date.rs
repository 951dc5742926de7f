//! The API server's time, as seen in the `Date` header of responses the agent
//! already gets (watch opens, LISTs, patches), so that the clock probe needs
//! no request of its own while they keep coming.
//!
//! Every kube-apiserver response carries `Date` (Go's net/http adds it to
//! every response, watches included, before the first byte of the body); the
//! fake API server does the same (tests/fakeapi `json_response` and the watch
//! path).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use super::watch::ApiPulse;
use crate::domain::{Dur, Timestamp};

/// One reading of the server's `Date`: the header, the round trip of the
/// request that carried it (its error bar), and when it arrived.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DateReading {
    pub date: Timestamp,
    pub rtt: Dur,
    pub at: Instant,
}

/// The latest reading, shared between the client's layer and the clock probe.
#[derive(Debug, Clone, Default)]
pub struct SeenDates(Arc<Mutex<Option<DateReading>>>);

impl SeenDates {
    pub fn latest(&self) -> Option<DateReading> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `r` unless the reading held is as recent to a second and more
    /// precise (a slow LIST does not replace a quick watch open).
    pub fn record(&self, r: DateReading) {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let keep_old = held.is_some_and(|h| {
            r.at.saturating_duration_since(h.at).as_secs() < 1 && h.rtt.std() < r.rtt.std()
        });
        if !keep_old {
            *held = Some(r);
        }
    }
}

/// An HTTP-date (RFC 9110 IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn parse_http_date(s: &str) -> Option<Timestamp> {
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(s.trim())
        .ok()
}

/// A tower layer on the kube client's stack that records each response's
/// `Date` into [`SeenDates`], and beats the [`ApiPulse`] (an answer is a
/// sign of life). It changes nothing else.
#[derive(Debug, Clone)]
pub struct DateLayer {
    pub seen: SeenDates,
    pub pulse: ApiPulse,
}

impl<S> tower_layer::Layer<S> for DateLayer {
    type Service = DateService<S>;
    fn layer(&self, inner: S) -> DateService<S> {
        DateService {
            inner,
            seen: self.seen.clone(),
            pulse: self.pulse.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DateService<S> {
    inner: S,
    seen: SeenDates,
    pulse: ApiPulse,
}

type BoxFut<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, Req, B> tower_service::Service<Req> for DateService<S>
where
    S: tower_service::Service<Req, Response = http::Response<B>>,
    S::Future: Send + 'static,
    B: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFut<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let t0 = Instant::now();
        let fut = self.inner.call(req);
        let seen = self.seen.clone();
        let pulse = self.pulse.clone();
        Box::pin(async move {
            let resp = fut.await?;
            pulse.beat();
            let at = Instant::now();
            if let Some(date) = resp
                .headers()
                .get(http::header::DATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_http_date)
            {
                seen.record(DateReading {
                    date,
                    rtt: Dur::from_std(at.saturating_duration_since(t0)),
                    at,
                });
            }
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests;
