//! `--surge-single-replicas`: single-replica Deployments scaled up before the
//! drain so their pod has somewhere to go, and scaled back at `end`.

use std::time::Duration;

use super::ImpactReport;
use crate::act::kube::KubeError;

use super::*;

/// The single-replica Deployments the impact report found on the node.
pub(super) fn surge_targets(report: &ImpactReport) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for p in &report.pods {
        if p.desired_replicas == Some(1)
            && let Some(name) = p.owner.strip_prefix("Deployment/")
        {
            let t = (p.namespace.clone(), name.to_string());
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

pub(super) fn deployments(
    ctx: &Ctx,
    ns: &str,
) -> kube::Api<k8s_openapi::api::apps::v1::Deployment> {
    kube::Api::namespaced(ctx.kube.client().clone(), ns)
}

pub(super) async fn get_deployment(
    ctx: &Ctx,
    ns: &str,
    name: &str,
) -> Result<k8s_openapi::api::apps::v1::Deployment, KubeError> {
    ctx.kube
        .call(
            format!("get deployment {ns}/{name}"),
            deployments(ctx, ns).get(name),
        )
        .await
}

pub(super) async fn scale(ctx: &Ctx, ns: &str, name: &str, replicas: i32) -> Result<(), String> {
    use kube::api::{Patch, PatchParams};
    let body = serde_json::json!({"spec": {"replicas": replicas}});
    ctx.kube
        .call(
            format!("scale deployment {ns}/{name} to {replicas}"),
            deployments(ctx, ns).patch_scale(name, &PatchParams::default(), &Patch::Merge(&body)),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Scale each single-replica Deployment to 2 (recorded before the patch) and
/// wait until it has 2 ready replicas, all before `deadline`.
pub(super) async fn surge(
    ctx: &Ctx,
    report: &ImpactReport,
    state: &mut InForce,
    deadline: tokio::time::Instant,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    for (ns, name) in surge_targets(report) {
        if state
            .surged
            .iter()
            .any(|s| s.namespace == ns && s.name == name)
        {
            continue;
        }
        let d = get_deployment(ctx, &ns, &name)
            .await
            .map_err(|e| e.to_string())?;
        let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        if replicas != 1 {
            notes.push(format!(
                "{ns}/{name} has {replicas} replicas now: not surged"
            ));
            continue;
        }
        state.surged.push(Surged {
            namespace: ns.clone(),
            name: name.clone(),
            original: 1,
            surged_to: 2,
        });
        ctx.state.save(state).map_err(|e| e.to_string())?;
        scale(ctx, &ns, &name, 2).await?;
        notes.push(format!("surged {ns}/{name} to 2 replicas"));
    }
    for s in &state.surged {
        loop {
            let d = get_deployment(ctx, &s.namespace, &s.name)
                .await
                .map_err(|e| e.to_string())?;
            let ready = d
                .status
                .as_ref()
                .and_then(|st| st.ready_replicas)
                .unwrap_or(0);
            if ready >= s.surged_to {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "the surged replica of {}/{} was not Ready in time ({ready} of {} ready)",
                    s.namespace, s.name, s.surged_to
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

/// Scale surged Deployments back; a Deployment someone rescaled meanwhile is left alone.
pub(super) async fn restore_surges(
    ctx: &Ctx,
    state: &InForce,
    notes: &mut Vec<String>,
) -> Result<(), MaintError> {
    for s in &state.surged {
        let d = match get_deployment(ctx, &s.namespace, &s.name).await {
            Ok(d) => d,
            Err(e) if e.is_not_found() => {
                notes.push(format!(
                    "{}/{} is gone: nothing to scale back",
                    s.namespace, s.name
                ));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let now = d.spec.as_ref().and_then(|x| x.replicas).unwrap_or(1);
        if now != s.surged_to {
            notes.push(format!(
                "{}/{} has {now} replicas (changed by someone): left as is",
                s.namespace, s.name
            ));
            continue;
        }
        scale(ctx, &s.namespace, &s.name, s.original)
            .await
            .map_err(MaintError::Api)?;
        notes.push(format!(
            "scaled {}/{} back to {}",
            s.namespace, s.name, s.original
        ));
    }
    Ok(())
}
