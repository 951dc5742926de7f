//! What the PLEG probe remembers of the kubelet's journal between rounds, so
//! that it starts a `journalctl` child rarely and reads only new entries.
//!
//! A `journalctl` child costs about 10 ms of CPU, mostly its own start-up
//! (the dynamic loader), not the reading (docs/benchmarks.md). So:
//!
//! - **Incremental:** each read resumes after the last entry's `__CURSOR`
//!   (`journalctl --after-cursor`); the PLEG reports found are kept, keyed by
//!   time, and dropped once older than the probe's window. A cursor the
//!   journal no longer knows (rotated away, a new journal) makes `journalctl`
//!   fail; the next read starts again from `--since`.
//! - **Less often while the API says all is well:** the kubelet puts the same
//!   `PLEG is not healthy` message into the Node's Ready condition at its next
//!   status update (within its 10 s `nodeStatusUpdateFrequency`), and the
//!   probe reads that condition every round from the node watch, for free.
//!   While it is readable and carries no PLEG report, the journal is read once
//!   per [`JOURNAL_EVERY`]. When the condition is unknown (API unreachable,
//!   watch stale) or mentions PLEG, the journal is read every round, as
//!   before.
//!
//! The cost: while the API is healthy and the Ready condition does not carry
//! the message (a kubelet too stuck to post its status does not keep a fresh
//! condition either: the watch goes on showing the last one), a stall logged
//! only in the journal is seen up to [`JOURNAL_EVERY`] later.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::domain::{Dur, Timestamp};

use super::pleg::{JournalScan, PlegReport};

/// How often the journal is read while the Ready condition says nothing of PLEG.
pub const JOURNAL_EVERY: Duration = Duration::from_secs(120);

/// Reports kept at most (a kubelet logs one per sync loop while PLEG stalls;
/// the oldest go first).
const MAX_REPORTS: usize = 4096;

/// Is a journal read due this round? Pure: the time is an argument.
/// `ready_quiet`: the Ready condition was read and carries no PLEG report.
pub fn journal_due(last_read: Option<Instant>, now: Instant, ready_quiet: bool) -> bool {
    !ready_quiet || last_read.is_none_or(|t| now.saturating_duration_since(t) >= JOURNAL_EVERY)
}

/// The `__CURSOR` of one `journalctl -o json` line, without decoding it.
pub fn cursor_of(line: &str) -> Option<&str> {
    const KEY: &str = "\"__CURSOR\":\"";
    let start = line.find(KEY)? + KEY.len();
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

/// The journal as read so far.
#[derive(Debug, Default)]
pub struct JournalMemory {
    /// Resume after this entry.
    pub cursor: Option<String>,
    /// When the journal was last read in full (successfully).
    pub last_read: Option<Instant>,
    /// The last read's failure, if it failed.
    pub last_error: Option<String>,
    /// PLEG reports by the time they were logged and what they said, with
    /// how many lines said it.
    reports: BTreeMap<(Timestamp, Dur), (PlegReport, usize)>,
    /// Reports without a time (not from journalctl's JSON).
    untimed: Option<PlegReport>,
}

impl JournalMemory {
    /// Keeps what one read found. `from`: the read started at this time
    /// (`--since`) rather than after a cursor, so it replaces what was kept
    /// from then on.
    pub fn absorb(&mut self, found: Vec<(Option<Timestamp>, PlegReport)>, from: Option<Timestamp>) {
        if let Some(from) = from {
            self.reports.retain(|(at, _), _| *at < from);
        }
        for (at, r) in found {
            match at {
                Some(at) => {
                    self.reports.entry((at, r.last_seen)).or_insert((r, 0)).1 += 1;
                }
                None => {
                    if self.untimed.is_none_or(|u| r.last_seen > u.last_seen) {
                        self.untimed = Some(r);
                    }
                }
            }
        }
        while self.reports.len() > MAX_REPORTS {
            self.reports.pop_first();
        }
    }

    /// Forgets reports logged before `from` (the window's start).
    pub fn prune(&mut self, from: Timestamp) {
        self.reports.retain(|(at, _), _| *at >= from);
    }

    /// The reports logged at or after `since`, as one scan.
    pub fn scan_since(&self, since: Timestamp) -> JournalScan {
        let mut scan = JournalScan {
            since: Some(since),
            ..JournalScan::default()
        };
        for ((at, _), (r, n)) in self.reports.iter().filter(|((at, _), _)| *at >= since) {
            for _ in 0..*n {
                scan.feed_report(*r, Some(*at));
            }
        }
        if let Some(r) = self.untimed {
            scan.feed_report(r, None);
        }
        scan
    }
}

#[cfg(test)]
mod tests;
