//! Flags → one validated `Config` → subcommands. The only place `anyhow` is used.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use nodewarden::domain::{Dur, Timestamp};
use nodewarden::dryrun::{Assumption, DryRun, assumed_node_facts};
use nodewarden::ledger::{self, Ledger};
use nodewarden::runbook::{self, Loaded};

mod check;
mod dryrun;
pub mod maintenance;
mod run;
mod status;
mod validate;
use check::check;
use dryrun::{DryRunArgs, dry_run};
use run::{RunArgs, run_daemon};
use status::status;
use validate::validate;

pub const DEFAULT_RUNBOOK_PATH: &str = "/etc/nodewarden/runbook.yaml";

#[derive(Parser, Debug)]
#[command(
    name = "nodewarden",
    version,
    about = "Fixes stalled kubelets, PLEG errors, hung container runtimes, clock skew and outdated systemd on this node, safely.",
    long_about = None
)]
pub struct Args {
    /// Runbook file [default: /etc/nodewarden/runbook.yaml if present, else the built-in default]
    #[arg(long, global = true, env = "NODEWARDEN_RUNBOOK", value_name = "FILE")]
    runbook: Option<PathBuf>,
    /// Ledger file (node-local durable state)
    #[arg(long, global = true, env = "NODEWARDEN_LEDGER", value_name = "FILE")]
    ledger: Option<PathBuf>,
    /// Output format
    #[arg(long, short = 'o', global = true, value_enum)]
    pub(crate) output: Option<Output>,
    /// The host's root directory when running in a pod with the host's `/` mounted there
    /// (DaemonSet: /host): the probes run the host's journalctl and rpm chrooted into it
    /// and read the host's files and sockets under it. Unset or `/`: this is the host.
    #[arg(long, global = true, env = "NODEWARDEN_HOST_ROOT", value_name = "DIR")]
    pub(crate) host_root: Option<PathBuf>,
    /// Log format (logs go to stderr or journald; `RUST_LOG` sets the level)
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        env = "NODEWARDEN_LOG_FORMAT"
    )]
    log_format: crate::logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    #[value(alias = "table")]
    Text,
    Json,
    Yaml,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show what the agent would do, step by step, without doing anything.
    DryRun(DryRunArgs),
    /// Run every probe once and show each problem's verdict, evidence and timing.
    Check,
    /// Run the agent: probe, plan and act until stopped (systemd unit or DaemonSet).
    Run(RunArgs),
    /// Planned maintenance from the node shell: plan, start, status, end.
    #[command(subcommand)]
    Maintenance(maintenance::MaintenanceCmd),
    /// Check or print the runbook.
    #[command(subcommand)]
    Runbook(RunbookCmd),
    /// Show the ledger: open episode, cordon ownership, reboots, maintenance.
    Status,
}

#[derive(Subcommand, Debug)]
enum RunbookCmd {
    /// Validate a runbook file (or the configured one) and report every error as file:line:column.
    Validate {
        /// The runbook to check
        file: Option<PathBuf>,
    },
    /// Print the effective runbook (every default filled in).
    Show,
}

/// How to reach the Kubernetes API (run, maintenance).
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ApiArgs {
    /// This node's name in Kubernetes [default: the host name]
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    node_name: Option<String>,
    /// API server URL without credentials (tests, `kubectl proxy`); overrides the kubeconfig
    #[arg(long, value_name = "URL", conflicts_with_all = ["kubeconfig", "in_cluster"])]
    api_url: Option<String>,
    /// Kubeconfig file [default: in-cluster service account, else $KUBECONFIG or ~/.kube/config]
    #[arg(long, env = "NODEWARDEN_KUBECONFIG", value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Use the pod's service account only
    #[arg(long)]
    in_cluster: bool,
    /// Deadline of one API call
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    api_timeout: String,
    /// Namespace of the disruption-slot Leases
    #[arg(
        long,
        env = "POD_NAMESPACE",
        default_value = "nodewarden",
        value_name = "NS"
    )]
    pub(crate) namespace: String,
}

/// Everything a subcommand needs, validated once.
pub(crate) struct Config {
    pub(crate) runbook: Loaded,
    pub(crate) ledger_path: PathBuf,
    pub(crate) output: Output,
}

fn load_runbook(explicit: Option<&Path>) -> Result<Loaded> {
    match explicit {
        Some(p) => Ok(runbook::load_file(p)?),
        None if Path::new(DEFAULT_RUNBOOK_PATH).exists() => {
            Ok(runbook::load_file(Path::new(DEFAULT_RUNBOOK_PATH))?)
        }
        None => Ok(runbook::default_runbook()),
    }
}

pub(crate) fn config(args: &Args, default_output: Output) -> Result<Config> {
    let output = args.output.unwrap_or(default_output);
    let runbook = load_runbook(args.runbook.as_deref())?;
    Ok(Config {
        runbook,
        ledger_path: args
            .ledger
            .clone()
            .unwrap_or_else(|| PathBuf::from(ledger::DEFAULT_PATH)),
        output,
    })
}

pub fn run_cli(args: Args) -> Result<ExitCode> {
    // The daemon logs decisions at info; the one-shot commands only warnings.
    let level = if matches!(args.command, Command::Run(_)) {
        "info"
    } else {
        "warn"
    };
    if let Some(note) = crate::logging::init(args.log_format, level) {
        eprintln!("nodewarden: {note}");
    }
    match &args.command {
        Command::Runbook(RunbookCmd::Validate { file }) => validate(&args, file.as_deref()),
        Command::Runbook(RunbookCmd::Show) => {
            let cfg = config(&args, Output::Yaml)?;
            match cfg.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&cfg.runbook.runbook)?),
                _ => {
                    println!("# effective runbook from {}", cfg.runbook.source);
                    print!("{}", runbook::to_yaml(&cfg.runbook.runbook));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::DryRun(d) => dry_run(&args, d),
        Command::Status => status(&args),
        Command::Check => check(&args),
        Command::Run(r) => run_daemon(&args, r),
        Command::Maintenance(m) => maintenance::run_maintenance(&args, m),
    }
}

/// Read the ledger without writing. A corrupt one is reported and ignored.
fn read_ledger(path: &Path, now: Timestamp) -> (Ledger, Option<String>) {
    ledger::read_as_daemon(path, now)
}

fn duration_flag(flag: &str, v: &str, min: Duration) -> Result<Duration> {
    let d: Dur = v
        .parse()
        .map_err(|e| anyhow::anyhow!("--{flag} {v:?}: {e}"))?;
    let d = d.std();
    if d < min {
        bail!("--{flag} {v:?}: must be at least {min:?}");
    }
    Ok(d)
}

/// The runbook file SIGHUP re-reads: the explicit one, else the installed one.
fn runbook_path(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_path_buf()),
        None if Path::new(DEFAULT_RUNBOOK_PATH).exists() => {
            Some(PathBuf::from(DEFAULT_RUNBOOK_PATH))
        }
        None => None,
    }
}

impl ApiArgs {
    /// The node name from --node-name, `NODE_NAME` or the host name, checked
    /// as a DNS-1123 subdomain before it goes into any API path.
    pub(crate) fn node_name(&self) -> Result<String> {
        match &self.node_name {
            Some(n) if !n.trim().is_empty() => {
                let n = n.trim();
                nodewarden::domain::check_node_name(n)
                    .map_err(|e| anyhow::anyhow!("--node-name (or NODE_NAME): {e}"))?;
                Ok(n.to_string())
            }
            Some(_) => bail!("--node-name is empty"),
            None => {
                let h = nix::unistd::gethostname()
                    .context("cannot read the host name; pass --node-name")?
                    .to_string_lossy()
                    .trim()
                    .to_lowercase();
                nodewarden::domain::check_node_name(&h)
                    .map_err(|e| anyhow::anyhow!("host name: {e}; pass --node-name"))?;
                Ok(h)
            }
        }
    }

    pub(crate) fn kube_options(&self) -> Result<nodewarden::act::kube::KubeOptions> {
        use nodewarden::act::kube::{KubeOptions, Source};
        let call_timeout =
            duration_flag("api-timeout", &self.api_timeout, Duration::from_millis(100))?;
        let source = if let Some(u) = &self.api_url {
            nodewarden::act::kube::check_server_url(u)
                .map_err(|e| anyhow::anyhow!("--api-url: {e}"))?;
            Source::Url(u.clone())
        } else if self.in_cluster {
            Source::InCluster
        } else if let Some(k) = &self.kubeconfig {
            Source::Kubeconfig {
                path: Some(k.clone()),
                context: None,
            }
        } else {
            Source::Infer
        };
        Ok(KubeOptions {
            source,
            call_timeout,
            ..Default::default()
        })
    }
}

/// `maintenance.json` sits next to the ledger.
pub(crate) fn maintenance_path(ledger: &Path) -> PathBuf {
    ledger.with_file_name("maintenance.json")
}
