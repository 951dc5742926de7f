//! The maintenance procedure a person runs from the node shell:
//! `start` (impact check → disruption slot → record → cordon → condition →
//! drain), `status`, and `end` (healthy? → uncordon → release → clear).
//!
//! What is in force lives in a small node-local file next to the ledger
//! (`maintenance.json`), written atomically before every change to the
//! cluster, so a reboot in the middle (the usual kernel-upgrade case) loses
//! nothing. The daemon holds the ledger's lock, so the CLI never writes the
//! ledger: the daemon reads this file every tick, mirrors it into its ledger
//! and pauses automatic remediation while it exists.
//!
//! Every step that fails before the cordon undoes what came before it (the
//! slot is released, the file removed): `start` either takes the node into
//! maintenance or changes nothing. A drain that does not finish leaves the
//! node cordoned and in maintenance, and says which pods and PDBs block it;
//! running `start` again resumes the drain.
//!
//! The slot Lease is taken with the maintenance's maximum duration as its
//! lifetime (no process renews it while a person works and the node reboots);
//! `end` releases it, and a forgotten one expires on its own.
//!
//! Not a second remediation path: `start` does not go through plan → execute
//! (a person's fixed order, run by the CLI beside the daemon, with no finding
//! and no ledger it may write; docs/architecture.md says why in full), but it
//! runs the daemon's own building blocks: the cordon with its ownership
//! (`NodeClient`), the slot Lease (`Slots`), the `Drainer` with the drain's pod
//! filters, the NodeConditions and Events writers, and `act::kube`'s client
//! with its per-call deadline.

use std::time::Duration;

use serde::Serialize;

use super::{ImpactReport, ImpactVerdict, Options, fetch, impact};
use crate::act::ActError;
use crate::act::Report;
use crate::act::drain::{Drainer, Filter};
use crate::act::kube::{Kube, KubeError};
use crate::act::node::{
    COND_MAINTENANCE, CordonOutcome, DesiredCondition, NodeClient, NodeConditions, NodeError,
};
use crate::act::slots::{SlotConfig, SlotError, Slots};
use crate::domain::{Dur, Timestamp};
use crate::health::{Observation, Verdict as ProbeVerdict};
use crate::report::events::EventSink;
use crate::runbook::{Action, Drain, DrainMode, Runbook};

mod state;
mod surge;
use state::SCHEMA;
pub use state::{DEFAULT_STATE_PATH, InForce, StateFile, Surged, daemon_view};
use surge::{restore_surges, surge};

#[derive(Debug, thiserror::Error)]
pub enum MaintError {
    #[error("maintenance is already in force on {node} since {since}, by {by}: {reason}")]
    AlreadyInForce {
        node: String,
        since: Timestamp,
        by: String,
        reason: String,
    },
    #[error("no maintenance is in force on this node")]
    NotInForce,
    #[error("the maintenance state file {path} is unreadable: {reason}")]
    State { path: String, reason: String },
    #[error("the maintenance state file {path} could not be written: {source}")]
    StateWrite {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nothing changed: the API server is unreachable: {0}")]
    ApiUnreachable(String),
    #[error("nothing changed: {0}")]
    Refused(String),
    #[error("nothing changed: the impact report says the drain would be blocked: {}", .0.summary)]
    Blocked(Box<ImpactReport>),
    #[error(
        "the drain did not finish: {0}; the node stays cordoned and in maintenance (run `nodewarden maintenance start` again to resume the drain)"
    )]
    DrainFailed(String),
    #[error("nothing changed: the node is not healthy yet: {0}")]
    Unhealthy(String),
    #[error("{0}")]
    Api(String),
}

impl MaintError {
    /// 1: the node is not in the state asked for (refused, blocked, busy);
    /// 2: bad input or an error reading the state.
    pub fn exit_code(&self) -> u8 {
        match self {
            MaintError::State { .. } | MaintError::StateWrite { .. } => 2,
            _ => 1,
        }
    }
}

impl From<KubeError> for MaintError {
    fn from(e: KubeError) -> Self {
        if e.is_unreachable() {
            MaintError::ApiUnreachable(e.to_string())
        } else {
            MaintError::Api(e.to_string())
        }
    }
}

impl From<NodeError> for MaintError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Kube(k) => k.into(),
            e => MaintError::Api(e.to_string()),
        }
    }
}

/// Where and as whom the procedure runs.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub kube: Kube,
    pub node: String,
    /// The slot Leases' namespace.
    pub namespace: String,
    pub state: StateFile,
    /// Who runs it (`$SUDO_USER`, the login uid's name, `$USER`: `crate::host::who`).
    pub by: String,
}

#[derive(Debug, Clone)]
pub struct StartOptions {
    pub reason: String,
    /// Drain deadline.
    pub timeout: Dur,
    /// Unmanaged pods are deleted.
    pub force: bool,
    /// The slot Lease's lifetime: how long the maintenance may take before the
    /// slot is considered abandoned.
    pub max_duration: Dur,
    /// Scale single-replica Deployments to 2 and wait for the new pod to be
    /// Ready elsewhere before the drain evicts the old one.
    pub surge_single_replicas: bool,
}

/// The outcome of `start`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    pub state: InForce,
    pub impact: ImpactReport,
    /// Resumed an unfinished drain of a maintenance already in force.
    pub resumed: bool,
    pub notes: Vec<String>,
}

/// The outcome of `end`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ended {
    pub ended: InForce,
    pub uncordoned: bool,
    pub notes: Vec<String>,
}

/// The drain `start` runs: the runbook's drain step when it has one, with the
/// deadline and `force` of the command line.
pub fn drain_spec(runbook: &Runbook, opts: &StartOptions) -> Drain {
    drain_with(runbook, opts.timeout, opts.force)
}

/// What `maintenance plan` reports with: the filters of the drain `start`
/// runs (the runbook's drain settings and `--force`), so the two agree.
pub fn plan_options(runbook: &Runbook, force: bool, surge_single_replicas: bool) -> Options {
    Options {
        filter: Filter::of(&drain_with(runbook, Dur::from_secs(600), force)),
        surge_single_replicas,
    }
}

fn drain_with(runbook: &Runbook, timeout: Dur, force: bool) -> Drain {
    let base = runbook.spec.steps.iter().find_map(|s| match &s.action {
        Action::Drain(d) => Some(d.clone()),
        _ => None,
    });
    let mut d = base.unwrap_or(Drain {
        mode: DrainMode::Evict,
        timeout,
        delete_empty_dir_data: true,
        force: false,
        ignore_daemon_sets: true,
        grace_period: Dur::ZERO,
        delete_after_deadline: false,
        skip_wait_for_delete_timeout: Dur::ZERO,
        concurrency: 5,
    });
    // A person asked for maintenance: evict ourselves even if the runbook
    // delegates remediation drains to the platform.
    d.mode = DrainMode::Evict;
    d.timeout = timeout;
    d.force = d.force || force;
    d.delete_after_deadline = false;
    // A healthy kubelet (planned maintenance): wait for every pod, as kubectl does.
    d.skip_wait_for_delete_timeout = Dur::ZERO;
    d
}

async fn event(ctx: &Ctx, r: Report) {
    EventSink::for_node(ctx.kube.clone(), &ctx.node, None)
        .emit_best_effort(&r)
        .await;
}

async fn set_condition(ctx: &Ctx, on: bool, message: &str, notes: &mut Vec<String>) {
    let conds = NodeConditions::new(NodeClient::new(ctx.kube.clone(), ctx.node.clone()));
    let c = if on {
        DesiredCondition::new(COND_MAINTENANCE, true, "MaintenanceInProgress", message)
    } else {
        DesiredCondition::new(COND_MAINTENANCE, false, "NoMaintenance", message)
    };
    if let Err(e) = conds.set(&[c]).await {
        notes.push(format!("condition {COND_MAINTENANCE} not updated: {e}"));
    }
}

/// The read-only impact report.
pub async fn plan(ctx: &Ctx, opts: Options) -> Result<ImpactReport, MaintError> {
    let objs = fetch(&ctx.kube, &ctx.node).await?;
    Ok(impact(&objs, opts))
}

/// Take the node into maintenance; see the module docs for the order.
pub async fn start(
    ctx: &Ctx,
    runbook: &Runbook,
    opts: &StartOptions,
    now: Timestamp,
) -> Result<Started, MaintError> {
    let node = NodeClient::new(ctx.kube.clone(), ctx.node.clone());
    let existing = ctx.state.load()?;
    if let Some(s) = &existing
        && s.drained
    {
        return Err(MaintError::AlreadyInForce {
            node: s.node.clone(),
            since: s.since,
            by: s.by.clone(),
            reason: s.reason.clone(),
        });
    }
    // Reachable? (Nothing has changed yet.)
    let current = node.get().await?;
    let report = plan(
        ctx,
        Options {
            filter: Filter::of(&drain_spec(runbook, opts)),
            surge_single_replicas: opts.surge_single_replicas,
        },
    )
    .await?;
    let mut notes = Vec::new();

    let (mut state, resumed) = match existing {
        Some(s) => {
            notes.push(format!(
                "maintenance in force since {} by {}; resuming its drain",
                s.since, s.by
            ));
            (s, true)
        }
        None => {
            // Pods that only wait for a PDB's allowance to come back do not
            // stop the start: the drain evicts them as replacements get Ready.
            if report.verdict == ImpactVerdict::Blocked && report.blocked_for_good {
                return Err(MaintError::Blocked(Box::new(report)));
            }
            let view = crate::act::node::node_view(&current);
            // 1. The slot.
            let slots = Slots::new(
                ctx.kube.clone(),
                SlotConfig {
                    namespace: ctx.namespace.clone(),
                    holder: ctx.node.clone(),
                    slots: runbook.spec.safety.max_concurrent_disruptions.max(1),
                    lease_duration: opts.max_duration.std(),
                },
            );
            let lease = slots.acquire().await.map_err(|e| match e {
                SlotError::Busy { holders } => MaintError::Refused(format!(
                    "every disruption slot is held (by {}); try again when that node is done",
                    holders.join(", ")
                )),
                e => match ActError::from(e) {
                    ActError::ApiUnreachable(m) => MaintError::ApiUnreachable(m),
                    other => MaintError::Api(other.to_string()),
                },
            })?;
            // 2. The record, before the cordon.
            let mut state = InForce {
                schema: SCHEMA,
                node: ctx.node.clone(),
                since: now,
                by: ctx.by.clone(),
                reason: opts.reason.clone(),
                slot: Some(lease.clone()),
                slot_expires: Some(opts.max_duration.after(now)),
                cordoned_by_us: false,
                was_cordoned: view.unschedulable && !view.cordon_annotation,
                drained: false,
                drain: None,
                surged: Vec::new(),
            };
            if let Err(e) = ctx.state.save(&state) {
                let _ = slots.release(&lease).await;
                return Err(e);
            }
            // 3. The cordon.
            let reason = format!("maintenance by {}: {}", ctx.by, opts.reason);
            match node.cordon(&reason).await {
                Ok(CordonOutcome::Cordoned) => state.cordoned_by_us = true,
                Ok(CordonOutcome::AlreadyOurs) => {
                    state.cordoned_by_us = true;
                    notes.push("the node was already cordoned by nodewarden".into());
                }
                Ok(CordonOutcome::AlreadyCordonedByOther) => {
                    state.was_cordoned = true;
                    notes.push(
                        "the node was already cordoned by someone else: that cordon is used and `end` leaves it"
                            .into(),
                    );
                }
                Err(e) => {
                    let _ = slots.release(&lease).await;
                    let _ = ctx.state.remove();
                    return Err(match MaintError::from(e) {
                        MaintError::ApiUnreachable(m) => MaintError::ApiUnreachable(m),
                        other => MaintError::Refused(format!("the cordon failed: {other}")),
                    });
                }
            }
            ctx.state.save(&state)?;
            set_condition(ctx, true, &reason, &mut notes).await;
            event(
                ctx,
                Report::normal("MaintenanceStarted", format!("{reason} (slot {lease})")),
            )
            .await;
            (state, false)
        }
    };

    // 4. Surge single replicas (after the cordon: the new pods land elsewhere).
    if opts.surge_single_replicas {
        let deadline = tokio::time::Instant::now() + opts.timeout.std();
        if let Err(e) = surge(ctx, &report, &mut state, deadline, &mut notes).await {
            state.drain = Some(e.clone());
            ctx.state.save(&state)?;
            return Err(MaintError::DrainFailed(e));
        }
    }

    // 5. The drain.
    let spec = drain_spec(runbook, opts);
    let result = Drainer::new(ctx.kube.clone(), ctx.node.clone())
        .drain(&spec)
        .await;
    match result {
        Ok(r) => {
            state.drained = true;
            state.drain = Some(r.summary());
            ctx.state.save(&state)?;
            event(
                ctx,
                Report::normal("MaintenanceDrained", format!("drained: {}", r.summary())),
            )
            .await;
            Ok(Started {
                state,
                impact: report,
                resumed,
                notes,
            })
        }
        Err(e) => {
            let msg = e.to_string();
            state.drain = Some(msg.clone());
            ctx.state.save(&state)?;
            event(ctx, Report::warning("MaintenanceDrainFailed", msg.clone())).await;
            Err(MaintError::DrainFailed(msg))
        }
    }
}

/// Why the node is not healthy, from one round of probe observations; `None` when healthy.
pub fn unhealthy(observations: &[Observation]) -> Option<String> {
    let failing: Vec<String> = observations
        .iter()
        .filter(|o| o.verdict == ProbeVerdict::Failing)
        .map(|o| format!("{}: {}", o.problem, o.summary))
        .collect();
    (!failing.is_empty()).then(|| failing.join("; "))
}

/// Bring the node back: only when `health` (one probe round) shows nothing failing.
pub async fn end(ctx: &Ctx, health: &[Observation]) -> Result<Ended, MaintError> {
    let Some(state) = ctx.state.load()? else {
        return Err(MaintError::NotInForce);
    };
    let node = NodeClient::new(ctx.kube.clone(), ctx.node.clone());
    node.get().await?;
    if let Some(why) = unhealthy(health) {
        return Err(MaintError::Unhealthy(why));
    }
    let mut notes = Vec::new();
    let mut uncordoned = false;
    if state.cordoned_by_us {
        match node.uncordon().await {
            Ok(_) => uncordoned = true,
            Err(NodeError::NotOurs { .. }) => notes.push(
                "the node is cordoned, but no longer by nodewarden: that cordon is left in place"
                    .into(),
            ),
            Err(e) => return Err(e.into()),
        }
        if let Err(e) = Drainer::new(ctx.kube.clone(), ctx.node.clone())
            .clear_drain_request()
            .await
        {
            notes.push(format!("drain request not cleared: {e}"));
        }
    } else if state.was_cordoned {
        notes.push(
            "the cordon was placed by someone else before the maintenance: left in place".into(),
        );
    }
    // A failure here keeps the state: `end` again retries (the uncordon is idempotent).
    restore_surges(ctx, &state, &mut notes).await?;
    if let Some(lease) = &state.slot {
        let slots = Slots::new(
            ctx.kube.clone(),
            SlotConfig {
                namespace: ctx.namespace.clone(),
                holder: ctx.node.clone(),
                slots: u32::MAX,
                lease_duration: Duration::from_secs(1),
            },
        );
        if let Err(e) = slots.release(lease).await {
            notes.push(format!(
                "slot {lease} not released ({e}); it expires at {}",
                state
                    .slot_expires
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "its lease time".into())
            ));
        }
    }
    set_condition(ctx, false, "maintenance ended", &mut notes).await;
    ctx.state.remove()?;
    event(
        ctx,
        Report::normal(
            "MaintenanceEnded",
            format!(
                "maintenance by {} ended{}",
                state.by,
                if uncordoned { "; uncordoned" } else { "" }
            ),
        ),
    )
    .await;
    Ok(Ended {
        ended: state,
        uncordoned,
        notes,
    })
}
