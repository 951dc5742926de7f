//! The escalation runbook: YAML schema, semantic validation, the embedded default.
//!
//! Loading never panics and never half-succeeds: a runbook either validates
//! completely or is rejected with every problem named as `file:line:column`.

mod model;
pub mod schema;
mod validate;

use std::fmt;
use std::path::Path;

pub use model::*;
pub use validate::{
    DEFAULT_RUNTIME_UNITS, DEFAULT_TIME_SYNC_UNITS, default_timing, valid_unit_name,
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
    #[error("{path}: runbook is {size} bytes; at most {MAX_RUNBOOK_BYTES} bytes are accepted")]
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

/// Strip serde-saphyr's own position suffix; we print positions as file:line:col.
fn bare_message(e: &serde_saphyr::Error) -> String {
    let s = e.to_string();
    let s = s.lines().next().unwrap_or("").trim().to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Parse and validate runbook text. `source_name` is used in messages.
pub fn parse(source_name: &str, text: &str) -> Result<Loaded, RunbookError> {
    if text.len() as u64 > MAX_RUNBOOK_BYTES {
        return Err(RunbookError::TooLarge {
            path: source_name.to_string(),
            size: text.len() as u64,
        });
    }
    let doc: schema::RunbookDoc = serde_saphyr::from_str_with_options(text, parse_options())
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

/// Read, parse and validate a runbook file.
pub fn load_file(path: &Path) -> Result<Loaded, RunbookError> {
    let name = path.display().to_string();
    let unreadable = |e: std::io::Error| RunbookError::Unreadable {
        path: name.clone(),
        reason: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if meta.is_dir() {
        return Err(RunbookError::Unreadable {
            path: name,
            reason: "is a directory".into(),
        });
    }
    if meta.len() > MAX_RUNBOOK_BYTES {
        return Err(RunbookError::TooLarge {
            path: name,
            size: meta.len(),
        });
    }
    let bytes = std::fs::read(path).map_err(unreadable)?;
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
