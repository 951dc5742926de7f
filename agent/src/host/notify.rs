//! sd_notify(3) without libsystemd: one datagram to `$NOTIFY_SOCKET`.
//!
//! Used for `Type=notify` readiness (`READY=1`), the watchdog (`WATCHDOG=1`),
//! `STOPPING=1` and a one-line `STATUS=` that `systemctl status` shows.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A handle on the service manager's notification socket, if there is one.
#[derive(Debug)]
pub struct Notifier {
    target: Option<SocketAddr>,
    /// The last `STATUS=` sent: the loop sets its status at every iteration (about 36
    /// a minute on an idle node), and each message wakes PID 1; only a change is sent.
    last_status: std::sync::Mutex<Option<String>>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; a no-op notifier when unset (not run by systemd).
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|p| {
            let s = p.to_string_lossy().into_owned();
            if let Some(name) = s.strip_prefix('@') {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes()).ok()
            } else {
                SocketAddr::from_pathname(&s).ok()
            }
        });
        Notifier {
            target,
            last_status: std::sync::Mutex::new(None),
        }
    }

    /// A no-op notifier (agents not run by systemd, the fleet simulator).
    pub fn disabled() -> Notifier {
        Notifier {
            target: None,
            last_status: std::sync::Mutex::new(None),
        }
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Send one notification; errors are returned but callers usually only log them.
    pub fn notify(&self, state: &str) -> std::io::Result<()> {
        let Some(addr) = &self.target else {
            return Ok(());
        };
        let sock = UnixDatagram::unbound()?;
        sock.set_write_timeout(Some(Duration::from_secs(1)))?;
        sock.send_to_addr(state.as_bytes(), addr)?;
        Ok(())
    }

    pub fn ready(&self, status: &str) -> std::io::Result<()> {
        let line = one_line(status);
        self.notify(&format!("READY=1\nSTATUS={line}"))?;
        self.sent_status(line);
        Ok(())
    }
    /// `STATUS=`, sent only when it differs from the last one that was sent.
    pub fn status(&self, status: &str) -> std::io::Result<()> {
        let line = one_line(status);
        if self.last_status_is(&line) {
            return Ok(());
        }
        self.notify(&format!("STATUS={line}"))?;
        self.sent_status(line);
        Ok(())
    }
    fn last_status_is(&self, line: &str) -> bool {
        let last = self.last_status.lock().unwrap_or_else(|e| e.into_inner());
        last.as_deref() == Some(line)
    }
    fn sent_status(&self, line: String) {
        *self.last_status.lock().unwrap_or_else(|e| e.into_inner()) = Some(line);
    }
    pub fn watchdog(&self) -> std::io::Result<()> {
        self.notify("WATCHDOG=1")
    }
    pub fn stopping(&self) -> std::io::Result<()> {
        self.notify("STOPPING=1")
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

/// The watchdog interval systemd asked for (`$WATCHDOG_USEC`), if it is meant for us.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

#[cfg(test)]
mod tests;
