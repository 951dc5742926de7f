//! `restartTimeSync`: restart the time-sync daemon that is running, never start one.
//!
//! Taking the first candidate that is merely *loaded* breaks real nodes:
//! on EL7 with chrony installed but ntpd running, starting chronyd stops ntpd
//! (chronyd.service has `Conflicts=ntpd.service`); on Ubuntu with ntp,
//! systemd-timesyncd's `ConditionFileIsExecutable=!/usr/sbin/ntpd` skips it and
//! the step fails. So the candidate whose `ActiveState` is `active` is
//! restarted (the planned one first, if it is); when none is running, nothing
//! is started and the step fails with every candidate's state.

use std::time::Duration;

use super::ActError;
use crate::host::systemd::Systemd;

/// How long one candidate's state may take over D-Bus.
const STATE_DEADLINE: Duration = Duration::from_secs(3);

/// The running time-sync unit among `candidates` (`planned` looked at first).
pub async fn running(
    systemd: &dyn Systemd,
    planned: &str,
    candidates: &[String],
) -> Result<String, ActError> {
    let mut order: Vec<&str> = vec![planned];
    order.extend(
        candidates
            .iter()
            .map(String::as_str)
            .filter(|c| *c != planned),
    );
    let mut seen = Vec::new();
    for unit in order {
        match tokio::time::timeout(STATE_DEADLINE, systemd.unit_status(unit)).await {
            Ok(Ok(st)) if st.active_state == "active" => return Ok(unit.to_string()),
            Ok(Ok(st)) => seen.push(format!("{unit} {}/{}", st.load_state, st.active_state)),
            Ok(Err(e)) => seen.push(format!("{unit}: {e}")),
            Err(_) => seen.push(format!("{unit}: no answer within {STATE_DEADLINE:?}")),
        }
    }
    Err(ActError::Failed(format!(
        "no time-sync daemon is running ({}); nodewarden starts none (starting one can stop another through Conflicts=)",
        seen.join(", ")
    )))
}

#[cfg(test)]
mod tests;
