//! Node-local, durable state: the open episode and its attempts, who cordoned
//! the node, reboot history with boot IDs, rate-limit history.
//!
//! The data model and its transitions are pure (`Ledger` methods take `now`);
//! `LedgerFile` persists it atomically (temp file, fsync, rename, fsync the
//! directory) under an exclusive lock so two agents cannot run on one node.
//! A corrupt or unreadable ledger is moved aside and a fresh one started.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{Dur, Problem, Timestamp};
use crate::runbook::ActionKind;

pub const SCHEMA_VERSION: u32 = 1;
pub const DEFAULT_PATH: &str = "/var/lib/nodewarden/ledger.json";
/// Attempts kept for rate limiting (older ones are pruned).
const HISTORY_KEEP: Dur = Dur::from_secs(8 * 24 * 3600);
const HISTORY_MAX: usize = 512;
const CLOSED_MAX: usize = 20;
const MAX_LEDGER_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "result", content = "reason")]
pub enum Outcome {
    /// Started and not yet finished (or the agent died while it ran).
    InProgress,
    Succeeded,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Exhaustion {
    pub at: Timestamp,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HoldRecord {
    pub step: String,
    pub gate: String,
    pub reason: String,
    pub since: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlotRecord {
    pub lease: String,
    pub acquired_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RebootRecord {
    pub at: Timestamp,
    pub episode: String,
    pub boot_id_before: String,
    /// Set once the agent saw a new boot ID after this reboot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_boot_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HistoryEntry {
    pub step: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EpisodeSummary {
    pub id: String,
    pub started_at: Timestamp,
    pub ended_at: Timestamp,
    pub problems: BTreeSet<Problem>,
    pub steps: Vec<String>,
    pub result: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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
                detail,
            });
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
            a.outcome = outcome;
            a.finished_at = Some(now);
            if detail.is_some() {
                a.detail = detail;
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
                    reason: reason.to_string(),
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
                reason: reason.to_string(),
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
                steps: ep.attempts.iter().map(|a| a.step.clone()).collect(),
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
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{path}: cannot create ledger directory: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: another nodewarden holds the ledger lock; only one agent may run on a node")]
    Locked { path: String },
    #[error("{path}: {op}: {source}")]
    Io {
        path: String,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("cannot encode ledger: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What happened when the ledger was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenReport {
    Loaded,
    Fresh,
    /// The file could not be used; it was moved to `moved_to` and a fresh ledger started.
    Quarantined {
        reason: String,
        moved_to: PathBuf,
    },
}

/// Read a ledger without taking the lock or writing anything (for `status`
/// and `dry-run`). A missing file is a fresh ledger; a corrupt one is an error
/// string, left where it is.
pub fn read_only(path: &Path) -> Result<Option<Ledger>, String> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
        Ok(m) if m.len() > MAX_LEDGER_BYTES => {
            return Err(format!(
                "{}: ledger is {} bytes, larger than any real ledger",
                path.display(),
                m.len()
            ));
        }
        Ok(_) => {}
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    decode(&bytes)
        .map(Some)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn decode(bytes: &[u8]) -> Result<Ledger, String> {
    let l: Ledger = serde_json::from_slice(bytes).map_err(|e| format!("corrupt ledger: {e}"))?;
    if l.schema != SCHEMA_VERSION {
        return Err(format!(
            "ledger schema {} is not supported (this nodewarden writes schema {SCHEMA_VERSION})",
            l.schema
        ));
    }
    Ok(l)
}

/// The ledger on disk, held open under an exclusive lock for the agent's lifetime.
pub struct LedgerFile {
    path: PathBuf,
    _lock: nix::fcntl::Flock<File>,
}

impl std::fmt::Debug for LedgerFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerFile")
            .field("path", &self.path)
            .finish()
    }
}

impl LedgerFile {
    /// Lock and load the ledger at `path`, creating its directory. A corrupt
    /// file is moved aside (`ledger.json.corrupt-<unix seconds>`) and reported.
    pub fn open(
        path: &Path,
        now: Timestamp,
    ) -> Result<(LedgerFile, Ledger, OpenReport), LedgerError> {
        let ps = path.display().to_string();
        let dir = parent_dir(path);
        std::fs::create_dir_all(&dir).map_err(|source| LedgerError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
        let lock_path = lock_path(path);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| LedgerError::Io {
                path: lock_path.display().to_string(),
                op: "open lock file",
                source,
            })?;
        let lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|_| LedgerError::Locked { path: ps.clone() })?;
        let file = LedgerFile {
            path: path.to_path_buf(),
            _lock: lock,
        };
        let bytes = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((file, Ledger::default(), OpenReport::Fresh));
            }
            Ok(m) if m.len() > MAX_LEDGER_BYTES => Err(format!("ledger is {} bytes", m.len())),
            Ok(_) => std::fs::read(path).map_err(|e| format!("cannot read: {e}")),
            Err(e) => Err(format!("cannot stat: {e}")),
        };
        let decoded = bytes.and_then(|b| decode(&b));
        match decoded {
            Ok(l) => Ok((file, l, OpenReport::Loaded)),
            Err(reason) => {
                let moved_to =
                    PathBuf::from(format!("{}.corrupt-{}", path.display(), now.as_second()));
                std::fs::rename(path, &moved_to).map_err(|source| LedgerError::Io {
                    path: ps.clone(),
                    op: "move corrupt ledger aside",
                    source,
                })?;
                Ok((
                    file,
                    Ledger::default(),
                    OpenReport::Quarantined { reason, moved_to },
                ))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write atomically: temp file in the same directory, fsync, rename over, fsync the directory.
    pub fn save(&self, ledger: &Ledger) -> Result<(), LedgerError> {
        let json = serde_json::to_vec_pretty(ledger)?;
        let ps = self.path.display().to_string();
        let io = |op: &'static str| {
            let ps = ps.clone();
            move |source| LedgerError::Io {
                path: ps,
                op,
                source,
            }
        };
        let tmp = PathBuf::from(format!("{}.tmp", self.path.display()));
        {
            let mut f = File::create(&tmp).map_err(io("create temp file"))?;
            f.write_all(&json).map_err(io("write temp file"))?;
            f.write_all(b"\n").map_err(io("write temp file"))?;
            f.sync_all().map_err(io("fsync temp file"))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io("rename temp file over ledger"))?;
        File::open(parent_dir(&self.path))
            .and_then(|d| d.sync_all())
            .map_err(io("fsync ledger directory"))?;
        Ok(())
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn lock_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.lock", path.display()))
}

#[cfg(test)]
mod tests {
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
            assert_eq!(l, Ledger::default());
            match rep {
                OpenReport::Quarantined { moved_to, reason } => {
                    assert_eq!(std::fs::read(&moved_to).unwrap(), junk);
                    assert!(!reason.is_empty());
                    std::fs::remove_file(moved_to).unwrap();
                }
                other => panic!("{other:?}"),
            }
            assert!(!p.exists());
        }
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
