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
        Notifier { target }
    }

    /// A no-op notifier (agents not run by systemd, the fleet simulator).
    pub fn disabled() -> Notifier {
        Notifier { target: None }
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
        self.notify(&format!("READY=1\nSTATUS={}", one_line(status)))
    }
    pub fn status(&self, status: &str) -> std::io::Result<()> {
        self.notify(&format!("STATUS={}", one_line(status)))
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
