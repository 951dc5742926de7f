//! Eviction passes: evict with bounded concurrency, a PDB refusal retried
//! later; after the deadline, optional deletion without eviction.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::core::Status;
use serde_json::json;
use tokio::time::Instant;

use super::report::*;
use super::wait::WaitEnd;
use super::{BlockedState, DELETE_MARGIN, Drainer, MIN_RETRY_AFTER, Stop, Track};
use super::{PodVerdict, verdict};
use crate::act::kube::KubeError;
use crate::runbook::{Drain, DrainMode};

// ----- eviction -----------------------------------------------------------

#[derive(Debug)]
enum Evicted {
    Accepted,
    /// 404: already gone.
    Gone,
    /// 409 on the UID precondition: the pod was replaced meanwhile.
    Replaced,
    /// 429 (or a retriable failure): try again after `retry_after`.
    Refused {
        pdb: Option<String>,
        message: String,
        retry_after: Duration,
        by_pdb: bool,
    },
    Failed(KubeError),
}

/// The PDB named by a refusal: `The disruption budget NAME needs …` / `… is still being processed …`.
pub fn pdb_from_status(s: &Status) -> Option<String> {
    let from = |m: &str| {
        let rest = m.split("disruption budget ").nth(1)?;
        let name = rest.split_whitespace().next()?;
        // "Cannot evict pod as it would violate the pod's disruption budget." has no name.
        (!name.is_empty() && !name.ends_with('.')).then(|| name.to_string())
    };
    s.details
        .as_ref()
        .and_then(|d| d.causes.iter().find_map(|c| from(&c.message)))
        .or_else(|| from(&s.message))
}

fn refusal_message(s: &Status) -> String {
    let cause = s
        .details
        .as_ref()
        .and_then(|d| d.causes.first())
        .map(|c| c.message.as_str())
        .filter(|m| !m.is_empty());
    match cause {
        Some(c) => format!("{} {c}", s.message),
        None => s.message.clone(),
    }
}

impl Drainer {
    pub(super) async fn evict_all(
        &self,
        spec: &Drain,
        deadline: Option<Instant>,
        t: &mut Track,
    ) -> Result<(), Stop> {
        match self.evict_passes(spec, deadline, t).await {
            Err(Stop::Deadline) => self.after_deadline(spec, t).await,
            r => r,
        }
    }

    async fn evict_passes(
        &self,
        spec: &Drain,
        deadline: Option<Instant>,
        t: &mut Track,
    ) -> Result<(), Stop> {
        loop {
            t.passes += 1;
            let (pods, rv) = self.list(deadline).await?;
            let now = Instant::now();
            let to_evict = self.sort(pods, spec, t, now).map_err(Stop::Refused)?;
            if to_evict.is_empty() && t.waiting.is_empty() && t.blocked.is_empty() {
                return Ok(());
            }
            if !to_evict.is_empty() {
                self.evict_batch(to_evict, spec, deadline, t).await?;
            }
            match self.wait(spec, &rv, deadline, t, None).await? {
                WaitEnd::Settled => return Ok(()),
                WaitEnd::NextPass | WaitEnd::Relist => continue,
                WaitEnd::Deadline => return Err(Stop::Deadline),
            }
        }
    }

    async fn evict_batch(
        &self,
        pods: Vec<(PodRef, String)>,
        spec: &Drain,
        deadline: Option<Instant>,
        t: &mut Track,
    ) -> Result<(), Stop> {
        let concurrency = usize::try_from(spec.concurrency.max(1)).unwrap_or(1);
        let grace = (!spec.grace_period.is_zero()).then(|| spec.grace_period.std().as_secs());
        let mut results = futures::stream::iter(pods)
            .map(|(key, id)| async move {
                let r = self.evict_one(&key, &id, grace, deadline).await;
                (key, id, r)
            })
            .buffer_unordered(concurrency);
        loop {
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d, results.next()).await {
                    Ok(n) => n,
                    Err(_) => return Err(Stop::Deadline),
                },
                None => results.next().await,
            };
            let Some((key, id, r)) = next else {
                return Ok(());
            };
            t.pending.remove(&key);
            match r {
                Evicted::Accepted => {
                    t.blocked.remove(&key);
                    t.evicted.insert(key.clone());
                    t.waiting.insert(key, id);
                }
                Evicted::Gone | Evicted::Replaced => {
                    t.blocked.remove(&key);
                }
                Evicted::Refused {
                    pdb,
                    message,
                    retry_after,
                    by_pdb,
                } => {
                    if by_pdb {
                        t.refusals += 1;
                    }
                    tracing::info!(pod = %key, pdb = pdb.as_deref().unwrap_or("-"), "eviction refused: {message}");
                    t.blocked.insert(
                        key,
                        BlockedState {
                            uid: id,
                            pdb,
                            message,
                            retry_at: Instant::now() + retry_after,
                        },
                    );
                }
                Evicted::Failed(e) => {
                    if e.is_retriable() {
                        t.blocked.insert(
                            key,
                            BlockedState {
                                uid: id,
                                pdb: None,
                                message: e.to_string(),
                                retry_at: Instant::now() + MIN_RETRY_AFTER,
                            },
                        );
                    } else {
                        return Err(self.classify_stop(e, deadline));
                    }
                }
            }
        }
    }

    async fn evict_one(
        &self,
        pod: &PodRef,
        id: &str,
        grace: Option<u64>,
        deadline: Option<Instant>,
    ) -> Evicted {
        let within = match self.call_deadline(deadline) {
            Ok(w) => w,
            Err(_) => {
                return Evicted::Failed(KubeError::Timeout {
                    what: format!("evict pod {pod}"),
                    after: Duration::ZERO,
                });
            }
        };
        let mut delete_options = json!({"preconditions": {"uid": id}});
        if let Some(g) = grace {
            delete_options["gracePeriodSeconds"] = json!(g);
        }
        let body = json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod.name, "namespace": pod.namespace},
            "deleteOptions": delete_options,
        });
        let what = format!("evict pod {pod}");
        let req = match serde_json::to_vec(&body)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                kube::core::Request::new(format!("/api/v1/namespaces/{}/pods", pod.namespace))
                    .create_subresource("eviction", &pod.name, &kube::api::PostParams::default(), b)
                    .map_err(|e| e.to_string())
            }) {
            Ok(r) => r,
            Err(e) => return Evicted::Failed(KubeError::Config(format!("{what}: {e}"))),
        };
        match tokio::time::timeout(within, self.kube.client().request_text(req)).await {
            Err(_) => Evicted::Failed(KubeError::Timeout {
                what,
                after: within,
            }),
            Ok(Ok(_)) => Evicted::Accepted,
            Ok(Err(kube::Error::Api(s))) => match s.code {
                404 => Evicted::Gone,
                409 => Evicted::Replaced,
                429 => {
                    let retry = s
                        .details
                        .as_ref()
                        .map(|d| Duration::from_secs(u64::from(d.retry_after_seconds)))
                        .unwrap_or_default();
                    let by_pdb =
                        s.details.as_ref().is_some_and(|d| {
                            d.causes.iter().any(|c| c.reason == "DisruptionBudget")
                        }) || s.message.contains("disruption budget");
                    Evicted::Refused {
                        pdb: pdb_from_status(&s),
                        message: refusal_message(&s),
                        retry_after: retry.max(MIN_RETRY_AFTER),
                        by_pdb,
                    }
                }
                400 if crate::act::versions::eviction_v1_unsupported(s.code, &s.message) => {
                    Evicted::Failed(crate::act::versions::eviction_v1_error(
                        what, s.code, &s.message,
                    ))
                }
                _ => Evicted::Failed(KubeError::from_kube(what, kube::Error::Api(s))),
            },
            Ok(Err(e)) => Evicted::Failed(KubeError::from_kube(what, e)),
        }
    }

    /// The deadline passed: optionally delete what is left without eviction.
    async fn after_deadline(&self, spec: &Drain, t: &mut Track) -> Result<(), Stop> {
        if !spec.delete_after_deadline || spec.mode == DrainMode::Request {
            return Err(Stop::Deadline);
        }
        // A fresh list: only pods that are not terminating are deleted.
        let extra = self.kube.call_timeout();
        let (pods, rv) = self.list(Some(Instant::now() + extra)).await?;
        let mut longest = 0u64;
        let grace = (!spec.grace_period.is_zero()).then(|| spec.grace_period.std().as_secs());
        t.waiting.clear();
        t.awaiting.clear();
        t.skip_at.clear();
        t.pending.clear();
        let mut delete = Vec::new();
        for p in &pods {
            let key = PodRef::of(p);
            match verdict(p, spec) {
                PodVerdict::Skip(_) => {}
                PodVerdict::Wait => {
                    t.terminating(p, key, uid(p));
                }
                _ => {
                    let g = grace.unwrap_or_else(|| {
                        p.spec
                            .as_ref()
                            .and_then(|s| s.termination_grace_period_seconds)
                            .and_then(|g| u64::try_from(g).ok())
                            .unwrap_or(30)
                    });
                    longest = longest.max(g);
                    delete.push((key, uid(p)));
                }
            }
        }
        t.blocked.clear();
        for (key, id) in delete {
            let dp = DeleteParams {
                grace_period_seconds: grace.and_then(|g| u32::try_from(g).ok()),
                preconditions: Some(Preconditions {
                    uid: Some(id.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            let api: Api<Pod> = Api::namespaced(self.kube.client().clone(), &key.namespace);
            let what = format!("delete pod {key} after the drain deadline");
            match self.kube.call(what, api.delete(&key.name, &dp)).await {
                Ok(_) => {
                    tracing::warn!(pod = %key, "deleted without eviction after the drain deadline (deleteAfterDeadline)");
                    t.deleted.insert(key.clone());
                    t.waiting.insert(key, id);
                }
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => {
                    t.pending.insert(key.clone(), id.clone());
                    tracing::warn!(pod = %key, "delete after deadline failed: {e}");
                }
            }
        }
        let until = Instant::now() + Duration::from_secs(longest) + DELETE_MARGIN;
        match self.wait(spec, &rv, None, t, Some(until)).await? {
            WaitEnd::Settled => Ok(()),
            _ => Err(Stop::Deadline),
        }
    }
}
