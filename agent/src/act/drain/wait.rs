//! The watch-wait: one WATCH on the node's pods until every awaited pod
//! is gone or replaced, a refused pod is due, or a new pod appears.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, WatchEvent, WatchParams};
use tokio::time::Instant;

use super::report::*;
use super::{Drainer, Stop, Track, WATCH_SERVER_TIMEOUT};
use super::{PodVerdict, verdict};
use crate::runbook::{Drain, DrainMode};

/// Why a wait ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum WaitEnd {
    /// Nothing left to wait for or retry, and no new pod appeared.
    Settled,
    /// A refused pod is due again, or a new pod appeared: next pass.
    NextPass,
    /// The watch failed (410 Expired, closed, silent): re-list.
    Relist,
    Deadline,
}

impl Drainer {
    /// Watches the node's pods from `rv`. Ends when nothing is left to wait
    /// for (`Settled`), a refused pod is due or a new pod appeared
    /// (`NextPass`), the watch fails (`Relist`) or the deadline passes.
    /// `until` (a deadline of its own) ends the wait like the deadline.
    pub(super) async fn wait(
        &self,
        spec: &Drain,
        rv: &str,
        deadline: Option<Instant>,
        t: &mut Track,
        until: Option<Instant>,
    ) -> Result<WaitEnd, Stop> {
        let mut rv = rv.to_string();
        let end = match (deadline, until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let done = |t: &Track| t.waiting.is_empty() && t.blocked.is_empty() && t.pending.is_empty();
        if done(t) {
            return Ok(WaitEnd::Settled);
        }
        loop {
            let left = end.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Ok(WaitEnd::Deadline);
            }
            let server_timeout = left
                .map(|l| (l.as_secs() as u32).saturating_add(1))
                .unwrap_or(WATCH_SERVER_TIMEOUT)
                .clamp(1, WATCH_SERVER_TIMEOUT);
            let wp = WatchParams::default()
                .fields(&self.selector())
                .timeout(server_timeout);
            let within = left.map_or(self.kube.call_timeout(), |l| {
                l.min(self.kube.call_timeout())
            });
            let what = format!("watch pods on node {}", self.node);
            // Typed here so packaging/check's RBAC scan sees `watch pods`.
            let pods: &Api<Pod> = &self.pods;
            let stream = match self
                .kube
                .call_within(what, within, pods.watch(&wp, &rv))
                .await
            {
                Ok(s) => s,
                Err(e) if e.is_unreachable() && end.is_some_and(|d| Instant::now() >= d) => {
                    return Ok(WaitEnd::Deadline);
                }
                Err(e) if e.code() == Some(410) => return Ok(WaitEnd::Relist),
                Err(e) => return Err(self.classify_stop(e, deadline)),
            };
            let mut stream = stream.boxed();
            // No event for longer than the server's own timeout: the stream is dead.
            let silence = Duration::from_secs(u64::from(server_timeout)) + Duration::from_secs(30);
            loop {
                let next_retry = t.blocked.values().map(|b| b.retry_at).min();
                let next_skip = t.skip_at.values().min().copied();
                let wake = [end, next_retry, next_skip].into_iter().flatten().min();
                let wait_for = wake
                    .map(|w| w.saturating_duration_since(Instant::now()))
                    .unwrap_or(silence)
                    .min(silence);
                let ev = match tokio::time::timeout(wait_for, stream.try_next()).await {
                    Err(_) => {
                        let now = Instant::now();
                        if t.promote_due(now) {
                            if done(t) {
                                return Ok(WaitEnd::Settled);
                            }
                            continue;
                        }
                        if end.is_some_and(|d| now >= d) {
                            return Ok(WaitEnd::Deadline);
                        }
                        if next_retry.is_some_and(|r| now >= r) {
                            return Ok(WaitEnd::NextPass);
                        }
                        return Ok(WaitEnd::Relist);
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(node = %self.node, "pod watch failed: {e}");
                        return Ok(WaitEnd::Relist);
                    }
                    // The server closed the watch (its timeout): open another one.
                    Ok(Ok(None)) => break,
                    Ok(Ok(Some(ev))) => ev,
                };
                match ev {
                    WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                        if let Some(v) = p.metadata.resource_version.clone() {
                            rv = v;
                        }
                        if self.seen(&p, spec, t) {
                            return Ok(WaitEnd::NextPass);
                        }
                    }
                    WatchEvent::Deleted(p) => {
                        if let Some(v) = p.metadata.resource_version.clone() {
                            rv = v;
                        }
                        let key = PodRef::of(&p);
                        let id = uid(&p);
                        if t.waiting.get(&key) == Some(&id) {
                            t.waiting.remove(&key);
                            t.skip_at.remove(&key);
                        }
                        t.forget_awaiting(&key, Some(&id));
                        if t.blocked.get(&key).is_some_and(|b| b.uid == id) {
                            t.blocked.remove(&key);
                        }
                        if t.pending.get(&key) == Some(&id) {
                            t.pending.remove(&key);
                            if spec.mode == DrainMode::Request {
                                t.evicted.insert(key);
                            }
                        }
                    }
                    WatchEvent::Bookmark(b) => rv = b.metadata.resource_version,
                    WatchEvent::Error(s) => {
                        tracing::debug!(node = %self.node, "pod watch error: {} {}", s.code, s.message);
                        return Ok(WaitEnd::Relist);
                    }
                }
                if done(t) {
                    return Ok(WaitEnd::Settled);
                }
            }
        }
    }

    /// Applies an ADDED/MODIFIED pod to the tracking state; true when it needs a new pass.
    pub(super) fn seen(&self, p: &Pod, spec: &Drain, t: &mut Track) -> bool {
        let key = PodRef::of(p);
        let id = uid(p);
        // Same name, new UID: the old pod is gone (a StatefulSet replacement).
        if t.waiting.get(&key).is_some_and(|u| *u != id) {
            t.waiting.remove(&key);
            t.skip_at.remove(&key);
        }
        if t.awaiting.get(&key).is_some_and(|u| *u != id) {
            t.forget_awaiting(&key, None);
        }
        if t.blocked.get(&key).is_some_and(|b| b.uid != id) {
            t.blocked.remove(&key);
        }
        if t.pending.get(&key).is_some_and(|u| *u != id) {
            t.pending.remove(&key);
            if spec.mode == DrainMode::Request {
                t.evicted.insert(key.clone());
            }
        }
        let verdict = verdict(p, spec);
        match verdict {
            PodVerdict::Skip(_) => false,
            PodVerdict::Wait => {
                if spec.mode == DrainMode::Evict {
                    t.blocked.remove(&key);
                    t.pending.remove(&key);
                    if !t.awaiting.contains_key(&key) {
                        t.terminating(p, key, id);
                    }
                }
                // Request mode: the pod stays pending until it is deleted.
                false
            }
            _ if spec.mode == DrainMode::Request => {
                t.pending.entry(key).or_insert(id);
                false
            }
            _ => {
                let known = t.waiting.get(&key) == Some(&id)
                    || t.awaiting.get(&key) == Some(&id)
                    || t.blocked.get(&key).is_some_and(|b| b.uid == id)
                    || t.pending.get(&key) == Some(&id);
                !known
            }
        }
    }
}
