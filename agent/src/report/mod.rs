//! Reporting: what nodewarden did, where people look for it.
//!
//! - [`events`]: events.k8s.io Events on the Node for every `Report` the
//!   executor emits (best effort, under a deadline);
//! - [`metrics`]: Prometheus text metrics served on loopback;
//! - [`reported`]: the Events for report-only problems, which never open an episode.
//!
//! NodeConditions live with the rest of the Node API in `act::node`
//! (`NodeConditions`), since they share its client and ownership rules.

pub mod conditions;
pub mod events;
pub mod metrics;
pub mod reported;

pub use events::EventSink;
pub use metrics::Metrics;
