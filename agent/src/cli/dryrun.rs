//! `nodewarden dry-run`: the ladder walked in simulated time from the flags' scenario.

use super::*;

#[derive(clap::Args, Debug)]
pub(super) struct DryRunArgs {
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

pub(super) fn dry_run(args: &Args, d: &DryRunArgs) -> Result<ExitCode> {
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
    let (ledger, ledger_note) = read_ledger(&cfg.ledger_path, now);
    let cluster = nodewarden::dryrun::ClusterScenario {
        other_nodes: d.cluster_nodes,
        other_unhealthy: d.unhealthy_nodes,
        api_down: d.api_down,
        admin_cordoned: d.admin_cordoned,
        slot_busy: d.slot_busy.clone(),
    }
    .view()
    .map_err(anyhow::Error::msg)?;
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
