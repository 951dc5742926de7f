//! An episode's lifecycle: opened, attempts begun and finished, holds,
//! exhaustion, closing; what a stopped agent left in progress; pruning.

use std::collections::BTreeSet;

use crate::domain::{Dur, Problem, Timestamp};
use crate::runbook::ActionKind;

use super::*;

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

    pub(super) fn prune(&mut self, now: Timestamp) {
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
