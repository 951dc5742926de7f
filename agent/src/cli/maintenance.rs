//! `nodewarden maintenance plan|start|status|end`: flags in, one call into
//! `nodewarden::maintenance::procedure`, a report out (text or JSON).

use std::process::ExitCode;

use anyhow::{Context, Result};
use nodewarden::act::kube::Kube;
use nodewarden::domain::{Dur, Timestamp};
use nodewarden::maintenance::procedure::{self, Ctx, MaintError, StartOptions, StateFile};
use nodewarden::maintenance::{ImpactReport, ImpactVerdict};

use super::{ApiArgs, Args, Output, config, maintenance_path};

#[derive(clap::Subcommand, Debug)]
pub enum MaintenanceCmd {
    /// Read-only impact report: what a drain of this node would do to each pod.
    Plan {
        #[command(flatten)]
        api: ApiArgs,
        /// Count unmanaged pods as deletable (as `start --force` would)
        #[arg(long)]
        force: bool,
        /// Count single-replica Deployments as surged first (as `start --surge-single-replicas` would)
        #[arg(long)]
        surge_single_replicas: bool,
    },
    /// Take a disruption slot, cordon (with ownership), drain; pauses automatic remediation.
    Start {
        #[command(flatten)]
        api: ApiArgs,
        /// Why (recorded on the node, in the Event and the ledger)
        #[arg(long, default_value = "planned maintenance")]
        reason: String,
        /// Drain deadline
        #[arg(long, default_value = "10m", value_name = "DURATION")]
        timeout: String,
        /// Delete unmanaged pods (they are not recreated anywhere)
        #[arg(long)]
        force: bool,
        /// The disruption slot expires after this long if `end` never comes
        #[arg(long, default_value = "8h", value_name = "DURATION")]
        max_duration: String,
        /// Scale single-replica Deployments to 2 and wait for the new pod to be
        /// Ready elsewhere before evicting the old one; scaled back at `end`
        #[arg(long)]
        surge_single_replicas: bool,
    },
    /// What maintenance is in force, since when, by whom, why.
    Status,
    /// Probe the node; only when healthy: uncordon (our cordon only), release the slot.
    End {
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn who() -> String {
    nodewarden::host::who::current()
}

fn parse_dur(flag: &str, v: &str) -> Result<Dur> {
    v.parse::<Dur>()
        .map_err(|e| anyhow::anyhow!("--{flag} {v:?}: {e}"))
}

async fn ctx(args: &Args, api: &ApiArgs) -> Result<Ctx> {
    let cfg = config(args, Output::Text)?;
    let kube = Kube::connect(&api.kube_options()?)
        .await
        .context("cannot configure the Kubernetes client")?;
    Ok(Ctx {
        kube,
        node: api.node_name()?,
        namespace: api.namespace.clone(),
        state: StateFile::new(maintenance_path(&cfg.ledger_path)),
        by: who(),
    })
}

fn render_impact(r: &ImpactReport) {
    println!("node {}: {}", r.node, r.summary);
    println!(
        "{:<40} {:<28} {:>7} {:>6}  {:<11} WHY",
        "POD", "OWNER", "ON/WANT", "GRACE", "VERDICT"
    );
    for p in &r.pods {
        let want = p
            .desired_replicas
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".into());
        let mut why = p.reasons.clone();
        why.extend(p.pdbs.iter().map(|b| format!("PDB {b}")));
        why.extend(p.local_data.iter().map(|d| format!("leaves {d}")));
        println!(
            "{:<40} {:<28} {:>7} {:>5}s  {:<11} {}",
            format!("{}/{}", p.namespace, p.name),
            p.owner,
            format!("{}/{want}", p.replicas_on_node),
            p.grace_period_seconds,
            format!("{:?}", p.verdict).to_lowercase(),
            why.join("; ")
        );
    }
    match r.longest_wait_seconds {
        Some(s) => println!("longest expected wait: {s}s (termination grace)"),
        None if !r.waits_on_pdbs.is_empty() => println!(
            "longest expected wait: depends on PDB {} (pods beyond its allowance wait for replacements to become Ready elsewhere)",
            r.waits_on_pdbs.join(", ")
        ),
        None => println!("longest expected wait: unbounded (a pod is blocked)"),
    }
}

fn fail(output: Output, e: &MaintError) -> ExitCode {
    if output == Output::Json {
        let mut v = serde_json::json!({"ok": false, "error": e.to_string()});
        if let MaintError::Blocked(r) = e {
            v["impact"] = serde_json::to_value(r).unwrap_or_default();
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        if let MaintError::Blocked(r) = e {
            render_impact(r);
        }
        eprintln!("nodewarden maintenance: {e}");
    }
    ExitCode::from(e.exit_code())
}

pub fn run_maintenance(args: &Args, cmd: &MaintenanceCmd) -> Result<ExitCode> {
    let output = args.output.unwrap_or(Output::Text);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cmd {
        MaintenanceCmd::Status => status(args, output),
        MaintenanceCmd::Plan {
            api,
            force,
            surge_single_replicas,
        } => rt.block_on(async {
            let runbook = config(args, Output::Text)?.runbook.runbook;
            let c = ctx(args, api).await?;
            let opts = procedure::plan_options(&runbook, *force, *surge_single_replicas);
            match procedure::plan(&c, opts).await {
                Ok(r) => {
                    if output == Output::Json {
                        println!("{}", serde_json::to_string_pretty(&r)?);
                    } else {
                        render_impact(&r);
                    }
                    Ok(match r.verdict {
                        ImpactVerdict::Stays | ImpactVerdict::Safe => ExitCode::SUCCESS,
                        ImpactVerdict::Disruptive | ImpactVerdict::Blocked => ExitCode::from(1),
                    })
                }
                Err(e) => Ok(fail(output, &e)),
            }
        }),
        MaintenanceCmd::Start {
            api,
            reason,
            timeout,
            force,
            max_duration,
            surge_single_replicas,
        } => rt.block_on(async {
            let opts = StartOptions {
                reason: reason.clone(),
                timeout: parse_dur("timeout", timeout)?,
                force: *force,
                max_duration: parse_dur("max-duration", max_duration)?,
                surge_single_replicas: *surge_single_replicas,
            };
            if opts.timeout.is_zero() {
                anyhow::bail!("--timeout must be more than 0s: a drain always has a deadline");
            }
            let runbook = config(args, Output::Text)?.runbook.runbook;
            let c = ctx(args, api).await?;
            match procedure::start(&c, &runbook, &opts, Timestamp::now()).await {
                Ok(s) => {
                    if output == Output::Json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&serde_json::json!({"ok": true, "started": s}))?
                        );
                    } else {
                        render_impact(&s.impact);
                        for n in &s.notes {
                            println!("note: {n}");
                        }
                        println!(
                            "maintenance {} on {} by {}: {}",
                            if s.resumed { "resumed" } else { "started" },
                            s.state.node,
                            s.state.by,
                            s.state.reason
                        );
                        if let Some(l) = &s.state.slot {
                            println!(
                                "disruption slot {l} held until `nodewarden maintenance end` (expires {})",
                                s.state
                                    .slot_expires
                                    .map(|t| t.to_string())
                                    .unwrap_or_default()
                            );
                        }
                        println!(
                            "drained: {}",
                            s.state.drain.as_deref().unwrap_or("nothing to do")
                        );
                        println!(
                            "automatic remediation is paused; run `nodewarden maintenance end` when done"
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(fail(output, &e)),
            }
        }),
        MaintenanceCmd::End { api } => rt.block_on(async {
            let cfg = config(args, Output::Text)?;
            let c = ctx(args, api).await?;
            // Refuse early (no probing) when nothing is in force.
            if let Err(e) = c.state.load().and_then(|s| s.ok_or(MaintError::NotInForce)) {
                return Ok(fail(output, &e));
            }
            let (obs, _) = nodewarden::probe::look_once(
                &cfg.runbook.runbook,
                &nodewarden::probe::ProbeEnv::on_host(args.host_root.as_deref()),
            )
            .await;
            match procedure::end(&c, &obs).await {
                Ok(e) => {
                    if output == Output::Json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&serde_json::json!({"ok": true, "ended": e}))?
                        );
                    } else {
                        for n in &e.notes {
                            println!("note: {n}");
                        }
                        println!(
                            "maintenance by {} (since {}) ended{}; automatic remediation resumes",
                            e.ended.by,
                            e.ended.since,
                            if e.uncordoned { ", node uncordoned" } else { "" }
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(fail(output, &e)),
            }
        }),
    }
}

fn status(args: &Args, output: Output) -> Result<ExitCode> {
    let cfg = config(args, Output::Text)?;
    let file = StateFile::new(maintenance_path(&cfg.ledger_path));
    match file.load() {
        Ok(None) => {
            if output == Output::Json {
                println!("{}", serde_json::json!({"inForce": false}));
            } else {
                println!("no maintenance in force");
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(Some(s)) => {
            if output == Output::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"inForce": true, "maintenance": s})
                    )?
                );
            } else {
                println!("maintenance in force on {} since {}", s.node, s.since);
                println!("by: {}", s.by);
                println!("reason: {}", s.reason);
                println!(
                    "cordon: {}",
                    if s.cordoned_by_us {
                        "placed by nodewarden (lifted at `end`)"
                    } else if s.was_cordoned {
                        "someone else's, from before the maintenance (left at `end`)"
                    } else {
                        "none"
                    }
                );
                if let Some(l) = &s.slot {
                    println!(
                        "disruption slot: {l} (expires {})",
                        s.slot_expires.map(|t| t.to_string()).unwrap_or_default()
                    );
                }
                for d in &s.surged {
                    println!(
                        "surged: {}/{} {} → {} replicas (scaled back at `end`)",
                        d.namespace, d.name, d.original, d.surged_to
                    );
                }
                println!(
                    "drain: {}{}",
                    if s.drained {
                        "finished"
                    } else {
                        "NOT finished"
                    },
                    s.drain
                        .as_deref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                );
            }
            // 1: the node is in maintenance (like `status` with an open episode).
            Ok(ExitCode::from(1))
        }
        Err(e) => Ok(fail(output, &e)),
    }
}
