//! The vocabulary shared by every MyloWare crate. No I/O beyond reading a
//! projects folder (`PROJECTS_DIR`) at startup; the shipped project
//! definitions are compiled in (`build.rs`): ids, the run state machine, gates, provider
//! modes, project specs and their validation, configuration and its checks,
//! the API <-> orchestrator wire types, the `{"detail": ...}` envelope and
//! the redaction of content sent to traces.
//!
//! Crate graph: `myloware-core` imports no other MyloWare crate; every
//! other crate may import it.

pub mod auth;
pub mod backoff;
pub mod config;
pub mod costs;
pub mod error;
pub mod graph;
pub mod ids;
pub mod internal;
pub mod project;
pub mod providers;
pub mod redact;
pub mod run;
pub mod schedule;
pub mod signing;
pub mod wire;

pub use error::ErrorBody;
pub use providers::ProviderMode;
pub use run::{Gate, RunStatus};
