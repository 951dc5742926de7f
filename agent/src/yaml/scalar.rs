//! Scalar text as YAML writes it: the plain token at a position, integers and booleans.

use super::Location;

/// The plain token starting at `at` (line and column from 1, the column in characters):
/// up to a space, a flow indicator, a comment or the end of the line.
pub(super) fn plain_token_at(text: &str, at: Location) -> Option<&str> {
    let line = text
        .lines()
        .nth(usize::try_from(at.line()).ok()?.checked_sub(1)?)?;
    let col = usize::try_from(at.column()).ok()?.checked_sub(1)?;
    let start = line.char_indices().nth(col).map(|(i, _)| i)?;
    let rest = &line[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '}' | '#'))
        .unwrap_or(rest.len());
    let token = rest[..end].strip_suffix(':').unwrap_or(&rest[..end]);
    (!token.is_empty()).then_some(token)
}

/// An integer as YAML 1.2's core schema writes it: decimal, `0x`, `0o`, with a sign.
pub(super) fn parse_u64(s: &str) -> Option<u64> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if let Some(h) = s.strip_prefix("0x") {
        u64::from_str_radix(h, 16).ok()
    } else if let Some(o) = s.strip_prefix("0o") {
        u64::from_str_radix(o, 8).ok()
    } else {
        s.parse().ok()
    }
}

pub(super) fn parse_i64(s: &str) -> Option<i64> {
    match s.strip_prefix('-') {
        Some(rest) => parse_u64(rest).and_then(|v| 0i64.checked_sub_unsigned(v)),
        None => parse_u64(s).and_then(|v| i64::try_from(v).ok()),
    }
}

pub(super) fn yaml_bool(s: &str, yaml11: bool) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" if yaml11 => Some(true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" if yaml11 => Some(false),
        _ => None,
    }
}
