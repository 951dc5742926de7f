//! `nodewarden run`: the daemon's flags into its configuration.

use super::*;

#[derive(clap::Args, Debug)]
pub(super) struct RunArgs {
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

pub(super) fn run_daemon(args: &Args, r: &RunArgs) -> Result<ExitCode> {
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
    // Two workers, not a current-thread runtime (issue 15, docs/benchmarks.md): the
    // ledger is written synchronously (fsync) and logs go to journald by sendmsg, so a
    // stalled disk or a stuck journald blocks the thread that writes; with two workers the
    // other keeps probing, reporting and notifying the watchdog. One thread would save
    // ~0.2 MiB, within the noise.
    //
    // Blocking threads stay 5 minutes instead of tokio's 10 s: the probes read /proc and
    // small files on them every 10 s, the period at which tokio let an idle one exit, so
    // rounds kept starting threads (clone, a stack mmap) whose exits (munmap) make the
    // other CPUs flush their TLBs (perf on the testbed: those interrupts,
    // smp_call_function_many_cond, were 7 % of the agent's samples). A parked thread
    // costs the stack pages it touched; a round uses three at most.
    nodewarden::host::resident::limit_arenas();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_keep_alive(Duration::from_secs(300))
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(serve(serve_cfg))?;
    Ok(ExitCode::SUCCESS)
}
