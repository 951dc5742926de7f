//! Text from the ledger, probes or the API, made safe to print on a terminal.
//!
//! The ledger holds strings that came from outside (a runbook's report
//! message, a command's stderr, an API error, a healthz body). Printed raw,
//! an escape sequence in one of them could rewrite the operator's terminal.
//! Control characters are shown escaped (`\u{1b}`), the way the log's text
//! format shows them.

use std::borrow::Cow;

/// `s` with every control character (C0, DEL, C1) escaped; unchanged if it has none.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests;
