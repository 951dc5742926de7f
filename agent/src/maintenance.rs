//! Planned maintenance: the impact report shown before any pod moves
//! (`impact.rs`, pure), reading the objects it needs (`fetch.rs`), and the
//! `start`/`end` procedure with its state file (`procedure.rs`).

mod fetch;
mod impact;
pub mod procedure;

pub use fetch::fetch;
pub use impact::*;
