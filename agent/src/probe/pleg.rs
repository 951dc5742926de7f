//! PLEG: `PLEG is not healthy: pleg was last seen active 3m5.1s ago; threshold is 3m0s`, from
//! the kubelet unit's journal (since the unit last started, within the runbook's `window`)
//! and from the node's Ready condition message.
//!
//! The journal is read with `journalctl -u UNIT --since @EPOCH -o json --no-pager` as a child
//! process under a deadline (killed when it runs out); lines are filtered before they are
//! decoded, so a chatty kubelet costs a substring search per line, and memory stays bounded.
//! Both kubelet formats are recognised: the klog structured
//! `"Skipping pod synchronization" err="PLEG is not healthy: …"` line and the
//! `"Node became not ready" … condition={…"message":"PLEG is not healthy: …"}` line. The same
//! stall is logged many times (every sync loop, in both formats): reports are collapsed to
//! distinct "last seen" values.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::domain::{Dur, Problem, Timestamp};
use crate::health::{Observation, Verdict};
use crate::host::systemd::{Systemd, SystemdError};
use crate::runbook::PlegProbe as Settings;

use super::io;
use super::pleg_journal::{JOURNAL_EVERY, JournalMemory, cursor_of, journal_due};
use super::{ApiFuture, Probe, ProbeFuture, budget, elapsed_since};

/// The node's Ready condition message, as the API server has it. The lead implements this
/// with kube; `None` when the node or its Ready condition does not exist.
pub trait ReadyConditionSource: Send + Sync {
    fn ready_message(&self) -> ApiFuture<'_, Option<String>>;
    /// The Node's `status.nodeInfo` `(containerRuntimeVersion, kubeletVersion)`,
    /// which the kubelet reports (runtime detection, `probe::layout`).
    fn node_info(&self) -> ApiFuture<'_, (String, String)> {
        Box::pin(async { Err("the Node is not watched here".to_string()) })
    }
}

const MARKER: &str = "PLEG is not healthy";

/// One `PLEG is not healthy` report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlegReport {
    /// "pleg was last seen active X ago".
    pub last_seen: Dur,
    /// "threshold is Y", when stated.
    pub threshold: Option<Dur>,
}

/// Find and parse the PLEG report in a kubelet message (klog text or condition JSON, quotes
/// escaped or not).
pub fn parse_report(msg: &str) -> Option<PlegReport> {
    let at = msg.find(MARKER)?;
    let rest = &msg[at..];
    const SEEN: &str = "last seen active ";
    let s = rest.find(SEEN)? + SEEN.len();
    let rest = &rest[s..];
    let end = rest.find(' ').unwrap_or(rest.len());
    let last_seen = parse_go_duration(&rest[..end])?;
    const THR: &str = "threshold is ";
    let threshold = rest.find(THR).and_then(|t| {
        let r = &rest[t + THR.len()..];
        let end = r
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == 'µ'))
            .unwrap_or(r.len());
        parse_go_duration(&r[..end])
    });
    Some(PlegReport {
        last_seen,
        threshold,
    })
}

/// Parse a Go `time.Duration` string: `3m5.123s`, `1h2m`, `45.5s`, `300ms`, `1.5µs`, `0s`.
pub fn parse_go_duration(s: &str) -> Option<Dur> {
    let s = s.trim();
    if s == "0" {
        return Some(Dur::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(n);
        let u = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(u);
        let per: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut v = int.checked_mul(per)?;
        if !frac.is_empty() {
            let digits = frac.len().min(18);
            let f: u128 = frac[..digits].parse().ok()?;
            v += f * per / 10u128.pow(digits as u32);
        }
        total = total.checked_add(v)?;
        rest = tail;
    }
    let d = std::time::Duration::new(
        u64::try_from(total / 1_000_000_000).ok()?,
        (total % 1_000_000_000) as u32,
    );
    (d <= crate::domain::MAX_DURATION).then_some(Dur::from_std(d))
}

/// What the journal showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalScan {
    /// Lines that carried a PLEG report.
    pub lines: usize,
    /// Distinct "last seen" values (duplicates collapsed).
    pub distinct: BTreeSet<Dur>,
    /// The largest "last seen", and when it was logged.
    pub worst: Option<(Dur, Option<Timestamp>)>,
    /// The latest report's time.
    pub latest: Option<Timestamp>,
    /// Entries before this are ignored (`--since` has whole-second resolution).
    pub since: Option<Timestamp>,
    /// Every report fed, with its time (at most [`MAX_FOUND`]), for the
    /// probe's memory between rounds (`pleg_journal`).
    pub found: Vec<(Option<Timestamp>, PlegReport)>,
}

/// Reports one scan keeps for the memory (a stall logs one per sync loop).
const MAX_FOUND: usize = 4096;

impl JournalScan {
    /// Feed one `journalctl -o json` line.
    pub fn feed_json(&mut self, line: &str) {
        // cheap filter first; non-UTF-8 messages come as byte arrays and are decoded to check
        if !line.contains(MARKER) && !line.contains("\"MESSAGE\":[") {
            return;
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        let msg = match v.get("MESSAGE") {
            Some(serde_json::Value::String(s)) => s.clone(),
            // journald stores non-UTF-8 messages as byte arrays
            Some(serde_json::Value::Array(a)) => {
                let b: Vec<u8> = a
                    .iter()
                    .filter_map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
                    .collect();
                String::from_utf8_lossy(&b).into_owned()
            }
            _ => return,
        };
        let at = v
            .get("__REALTIME_TIMESTAMP")
            .and_then(|t| t.as_str())
            .and_then(|t| t.parse::<i64>().ok())
            .and_then(|us| Timestamp::from_microsecond(us).ok());
        if let (Some(at), Some(since)) = (at, self.since)
            && at < since
        {
            return;
        }
        self.feed_message(&msg, at);
    }

    /// Feed one message (klog text) logged at `at`.
    pub fn feed_message(&mut self, msg: &str, at: Option<Timestamp>) {
        let Some(r) = parse_report(msg) else { return };
        if self.found.len() < MAX_FOUND {
            self.found.push((at, r));
        }
        self.feed_report(r, at);
    }

    /// Count one report logged at `at`.
    pub fn feed_report(&mut self, r: PlegReport, at: Option<Timestamp>) {
        self.lines += 1;
        self.distinct.insert(r.last_seen);
        if self.worst.is_none_or(|(w, _)| r.last_seen > w) {
            self.worst = Some((r.last_seen, at));
        }
        if let Some(at) = at
            && self.latest.is_none_or(|l| at > l)
        {
            self.latest = Some(at);
        }
    }
}

/// The PLEG probe.
pub struct PlegCheck {
    pub settings: Settings,
    /// The kubelet unit (from the kubelet probe's settings).
    pub unit: String,
    pub systemd: Arc<dyn Systemd>,
    pub ready: Arc<dyn ReadyConditionSource>,
    pub journalctl: PathBuf,
    /// `journalctl -D DIR` (tests, or a node's journal mounted elsewhere); `None` = the system journal.
    pub journal_dir: Option<PathBuf>,
    /// Run `journalctl` chrooted into this directory: the host's own journalctl on the
    /// host's journal, from a pod with the host's root mounted (`--host-root`).
    pub host_root: Option<PathBuf>,
    /// The journal read so far (cursor, reports): `pleg_journal`.
    pub journal: Mutex<JournalMemory>,
}

impl PlegCheck {
    async fn run_inner(&self, now: Timestamp) -> Observation {
        let started = tokio::time::Instant::now();
        let deadline = budget(self.settings.timing.timeout);
        let p = Problem::PlegUnhealthy;
        let threshold = self.settings.threshold;
        let window_start = self.settings.window.before(now);

        // since the unit last started, within the window
        let (unit_state, since) =
            match tokio::time::timeout(deadline / 2, self.systemd.unit_status(&self.unit)).await {
                Ok(Ok(st)) => {
                    let since = match st.inactive_exit {
                        Some(t) if t > window_start => t,
                        _ => window_start,
                    };
                    (Ok(st), since)
                }
                Ok(Err(e)) => (Err(e), window_start),
                Err(_) => (
                    Err(SystemdError::Timeout {
                        what: format!("no answer about {}", self.unit),
                        after: deadline / 2,
                    }),
                    window_start,
                ),
            };
        if let Err(SystemdError::NotFound { unit }) = &unit_state {
            return Observation::new(p, now, Verdict::Unknown, format!("{unit} not found"))
                .with("unit", format!("{unit} not found"))
                .took(elapsed_since(started));
        }

        // The Ready condition first (from the node watch: no API call); it
        // decides whether the journal must be read this round.
        let ready = match tokio::time::timeout(deadline, self.ready.ready_message()).await {
            Ok(r) => r,
            Err(_) => Err(format!("timed out after {}", io::fmt_secs(deadline))),
        };
        let ready_quiet = matches!(&ready, Ok(Some(m)) if parse_report(m).is_none());
        let mono = std::time::Instant::now();
        let (due, cursor) = {
            let m = self.journal.lock().unwrap_or_else(|e| e.into_inner());
            (
                journal_due(m.last_read, mono, ready_quiet),
                m.cursor.clone(),
            )
        };
        let read_note = if due {
            let mut scan = JournalScan {
                since: Some(since),
                ..JournalScan::default()
            };
            let mut last_cursor: Option<String> = None;
            let since_arg = format!("@{}", since.as_second());
            let mut args: Vec<&str> = Vec::new();
            let dir;
            if let Some(d) = &self.journal_dir {
                dir = d.display().to_string();
                args.extend(["-D", dir.as_str()]);
            }
            args.extend(["-u", self.unit.as_str()]);
            match &cursor {
                Some(c) => args.extend(["--after-cursor", c.as_str()]),
                None => args.extend(["--since", since_arg.as_str()]),
            }
            args.extend(["-o", "json", "--no-pager", "-q"]);
            let left = deadline.saturating_sub(started.elapsed());
            let r = io::run_lines_in(
                self.host_root.as_deref(),
                &self.journalctl,
                &args,
                left,
                |l| {
                    scan.feed_json(l);
                    if let Some(c) = cursor_of(l) {
                        last_cursor = Some(c.to_string());
                    }
                },
            )
            .await;
            let error = match &r {
                Ok(f) if f.success => None,
                Ok(f) => Some(format!(
                    "journalctl exited with {}: {}",
                    f.code.map(|c| c.to_string()).unwrap_or("a signal".into()),
                    f.stderr
                )),
                Err(e) => Some(format!("unreadable: {e}")),
            };
            let mut m = self.journal.lock().unwrap_or_else(|e| e.into_inner());
            let from = if cursor.is_none() { Some(since) } else { None };
            m.absorb(std::mem::take(&mut scan.found), from);
            match (&error, last_cursor) {
                // What was read is kept, and the next read resumes after it.
                (_, Some(c)) => m.cursor = Some(c),
                // A failed read that got nowhere: perhaps the cursor is gone
                // (journal rotated); start again from `--since`.
                (Some(_), None) => m.cursor = None,
                (None, None) => {}
            }
            m.last_read = if error.is_none() { Some(mono) } else { None };
            m.last_error = error;
            None
        } else {
            let m = self.journal.lock().unwrap_or_else(|e| e.into_inner());
            m.last_read.map(|t| {
                format!(
                    "not read this round: read {} ago; every {} while the Ready condition has no PLEG report",
                    io::fmt_secs(mono.saturating_duration_since(t)),
                    io::fmt_secs(JOURNAL_EVERY)
                )
            })
        };
        let (scan, journal_error) = {
            let mut m = self.journal.lock().unwrap_or_else(|e| e.into_inner());
            m.prune(window_start);
            (m.scan_since(since), m.last_error.clone())
        };

        let mut o = Observation::new(p, now, Verdict::Healthy, "");
        o = o.with("since", since);
        match &unit_state {
            Ok(st) => o = o.with("unit", format!("{}/{}", st.active_state, st.sub_state)),
            Err(e) => o = o.with("unit", format!("unknown: {e}")),
        }
        if let Some(n) = read_note {
            o = o.with("journalRead", n);
        }
        let journal_ok = match journal_error {
            None => true,
            Some(e) => {
                o = o.with("journal", e);
                false
            }
        };
        let mut failing = Vec::new();
        if journal_ok {
            match scan.worst {
                None => o = o.with("journal", "no PLEG reports"),
                Some((worst, at)) => {
                    o = o.with(
                        "journal",
                        format!(
                            "{} PLEG reports ({} distinct), worst: last seen active {} ago{}",
                            scan.lines,
                            scan.distinct.len(),
                            worst,
                            at.map(|t| format!(" at {t}")).unwrap_or_default()
                        ),
                    );
                    if worst >= threshold {
                        failing.push(format!(
                            "kubelet journal: PLEG last seen active {worst} ago (threshold {threshold})"
                        ));
                    }
                }
            }
        } else if let Some((worst, _)) = scan.worst
            && worst >= threshold
        {
            // a partial read (timed out) that already found a stall still counts
            failing.push(format!(
                "kubelet journal (partial read): PLEG last seen active {worst} ago"
            ));
        }
        let ready_known = match &ready {
            Ok(Some(m)) => {
                match parse_report(m) {
                    Some(r) => {
                        o = o.with("readyCondition", m.chars().take(200).collect::<String>());
                        if r.last_seen >= threshold {
                            failing.push(format!(
                                "Ready condition: PLEG last seen active {} ago",
                                r.last_seen
                            ));
                        }
                    }
                    None => o = o.with("readyCondition", "no PLEG message"),
                }
                true
            }
            Ok(None) => {
                o = o.with("readyCondition", "no Ready condition");
                true
            }
            Err(e) => {
                o = o.with("readyCondition", format!("unknown: {e}"));
                false
            }
        };
        o.verdict = if !failing.is_empty() {
            Verdict::Failing
        } else if journal_ok || ready_known {
            Verdict::Healthy
        } else {
            Verdict::Unknown
        };
        o.summary = match o.verdict {
            Verdict::Failing => failing.join("; "),
            Verdict::Healthy => format!("no PLEG stall at or past {threshold} since {}", since),
            Verdict::Unknown => {
                "could not read the kubelet journal nor the Ready condition".to_string()
            }
        };
        o.took(elapsed_since(started))
    }
}

impl Probe for PlegCheck {
    fn problem(&self) -> Problem {
        Problem::PlegUnhealthy
    }
    fn run(&self, now: Timestamp) -> ProbeFuture<'_> {
        Box::pin(self.run_inner(now))
    }
    fn timeout_verdict(&self) -> Verdict {
        // a slow journal says nothing about PLEG
        Verdict::Unknown
    }
}

#[cfg(test)]
mod tests;
