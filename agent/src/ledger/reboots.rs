//! Reboot accounting: each reboot recorded with the boot ID it leaves,
//! confirmed by a new boot ID, and counted against the cap.

use crate::domain::{Dur, Timestamp};
use crate::runbook::ActionKind;

use super::*;

impl Ledger {
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
}
