//! `nodewarden status`: the ledger and maintenance state, printed.

use super::*;

pub(super) fn status(args: &Args) -> Result<ExitCode> {
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
