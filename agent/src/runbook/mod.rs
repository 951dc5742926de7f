//! The escalation runbook: YAML schema, semantic validation, the embedded default.
//!
//! Loading never panics and never half-succeeds: a runbook either validates
//! completely or is rejected with every problem named as `file:line:column`.

mod drift;
mod model;
pub mod schema;
mod units;
mod validate;
mod yaml;

use std::fmt;
use std::path::Path;

pub use model::*;
pub use validate::{
    DEFAULT_IMAGEFS_PATHS, DEFAULT_NODEFS_PATHS, DEFAULT_RUNTIME_UNITS, DEFAULT_SYSCTLS,
    DEFAULT_TIME_SYNC_UNITS, default_timing, valid_unit_name,
};

/// The default runbook, compiled into the binary.
pub const DEFAULT_YAML: &str = include_str!("../../../runbooks/default.yaml");
pub const DEFAULT_SOURCE: &str = "<built-in default runbook>";

/// Runbook files larger than this are refused before parsing.
pub const MAX_RUNBOOK_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in a runbook, at a position in its source (1-based; 0 = unknown).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub line: u64,
    pub column: u64,
    pub severity: Severity,
    pub message: String,
}

impl Diagnostic {
    pub fn render(&self, source: &str) -> String {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.line == 0 {
            format!("{source}: {sev}: {}", self.message)
        } else {
            format!(
                "{source}:{}:{}: {sev}: {}",
                self.line, self.column, self.message
            )
        }
    }
}

/// A runbook that could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunbookError {
    #[error("{path}: cannot read runbook: {reason}")]
    Unreadable { path: String, reason: String },
    #[error(
        "{path}: runbook is larger than {MAX_RUNBOOK_BYTES} bytes ({size}); at most {MAX_RUNBOOK_BYTES} bytes are accepted"
    )]
    TooLarge { path: String, size: u64 },
    #[error("{}", render_all(.source_name, .diagnostics))]
    Invalid {
        source_name: String,
        diagnostics: Vec<Diagnostic>,
    },
}

fn render_all(source: &str, diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.render(source))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A validated runbook together with where it came from and any warnings.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub runbook: Runbook,
    pub source: String,
    pub warnings: Vec<Diagnostic>,
}

impl fmt::Display for Loaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "runbook {:?} from {} ({} steps)",
            self.runbook.metadata.name,
            self.source,
            self.runbook.spec.steps.len()
        )
    }
}

fn parse_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_reader_input_bytes = Some(MAX_RUNBOOK_BYTES as usize);
    serde_saphyr::options! {
        budget: Some(budget),
        strict_booleans: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        with_snippet: false,
    }
}

/// The parser's message in our words, without its own position suffix; we
/// print positions as file:line:col.
fn bare_message(e: &crate::yaml::Error) -> String {
    yaml::message(e.message())
}

/// Parse and validate runbook text. `source_name` is used in messages.
pub fn parse(source_name: &str, text: &str) -> Result<Loaded, RunbookError> {
    if text.len() as u64 > MAX_RUNBOOK_BYTES {
        return Err(RunbookError::TooLarge {
            path: source_name.to_string(),
            size: text.len() as u64,
        });
    }
    if let Some(d) = yaml::find_tag(text) {
        return Err(RunbookError::Invalid {
            source_name: source_name.to_string(),
            diagnostics: vec![d],
        });
    }
    let doc: schema::RunbookDoc = crate::yaml::from_str_with_options(text, parse_options())
        .map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            RunbookError::Invalid {
                source_name: source_name.to_string(),
                diagnostics: vec![Diagnostic {
                    line,
                    column,
                    severity: Severity::Error,
                    message: bare_message(&e),
                }],
            }
        })?;
    let (rb, diagnostics) = validate::validate(doc);
    match rb {
        Some(runbook) => Ok(Loaded {
            runbook,
            source: source_name.to_string(),
            warnings: diagnostics,
        }),
        None => Err(RunbookError::Invalid {
            source_name: source_name.to_string(),
            diagnostics,
        }),
    }
}

/// Read, parse and validate a runbook file. Only a regular file is read
/// (a FIFO or a device is refused without blocking), and never more than
/// [`MAX_RUNBOOK_BYTES`] of it.
pub fn load_file(path: &Path) -> Result<Loaded, RunbookError> {
    use crate::safe_fs::{self, Follow, ReadError};
    let name = path.display().to_string();
    let bytes = match safe_fs::read_file(path, MAX_RUNBOOK_BYTES, Follow::Symlinks) {
        Ok(b) => b,
        Err(ReadError::TooLarge { .. }) => {
            return Err(RunbookError::TooLarge {
                path: name,
                size: std::fs::metadata(path)
                    .map(|m| m.len())
                    .unwrap_or(MAX_RUNBOOK_BYTES + 1),
            });
        }
        Err(e) => {
            return Err(RunbookError::Unreadable {
                path: name,
                reason: e.to_string(),
            });
        }
    };
    let text = String::from_utf8(bytes).map_err(|e| RunbookError::Unreadable {
        path: name.clone(),
        reason: format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    })?;
    parse(&name, &text)
}

/// The compiled-in default runbook.
pub fn default_runbook() -> Loaded {
    match parse(DEFAULT_SOURCE, DEFAULT_YAML) {
        Ok(l) => l,
        // A test (`default_runbook_is_valid`) guarantees this cannot happen in a release.
        Err(e) => panic!("the built-in default runbook is invalid: {e}"),
    }
}

/// Render the effective runbook as YAML.
pub fn to_yaml(rb: &Runbook) -> String {
    serde_saphyr::to_string(rb).unwrap_or_else(|e| format!("# cannot render runbook: {e}\n"))
}

#[cfg(test)]
mod tests;
