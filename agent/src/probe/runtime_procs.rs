//! Which container-runtime processes exist, remembered between probe rounds.
//!
//! Finding them means listing /proc and reading every process's `stat`: on a
//! node with hundreds of processes that was the largest part of the agent's
//! idle CPU (docs/benchmarks.md, "Where the time goes"). The runtime's
//! processes change rarely (a shim per pod start), so a full scan runs once
//! per [`RESCAN_EVERY`], or at once when the runtime's API did not answer
//! (when a process in D state matters most). In between, each round reads
//! only the `stat` of the processes already known; when one of them ended (or
//! its pid was reused: another start time), the runtime is changing and /proc
//! is listed at once.
//!
//! The cost: a runtime process started after the last full scan is seen in D
//! state up to [`RESCAN_EVERY`] late; with the default `stuckFor: 2m` a new
//! shim stuck in D is reported after at most 3 minutes instead of 2. Processes
//! known at the last scan (dockerd, containerd, the shims of running pods) are
//! seen at every round, as before.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::runtime::{ProcStat, is_runtime_comm};

/// How often /proc is listed to find new runtime processes.
pub const RESCAN_EVERY: Duration = Duration::from_secs(60);

/// Every runtime process now (any state), from a full listing of
/// `proc_root`; a process that vanishes while we read, or whose `stat` does
/// not parse, is skipped. Sorted by pid.
pub fn scan_runtime_processes(proc_root: &Path) -> std::io::Result<Vec<ProcStat>> {
    let all = procfs::process::all_processes_with_root(proc_root).map_err(std::io::Error::other)?;
    let mut out = Vec::new();
    for p in all.flatten() {
        if let Ok(st) = p.stat()
            && is_runtime_comm(&st.comm)
        {
            out.push(proc_stat(st));
        }
    }
    out.sort_by_key(|p| p.pid);
    Ok(out)
}

/// The processes of `known` still alive with the same start time, re-read
/// from their own `stat` files only.
pub fn reread(proc_root: &Path, known: &[ProcStat]) -> Vec<ProcStat> {
    known
        .iter()
        .filter_map(|k| {
            let p =
                procfs::process::Process::new_with_root(proc_root.join(k.pid.to_string())).ok()?;
            let st = p.stat().ok()?;
            (st.starttime == k.start && is_runtime_comm(&st.comm)).then(|| proc_stat(st))
        })
        .collect()
}

fn proc_stat(st: procfs::process::Stat) -> ProcStat {
    ProcStat {
        pid: u32::try_from(st.pid).unwrap_or(0),
        comm: st.comm,
        state: st.state,
        start: st.starttime,
    }
}

/// Is a full scan due? Pure: the time is an argument.
pub fn rescan_due(last_scan: Option<Instant>, now: Instant, runtime_failing: bool) -> bool {
    runtime_failing || last_scan.is_none_or(|t| now.saturating_duration_since(t) >= RESCAN_EVERY)
}

/// The runtime processes known from the last full scan.
#[derive(Debug, Default)]
pub struct RuntimeProcs {
    known: Mutex<(Option<Instant>, Vec<ProcStat>)>,
}

impl RuntimeProcs {
    /// Every runtime process now: a full scan when due, else the known ones re-read.
    /// Blocking (procfs): call on a blocking thread.
    pub fn current(
        &self,
        proc_root: &Path,
        now: Instant,
        runtime_failing: bool,
    ) -> std::io::Result<Vec<ProcStat>> {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if rescan_due(known.0, now, runtime_failing) {
            let all = scan_runtime_processes(proc_root)?;
            *known = (Some(now), all.clone());
            return Ok(all);
        }
        let alive = reread(proc_root, &known.1);
        if alive.len() != known.1.len() {
            // One ended (or its pid was reused): the runtime or its pods are
            // changing, so new processes are likely. Look at once.
            let all = scan_runtime_processes(proc_root)?;
            *known = (Some(now), all.clone());
            return Ok(all);
        }
        known.1.clone_from(&alive);
        Ok(alive)
    }
}

#[cfg(test)]
mod tests;
