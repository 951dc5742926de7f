//! `nodewarden-fleetsim`: many real agents against one fake API server.
//!
//! `cargo bench -p nodewarden --bench fleetsim -- [--agents N] [--scenario
//! all|steady|spread|storm|api-outage|partition|outdated] [--quick] [--verbose]`
//!
//! Prints the figures of each scenario with its requirement checks and exits
//! 1 when a check fails. See docs/fleet.md.

#[path = "../tests/fleet/sim.rs"]
mod fleet;

use std::time::Duration;

use fleet::{Fleet, Scale, Settings};

fn main() -> std::process::ExitCode {
    let mut agents = 1000usize;
    let mut scenario = "all".to_string();
    let mut quick = false;
    let mut verbose = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--agents" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) if n >= 4 => agents = n,
                _ => {
                    eprintln!("--agents needs a number >= 4");
                    return std::process::ExitCode::from(2);
                }
            },
            "--scenario" => scenario = args.next().unwrap_or_default(),
            "--quick" => quick = true,
            "--verbose" => verbose = true,
            _ => {} // cargo bench passes --bench
        }
    }
    let known = [
        "all",
        "steady",
        "spread",
        "storm",
        "api-outage",
        "partition",
        "outdated",
    ];
    if !known.contains(&scenario.as_str()) {
        eprintln!("--scenario must be one of {}", known.join("|"));
        return std::process::ExitCode::from(2);
    }
    // kube's client logs every failed request at ERROR; the agent's own
    // warnings say the same once per transition.
    let filter = if verbose {
        "info"
    } else {
        "warn,kube_client=off"
    };
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::registry()
        .with(
            filter
                .parse::<tracing_subscriber::filter::Targets>()
                .expect("a static filter"),
        )
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match rt.block_on(run(agents, &scenario, quick)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("fleetsim: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(agents: usize, scenario: &str, quick: bool) -> anyhow::Result<bool> {
    let sc = if quick { Scale::quick() } else { Scale::full() };
    let spread = Duration::from_secs(if quick { 5 } else { 30 });
    let settings = Settings {
        agents,
        startup_spread: spread,
        partitioned: agents / 2,
    };
    let t0 = std::time::Instant::now();
    let rss0 = fleet::rss_bytes();
    println!(
        "fleetsim: {agents} agents, scenario {scenario}, {} scale",
        if quick { "quick" } else { "full" }
    );
    let f = Fleet::start(&settings).await?;
    // Every agent started and settled.
    tokio::time::sleep(spread + Duration::from_secs(10)).await;
    let want = |s: &str| scenario == "all" || scenario == s;
    let mut reports = Vec::new();
    if want("steady") {
        reports.push(f.steady(&sc, rss0).await);
        println!("{}", reports[reports.len() - 1].render());
    }
    if want("spread") {
        reports.push(f.spread(&sc).await);
        println!("{}", reports[reports.len() - 1].render());
    }
    if want("storm") {
        reports.push(f.storm(&sc).await);
        println!("{}", reports[reports.len() - 1].render());
    }
    if want("api-outage") {
        reports.push(f.api_outage(&sc).await);
        println!("{}", reports[reports.len() - 1].render());
    }
    if want("partition") {
        reports.push(f.partition(&sc, settings.partitioned).await);
        println!("{}", reports[reports.len() - 1].render());
    }
    if want("outdated") {
        reports.push(f.outdated(&sc).await);
        println!("{}", reports[reports.len() - 1].render());
    }
    f.stop().await;
    let failed: Vec<String> = reports.iter().flat_map(|r| r.failed()).collect();
    println!(
        "fleetsim: {} checks failed, wall time {:.0} s",
        failed.len(),
        t0.elapsed().as_secs_f64()
    );
    for x in &failed {
        println!("FAILED {x}");
    }
    Ok(failed.is_empty())
}
