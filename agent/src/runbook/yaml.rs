//! The YAML layer under the runbook schema: what the parser may accept, and
//! its error messages in our words.
//!
//! serde-saphyr resolves YAML tags silently (`!!str`, `!custom`, `!!binary`),
//! so a tag could change what a value means without anyone noticing; a runbook
//! has no use for them, so any tag is refused at its position. The parser's
//! own messages name its API (`set DuplicateKeyPolicy in Options`,
//! `use from_str_multiple`, `budget breached: ScalarBytes {…}`); they are
//! rewritten to say what is wrong with the file.

use super::{Diagnostic, Severity};

/// The first YAML tag in `text`, as a diagnostic. The scan sees each node
/// once (aliases are not expanded), so it is linear in the input.
pub(super) fn find_tag(text: &str) -> Option<Diagnostic> {
    use granit_parser::{Event, Parser};
    for ev in Parser::new_from_str(text) {
        let Ok((ev, span)) = ev else {
            // Syntax errors are reported by the real parse, with its position.
            return None;
        };
        let tag = match &ev {
            Event::Scalar(_, _, _, t)
            | Event::SequenceStart(_, _, t)
            | Event::MappingStart(_, _, t) => t.as_ref(),
            _ => None,
        };
        if let Some(t) = tag {
            return Some(Diagnostic {
                line: span.start.line() as u64,
                column: span.start.col() as u64 + 1,
                severity: Severity::Error,
                message: format!(
                    "YAML tag {t} is not allowed in a runbook: tags change how a value is read; remove it (quote the value if it must be a string)"
                ),
            });
        }
    }
    None
}

/// The parser's message, first line only, without its own position suffix
/// (positions are printed as file:line:column), in our words.
pub(super) fn message(raw: &str) -> String {
    let s = raw.lines().next().unwrap_or("").trim();
    let s = match s.rfind(" at line ") {
        Some(i) => &s[..i],
        None => s,
    };
    if let Some(rest) = s.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return format!(
            "key {key:?} appears twice in the same mapping; each key may be given once"
        );
    }
    if s.starts_with("multiple YAML documents detected") {
        return "the file holds more than one YAML document (a second '---'); a runbook is exactly one document".into();
    }
    if let Some(rest) = s.strip_prefix("budget breached: ") {
        let what = rest.split([' ', '{']).next().unwrap_or(rest);
        let plain = match what {
            "ScalarBytes" => "its text values add up to more than a runbook can hold",
            "Depth" => "it is nested too deeply",
            "Aliases" | "Anchors" => "it uses too many anchors or aliases",
            "Events" | "Nodes" => "it has too many YAML nodes",
            "InputBytes" => "it is too large",
            "Documents" => "it holds too many documents",
            _ => "it exceeds a limit on runbook size or structure",
        };
        return format!(
            "refused: {plain} (limit {what}); a runbook is small — check for aliases (*name) that repeat large values"
        );
    }
    // serde's words for a number outside the field's range, as the YAML tree reports it
    // ("invalid value: integer `-1`, expected u32"), read like the parser's "invalid u32".
    let ranged = s
        .strip_prefix("invalid value: integer `")
        .and_then(|r| r.split_once("`, expected "))
        .map(|(_, ty)| format!("invalid {ty}"));
    let s = ranged.as_deref().unwrap_or(s);
    if let Some(ty) = s.strip_prefix("invalid ")
        && let Some(bits) = ty.strip_prefix('u').and_then(|b| b.parse::<u32>().ok())
    {
        let max = if bits >= 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        return format!("expected a whole number from 0 to {max}");
    }
    if let Some(ty) = s.strip_prefix("invalid ")
        && let Some(bits) = ty.strip_prefix('i').and_then(|b| b.parse::<u32>().ok())
        && (8..=64).contains(&bits)
    {
        return format!("expected a whole number that fits in {bits} bits");
    }
    s.to_string()
}

#[cfg(test)]
mod tests;
