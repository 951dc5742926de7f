//! Flags → one validated `Config` → subcommands. The only place `anyhow` is used.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use nodewarden::dryrun::{Assumption, DryRun, assumed_node_facts};
use nodewarden::ledger::{self, Ledger};
use nodewarden::model::{Dur, Timestamp};
use nodewarden::plan::{ClusterView, FleetView, NodeView, SlotView};
use nodewarden::runbook::{self, Loaded};

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
    Maintenance(crate::cli_maintenance::MaintenanceCmd),
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

#[derive(clap::Args, Debug)]
struct DryRunArgs {
    /// Assume PROBLEM keeps failing, optionally since SINCE ago (e.g. KubeletUnhealthy:5m). Repeatable.
    #[arg(long = "assume", value_name = "PROBLEM[:SINCE]")]
    assume: Vec<String>,
    /// Assume N pods stay Terminating after their eviction (their kubelet never confirms it)
    #[arg(long, default_value_t = 0, value_name = "N")]
    assume_stuck_pods: u32,
    /// Other nodes in the cluster, for the storm gate
    #[arg(long, default_value_t = 10, value_name = "N")]
    cluster_nodes: u32,
    /// Other nodes NotReady or remediating
    #[arg(long, default_value_t = 0, value_name = "N")]
    unhealthy_nodes: u32,
    /// Assume the API server is unreachable
    #[arg(long)]
    api_down: bool,
    /// Assume an admin already cordoned the node
    #[arg(long)]
    admin_cordoned: bool,
    /// Assume every disruption slot is held by HOLDER
    #[arg(long, value_name = "HOLDER")]
    slot_busy: Option<String>,
    /// Plan as of this time (RFC 3339) instead of now, e.g. to check a blackout window
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
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

#[derive(clap::Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Run without the Kubernetes API: only unit restarts; every disruptive step is held
    #[arg(long, conflicts_with = "api_url")]
    no_api: bool,
    /// Serve Prometheus metrics on this loopback address ("off" to disable)
    #[arg(
        long,
        env = "NODEWARDEN_METRICS_ADDR",
        default_value = "127.0.0.1:9464",
        value_name = "ADDR"
    )]
    metrics_addr: String,
    /// Re-plan at least this often
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    tick: String,
    /// Reload the runbook when its file changes, checked this often ("off": on SIGHUP only)
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    runbook_poll: String,
    /// Re-read the disruption slots and the fleet this often
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    cluster_refresh: String,
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
        Command::Maintenance(m) => crate::cli_maintenance::run_maintenance(&args, m),
    }
}

fn validate(args: &Args, file: Option<&Path>) -> Result<ExitCode> {
    let output = args.output.unwrap_or(Output::Text);
    let target = file.or(args.runbook.as_deref());
    let result = match target {
        Some(p) => runbook::load_file(p),
        None => Ok(load_runbook(None)?),
    };
    match result {
        Ok(l) => {
            if output == Output::Json {
                println!(
                    "{}",
                    serde_json::json!({"valid": true, "source": l.source, "warnings": l.warnings})
                );
            } else {
                for w in &l.warnings {
                    eprintln!("{}", w.render(&l.source));
                }
                println!("{}: valid ({} steps)", l.source, l.runbook.spec.steps.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if output == Output::Json {
                let diags = match &e {
                    runbook::RunbookError::Invalid { diagnostics, .. } => diagnostics.clone(),
                    _ => Vec::new(),
                };
                println!(
                    "{}",
                    serde_json::json!({"valid": false, "error": e.to_string(), "diagnostics": diags})
                );
            } else {
                eprintln!("{e}");
            }
            Ok(ExitCode::from(2))
        }
    }
}

/// Read the ledger without writing. A corrupt one is reported and ignored.
fn read_ledger(path: &Path, now: Timestamp) -> (Ledger, Option<String>) {
    ledger::read_as_daemon(path, now)
}

fn dry_run(args: &Args, d: &DryRunArgs) -> Result<ExitCode> {
    let cfg = config(args, Output::Text)?;
    let assumptions = d
        .assume
        .iter()
        .map(|s| s.parse::<Assumption>())
        .collect::<Result<Vec<_>, String>>()
        .map_err(anyhow::Error::msg)?;
    let now = match &d.at {
        Some(s) => s.parse::<Timestamp>().with_context(|| {
            format!("--at {s:?}: expected an RFC 3339 time like 2026-11-23T10:00:00Z")
        })?,
        // Whole seconds keep the timeline readable.
        None => Timestamp::from_second(Timestamp::now().as_second())
            .unwrap_or_else(|_| Timestamp::now()),
    };
    if d.unhealthy_nodes > d.cluster_nodes {
        bail!(
            "--unhealthy-nodes {} is more than --cluster-nodes {}",
            d.unhealthy_nodes,
            d.cluster_nodes
        );
    }
    let (ledger, ledger_note) = read_ledger(&cfg.ledger_path, now);
    let mut cluster = ClusterView::calm(d.cluster_nodes);
    cluster.fleet = Some(FleetView {
        other_nodes: d.cluster_nodes,
        other_unhealthy: d.unhealthy_nodes,
    });
    if d.api_down {
        cluster.api_reachable = false;
        cluster.node = None;
        cluster.slot = SlotView::Unknown;
        cluster.fleet = None;
    }
    if d.admin_cordoned
        && let Some(n) = cluster.node.as_mut()
    {
        *n = NodeView {
            unschedulable: true,
            cordon_annotation: false,
        };
    }
    if let Some(h) = &d.slot_busy {
        cluster.slot = SlotView::Busy {
            holders: vec![h.clone()],
        };
    }
    let mut notes = Vec::new();
    if let Some(n) = ledger_note {
        notes.push(n);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut assumptions = assumptions;
    let node = if assumptions.is_empty() {
        // no --assume: plan from one live look at this node
        let (obs, facts) = rt.block_on(nodewarden::probe::look_once(
            &cfg.runbook.runbook,
            &nodewarden::probe::ProbeEnv::on_host(args.host_root.as_deref()),
        ));
        for o in &obs {
            if o.verdict == nodewarden::health::Verdict::Failing {
                assumptions.push(Assumption {
                    problem: o.problem,
                    ago: Dur::ZERO,
                });
            }
            notes.push(format!(
                "live probe {}: {} — {}",
                o.problem,
                serde_json::to_value(o.verdict)?.as_str().unwrap_or("?"),
                o.summary
            ));
        }
        if assumptions.is_empty() {
            notes.push("no --assume given and no live probe fails: nothing to plan; pass --assume PROBLEM to walk the ladder".into());
        } else {
            notes.push("failing live probes are assumed to keep failing from now on".into());
        }
        if facts.units.is_none() {
            notes.push("systemd could not be asked which units exist".into());
        }
        facts
    } else {
        assumed_node_facts(&cfg.runbook.runbook)
    };
    let timeline = rt.block_on(
        DryRun {
            runbook: &cfg.runbook.runbook,
            stuck_pods: d.assume_stuck_pods,
            ledger,
            assumptions,
            cluster,
            node,
            now,
        }
        .simulate(),
    );
    match cfg.output {
        Output::Json => {
            let v = serde_json::json!({
                "runbook": cfg.runbook.source,
                "ledger": cfg.ledger_path,
                "notes": notes,
                "timeline": timeline,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        _ => {
            println!("runbook: {}", cfg.runbook);
            for n in &notes {
                println!("note: {n}");
            }
            print!("{}", timeline.render_text());
        }
    }
    Ok(if timeline.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `check`: every probe once; exit 0 healthy (or unknown), 1 a problem, 2 an error.
fn check(args: &Args) -> Result<ExitCode> {
    let cfg = config(args, Output::Text)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (obs, facts) = rt.block_on(nodewarden::probe::look_once(
        &cfg.runbook.runbook,
        &nodewarden::probe::ProbeEnv::on_host(args.host_root.as_deref()),
    ));
    let failing = obs
        .iter()
        .any(|o| o.verdict == nodewarden::health::Verdict::Failing);
    if cfg.output == Output::Json || cfg.output == Output::Yaml {
        let v = serde_json::json!({
            "runbook": cfg.runbook.source,
            "healthy": !failing,
            "observations": obs,
            "nodeFacts": facts,
        });
        if cfg.output == Output::Yaml {
            print!(
                "{}",
                serde_saphyr::to_string(&v).context("cannot render the result as YAML")?
            );
        } else {
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
    } else {
        println!("runbook: {}", cfg.runbook);
        println!("{:<30} {:<8} {:>8}  SUMMARY", "PROBLEM", "VERDICT", "TOOK");
        for o in &obs {
            let verdict = serde_json::to_value(o.verdict)?;
            println!(
                "{:<30} {:<8} {:>8}  {}",
                o.problem.as_str(),
                verdict.as_str().unwrap_or("?"),
                o.took.to_string(),
                nodewarden::text::printable(&o.summary)
            );
            for (k, v) in &o.evidence {
                println!("{:<30}   {k}: {}", "", nodewarden::text::printable(v));
            }
        }
        let reported: Vec<&str> = obs
            .iter()
            .filter(|o| {
                o.problem.report_only() && o.verdict == nodewarden::health::Verdict::Failing
            })
            .map(|o| o.problem.as_str())
            .collect();
        if !reported.is_empty() {
            println!(
                "report-only (shown, never remediated: no episode, no cordon, not counted by any storm gate): {}",
                reported.join(", ")
            );
        }
        let skipped: Vec<&str> = nodewarden::model::Problem::ALL
            .iter()
            .filter(|p| !obs.iter().any(|o| o.problem == **p))
            .map(|p| p.as_str())
            .collect();
        if !skipped.is_empty() {
            println!("disabled in the runbook: {}", skipped.join(", "));
        }
        println!(
            "node: boot {}, runtime unit {}, units {}",
            facts.boot_id.as_deref().unwrap_or("unknown"),
            facts.runtime_unit.as_deref().unwrap_or("not detected"),
            match &facts.units {
                Some(u) if u.is_empty() => "none of the runbook's units exist".to_string(),
                Some(u) => u.keys().cloned().collect::<Vec<_>>().join(", "),
                None => "unknown (systemd could not be asked)".to_string(),
            }
        );
    }
    Ok(if failing {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn status(args: &Args) -> Result<ExitCode> {
    let cfg = config(args, Output::Text)?;
    let (ledger, note) = match ledger::read_only(&cfg.ledger_path) {
        Ok(Some(l)) => (l, None),
        Ok(None) => (
            Ledger::default(),
            Some("no ledger yet: nodewarden has not acted on this node".to_string()),
        ),
        Err(e) => bail!("{e}"),
    };
    let now = Timestamp::now();
    let open = ledger.episode.is_some() || ledger.maintenance.is_some();
    if cfg.output == Output::Json {
        let v = serde_json::json!({
            "ledger": cfg.ledger_path,
            "note": note,
            "state": ledger,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(if open {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let p = |s: &str| nodewarden::text::printable(s).into_owned();
    println!("ledger: {}", cfg.ledger_path.display());
    if let Some(n) = note {
        println!("note: {n}");
    }
    match &ledger.episode {
        None => println!("episode: none"),
        Some(ep) => {
            println!(
                "episode: {} since {} ({} ago) for {}",
                p(&ep.id),
                ep.started_at,
                Dur::between(ep.started_at, now),
                ep.problems
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for a in &ep.attempts {
                println!(
                    "  step {:<28} {:<24} started {} → {:?}{}",
                    p(&a.step),
                    a.action,
                    a.started_at,
                    a.outcome,
                    a.detail
                        .as_deref()
                        .map(|d| format!(" ({})", p(d)))
                        .unwrap_or_default()
                );
                if !a.awaiting_kubelet.is_empty() {
                    println!(
                        "    evicted but still terminating, awaiting this node's kubelet: {}",
                        a.awaiting_kubelet.join(", ")
                    );
                }
            }
            if let Some(h) = &ep.hold {
                println!(
                    "  held: step {:?} by {} since {}: {}",
                    p(&h.step),
                    p(&h.gate),
                    h.since,
                    p(&h.reason)
                );
            }
            if let Some(x) = &ep.exhausted {
                println!("  EXHAUSTED at {}: {}", x.at, p(&x.reason));
            }
        }
    }
    for (p, r) in &ledger.reported {
        println!(
            "reported: {p} since {} (report-only: no episode, not counted by any storm gate): {}",
            r.since, r.summary
        );
    }
    match &ledger.cordon {
        None => println!("cordon: none recorded"),
        Some(c) if c.handed_over => println!(
            "cordon: handed over to a human at exhaustion ({})",
            p(&c.reason)
        ),
        Some(c) if c.by_us => println!(
            "cordon: placed by nodewarden at {} ({})",
            c.at,
            p(&c.reason)
        ),
        Some(c) => println!(
            "cordon: placed by someone else; nodewarden will never lift it ({})",
            p(&c.reason)
        ),
    }
    match &ledger.slot {
        None => println!("disruption slot: none held"),
        Some(s) => println!(
            "disruption slot: {} held since {}",
            p(&s.lease),
            s.acquired_at
        ),
    }
    let cap = cfg.runbook.runbook.spec.safety.reboots;
    println!(
        "reboots: {} of {} in the last {}",
        ledger.reboots_within(cap.window, now),
        cap.max,
        cap.window
    );
    if let Some(why) = ledger.reboot_cap_spent(cap.max, cap.window, now)
        && ledger.reboot_history_lost.is_some()
    {
        println!("reboot cap: spent: {}", p(&why));
    }
    match &ledger.maintenance {
        None => println!("maintenance: none"),
        Some(m) => println!(
            "maintenance: by {} since {}: {}",
            p(&m.by),
            m.since,
            p(&m.reason)
        ),
    }
    for c in ledger.closed.iter().rev().take(5) {
        println!(
            "closed: {} {} → {} for {} [{}]: {}",
            p(&c.id),
            c.started_at,
            c.ended_at,
            c.problems
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            p(&c.steps.join(" → ")),
            p(&c.result)
        );
    }
    Ok(if open {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
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

fn run_daemon(args: &Args, r: &RunArgs) -> Result<ExitCode> {
    use nodewarden::daemon::serve::{ApiConfig, ServeConfig, serve};

    let cfg = config(args, Output::Text)?;
    let node_name = r.api.node_name()?;
    let api = if r.no_api {
        ApiConfig::None
    } else {
        ApiConfig::Kube(r.api.kube_options()?)
    };
    let metrics_addr = match r.metrics_addr.as_str() {
        "off" | "none" | "" => None,
        a => Some(
            a.parse::<std::net::SocketAddr>()
                .map_err(|e| anyhow::anyhow!("--metrics-addr {a:?}: {e}"))?,
        ),
    };
    if let Some(a) = metrics_addr
        && !a.ip().is_loopback()
    {
        bail!("--metrics-addr {a}: metrics are served on loopback only");
    }
    let serve_cfg = ServeConfig {
        node_name,
        runbook_path: runbook_path(args.runbook.as_deref()),
        runbook: cfg.runbook,
        maintenance_path: maintenance_path(&cfg.ledger_path),
        ledger_path: cfg.ledger_path,
        api,
        namespace: r.api.namespace.clone(),
        metrics_addr,
        tick_every: duration_flag("tick", &r.tick, Duration::from_millis(200))?,
        runbook_poll: match r.runbook_poll.as_str() {
            "off" | "none" => None,
            v => Some(duration_flag("runbook-poll", v, Duration::from_secs(1))?),
        },
        cluster_refresh: duration_flag(
            "cluster-refresh",
            &r.cluster_refresh,
            Duration::from_secs(1),
        )?,
        probe_env: nodewarden::probe::ProbeEnv::on_host(args.host_root.as_deref()),
        dbus: Default::default(),
        boot_id_path: PathBuf::from("/proc/sys/kernel/random/boot_id"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(serve(serve_cfg))?;
    Ok(ExitCode::SUCCESS)
}

impl ApiArgs {
    /// The node name from --node-name, `NODE_NAME` or the host name, checked
    /// as a DNS-1123 subdomain before it goes into any API path.
    pub(crate) fn node_name(&self) -> Result<String> {
        match &self.node_name {
            Some(n) if !n.trim().is_empty() => {
                let n = n.trim();
                nodewarden::model::check_node_name(n)
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
                nodewarden::model::check_node_name(&h)
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
