//! Node-local, durable state: the open episode and its attempts, who cordoned
//! the node, reboot history with boot IDs, rate-limit history.
//!
//! The data model and its transitions are pure (`Ledger` methods take `now`);
//! `LedgerFile` persists it atomically (temp file, fsync, rename, fsync the
//! directory) under an exclusive lock so two agents cannot run on one node.
//! A corrupt or unreadable ledger is moved aside and a fresh one started, with
//! the reboot history and the cordon ownership salvaged from it; when the
//! reboot history cannot be salvaged, the reboot cap counts as spent for one
//! window (`rebootHistoryLost`), so a bad ledger can never re-arm a reboot loop.
//!
//! Unknown fields (written by a newer version) are ignored, not fatal. What
//! the agent writes itself is bounded: texts are cut at [`MAX_TEXT`] bytes and
//! an episode keeps at most [`MAX_ATTEMPTS`] attempts, so the agent cannot grow
//! its own ledger past the size it would refuse to read.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::domain::{Dur, Problem, Timestamp};
use crate::runbook::ActionKind;

pub const SCHEMA_VERSION: u32 = 1;
pub const DEFAULT_PATH: &str = "/var/lib/nodewarden/ledger.json";
/// Attempts kept for rate limiting (older ones are pruned).
const HISTORY_KEEP: Dur = Dur::from_secs(8 * 24 * 3600);
const HISTORY_MAX: usize = 512;
const CLOSED_MAX: usize = 20;
pub(crate) const MAX_LEDGER_BYTES: u64 = 4 * 1024 * 1024;
/// A corrupt ledger is read this far (streaming, nothing kept but what is
/// salvaged) to find its reboot history.
pub(crate) const MAX_SALVAGE_BYTES: u64 = 256 * 1024 * 1024;
/// The longest text (reason, detail) the agent records.
pub const MAX_TEXT: usize = 2048;
/// The most attempts one episode keeps. Older repeats of a step are dropped
/// first, so the highest rung tried for each problem is always kept.
pub const MAX_ATTEMPTS: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ledger {
    pub schema: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode: Option<Episode>,
    /// The cordon nodewarden placed or found, while an episode or maintenance needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cordon: Option<CordonRecord>,
    /// The disruption slot (Lease) this node holds, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<SlotRecord>,
    /// Every reboot nodewarden requested, kept for the reboot cap.
    #[serde(default)]
    pub reboots: Vec<RebootRecord>,
    /// Step starts, kept for per-step rate limits across episodes.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// The most recent closed episodes, newest last.
    #[serde(default)]
    pub closed: Vec<EpisodeSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceRecord>,
    /// A ledger was found unusable and its reboot history could not be
    /// salvaged: the reboot cap counts as spent for one window from `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot_history_lost: Option<HistoryLost>,
    /// Report-only problems active when the daemon last looked (for `status`).
    /// Never an episode: see `Problem::report_only`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reported: BTreeMap<Problem, ReportedRecord>,
}

/// A report-only finding as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportedRecord {
    pub since: Timestamp,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryLost {
    pub at: Timestamp,
    pub reason: String,
}

/// Cut `s` to at most [`MAX_TEXT`] bytes (on a character boundary), marking the cut.
pub fn bounded(s: &str) -> String {
    if s.len() <= MAX_TEXT {
        return s.to_string();
    }
    let mut end = MAX_TEXT - 40;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes cut)", &s[..end], s.len() - end)
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            schema: SCHEMA_VERSION,
            node: None,
            episode: None,
            cordon: None,
            slot: None,
            reboots: Vec::new(),
            history: Vec::new(),
            closed: Vec::new(),
            maintenance: None,
            reboot_history_lost: None,
            reported: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Episode {
    pub id: String,
    pub started_at: Timestamp,
    /// Every problem seen during the episode.
    pub problems: BTreeSet<Problem>,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exhausted: Option<Exhaustion>,
    /// The gate holding the ladder right now, for `status` and conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<HoldRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub step: String,
    pub action: ActionKind,
    pub started_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    pub outcome: Outcome,
    /// What was acted on and what came of it (unit, drain report, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Drain (and reboot): pods evicted but still terminating because this
    /// node's kubelet cannot finish them, as `namespace/name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub awaiting_kubelet: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "result", content = "reason")]
pub enum Outcome {
    /// Started and not yet finished (or the agent died while it ran).
    InProgress,
    Succeeded,
    Failed(String),
    /// The agent stopped while the step ran; closed when it started again.
    Interrupted(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exhaustion {
    pub at: Timestamp,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldRecord {
    pub step: String,
    pub gate: String,
    pub reason: String,
    pub since: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CordonRecord {
    /// True when nodewarden set `spec.unschedulable` (and its annotation).
    pub by_us: bool,
    /// True when the node was already unschedulable (an admin's cordon) before we looked.
    pub was_cordoned_before: bool,
    pub at: Timestamp,
    pub reason: String,
    /// The episode was exhausted and the cordon left to a human: nodewarden
    /// will never lift it, as if an admin had placed it.
    #[serde(default)]
    pub handed_over: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotRecord {
    pub lease: String,
    pub acquired_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RebootRecord {
    pub at: Timestamp,
    pub episode: String,
    pub boot_id_before: String,
    /// Set once the agent saw a new boot ID after this reboot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_boot_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub step: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpisodeSummary {
    pub id: String,
    pub started_at: Timestamp,
    pub ended_at: Timestamp,
    pub problems: BTreeSet<Problem>,
    pub steps: Vec<String>,
    pub result: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceRecord {
    pub since: Timestamp,
    pub by: String,
    pub reason: String,
}

mod episode;
mod reboots;
mod store;
pub use store::{LedgerError, LedgerFile, OpenReport, read_as_daemon, read_only};

#[cfg(test)]
mod tests;
