//! Planned maintenance: the impact report shown before any pod moves.
//!
//! Pure: it takes the objects (pods on the node, their owners, PDBs, PVs and
//! PVCs) and returns a verdict per pod and overall. Fetching them is the
//! caller's job, so the same analysis serves `maintenance plan`, `start` and
//! the tests.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;

use crate::act::drain::{Filter, PodVerdict, SkipReason, filter};

/// Everything the analysis reads. Lists may hold objects of other namespaces/nodes.
#[derive(Debug, Default, Clone)]
pub struct ClusterObjects {
    pub node: String,
    /// Pods on this node.
    pub pods: Vec<Pod>,
    pub replica_sets: Vec<ReplicaSet>,
    pub deployments: Vec<Deployment>,
    pub stateful_sets: Vec<StatefulSet>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub pvcs: Vec<PersistentVolumeClaim>,
    pub pvs: Vec<PersistentVolume>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImpactVerdict {
    /// Stays on the node (DaemonSet, mirror pod) or is already finished.
    Stays,
    Safe,
    Disruptive,
    Blocked,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodImpact {
    pub namespace: String,
    pub name: String,
    /// `Deployment/web`, `StatefulSet/db`, `DaemonSet/fluentd`, `Job/x`, `none`.
    pub owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    /// Pods of the same owner on this node.
    pub replicas_on_node: usize,
    /// `name (disruptionsAllowed N)` for each PDB selecting the pod.
    pub pdbs: Vec<String>,
    /// Data that stays behind: `emptyDir cache`, `hostPath /var/x`, `local PV pv-1`.
    pub local_data: Vec<String>,
    pub grace_period_seconds: i64,
    pub verdict: ImpactVerdict,
    pub reasons: Vec<String>,
    /// The drain evicts it (its PDBs count it).
    #[serde(skip)]
    pub evicted: bool,
    #[serde(skip)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImpactReport {
    pub node: String,
    pub verdict: ImpactVerdict,
    pub pods: Vec<PodImpact>,
    /// The longest termination grace period among pods that will move; `None` when a pod is blocked.
    pub longest_wait_seconds: Option<i64>,
    /// PDBs that cover more pods here than they allow now: the drain's
    /// length depends on them ("web-pdb (allows 1 of the 3 here)").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waits_on_pdbs: Vec<String>,
    /// A pod is blocked for a reason that waiting does not lift (a PDB that
    /// allows no disruption, a filter refusal); `false` when every blocked
    /// pod only waits for a PDB's allowance to come back.
    pub blocked_for_good: bool,
    pub summary: String,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// The drain's own pod filters, fed the runbook's drain settings (and
    /// `--force`): the report and the drain cannot disagree.
    pub filter: Filter,
    /// Single-replica Deployments will be surged to 2 first (`--surge-single-replicas`).
    pub surge_single_replicas: bool,
}

fn ns_name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn controller(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<(String, String)> {
    meta.owner_references.as_ref().and_then(|refs| {
        refs.iter()
            .find(|r| r.controller == Some(true))
            .or_else(|| refs.first())
            .map(|r| (r.kind.clone(), r.name.clone()))
    })
}

/// Whether a label selector matches `labels` (matchLabels and matchExpressions).
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(ml) = &sel.match_labels
        && !ml.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    if let Some(exprs) = &sel.match_expressions {
        for e in exprs {
            let val = labels.get(&e.key);
            let values = e.values.clone().unwrap_or_default();
            let ok = match e.operator.as_str() {
                "In" => val.is_some_and(|v| values.contains(v)),
                "NotIn" => !val.is_some_and(|v| values.contains(v)),
                "Exists" => val.is_some(),
                "DoesNotExist" => val.is_none(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

/// The top owner (Deployment over ReplicaSet) of a pod: (kind, name).
fn top_owner(p: &Pod, objs: &ClusterObjects) -> Option<(String, String)> {
    let (kind, name) = controller(&p.metadata)?;
    if kind == "ReplicaSet" {
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        if let Some(rs) = objs
            .replica_sets
            .iter()
            .find(|r| ns_name(&r.metadata) == (ns.clone(), name.clone()))
            && let Some((k, n)) = controller(&rs.metadata)
            && k == "Deployment"
        {
            return Some((k, n));
        }
    }
    Some((kind, name))
}

fn desired(kind: &str, ns: &str, name: &str, objs: &ClusterObjects) -> Option<i32> {
    let key = (ns.to_string(), name.to_string());
    match kind {
        "Deployment" => objs
            .deployments
            .iter()
            .find(|d| ns_name(&d.metadata) == key)
            .map(|d| d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)),
        "StatefulSet" => objs
            .stateful_sets
            .iter()
            .find(|d| ns_name(&d.metadata) == key)
            .map(|d| d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)),
        "ReplicaSet" => objs
            .replica_sets
            .iter()
            .find(|d| ns_name(&d.metadata) == key)
            .map(|d| d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)),
        _ => None,
    }
}

fn local_data(p: &Pod, objs: &ClusterObjects) -> Vec<String> {
    let ns = p.metadata.namespace.clone().unwrap_or_default();
    let mut out = Vec::new();
    for v in p
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        if v.empty_dir.is_some() {
            out.push(format!("emptyDir {}", v.name));
        }
        if let Some(h) = &v.host_path {
            out.push(format!("hostPath {}", h.path));
        }
        if let Some(claim) = &v.persistent_volume_claim {
            let pv_name = objs
                .pvcs
                .iter()
                .find(|c| ns_name(&c.metadata) == (ns.clone(), claim.claim_name.clone()))
                .and_then(|c| c.spec.as_ref().and_then(|s| s.volume_name.clone()));
            if let Some(pv) = pv_name.and_then(|n| {
                objs.pvs
                    .iter()
                    .find(|pv| pv.metadata.name.as_deref() == Some(n.as_str()))
            }) && pv
                .spec
                .as_ref()
                .is_some_and(|s| s.local.is_some() || s.host_path.is_some())
            {
                out.push(format!(
                    "local PV {} (claim {})",
                    pv.metadata.name.clone().unwrap_or_default(),
                    claim.claim_name
                ));
            }
        }
    }
    out
}

/// Analyse what draining `objs.node` would do.
pub fn impact(objs: &ClusterObjects, opts: Options) -> ImpactReport {
    let mut pods = Vec::new();
    for p in &objs.pods {
        let (ns, name) = ns_name(&p.metadata);
        let labels = p.metadata.labels.clone().unwrap_or_default();
        let grace = p
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        let owner = top_owner(p, objs);
        let owner_s = owner
            .as_ref()
            .map(|(k, n)| format!("{k}/{n}"))
            .unwrap_or_else(|| "none".into());
        let mut reasons = Vec::new();
        let mut verdict = ImpactVerdict::Safe;

        let pdbs: Vec<(String, i32)> = objs
            .pdbs
            .iter()
            .filter(|b| b.metadata.namespace.as_deref() == Some(ns.as_str()))
            .filter(|b| {
                b.spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .is_some_and(|sel| selector_matches(sel, &labels))
            })
            .map(|b| {
                (
                    b.metadata.name.clone().unwrap_or_default(),
                    b.status
                        .as_ref()
                        .map(|s| s.disruptions_allowed)
                        .unwrap_or(0),
                )
            })
            .collect();

        let (desired_replicas, on_node) = match &owner {
            Some((k, n)) => {
                let same = |q: &&Pod| {
                    q.metadata.namespace.as_deref() == Some(ns.as_str())
                        && top_owner(q, objs).as_ref() == Some(&(k.clone(), n.clone()))
                };
                (
                    desired(k, &ns, n, objs),
                    objs.pods.iter().filter(same).count(),
                )
            }
            None => (None, 1),
        };
        let data = local_data(p, objs);

        // The drain's own filters decide what moves (`act/drain/filter.rs`).
        let fv = filter::verdict(p, opts.filter);
        if fv == PodVerdict::Skip(SkipReason::Mirror) {
            verdict = ImpactVerdict::Stays;
            reasons.push("mirror (static) pod: managed by the kubelet, stays".into());
        } else if fv == PodVerdict::Skip(SkipReason::DaemonSet) {
            verdict = ImpactVerdict::Stays;
            reasons.push("DaemonSet pod: stays".into());
        } else if fv == PodVerdict::RefuseDaemonSet {
            verdict = ImpactVerdict::Blocked;
            reasons.push("DaemonSet pod: the drain refuses it (ignoreDaemonSets is off)".into());
        } else if fv == PodVerdict::RefuseEmptyDir {
            verdict = ImpactVerdict::Blocked;
            reasons.push("emptyDir data: the drain refuses it (deleteEmptyDirData is off)".into());
        } else if fv == PodVerdict::RefuseUnmanaged {
            verdict = ImpactVerdict::Blocked;
            reasons.push("no controller: needs --force, and it will not come back".into());
        } else if fv == PodVerdict::Wait {
            reasons.push("already terminating: the drain waits for it".into());
        } else if filter::is_finished(p) {
            verdict = ImpactVerdict::Stays;
            reasons.push("finished: removed without eviction".into());
        } else {
            if owner.is_none() {
                verdict = verdict.max(ImpactVerdict::Disruptive);
                reasons.push("no controller: deleted for good (--force)".into());
            }
            if let Some(d) = desired_replicas {
                if d <= 1 {
                    let surged = opts.surge_single_replicas
                        && owner.as_ref().is_some_and(|(k, _)| k == "Deployment");
                    if surged {
                        reasons.push(
                            "single replica: surged to 2 first (--surge-single-replicas)".into(),
                        );
                    } else {
                        verdict = verdict.max(ImpactVerdict::Disruptive);
                        reasons.push("single replica: unavailable until rescheduled".into());
                    }
                } else if on_node as i32 >= d {
                    verdict = verdict.max(ImpactVerdict::Disruptive);
                    reasons.push(format!("all {d} replicas run on this node"));
                }
            }
            if !data.is_empty() {
                verdict = verdict.max(ImpactVerdict::Disruptive);
                reasons.push(format!("local data stays behind: {}", data.join(", ")));
            }
        }
        pods.push(PodImpact {
            namespace: ns,
            name,
            owner: owner_s,
            desired_replicas,
            replicas_on_node: on_node,
            pdbs: pdbs
                .iter()
                .map(|(b, a)| format!("{b} (disruptionsAllowed {a})"))
                .collect(),
            local_data: data,
            grace_period_seconds: grace,
            verdict,
            reasons,
            evicted: fv == PodVerdict::Evict && !filter::is_finished(p),
            labels,
        });
    }
    let (waits_on_pdbs, other_block) = pdb_allowance(objs, &mut pods);
    pods.sort_by(|a, b| {
        b.verdict
            .cmp(&a.verdict)
            .then(a.namespace.cmp(&b.namespace))
            .then(a.name.cmp(&b.name))
    });
    let verdict = pods
        .iter()
        .map(|p| p.verdict)
        .filter(|v| *v != ImpactVerdict::Stays)
        .max()
        .unwrap_or(ImpactVerdict::Safe);
    let moving: Vec<&PodImpact> = pods
        .iter()
        .filter(|p| p.verdict != ImpactVerdict::Stays)
        .collect();
    let longest_wait_seconds = if verdict == ImpactVerdict::Blocked {
        None
    } else {
        Some(
            moving
                .iter()
                .map(|p| p.grace_period_seconds)
                .max()
                .unwrap_or(0),
        )
    };
    let count = |v: ImpactVerdict| pods.iter().filter(|p| p.verdict == v).count();
    let wait = match longest_wait_seconds {
        Some(s) => format!("{s}s"),
        None if !other_block => format!(
            "depends on PDB {} (pods beyond the allowance wait for replacements to become Ready elsewhere)",
            waits_on_pdbs.join(", ")
        ),
        None => "unbounded (blocked)".into(),
    };
    let summary = format!(
        "{} pods: {} blocked, {} disruptive, {} safe, {} stay; longest expected wait {}",
        pods.len(),
        count(ImpactVerdict::Blocked),
        count(ImpactVerdict::Disruptive),
        count(ImpactVerdict::Safe),
        count(ImpactVerdict::Stays),
        wait
    );
    ImpactReport {
        node: objs.node.clone(),
        verdict,
        pods,
        longest_wait_seconds,
        waits_on_pdbs,
        blocked_for_good: other_block,
        summary,
    }
}

/// Per PDB, the pods here that it covers and that the drain will evict,
/// against its `disruptionsAllowed`: every eviction spends one, so the pods
/// beyond the allowance (in name order) are refused until replacements are
/// Ready elsewhere. Marks them blocked; returns the PDBs exceeded, and
/// whether any pod is blocked for another reason.
fn pdb_allowance(objs: &ClusterObjects, pods: &mut [PodImpact]) -> (Vec<String>, bool) {
    let mut exceeded = Vec::new();
    let mut other_block = pods.iter().any(|p| p.verdict == ImpactVerdict::Blocked);
    let mut budgets: Vec<&PodDisruptionBudget> = objs.pdbs.iter().collect();
    budgets.sort_by_key(|b| ns_name(&b.metadata));
    for b in budgets {
        let (ns, name) = ns_name(&b.metadata);
        let Some(sel) = b.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            continue;
        };
        let allowed = b
            .status
            .as_ref()
            .map_or(0, |s| s.disruptions_allowed)
            .max(0);
        let mut covered: Vec<usize> = pods
            .iter()
            .enumerate()
            .filter(|(_, p)| p.namespace == ns && p.evicted)
            .filter(|(_, p)| selector_matches(sel, &p.labels))
            .map(|(i, _)| i)
            .collect();
        covered.sort_by(|a, b| pods[*a].name.cmp(&pods[*b].name));
        let m = covered.len();
        let n = usize::try_from(allowed).unwrap_or(0);
        if m <= n {
            continue;
        }
        exceeded.push(format!("{name} (allows {n} of the {m} here)"));
        // No disruption allowed at all: nothing here can go until the PDB changes.
        other_block |= n == 0;
        for i in covered.into_iter().skip(n) {
            let p = &mut pods[i];
            p.verdict = ImpactVerdict::Blocked;
            p.reasons.push(format!(
                "blocked by PDB {name} (allows {n} of the {m} here)"
            ));
        }
    }
    (exceeded, other_block)
}

#[cfg(test)]
mod tests;
