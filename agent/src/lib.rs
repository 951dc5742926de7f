//! nodewarden: a node-side Kubernetes remediation agent.
//!
//! The shape is drawn in `docs/architecture.md`: probes produce observations, the
//! health model turns them into findings, the pure planner turns findings +
//! ledger + runbook + cluster view + `now` into one decision, and the
//! executor carries it out through actuator traits.

#![deny(unsafe_code)]

pub mod act;
pub mod daemon;
pub mod domain;
pub mod dryrun;
pub mod enact;
pub mod health;
pub mod host;
pub mod ledger;
pub mod maintenance;
pub mod plan;
pub mod probe;
pub mod report;
pub mod runbook;
pub mod safe_fs;
pub mod text;
pub mod view;
pub mod yaml;
