//! The `exec` runbook action: a command with no shell, under a deadline.
//!
//! The child runs in its own process group so that a timeout kills the whole
//! tree it started, not only the first process. Output is kept to its last
//! lines for the ledger and the Event.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::domain::Dur;

/// Why an `exec` step failed. The actuators turn it into their `ActError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("{what} did not finish within {after}")]
    Timeout { what: String, after: Dur },
    #[error("{0}")]
    Failed(String),
}

const KEEP_BYTES: usize = 2048;

/// Run `argv` (absolute `argv[0]`, no shell) and wait at most `timeout`.
/// Exit 0 → Ok with a one-line summary; anything else → [`ExecError`].
pub async fn run_argv(argv: &[String], timeout: Dur) -> Result<String, ExecError> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(ExecError::Failed("exec: empty argv".into()));
    };
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ExecError::Failed(format!("exec {prog}: cannot start: {e}")))?;
    let pgid = child.id();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let read_all = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (a, b) = tokio::join!(
            async {
                if let Some(s) = stdout.as_mut() {
                    let _ = s.read_to_end(&mut out).await;
                }
            },
            async {
                if let Some(s) = stderr.as_mut() {
                    let _ = s.read_to_end(&mut err).await;
                }
            }
        );
        let ((), ()) = (a, b);
        (out, err)
    };
    let waited = tokio::time::timeout(timeout.std(), async {
        let (out, err) = read_all.await;
        let status = child.wait().await;
        (status, out, err)
    })
    .await;
    match waited {
        Err(_) => {
            if let Some(pid) = pgid {
                // Kill the whole group the command started.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            Err(ExecError::Timeout {
                what: format!("exec {}", argv.join(" ")),
                after: timeout,
            })
        }
        Ok((Err(e), _, _)) => Err(ExecError::Failed(format!("exec {prog}: wait failed: {e}"))),
        Ok((Ok(status), out, err)) => {
            let tail = tail(&out, &err);
            if status.success() {
                Ok(format!("{prog} exited 0{tail}"))
            } else {
                Err(ExecError::Failed(format!("{prog} {status}{tail}")))
            }
        }
    }
}

fn tail(out: &[u8], err: &[u8]) -> String {
    let pick = if err.iter().any(|b| !b.is_ascii_whitespace()) {
        err
    } else {
        out
    };
    let start = pick.len().saturating_sub(KEEP_BYTES);
    let s = String::from_utf8_lossy(&pick[start..]);
    let last: Vec<&str> = s
        .lines()
        .filter(|l| !l.trim().is_empty())
        .rev()
        .take(3)
        .collect();
    if last.is_empty() {
        String::new()
    } else {
        let mut v: Vec<&str> = last;
        v.reverse();
        format!(": {}", v.join(" | "))
    }
}

#[cfg(test)]
mod tests;
