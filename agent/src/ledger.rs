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

use crate::model::{Dur, Problem, Timestamp};
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

impl Ledger {
    /// Open an episode for `problems` if none is open; add new problems to the open one.
    pub fn ensure_episode(&mut self, problems: &BTreeSet<Problem>, now: Timestamp) -> &mut Episode {
        let ep = self.episode.get_or_insert_with(|| Episode {
            id: format!("ep-{}", now.as_second()),
            started_at: now,
            problems: BTreeSet::new(),
            attempts: Vec::new(),
            exhausted: None,
            hold: None,
        });
        ep.problems.extend(problems.iter().copied());
        ep
    }

    /// Record the start of a step in the open episode (and in the rate-limit history).
    pub fn begin_attempt(
        &mut self,
        step: &str,
        action: ActionKind,
        now: Timestamp,
        detail: Option<String>,
    ) {
        self.history.push(HistoryEntry {
            step: step.to_string(),
            at: now,
        });
        self.prune(now);
        if let Some(ep) = self.episode.as_mut() {
            ep.hold = None;
            ep.attempts.push(Attempt {
                step: step.to_string(),
                action,
                started_at: now,
                finished_at: None,
                outcome: Outcome::InProgress,
                detail: detail.as_deref().map(bounded),
                awaiting_kubelet: Vec::new(),
            });
            cap_attempts(&mut ep.attempts);
        }
    }

    /// Finish the newest in-progress attempt.
    pub fn finish_attempt(&mut self, outcome: Outcome, detail: Option<String>, now: Timestamp) {
        if let Some(a) = self.episode.as_mut().and_then(|e| {
            e.attempts
                .iter_mut()
                .rev()
                .find(|a| a.outcome == Outcome::InProgress)
        }) {
            a.outcome = match outcome {
                Outcome::Failed(r) => Outcome::Failed(bounded(&r)),
                Outcome::Interrupted(r) => Outcome::Interrupted(bounded(&r)),
                o => o,
            };
            a.finished_at = Some(now);
            if let Some(d) = detail {
                a.detail = Some(bounded(&d));
            }
        }
    }

    pub fn set_hold(&mut self, step: &str, gate: &str, reason: &str, now: Timestamp) {
        if let Some(ep) = self.episode.as_mut() {
            let same = ep
                .hold
                .as_ref()
                .is_some_and(|h| h.step == step && h.gate == gate && h.reason == reason);
            if !same {
                ep.hold = Some(HoldRecord {
                    step: step.to_string(),
                    gate: gate.to_string(),
                    reason: bounded(reason),
                    since: now,
                });
            }
        }
    }

    pub fn mark_exhausted(&mut self, reason: &str, now: Timestamp) {
        if let Some(ep) = self.episode.as_mut()
            && ep.exhausted.is_none()
        {
            ep.hold = None;
            ep.exhausted = Some(Exhaustion {
                at: now,
                reason: bounded(reason),
            });
        }
    }

    /// Close the open episode with a one-word result (`recovered`, …).
    pub fn close_episode(&mut self, result: &str, now: Timestamp) {
        if let Some(ep) = self.episode.take() {
            self.closed.push(EpisodeSummary {
                id: ep.id,
                started_at: ep.started_at,
                ended_at: now,
                problems: ep.problems,
                steps: ep
                    .attempts
                    .iter()
                    .rev()
                    .take(MAX_ATTEMPTS)
                    .rev()
                    .map(|a| a.step.clone())
                    .collect(),
                result: result.to_string(),
            });
            if self.closed.len() > CLOSED_MAX {
                let excess = self.closed.len() - CLOSED_MAX;
                self.closed.drain(..excess);
            }
        }
    }

    pub fn record_reboot(&mut self, boot_id_before: &str, now: Timestamp) {
        let episode = self
            .episode
            .as_ref()
            .map(|e| e.id.clone())
            .unwrap_or_default();
        self.reboots.push(RebootRecord {
            at: now,
            episode,
            boot_id_before: boot_id_before.to_string(),
            confirmed_boot_id: None,
        });
    }

    /// Reconcile with the current boot: a reboot we requested is confirmed when
    /// the boot ID changed, and its in-progress attempt succeeds.
    /// Returns true when something changed.
    pub fn reconcile_boot(&mut self, boot_id: &str, now: Timestamp) -> bool {
        let mut changed = false;
        for r in self.reboots.iter_mut() {
            if r.confirmed_boot_id.is_none() && r.boot_id_before != boot_id {
                r.confirmed_boot_id = Some(boot_id.to_string());
                changed = true;
            }
        }
        if changed
            && let Some(a) = self.episode.as_mut().and_then(|e| {
                e.attempts
                    .iter_mut()
                    .rev()
                    .find(|a| a.action == ActionKind::Reboot && a.outcome == Outcome::InProgress)
            })
        {
            a.outcome = Outcome::Succeeded;
            a.finished_at = Some(now);
            a.detail = Some(format!("node came back with boot ID {boot_id}"));
        }
        changed
    }

    /// Reboots requested within `window` before `now`.
    pub fn reboots_within(&self, window: Dur, now: Timestamp) -> usize {
        let since = window.before(now);
        self.reboots.iter().filter(|r| r.at > since).count()
    }

    /// Why no reboot may start now under the cap (`max` per `window`), if so:
    /// the cap is used up, or the reboot history was lost within the window.
    pub fn reboot_cap_spent(&self, max: u32, window: Dur, now: Timestamp) -> Option<String> {
        if let Some(l) = &self.reboot_history_lost
            && l.at > window.before(now)
        {
            return Some(format!(
                "the reboot history was lost at {} ({}); the reboot cap counts as spent until {}",
                l.at,
                l.reason,
                window.after(l.at)
            ));
        }
        let n = self.reboots_within(window, now);
        (n >= max as usize)
            .then(|| format!("reboot cap reached: {n} reboot(s) in the last {window} (max {max})"))
    }

    /// Close attempts a stopped agent left in progress, the way the planner
    /// already reads them: a reboot is closed by the boot-ID check and a drain
    /// is resumed, so only the others are closed, as interrupted.
    /// Returns how many were closed.
    pub fn close_interrupted(&mut self, now: Timestamp) -> usize {
        let Some(ep) = self.episode.as_mut() else {
            return 0;
        };
        let mut n = 0;
        for a in ep.attempts.iter_mut() {
            if a.outcome == Outcome::InProgress
                && !matches!(a.action, ActionKind::Reboot | ActionKind::Drain)
            {
                a.outcome = Outcome::Interrupted(
                    "the agent stopped while this step ran; it was not seen to finish".into(),
                );
                a.finished_at = Some(now);
                n += 1;
            }
        }
        n
    }

    /// Starts of `step` within `window` before `now`.
    pub fn starts_within(&self, step: &str, window: Dur, now: Timestamp) -> Vec<Timestamp> {
        let since = window.before(now);
        self.history
            .iter()
            .filter(|h| h.step == step && h.at > since)
            .map(|h| h.at)
            .collect()
    }

    fn prune(&mut self, now: Timestamp) {
        let keep_after = HISTORY_KEEP.before(now);
        self.history.retain(|h| h.at > keep_after);
        if self.history.len() > HISTORY_MAX {
            let excess = self.history.len() - HISTORY_MAX;
            self.history.drain(..excess);
        }
        self.reboots.retain(|r| r.at > keep_after);
        if self
            .reboot_history_lost
            .as_ref()
            .is_some_and(|l| l.at <= keep_after)
        {
            self.reboot_history_lost = None;
        }
    }
}

/// Keep at most [`MAX_ATTEMPTS`]: drop the oldest attempts of steps that were
/// tried again later (the ladder only needs each step's newest attempt), then,
/// if still too many, the oldest finished ones.
fn cap_attempts(attempts: &mut Vec<Attempt>) {
    while attempts.len() > MAX_ATTEMPTS {
        let repeated = attempts
            .iter()
            .position(|a| {
                a.outcome != Outcome::InProgress
                    && attempts.iter().filter(|b| b.step == a.step).count() > 1
            })
            .or_else(|| {
                attempts
                    .iter()
                    .position(|a| a.outcome != Outcome::InProgress)
            });
        match repeated {
            Some(i) => {
                attempts.remove(i);
            }
            None => break,
        }
    }
}

mod store;
pub use store::{LedgerError, LedgerFile, OpenReport, read_as_daemon, read_only};

#[cfg(test)]
mod tests {
    use super::store::decode;
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn save_then_open_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/ledger.json");
        let (f, mut l, rep) = LedgerFile::open(&p, t(0)).unwrap();
        assert_eq!(rep, OpenReport::Fresh);
        l.ensure_episode(&[Problem::KubeletUnhealthy].into(), t(0));
        l.begin_attempt(
            "restart-kubelet",
            ActionKind::RestartUnit,
            t(1),
            Some("kubelet.service".into()),
        );
        l.finish_attempt(Outcome::Succeeded, None, t(2));
        l.record_reboot("boot-a", t(3));
        f.save(&l).unwrap();
        drop(f);
        let (_f, l2, rep) = LedgerFile::open(&p, t(10)).unwrap();
        assert_eq!(rep, OpenReport::Loaded);
        assert_eq!(l2, l);
        assert!(!dir.path().join("sub/ledger.json.tmp").exists());
    }

    #[test]
    fn second_agent_cannot_take_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ledger.json");
        let _first = LedgerFile::open(&p, t(0)).unwrap();
        let err = LedgerFile::open(&p, t(0)).unwrap_err();
        assert!(matches!(err, LedgerError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("only one agent"));
    }

    #[test]
    fn corrupt_ledger_is_moved_aside_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ledger.json");
        for junk in [&b"{not json"[..], b"", b"{\"schema\": 99}", b"\xff\xfe"] {
            std::fs::write(&p, junk).unwrap();
            let (_f, l, rep) = LedgerFile::open(&p, t(5)).unwrap();
            // Nothing could be salvaged: the reboot cap is spent for a window.
            assert!(l.reboot_history_lost.is_some(), "{l:?}");
            assert!(l.reboot_cap_spent(1, Dur::from_secs(3600), t(5)).is_some());
            assert!(
                l.reboot_cap_spent(1, Dur::from_secs(3600), t(3606))
                    .is_none()
            );
            match rep {
                OpenReport::Quarantined {
                    moved_to, reason, ..
                } => {
                    assert_eq!(std::fs::read(&moved_to).unwrap(), junk);
                    assert!(!reason.is_empty());
                    std::fs::remove_file(moved_to).unwrap();
                }
                other => panic!("{other:?}"),
            }
            assert!(!p.exists());
        }
    }

    fn with_one_reboot() -> Ledger {
        let mut l = Ledger::default();
        l.ensure_episode(&[Problem::KubeletUnhealthy].into(), t(0));
        l.cordon = Some(CordonRecord {
            by_us: true,
            was_cordoned_before: false,
            at: t(1),
            reason: "nodewarden step".into(),
            handed_over: false,
        });
        l.begin_attempt("reboot", ActionKind::Reboot, t(2), None);
        l.record_reboot("boot-a", t(2));
        l
    }

    const WINDOW: Dur = Dur::from_secs(6 * 3600);

    #[test]
    fn unknown_fields_from_a_newer_version_are_tolerated() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ledger.json");
        let mut v = serde_json::to_value(with_one_reboot()).unwrap();
        v["drainedPods"] = serde_json::json!([{"name": "x"}]);
        v["reboots"][0]["newField"] = serde_json::json!(true);
        v["episode"]["attempts"][0]["extra"] = serde_json::json!("y");
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
        let (_f, l, rep) = LedgerFile::open(&p, t(10)).unwrap();
        assert_eq!(rep, OpenReport::Loaded);
        assert_eq!(l, with_one_reboot());
    }

    #[test]
    fn an_oversized_ledger_keeps_its_reboots_and_cordon() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ledger.json");
        let mut v = serde_json::to_value(with_one_reboot()).unwrap();
        v["episode"]["attempts"][0]["detail"] = serde_json::json!("x".repeat(5 << 20));
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
        let (_f, l, rep) = LedgerFile::open(&p, t(10)).unwrap();
        assert!(matches!(rep, OpenReport::Quarantined { .. }), "{rep:?}");
        assert_eq!(l.reboots, with_one_reboot().reboots);
        assert_eq!(l.cordon, with_one_reboot().cordon);
        assert!(l.reboot_history_lost.is_none());
        assert_eq!(l.reboots_within(WINDOW, t(10)), 1);
    }

    /// A write cut off at any byte (a filesystem that does not honour the
    /// rename's atomicity, a truncated copy): the reboot cap never re-arms.
    #[test]
    fn the_reboot_count_never_goes_down_across_a_quarantine_at_any_kill_point() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ledger.json");
        let full = serde_json::to_vec_pretty(&with_one_reboot()).unwrap();
        for cut in 0..=full.len() {
            std::fs::write(&p, &full[..cut]).unwrap();
            let (f, l, rep) = LedgerFile::open(&p, t(100)).unwrap();
            assert!(
                l.reboot_cap_spent(1, WINDOW, t(100)).is_some(),
                "cut at {cut}: {rep:?} {l:?}"
            );
            if let OpenReport::Quarantined { moved_to, .. } = rep {
                std::fs::remove_file(moved_to).unwrap();
            }
            drop(f);
        }
    }

    #[test]
    fn a_symlinked_ledger_path_meets_the_same_lock() {
        let dir = tempfile::tempdir().unwrap();
        let real_dir = dir.path().join("real");
        std::fs::create_dir(&real_dir).unwrap();
        let p = real_dir.join("ledger.json");
        let (first, l, _) = LedgerFile::open(&p, t(0)).unwrap();
        first.save(&l).unwrap();
        // A symlink to the file, and a symlinked directory.
        let link = dir.path().join("alias.json");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        let err = LedgerFile::open(&link, t(0)).unwrap_err();
        assert!(matches!(err, LedgerError::Locked { .. }), "{err}");
        // `status` through the alias reads what the daemon reads.
        assert!(read_only(&link).unwrap().is_some());
        let dlink = dir.path().join("dirlink");
        std::os::unix::fs::symlink(&real_dir, &dlink).unwrap();
        let err = LedgerFile::open(&dlink.join("ledger.json"), t(0)).unwrap_err();
        assert!(matches!(err, LedgerError::Locked { .. }), "{err}");
        // A removed lock file does not let a second agent in either.
        std::fs::remove_file(real_dir.join("ledger.json.lock")).unwrap();
        let err = LedgerFile::open(&p, t(0)).unwrap_err();
        assert!(matches!(err, LedgerError::Locked { .. }), "{err}");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn a_planted_temp_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ledger.json");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("ledger.json.tmp")).unwrap();
        let (f, l, _) = LedgerFile::open(&p, t(0)).unwrap();
        f.save(&l).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(read_only(&p).unwrap(), Some(l));
    }

    #[test]
    fn corrupt_ledgers_within_one_second_are_all_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ledger.json");
        let mut moved = Vec::new();
        for i in 0..3 {
            std::fs::write(&p, format!("junk {i}")).unwrap();
            let (_f, _, rep) = LedgerFile::open(&p, t(0)).unwrap();
            match rep {
                OpenReport::Quarantined { moved_to, .. } => moved.push(moved_to),
                other => panic!("{other:?}"),
            }
        }
        for (i, m) in moved.iter().enumerate() {
            assert_eq!(std::fs::read_to_string(m).unwrap(), format!("junk {i}"));
        }
    }

    #[test]
    fn the_agent_cannot_grow_its_own_ledger_past_what_it_reads() {
        let mut l = Ledger::default();
        l.ensure_episode(&[Problem::KubeletUnhealthy].into(), t(0));
        let big = "m".repeat(110 * 1024);
        for i in 0..1000 {
            l.begin_attempt("report", ActionKind::Report, t(i), None);
            l.finish_attempt(Outcome::Succeeded, Some(big.clone()), t(i));
            l.set_hold("x", "Gate", &big, t(i));
        }
        let ep = l.episode.as_ref().unwrap();
        assert!(ep.attempts.len() <= MAX_ATTEMPTS);
        let bytes = serde_json::to_vec_pretty(&l).unwrap();
        assert!(bytes.len() < 512 * 1024, "{}", bytes.len());
        assert!(decode(&bytes).is_ok());
    }

    #[test]
    fn a_fifo_or_device_ledger_does_not_hang() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ledger.json");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(read_only(&p).unwrap_err().contains("FIFO"));
        let (_f, l, rep) = LedgerFile::open(&p, t(0)).unwrap();
        assert!(matches!(rep, OpenReport::Quarantined { .. }), "{rep:?}");
        assert!(l.reboot_history_lost.is_some());
    }

    #[test]
    fn interrupted_steps_are_closed_but_reboots_and_drains_are_not() {
        let mut l = Ledger::default();
        l.ensure_episode(&[Problem::KubeletUnhealthy].into(), t(0));
        l.begin_attempt("x", ActionKind::Exec, t(1), None);
        l.begin_attempt("d", ActionKind::Drain, t(2), None);
        assert_eq!(l.close_interrupted(t(3)), 1);
        let a = &l.episode.as_ref().unwrap().attempts;
        assert!(matches!(a[0].outcome, Outcome::Interrupted(_)));
        assert_eq!(a[1].outcome, Outcome::InProgress);
    }

    #[test]
    fn read_only_never_moves_anything() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ledger.json");
        assert_eq!(read_only(&p).unwrap(), None);
        std::fs::write(&p, "garbage").unwrap();
        assert!(read_only(&p).unwrap_err().contains("corrupt ledger"));
        assert_eq!(std::fs::read(&p).unwrap(), b"garbage");
    }

    #[test]
    fn reboot_is_confirmed_by_a_new_boot_id_only() {
        let mut l = Ledger::default();
        l.ensure_episode(&[Problem::KubeletUnhealthy].into(), t(0));
        l.begin_attempt("reboot", ActionKind::Reboot, t(1), None);
        l.record_reboot("boot-a", t(1));
        assert!(!l.reconcile_boot("boot-a", t(2)));
        assert_eq!(
            l.episode.as_ref().unwrap().attempts[0].outcome,
            Outcome::InProgress
        );
        assert!(l.reconcile_boot("boot-b", t(60)));
        assert_eq!(
            l.episode.as_ref().unwrap().attempts[0].outcome,
            Outcome::Succeeded
        );
        assert_eq!(l.reboots[0].confirmed_boot_id.as_deref(), Some("boot-b"));
        assert!(!l.reconcile_boot("boot-b", t(61)));
    }

    #[test]
    fn windows_count_reboots_and_starts() {
        let mut l = Ledger::default();
        l.record_reboot("a", t(0));
        l.record_reboot("b", t(3600));
        assert_eq!(l.reboots_within(Dur::from_secs(6 * 3600), t(5 * 3600)), 2);
        assert_eq!(
            l.reboots_within(Dur::from_secs(6 * 3600), t(6 * 3600 + 1)),
            1
        );
        l.begin_attempt("x", ActionKind::RestartUnit, t(0), None);
        l.begin_attempt("x", ActionKind::RestartUnit, t(100), None);
        assert_eq!(l.starts_within("x", Dur::from_secs(60), t(120)).len(), 1);
    }

    #[test]
    fn closed_episodes_are_bounded() {
        let mut l = Ledger::default();
        for i in 0..50 {
            l.ensure_episode(&[Problem::ClockSkewed].into(), t(i));
            l.close_episode("recovered", t(i));
        }
        assert_eq!(l.closed.len(), CLOSED_MAX);
        assert_eq!(l.closed.last().unwrap().started_at, t(49));
    }
}
