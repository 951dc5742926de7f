//! YAML read in two steps: serde-saphyr parses the text into a tree of located nodes,
//! then [`de`] gives the tree the type the caller asks for.
//!
//! Why not serde-saphyr straight into each type: its deserializer is generic over every
//! visitor, so each field type of each document read (the runbook schema, the
//! KubeletConfiguration, a kubeconfig) compiled its own copy of the YAML event machinery,
//! 10–30 KB apiece: 1.0 MB of the 10.85 MB binary (docs/benchmarks.md, pass 4). Parsed
//! once into [`Node`], serde-saphyr's deserializer is compiled for the tree alone; typing a
//! tree is a few hundred bytes per type.
//!
//! What the parser guarantees stays with the parser: the budget (input size, depth, alias
//! expansion), the duplicate-key policy, merge keys, syntax errors with their position.
//! What the typing adds keeps the position of the node it is about: an unknown field is
//! reported at its key, a wrong type at its value, a missing field at its mapping.
//!
//! Scalars are typed as serde-saphyr types them for an untyped target (YAML 1.2 core
//! schema: `true`, `10`, `1.5`, `~`), and a typed field reads them as serde-saphyr's own
//! typed reads do: a string field given a plain `1.10` gets the text `1.10` as written
//! (recovered from the source at the node's position), a number field given `"10"` gets 10.

mod de;
mod scalar;
mod spanned;
mod tree;

use std::fmt;

use serde::de::DeserializeOwned;

pub use spanned::Spanned;

/// A position in the YAML text: line and column, from 1. `UNKNOWN` (0, 0) when there is
/// none (a value that was not in the text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Location {
    line: u64,
    column: u64,
}

impl Location {
    pub const UNKNOWN: Location = Location { line: 0, column: 0 };

    pub const fn new(line: u64, column: u64) -> Self {
        Location { line, column }
    }

    pub const fn line(&self) -> u64 {
        self.line
    }

    pub const fn column(&self) -> u64 {
        self.column
    }

    fn from_saphyr(l: serde_saphyr::Location) -> Self {
        Location::new(l.line(), l.column())
    }
}

/// Why a YAML text could not be read as the type asked for, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    message: String,
    location: Option<Location>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        match self.location() {
            Some(l) => write!(f, " at line {}, column {}", l.line(), l.column()),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The message without its position.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where in the text the problem is, when it is known.
    pub fn location(&self) -> Option<Location> {
        self.location.filter(|l| *l != Location::UNKNOWN)
    }

    /// Position the error at `l` unless a node deeper down already did.
    fn at(mut self, l: Location) -> Self {
        if self.location.is_none() {
            self.location = Some(l);
        }
        self
    }

    fn from_parser(e: serde_saphyr::Error) -> Self {
        let location = e.location().map(Location::from_saphyr);
        let text = e.to_string();
        // The parser's own suffix (" at line N column M") and snippet are dropped: the
        // position is kept apart and printed by Display.
        let first = text.lines().next().unwrap_or("").trim();
        let message = match first.rfind(" at line ") {
            Some(i) => &first[..i],
            None => first,
        };
        Error {
            message: message.to_string(),
            location,
        }
    }
}

impl serde::de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error {
            message: msg.to_string(),
            location: None,
        }
    }
}

/// How a text is parsed: serde-saphyr's options (budget, duplicate keys, booleans).
/// `strict_booleans: false` (serde-saphyr's default) lets a boolean field read YAML 1.1's
/// `yes`/`no`/`on`/`off`; the tree itself always keeps them as text, so a string field
/// given `on` reads `on`.
pub fn from_str_with_options<T: DeserializeOwned>(
    text: &str,
    mut options: serde_saphyr::Options,
) -> Result<T, Error> {
    let yaml11_booleans = !options.strict_booleans;
    options.strict_booleans = true;
    let root: Option<tree::Node> =
        serde_saphyr::from_str_with_options(text, options).map_err(Error::from_parser)?;
    de::type_tree(root, text, yaml11_booleans)
}

/// [`from_str_with_options`] with serde-saphyr's default options.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    from_str_with_options(text, serde_saphyr::Options::default())
}

#[cfg(test)]
mod tests;
