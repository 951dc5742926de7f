//! `nodewarden check`: one round of probes, printed.

use super::*;

/// `check`: every probe once; exit 0 healthy (or unknown), 1 a problem, 2 an error.
pub(super) fn check(args: &Args) -> Result<ExitCode> {
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
        let skipped: Vec<&str> = nodewarden::domain::Problem::ALL
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
