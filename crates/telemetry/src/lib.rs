//! Logging, Prometheus metrics and the HTTP metrics middleware shared by
//! both services, the OTLP trace export, and the HTTP server loop with its
//! timeouts and connection cap.

pub mod body;
pub mod http;
pub mod internal;
pub mod logging;
pub mod metrics;
pub mod objects_only;
pub mod server;
pub mod trace;

pub use metrics::{HttpMetrics, RunLabel, track_http};
/// The services' metric types, from the same crate version as the registry.
pub use prometheus;
