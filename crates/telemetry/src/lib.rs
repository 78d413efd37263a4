//! Logging, Prometheus metrics and the HTTP metrics middleware shared by
//! both services. (OTLP tracing joins here with the observability work.)

pub mod body;
pub mod http;
pub mod logging;
pub mod metrics;

pub use metrics::{HttpMetrics, track_http};
