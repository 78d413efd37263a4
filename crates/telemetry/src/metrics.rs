//! Each service owns a Prometheus [`Registry`] (so `mw dev`, which runs both
//! in one process, still shows each service its own series) with the HTTP
//! metrics of OBSERVABILITY.md, labelled by the matched route template,
//! never the raw path.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

const HTTP_LABELS: [&str; 7] = ["service", "method", "route", "status", "runId", "gate", "persona"];

/// 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// A service's registry and its HTTP metrics.
#[derive(Clone)]
pub struct HttpMetrics {
    service: &'static str,
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl HttpMetrics {
    pub fn new(service: &'static str) -> Arc<HttpMetrics> {
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
        })
    }

    /// The registry, for domain metrics of the service.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// `GET /metrics`: the text exposition with its content type.
    pub fn exposition(&self) -> Response {
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
    let status = response.status().as_u16().to_string();
    let labels = [
        metrics.service,
        method.as_str(),
        route.as_str(),
        status.as_str(),
        run_id.as_str(),
        gate.as_str(),
        persona.as_str(),
    ];
    metrics.requests.with_label_values(&labels).inc();
    metrics
        .duration
        .with_label_values(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}
