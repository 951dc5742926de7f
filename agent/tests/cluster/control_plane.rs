//! The real control plane of `shared/realk8s`: located, started once, always
//! stopped (down.sh on drop, also when a scenario panics).
//!
//! Where it is found (like envtest's `KUBEBUILDER_ASSETS`):
//! - `NODEWARDEN_REALK8S`: a folder with `up.sh`, `down.sh` and `bin/`;
//! - else `../shared/realk8s` beside the repository (CI puts `shared/` beside
//!   the clone, read-only: every bit of state goes to a temporary folder
//!   given to the scripts as `REALK8S_DIR`).
//!
//! `REALK8S_BIN` points at other kube-apiserver/kube-controller-manager
//! binaries; `API_PORT`, `ETCD_PORT`, `ETCD_PEER_PORT`, `KCM_PORT` move the
//! ports (defaults 6443, 2379, 2380, 10257); all are passed to up.sh as they
//! are in the environment. `NODEWARDEN_REQUIRE_REALK8S=1` turns a SKIP into a
//! failure (tests/run sets it under CI as root on Debian).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct ControlPlane {
    scripts: PathBuf,
    dir: tempfile::TempDir,
}

/// The repository root (agent/ is one level down).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("agent/ has a parent")
        .to_path_buf()
}

pub fn required() -> bool {
    std::env::var("NODEWARDEN_REQUIRE_REALK8S").is_ok_and(|v| v == "1")
}

fn which(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

/// The scripts folder, or why the tier cannot run here.
pub fn locate() -> Result<PathBuf, String> {
    let dir = match std::env::var_os("NODEWARDEN_REALK8S") {
        Some(d) => PathBuf::from(d),
        None => repo_root().join("../shared/realk8s"),
    };
    if !dir.join("up.sh").is_file() || !dir.join("down.sh").is_file() {
        return Err(format!(
            "no up.sh/down.sh in {} (set NODEWARDEN_REALK8S)",
            dir.display()
        ));
    }
    let bin = std::env::var_os("REALK8S_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("bin"));
    for b in ["kube-apiserver", "kube-controller-manager"] {
        if !bin.join(b).is_file() {
            return Err(format!("no {} (set REALK8S_BIN)", bin.join(b).display()));
        }
    }
    let etcd_ok =
        std::env::var_os("ETCD_BIN").is_some_and(|e| Path::new(&e).is_file()) || which("etcd");
    if !etcd_ok {
        return Err(
            "etcd is not installed (Debian: apt-get install etcd-server etcd-client)".into(),
        );
    }
    for tool in ["etcdctl", "openssl", "curl", "bc", "ss"] {
        if !which(tool) {
            return Err(format!("{tool} is not installed"));
        }
    }
    Ok(dir)
}

impl ControlPlane {
    /// Starts etcd + kube-apiserver + kube-controller-manager in a fresh temporary folder.
    pub fn up(scripts: PathBuf) -> Result<ControlPlane, String> {
        let dir = tempfile::Builder::new()
            .prefix("nodewarden-realk8s.")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let cp = ControlPlane { scripts, dir };
        let out = Command::new("bash")
            .arg(cp.scripts.join("up.sh"))
            .env("REALK8S_DIR", cp.dir.path())
            .output()
            .map_err(|e| format!("up.sh: {e}"))?;
        if !out.status.success() {
            // cp drops here: down.sh stops whatever did start.
            return Err(format!(
                "up.sh failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let say = String::from_utf8_lossy(&out.stdout);
        if let Some(l) = say.lines().rfind(|l| l.contains("control plane up")) {
            eprintln!("realk8s: {l}");
        }
        Ok(cp)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cluster-admin kubeconfig up.sh wrote.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// PID of one of the processes up.sh started.
    pub fn pid(&self, name: &str) -> Option<i32> {
        std::fs::read_to_string(self.dir.path().join(format!("run/pids/{name}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// `etcdctl` against this control plane's etcd.
    pub fn etcdctl(&self, args: &[&str]) -> Result<String, String> {
        let port = std::env::var("ETCD_PORT").unwrap_or_else(|_| "2379".into());
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(format!("http://127.0.0.1:{port}"))
            .args(args)
            .output()
            .map_err(|e| format!("etcdctl: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The last lines of one component's log (for failure messages).
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(format!("run/logs/{name}.log")))
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// The PID up.sh saved for `name` under `dir`.
pub fn pid_in(dir: &Path, name: &str) -> Option<i32> {
    std::fs::read_to_string(dir.join(format!("run/pids/{name}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Stops kube-apiserver (SIGTERM, by its saved PID) and starts it again with
/// the same command line, as up.sh did (own session, same log, PID file
/// updated so down.sh stops the new one). Its watch cache starts empty.
pub fn restart_apiserver(dir: &Path) -> Result<(), String> {
    let pid = pid_in(dir, "kube-apiserver").ok_or("no kube-apiserver pid")?;
    let argv: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map_err(|e| format!("cmdline of {pid}: {e}"))?
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if !argv.first().is_some_and(|a| a.ends_with("kube-apiserver")) {
        return Err(format!("pid {pid} is not kube-apiserver: {argv:?}"));
    }
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .map_err(|e| format!("kill: {e}"))?;
    for _ in 0..200 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pidfile = dir.join("run/pids/kube-apiserver.pid");
    let log = dir.join("run/logs/kube-apiserver.log");
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"pidfile=$1 log=$2; shift 2; setsid bash -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$@" </dev/null >>"$log" 2>&1 & for _ in $(seq 50); do [ -s "$pidfile" ] && break; sleep 0.1; done"#)
        .arg("restart")
        .arg(&pidfile)
        .arg(&log)
        .args(&argv)
        .status()
        .map_err(|e| format!("restart: {e}"))?;
    if !out.success() {
        return Err(format!("restart: {out}"));
    }
    Ok(())
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        match Command::new("bash")
            .arg(self.scripts.join("down.sh"))
            .arg("--wipe")
            .env("REALK8S_DIR", self.dir.path())
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "realk8s: down.sh: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("realk8s: down.sh: {e}"),
        }
    }
}
