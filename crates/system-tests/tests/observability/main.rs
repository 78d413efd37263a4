//! Observability: the metrics the services export, a real Prometheus scraping them with the repository's alerts and dashboard, and OTLP traces.

#[path = "../support/mod.rs"]
mod support;

mod metrics;
mod prometheus;
mod traces;
