//! The refresh policy for the gates' cluster views: the slot Leases and the
//! fleet count are read in the background, only while a decision may need
//! them, so a healthy node sends no requests for them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::act::fleet::{FLEET_SHARED_MAX_AGE, FleetCounter, fleet_lease, shared_fleet};
use crate::act::kube::jitter;
use crate::act::slots::Slots;
use crate::ledger::Ledger;
use crate::plan::{Decision, FleetView, Gate, SlotView};
use crate::runbook::StormGate;

/// What the background refresher last learnt, each part with the time it
/// stops being trusted.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub slot: SlotView,
    pub slot_until: Option<Instant>,
    pub fleet: Option<FleetView>,
    pub fleet_until: Option<Instant>,
}

/// How much the gates' views are needed, from the last decision: the
/// refresher's cadence (see `spawn_refresher`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// Healthy, nothing open: no request at all.
    None,
    /// A problem or an episode, no disruptive step pending: the slots now and then.
    Slow,
    /// A disruptive step is held by the storm gate: the shared fleet count,
    /// backing off while the storm lasts.
    Storm,
    /// A disruptive step runs, is about to, or waits for a slot.
    Now,
}

pub fn need_of(decision: &Decision, ledger: &Ledger, open: bool) -> Need {
    match decision {
        Decision::Act(a) if a.disruptive => Need::Now,
        Decision::Hold {
            gate: Gate::DisruptionSlot,
            ..
        } => Need::Now,
        Decision::Hold {
            gate: Gate::StormGate,
            ..
        } => Need::Storm,
        _ if ledger.slot.is_some() => Need::Now,
        _ if open => Need::Slow,
        _ => Need::None,
    }
}

/// How long a tick waits for the fleet count before its first disruptive step.
pub const FLEET_READ_WAIT: Duration = Duration::from_secs(10);
/// Slot reads while only a problem or a non-disruptive episode is open.
const SLOW_REFRESH: Duration = Duration::from_secs(60);
/// The longest wait between reads while the storm gate holds.
const STORM_REFRESH_MAX: Duration = Duration::from_secs(120);

/// Re-reads the slot Leases and the fleet for the gates, only while they may
/// be needed: a healthy node sends no requests for them.
///
/// - One LIST of the slot Leases per read; it also carries the shared fleet
///   count ([`crate::act::fleet::FLEET_LEASE`]). The fleet is only needed for
///   a disruptive step, and is counted (a paginated LIST of every node) only
///   when the shared count is older than `every` (at most
///   [`FLEET_SHARED_MAX_AGE`]); the count is then published for the other
///   agents. In a correlated failure that is about one node LIST per `every`
///   for the whole cluster, not one per held agent, and no agent acts on a
///   count older than it would have taken itself.
/// - Cadence: `every` while a disruptive step runs, is about to or waits for
///   a slot; [`SLOW_REFRESH`] while only a problem is open; while the storm
///   gate holds, from `every` doubling up to [`STORM_REFRESH_MAX`]. Every
///   wait is jittered, and a failed read waits like a successful one (no
///   retry burst when the API server comes back).
pub fn spawn_refresher(
    slots: Slots,
    fleet: FleetCounter,
    node: String,
    every: Duration,
    mut wanted: watch::Receiver<(Need, StormGate)>,
    out: Arc<Mutex<Refreshed>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut was_ok = true;
        let mut storm_wait = every;
        loop {
            let (need, gate) = match wanted.wait_for(|n| n.0 != Need::None).await {
                Ok(n) => *n,
                Err(_) => return,
            };
            let result: Result<(SlotView, Option<FleetView>), String> = async {
                let leases = slots.leases().await.map_err(|e| e.to_string())?;
                let slot = slots.view_of(&leases);
                if need < Need::Storm {
                    return Ok((slot, None));
                }
                let now = slots.now();
                // A count as recent as our own would be: use it either way.
                if let Some(c) = shared_fleet(&leases, now, every.min(FLEET_SHARED_MAX_AGE)) {
                    return Ok((slot, Some(c.view_for(&node))));
                }
                // An older one still serves to hold (it cannot let a step run).
                let older = shared_fleet(&leases, now, FLEET_SHARED_MAX_AGE)
                    .map(|c| c.view_for(&node))
                    .filter(|v| gate.is_closed(v));
                if older.is_some() {
                    return Ok((slot, older));
                }
                // Count, unless another agent is counting right now.
                let claimed = fleet
                    .claim(&slots, fleet_lease(&leases), now)
                    .await
                    .map_err(|e| e.to_string())?;
                let Some(claimed) = claimed else {
                    return Ok((slot, None));
                };
                let count = fleet.count_all().await.map_err(|e| e.to_string())?;
                if let Err(e) = fleet
                    .share(&slots, Some(&claimed), &count, slots.now())
                    .await
                {
                    tracing::debug!(error = %e, "could not publish the fleet count: {e}");
                }
                Ok((slot, Some(count.view_for(&node))))
            }
            .await;
            let wait = match need {
                Need::Storm => {
                    let w = storm_wait;
                    storm_wait = (storm_wait * 2).min(STORM_REFRESH_MAX.max(every));
                    w
                }
                Need::Slow => {
                    storm_wait = every;
                    SLOW_REFRESH.max(every)
                }
                Need::Now | Need::None => {
                    storm_wait = every;
                    every
                }
            };
            let wait = jitter(wait, 0.8, 1.2);
            match result {
                Ok((slot, fleet)) => {
                    if !was_ok {
                        tracing::info!("the API server answers again");
                    }
                    was_ok = true;
                    let now = Instant::now();
                    let mut r = out.lock().unwrap_or_else(|e| e.into_inner());
                    r.slot = slot;
                    // Trusted until two more reads could have failed.
                    r.slot_until = Some(now + wait * 3);
                    if let Some(f) = fleet {
                        r.fleet = Some(f);
                        r.fleet_until = Some(now + (wait * 3).max(wait + every));
                    }
                }
                Err(e) => {
                    if was_ok {
                        tracing::warn!(error = %e, "cannot read the disruption slots or the fleet: {e}");
                    }
                    was_ok = false;
                }
            }
            // Sleep, but wake at once when a step starts to need more.
            let deadline = Instant::now() + wait;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    r = wanted.changed() => {
                        if r.is_err() {
                            return;
                        }
                        if wanted.borrow().0 > need {
                            break;
                        }
                    }
                }
            }
        }
    })
}
