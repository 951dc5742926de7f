//! Harness for the real-systemd testbed (`tests/testbed/`): boots systemd as PID 1 of an
//! nspawn container (fake kubelet / docker / chronyd inside, system bus exposed to the host),
//! and stops it again on drop.
//!
//! ```ignore
//! let Some(tb) = Testbed::boot_or_skip("my_test", TestbedConfig::default()) else { return };
//! let sd = DbusSystemd::new(DbusOptions { address: Some(tb.bus_address()), ..Default::default() });
//! tb.set_mode("kubelet", "start-fail");
//! let out = tb.exec(&["systemctl", "is-active", "kubelet.service"]);
//! let log = tb.journal("kubelet.service");
//! ```
//!
//! Where the rootfs comes from: `$NODEWARDEN_TESTBED_ROOTFS`, else `<repo>/.testbed/rootfs`
//! (build it with `tests/testbed/setup-rootfs.sh <repo>/.testbed/rootfs`, ~70 s). Without a
//! rootfs (or without root) the test prints a `SKIP` line and returns, unless
//! `NODEWARDEN_REQUIRE_TESTBED` is set: then that is a failure. `NODEWARDEN_TESTBED_KEEP=1`
//! keeps the testbed folder (journal, console log) of each test for post-mortems.
//!
//! Only one testbed runs at a time on a host (its fake services use host-wide ports):
//! booting takes an exclusive `flock` on `/tmp/nodewarden-testbed.lock`, held until drop, so
//! tests in parallel threads and parallel test binaries queue up.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Lock file serialising testbeds host-wide.
pub const LOCK_FILE: &str = "/tmp/nodewarden-testbed.lock";

/// What to set up before the first boot.
#[derive(Debug, Default, Clone)]
pub struct TestbedConfig {
    /// Files copied into `/etc/systemd/system` before boot, as (relative path, content).
    /// Top-level unit files are enabled (e.g. `("nodewarden.service", UNIT)`); drop-ins go
    /// in `<unit>.d/` (e.g. `("kubelet.service.d/50-test.conf", "[Service]\nTimeoutStartSec=5\n")`).
    pub extra_units: Vec<(String, String)>,
    /// Host directory bound read-only at `/opt/agent` (e.g. the folder of the built binary).
    pub agent_dir: Option<PathBuf>,
    /// Initial `ctl/` files, e.g. `("docker.mode", "hang")`, `("kubelet.pleg", "on")`.
    pub ctl: Vec<(String, String)>,
}

/// A running testbed. Dropping it powers the container off and cleans up.
pub struct Testbed {
    dir: PathBuf,
    scripts: PathBuf,
    keep: bool,
    stopped: bool,
    /// How long `boot.sh` took.
    pub boot_time: Duration,
    _lock: File,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("agent/ has a parent")
        .to_path_buf()
}

/// The cached rootfs, if it exists.
pub fn rootfs() -> Option<PathBuf> {
    let p = std::env::var_os("NODEWARDEN_TESTBED_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".testbed/rootfs"));
    p.join("lib/systemd/systemd").exists().then_some(p)
}

pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn required() -> bool {
    std::env::var_os("NODEWARDEN_REQUIRE_TESTBED").is_some_and(|v| !v.is_empty() && v != "0")
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

impl Testbed {
    /// Boot a testbed, or print `SKIP <test>: <why>` and return `None` when the rootfs is
    /// missing or we are not root (a panic instead when `NODEWARDEN_REQUIRE_TESTBED` is set).
    pub fn boot_or_skip(test: &str, cfg: TestbedConfig) -> Option<Testbed> {
        let why = if !is_root() {
            Some("the testbed needs root (systemd-nspawn, mounts, cgroups)".to_string())
        } else if rootfs().is_none() {
            Some(format!(
                "no testbed rootfs (set NODEWARDEN_TESTBED_ROOTFS or run tests/testbed/setup-rootfs.sh {})",
                repo_root().join(".testbed/rootfs").display()
            ))
        } else {
            None
        };
        if let Some(why) = why {
            assert!(
                !required(),
                "NODEWARDEN_REQUIRE_TESTBED is set but {test} cannot run: {why}"
            );
            // straight to fd 2: libtest captures print!/eprint! of passing tests
            let _ = writeln!(std::io::stderr().lock(), "SKIP {test}: {why}");
            return None;
        }
        Some(Self::boot(test, cfg))
    }

    /// Boot a testbed (panics if that fails).
    pub fn boot(test: &str, cfg: TestbedConfig) -> Testbed {
        let rootfs = rootfs().expect("testbed rootfs");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK_FILE)
            .unwrap_or_else(|e| panic!("opening {LOCK_FILE}: {e}"));
        lock.lock()
            .unwrap_or_else(|e| panic!("locking {LOCK_FILE}: {e}"));

        let dir = std::env::temp_dir().join(format!("nodewarden-tb-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("ctl")).expect("creating the testbed folder");
        for (name, content) in &cfg.ctl {
            fs::write(dir.join("ctl").join(name), content).expect("writing a ctl file");
        }
        let scripts = repo_root().join("tests/testbed");
        let mut cmd = Command::new(scripts.join("boot.sh"));
        cmd.arg(&dir).env("TB_ROOTFS", &rootfs);
        if !cfg.extra_units.is_empty() {
            let extra = dir.join("extra-units");
            for (rel, content) in &cfg.extra_units {
                let p = extra.join(rel);
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(&p, content).unwrap();
            }
            cmd.env("TB_EXTRA_UNITS", &extra);
        }
        if let Some(a) = &cfg.agent_dir {
            cmd.env("AGENT_DIR", a);
        }
        let mut tb = Testbed {
            dir,
            scripts,
            keep: std::env::var_os("NODEWARDEN_TESTBED_KEEP").is_some_and(|v| v == "1"),
            stopped: false,
            boot_time: Duration::ZERO,
            _lock: lock,
        };
        let t0 = Instant::now();
        let out = run(&mut cmd);
        tb.boot_time = t0.elapsed();
        if !out.status.success() {
            // Drop stops whatever half-started
            panic!(
                "testbed boot failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        eprintln!(
            "[testbed] {test}: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
        tb
    }

    /// The testbed folder (`TB_DIR`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `DBUS_SYSTEM_BUS_ADDRESS` of the container's system bus, as seen from the host.
    pub fn bus_address(&self) -> String {
        format!(
            "unix:path={}",
            self.dir.join("bus/system_bus_socket").display()
        )
    }

    /// Host path of the fake docker's Engine API socket (`/run/docker.sock` inside).
    pub fn docker_socket(&self) -> PathBuf {
        self.dir.join("run/docker.sock")
    }

    /// The booted root as seen from the host.
    pub fn root(&self) -> PathBuf {
        PathBuf::from(
            fs::read_to_string(self.dir.join("state/root"))
                .unwrap()
                .trim(),
        )
    }

    /// Write `ctl/<file>` (seen as `/srv/testctl/<file>` inside).
    pub fn set_ctl(&self, file: &str, content: &str) {
        let mut f = File::create(self.dir.join("ctl").join(file)).unwrap();
        writeln!(f, "{content}").unwrap();
    }

    /// Set the behaviour of a fake service: `ok`, `fail`, `hang`, `hang-accept`,
    /// `start-fail`, `start-hang`.
    pub fn set_mode(&self, service: &str, mode: &str) {
        self.set_ctl(&format!("{service}.mode"), mode);
    }

    /// Run `argv` inside the container (tb-exec.sh: all namespaces, clean environment).
    pub fn exec(&self, argv: &[&str]) -> Output {
        run(Command::new(self.scripts.join("tb-exec.sh"))
            .args(argv)
            .env("TB_DIR", &self.dir))
    }

    /// Run `argv` inside; panic unless it succeeds; its stdout, trimmed.
    pub fn exec_ok(&self, argv: &[&str]) -> String {
        let out = self.exec(argv);
        assert!(
            out.status.success(),
            "{argv:?} in the testbed failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The journal of `unit` (all boots), read from the host with `journalctl -D`.
    pub fn journal(&self, unit: &str) -> String {
        let out = run(Command::new("journalctl")
            .arg("-D")
            .arg(self.root().join("var/log/journal"))
            .args(["-u", unit, "-o", "cat", "--no-pager", "-q"]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait until `unit`'s journal contains `needle`.
    pub fn wait_journal(&self, unit: &str, needle: &str, timeout: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if self.journal(unit).contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// The container's current boot ID.
    pub fn boot_id(&self) -> String {
        self.exec_ok(&["cat", "/proc/sys/kernel/random/boot_id"])
    }

    /// How many times the container has booted since `boot` (1 before any reboot).
    pub fn boots(&self) -> usize {
        fs::read_to_string(self.dir.join("state/boots.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.ends_with(" start"))
            .count()
    }

    /// `SystemState` of the container's systemd (`running`, `degraded`, `starting`, ...),
    /// `None` when the bus does not answer.
    pub fn system_state(&self) -> Option<String> {
        let out = run(Command::new("busctl").args([
            &format!("--address={}", self.bus_address()),
            "--timeout=2",
            "get-property",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "SystemState",
        ]));
        out.status.success().then(|| {
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .trim_start_matches("s ")
                .trim_matches('"')
                .to_string()
        })
    }

    /// Wait until the container rebooted (a boot ID other than `old_boot_id`, systemd up
    /// again); returns the new boot ID.
    pub fn wait_for_reboot(&self, old_boot_id: &str, timeout: Duration) -> String {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if self.dir.join("state/leader.pid").exists()
                && matches!(self.system_state().as_deref(), Some("running" | "degraded"))
            {
                let out = self.exec(&["cat", "/proc/sys/kernel/random/boot_id"]);
                let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if out.status.success() && !id.is_empty() && id != old_boot_id {
                    return id;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "the testbed did not come back from a reboot within {timeout:?}; boots.log:\n{}",
            fs::read_to_string(self.dir.join("state/boots.log")).unwrap_or_default()
        );
    }

    /// `ActiveState` of `unit`, from inside (systemctl; test-side only).
    pub fn active_state(&self, unit: &str) -> String {
        let out = self.exec(&["systemctl", "show", "-P", "ActiveState", unit]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Wait until `unit` is active (test-side, via systemctl inside).
    pub fn wait_active(&self, unit: &str, timeout: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if self.active_state(unit) == "active" {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// Power off and clean up now (also done on drop).
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let mut cmd = Command::new(self.scripts.join("stop.sh"));
        cmd.arg(&self.dir);
        if self.keep {
            cmd.env("TB_KEEP_OVERLAY", "1");
        }
        let out = run(&mut cmd);
        if !out.status.success() {
            eprintln!(
                "[testbed] stop.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if self.keep {
            eprintln!("[testbed] kept {}", self.dir.display());
        } else if run(Command::new("mountpoint")
            .arg("-q")
            .arg(self.dir.join("ov/merged")))
        .status
        .success()
        {
            eprintln!(
                "[testbed] {} is still mounted; leaving {}",
                self.dir.join("ov/merged").display(),
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.stop();
    }
}
