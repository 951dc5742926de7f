//! The ledger on disk: read (bounded, regular files only), salvaged when it
//! cannot be used, locked against a second agent, written atomically.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{
    CordonRecord, HistoryEntry, HistoryLost, Ledger, MAX_LEDGER_BYTES, MAX_SALVAGE_BYTES,
    RebootRecord, SCHEMA_VERSION, SlotRecord, bounded,
};
use crate::domain::Timestamp;
use crate::safe_fs::{self, Follow, ReadError};

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
    #[error("{path}: {reason}")]
    Unusable { path: String, reason: String },
    #[error("cannot encode ledger: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What happened when the ledger was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenReport {
    Loaded,
    Fresh,
    /// The file could not be used; it was moved to `moved_to` and a fresh
    /// ledger started with what could be salvaged from it (`salvaged` says what).
    Quarantined {
        reason: String,
        moved_to: PathBuf,
        salvaged: String,
    },
}

/// Read a ledger without taking the lock or writing anything (for `status`
/// and `dry-run`). A missing file is a fresh ledger; a corrupt one is an error
/// string, left where it is.
pub fn read_only(path: &Path) -> Result<Option<Ledger>, String> {
    // The daemon works on the resolved path; read what it reads.
    let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    match read_bytes(&resolved) {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => decode(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// What the daemon would start from when it opens `path` at `now`: the ledger,
/// or what it would salvage from a corrupt one (for `dry-run`). Never writes.
pub fn read_as_daemon(path: &Path, now: Timestamp) -> (Ledger, Option<String>) {
    let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let path = resolved.as_path();
    match read_bytes(path) {
        Ok(None) => (Ledger::default(), None),
        Ok(Some(bytes)) => match decode(&bytes) {
            Ok(l) => (l, None),
            Err(reason) => {
                let (l, what) = salvage(path, &reason, now);
                (
                    l,
                    Some(format!(
                        "{}: {reason}; the daemon will move it aside and keep {what}",
                        path.display()
                    )),
                )
            }
        },
        Err(reason) => {
            let (l, what) = salvage(path, &reason, now);
            (
                l,
                Some(format!(
                    "{}: {reason}; the daemon will move it aside and keep {what}",
                    path.display()
                )),
            )
        }
    }
}

/// The ledger file's bytes: `None` when it does not exist; an error for
/// anything but a regular file of at most [`MAX_LEDGER_BYTES`].
fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match safe_fs::read_file(path, MAX_LEDGER_BYTES, Follow::NoSymlinks) {
        Ok(b) => Ok(Some(b)),
        Err(ReadError::NotFound) => Ok(None),
        Err(ReadError::TooLarge { limit }) => Err(format!(
            "ledger is larger than {limit} bytes, larger than any real ledger"
        )),
        Err(e) => Err(format!("cannot read ledger: it {e}")),
    }
}

pub(super) fn decode(bytes: &[u8]) -> Result<Ledger, String> {
    let l: Ledger = serde_json::from_slice(bytes).map_err(|e| format!("corrupt ledger: {e}"))?;
    if l.schema != SCHEMA_VERSION {
        return Err(format!(
            "ledger schema {} is not supported (this nodewarden writes schema {SCHEMA_VERSION})",
            l.schema
        ));
    }
    Ok(l)
}

/// The parts of a ledger worth saving from a file that is otherwise unusable.
/// Every other field is skipped without being kept in memory.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Salvageable {
    #[serde(default)]
    reboots: Option<serde_json::Value>,
    #[serde(default)]
    cordon: Option<serde_json::Value>,
    #[serde(default)]
    slot: Option<serde_json::Value>,
    #[serde(default)]
    history: Option<serde_json::Value>,
    #[serde(default)]
    reboot_history_lost: Option<serde_json::Value>,
}

/// A fresh ledger with the reboot history, cordon ownership, slot and
/// rate-limit history of the unusable ledger at `path`. When the reboot
/// history cannot be read, the cap is marked spent for one window from `now`.
/// Returns the ledger and what was kept, in words.
fn salvage(path: &Path, why: &str, now: Timestamp) -> (Ledger, String) {
    let mut l = Ledger::default();
    let parsed: Result<Salvageable, String> = match safe_fs::open_regular(path, Follow::NoSymlinks)
    {
        Ok(f) => serde_json::from_reader(std::io::BufReader::new(std::io::Read::take(
            f,
            MAX_SALVAGE_BYTES,
        )))
        .map_err(|_| "nothing could be salvaged from it".to_string()),
        Err(e) => Err(format!("it {e}")),
    };
    let mut kept = Vec::new();
    let mut lost = None;
    match parsed {
        Err(e) => lost = Some(e),
        Ok(s) => {
            match s.reboots.map(serde_json::from_value::<Vec<RebootRecord>>) {
                None => {
                    // An empty history is not written as an absent one by any
                    // version, but a missing key is not proof of no reboots.
                    lost = Some("it has no reboot history".into());
                }
                Some(Ok(r)) => {
                    kept.push(format!("{} reboot record(s)", r.len()));
                    l.reboots = r;
                }
                Some(Err(e)) => lost = Some(format!("its reboot history is unreadable: {e}")),
            }
            if let Some(Ok(c)) = s.cordon.map(serde_json::from_value::<CordonRecord>) {
                kept.push(if c.by_us && !c.handed_over {
                    "the cordon nodewarden placed".to_string()
                } else {
                    "the record of a cordon nodewarden must not lift".to_string()
                });
                l.cordon = Some(c);
            }
            if let Some(Ok(sl)) = s.slot.map(serde_json::from_value::<SlotRecord>) {
                kept.push(format!("disruption slot {}", sl.lease));
                l.slot = Some(sl);
            }
            if let Some(Ok(h)) = s.history.map(serde_json::from_value::<Vec<HistoryEntry>>) {
                kept.push("the rate-limit history".into());
                l.history = h;
            }
            if let Some(Ok(h)) = s
                .reboot_history_lost
                .map(serde_json::from_value::<HistoryLost>)
            {
                l.reboot_history_lost = Some(h);
            }
        }
    }
    if let Some(e) = lost {
        let reason = bounded(&format!(
            "ledger {} was unusable ({why}); {e}",
            path.display()
        ));
        l.reboot_history_lost = Some(HistoryLost { at: now, reason });
        kept.push("no reboot history: the reboot cap counts as spent for one window".into());
    }
    l.prune(now);
    (l, kept.join(", "))
}

/// The ledger on disk, held open under an exclusive lock for the agent's lifetime.
///
/// Two locks, so that neither a path alias nor a deleted lock file lets a
/// second agent in: the ledger's directory itself (found through the
/// canonical path, so a symlinked ledger path leads to the same directory;
/// a directory cannot be unlinked while it holds the ledger), and the
/// `ledger.json.lock` file that older versions lock, opened `O_NOFOLLOW` and
/// checked by inode after the lock is taken.
pub struct LedgerFile {
    path: PathBuf,
    _dir_lock: nix::fcntl::Flock<File>,
    _lock: nix::fcntl::Flock<File>,
}

impl std::fmt::Debug for LedgerFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerFile")
            .field("path", &self.path)
            .finish()
    }
}

/// The ledger's path with every symlink resolved: its directory's canonical
/// path and, when the file itself is a symlink, its target's.
fn canonical(path: &Path) -> Result<PathBuf, LedgerError> {
    let io = |op: &'static str| {
        let ps = path.display().to_string();
        move |source| LedgerError::Io {
            path: ps,
            op,
            source,
        }
    };
    let dir = std::fs::canonicalize(safe_fs::parent_dir(path)).map_err(io("resolve directory"))?;
    let name = path.file_name().ok_or_else(|| LedgerError::Unusable {
        path: path.display().to_string(),
        reason: "the ledger path names no file".into(),
    })?;
    let joined = dir.join(name);
    match std::fs::symlink_metadata(&joined) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::canonicalize(&joined).map_err(io("resolve the symlinked ledger"))
        }
        _ => Ok(joined),
    }
}

fn lock_dir(dir: &Path, ps: &str) -> Result<nix::fcntl::Flock<File>, LedgerError> {
    let d = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .map_err(|source| LedgerError::Io {
            path: dir.display().to_string(),
            op: "open ledger directory",
            source,
        })?;
    nix::fcntl::Flock::lock(d, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        LedgerError::Locked {
            path: ps.to_string(),
        }
    })
}

fn lock_file(lock_path: &Path, ps: &str) -> Result<nix::fcntl::Flock<File>, LedgerError> {
    use std::os::unix::fs::MetadataExt;
    let io = |op: &'static str| {
        let lp = lock_path.display().to_string();
        move |source| LedgerError::Io {
            path: lp,
            op,
            source,
        }
    };
    // Bounded: each retry means someone replaced the file between open and lock.
    for _ in 0..5 {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(lock_path)
            .map_err(io("open lock file (it must not be a symlink)"))?;
        let lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|_| LedgerError::Locked {
                path: ps.to_string(),
            })?;
        let held = lock.metadata().map_err(io("stat lock file"))?;
        if !held.file_type().is_file() {
            return Err(LedgerError::Unusable {
                path: lock_path.display().to_string(),
                reason: "the lock file is not a regular file".into(),
            });
        }
        match std::fs::symlink_metadata(lock_path) {
            Ok(m) if m.dev() == held.dev() && m.ino() == held.ino() => return Ok(lock),
            _ => continue,
        }
    }
    Err(LedgerError::Locked {
        path: ps.to_string(),
    })
}

impl LedgerFile {
    /// Lock and load the ledger at `path`, creating its directory. A corrupt
    /// file is moved aside (`ledger.json.corrupt-<unique>`), what can be
    /// salvaged from it is kept, and it is reported.
    pub fn open(
        path: &Path,
        now: Timestamp,
    ) -> Result<(LedgerFile, Ledger, OpenReport), LedgerError> {
        let dir = safe_fs::parent_dir(path);
        std::fs::create_dir_all(&dir).map_err(|source| LedgerError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
        let real = canonical(path)?;
        let ps = real.display().to_string();
        let dir_lock = lock_dir(&safe_fs::parent_dir(&real), &ps)?;
        let lock = lock_file(&lock_path(&real), &ps)?;
        safe_fs::remove_stale_temps(&real);
        let file = LedgerFile {
            path: real.clone(),
            _dir_lock: dir_lock,
            _lock: lock,
        };
        let decoded = match read_bytes(&real) {
            Ok(None) => return Ok((file, Ledger::default(), OpenReport::Fresh)),
            Ok(Some(b)) => decode(&b),
            Err(e) => Err(e),
        };
        match decoded {
            Ok(l) => Ok((file, l, OpenReport::Loaded)),
            Err(reason) => {
                let (salvaged, what) = salvage(&real, &reason, now);
                let moved_to =
                    safe_fs::move_aside(&real, "corrupt").map_err(|source| LedgerError::Io {
                        path: ps.clone(),
                        op: "move corrupt ledger aside",
                        source,
                    })?;
                Ok((
                    file,
                    salvaged,
                    OpenReport::Quarantined {
                        reason,
                        moved_to,
                        salvaged: what,
                    },
                ))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write atomically: a fresh temp file in the same directory (created
    /// exclusively, never through a symlink), fsync, rename over, fsync the
    /// directory. A failed write removes its temp file and leaves the ledger
    /// as it was. A ledger larger than the agent would read back is refused.
    pub fn save(&self, ledger: &Ledger) -> Result<(), LedgerError> {
        let mut json = serde_json::to_vec_pretty(ledger)?;
        json.push(b'\n');
        let ps = self.path.display().to_string();
        if json.len() as u64 > MAX_LEDGER_BYTES {
            return Err(LedgerError::Unusable {
                path: ps,
                reason: format!(
                    "the ledger would be {} bytes, more than the {MAX_LEDGER_BYTES} it may be; not written",
                    json.len()
                ),
            });
        }
        safe_fs::write_atomic(&self.path, &json).map_err(|e| LedgerError::Io {
            path: ps,
            op: e.op,
            source: e.source,
        })
    }
}

fn lock_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.lock", path.display()))
}
