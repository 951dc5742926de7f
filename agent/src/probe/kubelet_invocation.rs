//! What the kubelet was started with: its arguments (the running process's command line,
//! then the kubelet unit's EnvironmentFiles) and its KubeletConfiguration (the file
//! `--config` names). The runtime layout (`runtime::Detector::detect`) and the
//! readiness-drift probes (swap, cgroup driver, eviction thresholds) read the same thing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::yaml::Spanned;
use serde::Deserialize;

use super::runtime::{Detector, blocking, find_pid_by_comm};
use super::{hostfs, layout};

/// The kubelet's arguments and configuration as found on the node.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// Each source of kubelet arguments, in order, and what it held (or why not): the
    /// running kubelet's command line, then `kubeadm-flags.env` and the other
    /// EnvironmentFiles.
    pub args: Vec<(String, Result<Vec<String>, String>)>,
    /// The KubeletConfiguration file: `--config` of the running kubelet, else the default.
    pub config_path: PathBuf,
    /// Its text; `None` when absent or unreadable.
    pub config: Option<String>,
}

/// A value and where it came from, for evidence: `--fail-swap-on=false (kubelet (pid 7)
/// command line)` or `failSwapOn=true (/var/lib/kubelet/config.yaml:14)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    pub source: String,
}

/// The few KubeletConfiguration fields the probes read, with their lines. Unknown fields
/// are ignored (the kubelet's own decoder is strict; this only reads).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeletConfig {
    pub fail_swap_on: Option<Spanned<bool>>,
    pub cgroup_driver: Option<Spanned<String>>,
    pub eviction_hard: Option<Spanned<BTreeMap<String, String>>>,
    pub feature_gates: Option<Spanned<BTreeMap<String, bool>>>,
    /// The serving certificate (`--tls-cert-file`).
    pub tls_cert_file: Option<Spanned<String>>,
    /// Serving certificates from the CSR API (`--rotate-server-certificates`).
    #[serde(rename = "serverTLSBootstrap")]
    pub server_tls_bootstrap: Option<Spanned<bool>>,
    /// Client certificate rotation (`--rotate-certificates`).
    pub rotate_certificates: Option<Spanned<bool>>,
}

impl Invocation {
    /// The sources to believe for flags: the running kubelet's command line when it could
    /// be read (it is what runs), else the EnvironmentFiles (what the next start would use).
    fn flag_sources(&self) -> Vec<&(String, Result<Vec<String>, String>)> {
        match self.args.first() {
            Some(first @ (_, Ok(_))) if first.0.contains("command line") => vec![first],
            _ => self.args.iter().filter(|(_, a)| a.is_ok()).collect(),
        }
    }

    /// `--name`'s value and its source, from the sources to believe.
    pub fn flag(&self, name: &str) -> Option<Setting<String>> {
        self.flag_sources().into_iter().find_map(|(source, args)| {
            let args = args.as_ref().ok()?;
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            layout::flag(&a, name).map(|v| Setting {
                value: v.to_string(),
                source: format!("{name}={v} ({source})"),
            })
        })
    }

    /// Whether the running kubelet's command line was read; else why not (the kubelet not
    /// running, its `/proc` entry unreadable). Only the command line names every flag:
    /// kubeadm's `--kubeconfig` is in a unit drop-in's `Environment=`, in no EnvironmentFile.
    pub fn command_line(&self) -> Result<(), String> {
        match self.args.first() {
            Some((source, Ok(_))) if source.contains("command line") => Ok(()),
            Some((source, Err(why))) => Err(format!("{source}: {why}")),
            _ => Err("the kubelet's command line was not read".into()),
        }
    }

    /// A boolean flag as Go's flag package reads it: bare `--name` is true, `--name=v` is
    /// `v` (`1`, `t`, `T`, `true`, `TRUE`, `True` are true; anything else false here).
    pub fn bool_flag(&self, name: &str) -> Option<Setting<bool>> {
        let eq = format!("{name}=");
        self.flag_sources().into_iter().find_map(|(source, args)| {
            args.as_ref().ok()?.iter().find_map(|a| {
                let a = a.trim_matches('"');
                let value = if a == name {
                    true
                } else {
                    let v = a.strip_prefix(&eq)?;
                    matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True")
                };
                Some(Setting {
                    value,
                    source: format!("{name}={value} ({source})"),
                })
            })
        })
    }

    /// The KubeletConfiguration's fields; an error says why it could not be read.
    pub fn config(&self) -> Result<KubeletConfig, String> {
        let Some(text) = &self.config else {
            return Err(format!(
                "{} absent or unreadable",
                self.config_path.display()
            ));
        };
        crate::yaml::from_str::<Option<KubeletConfig>>(text)
            .map(Option::unwrap_or_default)
            .map_err(|e| {
                let first = e.to_string();
                let first = first.lines().next().unwrap_or("").to_string();
                format!(
                    "{}: not a KubeletConfiguration ({first})",
                    self.config_path.display()
                )
            })
    }

    /// `path:line` of a config value, for evidence.
    pub fn at<T>(&self, v: &Spanned<T>) -> String {
        format!("{}:{}", self.config_path.display(), v.referenced.line())
    }

    /// The kubelet's `failSwapOn`: the flag wins over the file (the kubelet's own rule:
    /// command-line flags override the config file); default true.
    pub fn fail_swap_on(&self) -> Setting<bool> {
        if let Some(f) = self.flag("--fail-swap-on") {
            return Setting {
                value: f.value != "false",
                source: f.source,
            };
        }
        match self.config() {
            Ok(KubeletConfig {
                fail_swap_on: Some(v),
                ..
            }) => Setting {
                value: v.value,
                source: format!(
                    "KubeletConfiguration failSwapOn={} ({})",
                    v.value,
                    self.at(&v)
                ),
            },
            _ => Setting {
                value: true,
                source: "failSwapOn unset: the kubelet's default is true".into(),
            },
        }
    }
}

/// How long a read invocation is used before the files are read again, while the kubelet's
/// MainPID stays the same. A kubelet reads its flags and configuration when it starts, so
/// what it runs with changes with its process; the files a *next* start would use (and
/// the node without a kubelet unit) are seen again within this time.
pub const INVOCATION_FRESH: Duration = Duration::from_secs(60);

/// The last [`Invocation`] read, with when and for which kubelet MainPID: one read for the
/// runtime probe every 10 s and the drift probes every minute, instead of six file reads on
/// blocking threads each time each of them asks (docs/benchmarks.md, pass 4).
#[derive(Default, Clone)]
pub struct InvocationCache(Arc<tokio::sync::Mutex<Option<Cached>>>);

struct Cached {
    read_at: tokio::time::Instant,
    unit_pid: Option<u32>,
    invocation: Invocation,
}

impl std::fmt::Debug for InvocationCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InvocationCache")
    }
}

impl Detector {
    /// What the kubelet runs with, read again when the kubelet unit's MainPID changed (a
    /// restart: new flags, new configuration) or after [`INVOCATION_FRESH`]. Callers in the
    /// same round wait for one read instead of each reading.
    pub async fn invocation(&self) -> Invocation {
        let unit_pid = match tokio::time::timeout(
            Duration::from_secs(2),
            self.systemd.unit_status(&self.kubelet_unit),
        )
        .await
        {
            Ok(Ok(st)) => st.main_pid,
            _ => None,
        };
        let mut cache = self.invocation_cache.0.lock().await;
        if let Some(c) = cache.as_ref()
            && c.unit_pid == unit_pid
            && c.read_at.elapsed() < INVOCATION_FRESH
        {
            return c.invocation.clone();
        }
        let invocation = self.read_invocation(unit_pid).await;
        *cache = Some(Cached {
            read_at: tokio::time::Instant::now(),
            unit_pid,
            invocation: invocation.clone(),
        });
        invocation
    }

    /// Read what the kubelet runs with. Reading a process's cmdline takes its mmap lock: a
    /// stuck kubelet can hang the reader, so every read happens on a blocking thread under
    /// a deadline.
    async fn read_invocation(&self, unit_pid: Option<u32>) -> Invocation {
        let mut args = Vec::new();
        let pid = match unit_pid {
            Some(p) => Some(p),
            None => {
                let root = self.proc_root.clone();
                blocking(move || Ok(find_pid_by_comm(&root, "kubelet")))
                    .await
                    .ok()
                    .flatten()
            }
        };
        let mut config_path = self.kubelet_config.clone();
        match pid {
            Some(pid) => {
                let root = self.proc_root.clone();
                let source = format!("kubelet (pid {pid}) command line");
                match blocking(move || kubelet_cmdline(&root, pid)).await {
                    Ok(a) => {
                        let v: Vec<&str> = a.iter().map(String::as_str).collect();
                        if let Some(c) = layout::flag(&v, "--config") {
                            config_path =
                                hostfs::open_path(self.host_root.as_deref(), Path::new(c));
                        }
                        args.push((source, Ok(a)));
                    }
                    Err(e) => args.push((source, Err(format!("unreadable: {e}")))),
                }
            }
            None => args.push(("kubelet process".into(), Err("not running".into()))),
        }
        for f in std::iter::once(&self.kubeadm_flags).chain(self.kubelet_env_files.iter()) {
            let source = f.display().to_string();
            let here = hostfs::follow_under(self.host_root.as_deref(), f);
            args.push(match read_text(here).await {
                Some(text) => (source, Ok(layout::env_file_args(&text))),
                None => (source, Err("absent".into())),
            });
        }
        let config = read_text(hostfs::follow_under(
            self.host_root.as_deref(),
            &config_path,
        ))
        .await;
        Invocation {
            args,
            config_path,
            config,
        }
    }
}

/// Read a small file under a deadline (kubelet config files; a hung mount must not hang us).
pub(crate) async fn read_text(path: PathBuf) -> Option<String> {
    blocking(move || std::fs::read_to_string(path)).await.ok()
}

/// The kubelet's arguments from `/proc/PID/cmdline` (procfs, under `root`).
fn kubelet_cmdline(root: &Path, pid: u32) -> std::io::Result<Vec<String>> {
    let p = procfs::process::Process::new_with_root(root.join(pid.to_string()))
        .map_err(std::io::Error::other)?;
    p.cmdline().map_err(std::io::Error::other)
}
