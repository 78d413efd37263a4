//! Each service owns a Prometheus [`Registry`] (so `mw dev`, which runs both
//! in one process, still shows each service its own series) with the HTTP
//! metrics of OBSERVABILITY.md, labelled by the matched route template,
//! never the raw path.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

const HTTP_LABELS: [&str; 7] = ["service", "method", "route", "status", "runId", "gate", "persona"];

/// A run's distinct HTTP label sets kept for dropping (its requests use a
/// handful of routes; this bounds a misbehaving client).
const MAX_SERIES_PER_RUN: usize = 256;

/// 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The run a response concerns when it is not in the path (a run id in
/// the body, e.g. `POST /v1/runs/start`); handlers put it in the response's
/// extensions.
#[derive(Debug, Clone)]
pub struct RunLabel(pub String);

/// A service's registry and its HTTP metrics.
pub struct HttpMetrics {
    service: &'static str,
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    runs: Mutex<RunSeries>,
}

/// The label sets of each run's HTTP series, so a finished run's series can
/// be dropped after `ttl` (Prometheus keeps their history) and the series
/// count stays bounded by the active runs.
struct RunSeries {
    ttl: Duration,
    labels: HashMap<String, HashSet<[String; 7]>>,
    finished: HashMap<String, Instant>,
}

impl HttpMetrics {
    /// The service's registry with its HTTP metrics; series of a run are
    /// dropped `run_series_ttl` after [`HttpMetrics::run_finished`].
    pub fn new(service: &'static str, run_series_ttl: Duration) -> Arc<HttpMetrics> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(Opts::new("http_requests_total", "HTTP requests answered"), &HTTP_LABELS)
            .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &HTTP_LABELS,
        )
        .expect("valid metric");
        registry.register(Box::new(requests.clone())).expect("register once");
        registry.register(Box::new(duration.clone())).expect("register once");
        Arc::new(HttpMetrics {
            service,
            registry,
            requests,
            duration,
            runs: Mutex::new(RunSeries {
                ttl: run_series_ttl,
                labels: HashMap::new(),
                finished: HashMap::new(),
            }),
        })
    }

    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The run ended: its series go `run_series_ttl` from now.
    pub fn run_finished(&self, run_id: &str) {
        let mut runs = self.runs.lock().expect("run series lock");
        if runs.labels.contains_key(run_id) {
            runs.finished.entry(run_id.to_string()).or_insert_with(Instant::now);
        }
        drop(runs);
        self.sweep();
    }

    /// Drops the series of runs that finished more than the TTL ago.
    pub fn sweep(&self) {
        let mut runs = self.runs.lock().expect("run series lock");
        let ttl = runs.ttl;
        let expired: Vec<String> = runs
            .finished
            .iter()
            .filter(|(_, at)| at.elapsed() >= ttl)
            .map(|(run, _)| run.clone())
            .collect();
        for run in expired {
            runs.finished.remove(&run);
            for labels in runs.labels.remove(&run).unwrap_or_default() {
                let values: Vec<&str> = labels.iter().map(String::as_str).collect();
                let _ = self.requests.remove_label_values(&values);
                let _ = self.duration.remove_label_values(&values);
            }
        }
    }

    /// Runs whose series are in the registry.
    pub fn tracked_runs(&self) -> usize {
        self.runs.lock().expect("run series lock").labels.len()
    }

    fn observe(&self, labels: [&str; 7], seconds: f64) {
        self.requests.with_label_values(&labels).inc();
        self.duration.with_label_values(&labels).observe(seconds);
        let run_id = labels[4];
        if !run_id.is_empty() {
            let mut runs = self.runs.lock().expect("run series lock");
            let set = runs.labels.entry(run_id.to_string()).or_default();
            if set.len() < MAX_SERIES_PER_RUN {
                set.insert(labels.map(str::to_owned));
            }
        }
    }

    /// The registry, for domain metrics of the service.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// `GET /metrics`: the text exposition with its content type.
    pub fn exposition(&self) -> Response {
        self.sweep();
        (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            self.render(),
        )
            .into_response()
    }

    /// The Prometheus text exposition of every metric of this service.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding cannot fail");
        String::from_utf8(buffer).expect("prometheus text is UTF-8")
    }
}

/// Middleware (install with `route_layer`, so the route is matched):
/// counts and times each request by route template and the run, gate and
/// persona it concerns.
pub async fn track_http(State(metrics): State<Arc<HttpMetrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let (mut parts, body) = request.into_parts();
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let (mut run_id, mut gate, mut persona) = (String::new(), String::new(), String::new());
    if let Ok(params) = RawPathParams::from_request_parts(&mut parts, &()).await {
        for (key, value) in &params {
            match key {
                "runId" => run_id = value.to_owned(),
                "gate" => gate = value.to_owned(),
                "persona" => persona = value.to_owned(),
                _ => {}
            }
        }
    }
    let response = next.run(Request::from_parts(parts, body)).await;
    if run_id.is_empty()
        && let Some(RunLabel(id)) = response.extensions().get::<RunLabel>()
    {
        run_id = id.clone();
    }
    if persona.is_empty() {
        persona = gate_persona(&gate).to_owned();
    }
    let status = response.status().as_u16().to_string();
    metrics.observe(
        [
            metrics.service,
            method.as_str(),
            route.as_str(),
            status.as_str(),
            run_id.as_str(),
            gate.as_str(),
            persona.as_str(),
        ],
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The persona a gate belongs to (the `persona` label of gate routes).
fn gate_persona(gate: &str) -> &'static str {
    match gate {
        "workflow" => "brendan",
        "ideate" => "iggy",
        "prepublish" => "quinn",
        _ => "",
    }
}

/// Registers a counter family in `registry`.
pub fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(metric.clone())).expect("register once");
    metric
}

/// Registers a histogram family in `registry`.
pub fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let metric =
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels).expect("valid metric");
    registry.register(Box::new(metric.clone())).expect("register once");
    metric
}

/// Registers a gauge family in `registry`.
pub fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(metric.clone())).expect("register once");
    metric
}

/// Registers a gauge in `registry`.
pub fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).expect("valid metric");
    registry.register(Box::new(metric.clone())).expect("register once");
    metric
}

/// Seconds, from 1 s to 1 h: waits for people and providers.
pub const WAIT_BUCKETS: [f64; 12] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 14400.0,
];

/// Seconds, 10 ms to 10 min: steps and provider jobs.
pub const STEP_BUCKETS: [f64; 14] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_runs_series_are_dropped_after_the_ttl() {
        let metrics = HttpMetrics::new("api", Duration::from_millis(50));
        let labels = |run: &'static str| ["api", "GET", "/v1/runs/{runId}", "200", run, "", ""];
        metrics.observe(labels("run_a"), 0.01);
        metrics.observe(labels("run_b"), 0.01);
        metrics.observe(["api", "GET", "/health", "200", "", "", ""], 0.001);
        metrics.run_finished("run_a");
        assert!(metrics.render().contains("runId=\"run_a\""), "kept until the TTL");
        std::thread::sleep(Duration::from_millis(60));
        metrics.sweep();
        let text = metrics.render();
        assert!(!text.contains("runId=\"run_a\""), "{text}");
        assert!(text.contains("runId=\"run_b\""), "a running run keeps its series");
        assert!(text.contains("route=\"/health\""), "series without a run stay");
        assert_eq!(metrics.tracked_runs(), 1);
    }
}
