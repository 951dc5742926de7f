//! `maintenance.json`: what is in force, written atomically before every change
//! to the cluster, and what the daemon reads from it each tick.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::Timestamp;
use crate::ledger::MaintenanceRecord;

use super::*;

/// Next to the ledger (`/var/lib/nodewarden/ledger.json`).
pub const DEFAULT_STATE_PATH: &str = "/var/lib/nodewarden/maintenance.json";
pub(super) const SCHEMA: u32 = 1;
const MAX_STATE_BYTES: u64 = 64 * 1024;

/// The maintenance in force on this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InForce {
    pub schema: u32,
    pub node: String,
    pub since: Timestamp,
    pub by: String,
    pub reason: String,
    /// The disruption slot Lease held for the maintenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// When the slot expires if `end` never comes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_expires: Option<Timestamp>,
    /// nodewarden placed the cordon; `end` lifts only such a cordon.
    pub cordoned_by_us: bool,
    /// The node was cordoned by someone else before `start`: `end` leaves it.
    pub was_cordoned: bool,
    /// The drain finished (every pod that had to leave has left).
    pub drained: bool,
    /// The last drain's one-line report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<String>,
    /// Single-replica Deployments scaled up before the drain (`--surge-single-replicas`),
    /// scaled back at `end`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub surged: Vec<Surged>,
}

/// A Deployment nodewarden scaled up for the maintenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Surged {
    pub namespace: String,
    pub name: String,
    /// Its replicas before; restored at `end` if it still has ours.
    pub original: i32,
    pub surged_to: i32,
}

impl InForce {
    /// What the daemon's ledger and planner see.
    pub fn record(&self) -> MaintenanceRecord {
        MaintenanceRecord {
            since: self.since,
            by: self.by.clone(),
            reason: self.reason.clone(),
        }
    }
}

/// The state file, written atomically (temp file, fsync, rename, fsync dir).
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, reason: impl Into<String>) -> MaintError {
        MaintError::State {
            path: self.path.display().to_string(),
            reason: reason.into(),
        }
    }

    /// `Ok(None)`: no maintenance in force.
    pub fn load(&self) -> Result<Option<InForce>, MaintError> {
        use crate::safe_fs::{self, Follow, ReadError};
        // A regular file only (a FIFO must not hang the daemon's tick), bounded.
        let bytes = match safe_fs::read_file(&self.path, MAX_STATE_BYTES, Follow::NoSymlinks) {
            Ok(b) => b,
            Err(ReadError::NotFound) => return Ok(None),
            Err(e) => return Err(self.err(format!("it {e}"))),
        };
        let s: InForce = serde_json::from_slice(&bytes).map_err(|e| self.err(e.to_string()))?;
        if s.schema != SCHEMA {
            return Err(self.err(format!("schema {} is not supported", s.schema)));
        }
        Ok(Some(s))
    }

    pub fn save(&self, s: &InForce) -> Result<(), MaintError> {
        let werr = |source| MaintError::StateWrite {
            path: self.path.display().to_string(),
            source,
        };
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(werr)?;
        let json = serde_json::to_vec_pretty(s).map_err(|e| werr(std::io::Error::other(e)))?;
        crate::safe_fs::write_atomic(&self.path, &json).map_err(|e| werr(e.source))
    }

    pub fn remove(&self) -> Result<(), MaintError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(MaintError::StateWrite {
                path: self.path.display().to_string(),
                source,
            }),
        }
    }
}

/// What the daemon sees each tick: the record, or a pause with the reason
/// when the file cannot be read (a person may be working on the node).
pub fn daemon_view(file: &StateFile) -> Option<MaintenanceRecord> {
    match file.load() {
        Ok(s) => s.map(|s| s.record()),
        Err(e) => Some(MaintenanceRecord {
            since: Timestamp::UNIX_EPOCH,
            by: "unknown".into(),
            reason: format!("{e}; remove or repair it to resume automatic remediation"),
        }),
    }
}
