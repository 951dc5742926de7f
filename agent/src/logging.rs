//! Logging for the binary: structured tracing events, one line per decision.
//!
//! Under systemd (`$JOURNAL_STREAM` set) events go to journald with their
//! fields as journal fields (`journalctl -u nodewarden DECISION=hold`);
//! otherwise to stderr, as text or, with `--log-format json`, one JSON object
//! per line. `RUST_LOG` overrides the level (the daemon logs `info`; the
//! one-shot commands only `warn`, so their output stays the report).

use std::io::IsTerminal;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// journald when started by systemd, else text on stderr
    Auto,
    Text,
    Json,
    Journald,
}

/// `RUST_LOG` as a per-target level filter (`info`, `nodewarden=debug,kube_client=warn`),
/// else `default_level`. A plain target/level list, not `EnvFilter`'s span and field
/// directives: that filter costs resident memory in every agent (issue 15,
/// docs/benchmarks.md) for a feature no one needs on a node. A `RUST_LOG` that does not
/// parse falls back to `default_level`, as before.
fn filter(default_level: &str) -> Targets {
    let env = std::env::var("RUST_LOG").ok();
    let parsed = env.as_deref().and_then(|v| v.parse::<Targets>().ok());
    let base = parsed.unwrap_or_else(|| {
        default_level
            .parse::<Targets>()
            .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::INFO))
    });
    // kube's HTTP trace layer logs every failed request at ERROR without context;
    // nodewarden reports API failures itself, with what it was doing.
    // Kept off under a plain `RUST_LOG=info` too (the packaged unit and the
    // e2e unit set it); only a `RUST_LOG` that names kube_client turns it on.
    if env.is_some_and(|v| v.contains("kube_client")) {
        base
    } else {
        base.with_target("kube_client", LevelFilter::OFF)
    }
}

/// Install the global subscriber at `default_level` (unless `RUST_LOG` says
/// otherwise). Returns a note when the choice fell back.
pub fn init(format: LogFormat, default_level: &str) -> Option<String> {
    let filter = || filter(default_level);
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    let want_journald =
        format == LogFormat::Journald || (format == LogFormat::Auto && under_systemd);
    if want_journald {
        match tracing_journald::layer() {
            Ok(layer) => {
                let _ = tracing_subscriber::registry()
                    .with(filter())
                    .with(layer.with_syslog_identifier("nodewarden".into()))
                    .try_init();
                return None;
            }
            Err(e) if format == LogFormat::Journald => {
                let _ = tracing_subscriber::registry()
                    .with(filter())
                    .with(fmt::layer().with_writer(std::io::stderr))
                    .try_init();
                return Some(format!(
                    "journald is not reachable ({e}); logging to stderr"
                ));
            }
            Err(_) => {}
        }
    }
    if format == LogFormat::Json {
        let _ = tracing_subscriber::registry()
            .with(filter())
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .try_init();
    } else {
        let _ = tracing_subscriber::registry()
            .with(filter())
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_target(false),
            )
            .try_init();
    }
    None
}
