//! Logging, Prometheus metrics and the HTTP metrics middleware shared by
//! both services, and the OTLP trace export. (The HTTP plumbing, request
//! bodies, ids, deadlines and the server loop, is `myloware-http`.)
//!
//! Crate graph: `myloware-telemetry` may import `myloware-core` only;
//! `myloware-http`, the services and `myloware-cli` import it.

pub mod logging;
pub mod metrics;
pub mod trace;

pub use metrics::{HttpMetrics, RunLabel, track_http};
/// The services' metric types, from the same crate version as the registry.
pub use prometheus;
