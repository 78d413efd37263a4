//! Observability: the metrics the services export, a real Prometheus scraping them with the repository's alerts and dashboard, and OTLP traces.

mod contract;
mod metrics;
mod prometheus;
mod scrape;
mod traces;
