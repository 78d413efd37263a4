//! Each service owns a Prometheus [`Registry`] (so `mw dev`, which runs both
//! in one process, still shows each service its own series) with the HTTP
//! metrics of OBSERVABILITY.md, labelled by the matched route template,
//! never the raw path.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use myloware_core::Gate;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Bucket, Counter, Histogram, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

const HTTP_LABELS: [&str; 7] = ["service", "method", "route", "status", "runId", "gate", "persona"];

/// 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The run a response concerns when it is not in the path (a run id in
/// the body, e.g. `POST /v1/runs/start`); handlers put it in the response's
/// extensions.
#[derive(Debug, Clone)]
pub struct RunLabel(pub String);

/// Default of `METRICS_MAX_RUN_SERIES`: runs whose HTTP series are kept at once.
pub const DEFAULT_MAX_RUN_SERIES: usize = 10_000;

/// The longest label value kept; longer ones are cut (route templates and
/// run ids are far shorter, so only a bug would reach it).
const MAX_LABEL_CHARS: usize = 128;

/// `method` values kept as they are; any other method is `OTHER`.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// A service's registry and its HTTP metrics.
pub struct HttpMetrics {
    service: &'static str,
    registry: Registry,
    http: Arc<HttpSeries>,
}

impl HttpMetrics {
    /// The service's registry with its HTTP metrics; series of a run are
    /// dropped `run_series_ttl` after [`HttpMetrics::run_finished`], and at
    /// most `max_run_series` runs have series at once (the requests of
    /// further runs are counted without their run, and
    /// `myloware_metrics_labels_dropped_total` says how many).
    pub fn new(service: &'static str, run_series_ttl: Duration, max_run_series: usize) -> Arc<HttpMetrics> {
        let registry = Registry::new();
        let dropped = counter(&registry, DROPPED.0, DROPPED.1, &["service"]).with_label_values(&[service]);
        let http = Arc::new(HttpSeries::new(run_series_ttl, max_run_series, dropped));
        registry
            .register(Box::new(HttpCollector(http.clone())))
            .expect("register once");
        // The first scrape renders before it is counted: without this
        // series, a fresh deployment shows no HTTP metrics at all.
        http.declare([service, "GET", "/metrics", "200", "", ""]);
        Arc::new(HttpMetrics {
            service,
            registry,
            http,
        })
    }

    pub fn service(&self) -> &'static str {
        self.service
    }

    /// Declares, at zero, the series a request to `route` answered with
    /// `status` would count (no run), so dashboards and alerts have a series
    /// from startup. `gate` must be a gate's name or empty.
    pub fn declare(&self, method: &str, route: &str, status: u16, gate: &str) {
        let labels = HttpLabels::new(method, route, status, "", gate, true);
        let status = labels.status.to_string();
        self.http.declare([
            self.service,
            labels.method,
            &labels.route,
            &status,
            labels.gate,
            labels.persona,
        ]);
    }

    /// The run ended: its series go `run_series_ttl` from now.
    pub fn run_finished(&self, run_id: &str) {
        self.http.run_finished(run_id);
    }

    /// Drops the series of runs that finished more than the TTL ago.
    pub fn sweep(&self) {
        self.http.sweep();
    }

    /// Runs whose series are in the registry.
    pub fn tracked_runs(&self) -> usize {
        self.http.tracked_runs()
    }

    fn observe(&self, labels: [&str; 7], seconds: f64) {
        self.http.observe(labels, seconds);
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
/// counts and times each request by route template and, for answers that
/// concern a run the caller may see, the run, gate and persona.
pub async fn track_http(State(metrics): State<Arc<HttpMetrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let (mut parts, body) = request.into_parts();
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let (mut run_id, mut gate) = (String::new(), String::new());
    if let Ok(params) = RawPathParams::from_request_parts(&mut parts, &()).await {
        for (key, value) in &params {
            match key {
                "runId" => run_id = value.to_owned(),
                "gate" => gate = value.to_owned(),
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
    let labels = HttpLabels::new(
        method.as_str(),
        &route,
        response.status().as_u16(),
        &run_id,
        &gate,
        is_known(response.status()),
    );
    let status = labels.status.to_string();
    metrics.observe(
        [
            metrics.service,
            labels.method,
            &labels.route,
            &status,
            labels.run_id,
            labels.gate,
            labels.persona,
        ],
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Whether a response says the caller was authenticated and the run of
/// its path exists, so the run may be a label.
///
/// Every route with a `{runId}` answers 2xx or 3xx only then: on the API,
/// `/v1/runs/{runId}`, `/v1/runs/{runId}/artifacts`, `/v1/runs/{runId}/cancel`
/// and `/v1/hitl/link/{runId}/{gate}` sit behind the API key (401) and
/// answer 404 for an unknown run; `/v1/hitl/approve|reject/{runId}/{gate}`
/// check the link's token (403) or the API key before looking the run up
/// (404, and the page's errors keep the error's status). On the
/// orchestrator, every `/v1/executions/{runId}…` route sits behind its
/// credential (401) and answers 404 for an unknown execution. The run ids
/// handlers report in [`RunLabel`] (run start, chat) are of runs just
/// created or found by an authenticated caller. 401, 403 and 404 (and every
/// other 4xx or 5xx) are thus counted without run, gate and persona:
/// unauthenticated callers cannot add series.
fn is_known(status: StatusCode) -> bool {
    status.is_success() || status.is_redirection()
}

/// The label values of one request, each from a bounded set.
#[derive(Debug, PartialEq, Eq)]
struct HttpLabels<'a> {
    /// A standard method or `OTHER`.
    method: &'static str,
    /// The matched route template (or `unmatched`), length-capped.
    route: String,
    status: u16,
    /// A run-id-shaped id of a known run, or empty.
    run_id: &'a str,
    /// A gate's name, or empty.
    gate: &'static str,
    /// The persona of the gate, or empty.
    persona: &'static str,
}

impl<'a> HttpLabels<'a> {
    /// `known`: the answer concerns a run the caller may see ([`is_known`]);
    /// otherwise run, gate and persona are left empty.
    fn new(method: &str, route: &str, status: u16, run_id: &'a str, gate: &str, known: bool) -> HttpLabels<'a> {
        let method = METHODS.into_iter().find(|m| *m == method).unwrap_or("OTHER");
        let route = match route.char_indices().nth(MAX_LABEL_CHARS) {
            Some((cut, _)) => route[..cut].to_owned(),
            None => route.to_owned(),
        };
        let run_id = if known && run_id.len() <= MAX_LABEL_CHARS && myloware_core::ids::is_run_id(run_id) {
            run_id
        } else {
            ""
        };
        let gate = match gate.parse::<Gate>() {
            Ok(gate) if known => gate.as_str(),
            _ => "",
        };
        HttpLabels {
            method,
            route,
            status,
            run_id,
            gate,
            persona: gate_persona(gate),
        }
    }
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

/// `http_requests_total` and `http_request_duration_seconds`, kept compactly.
///
/// With a run id among the labels there is a series pair per active run
/// (and route and status), so their memory is what many parked runs cost:
/// the prometheus crate's vectors take about 4.2 KB per pair (measured:
/// 10,000 runs, 42 MB), these about 0.5 KB. Series are grouped by run, so
/// a finished run's series are dropped at once, `ttl` after it ended
/// (Prometheus keeps their history), and the series count stays bounded by
/// the active runs, and at most `max_runs`.
struct HttpSeries {
    ttl: Duration,
    max_runs: usize,
    /// Requests of a run counted without it (the cap was reached).
    dropped: IntCounter,
    state: Mutex<SeriesState>,
}

/// The six labels other than `runId`, in `HTTP_LABELS` order.
type OtherLabels = [Box<str>; 6];

#[derive(Default)]
struct SeriesState {
    /// Requests that concern no run (`/health`, `/metrics`, listings…), by
    /// a hash of their labels (so a request is counted without allocating),
    /// then by the labels themselves.
    unscoped: HashMap<u64, Vec<(OtherLabels, Observed)>>,
    /// By run id, then by the other labels (a run uses a handful of
    /// routes, so a list).
    runs: HashMap<Box<str>, Vec<(OtherLabels, Observed)>>,
    /// Runs that ended, and when.
    finished: HashMap<Box<str>, Instant>,
}

/// One label set's count, sum and per-bucket counts (not cumulative).
#[derive(Default)]
struct Observed {
    count: u64,
    sum: f64,
    buckets: [u64; LATENCY_BUCKETS.len()],
}

impl Observed {
    fn add(&mut self, seconds: f64) {
        self.count += 1;
        self.sum += seconds;
        if let Some(bucket) = LATENCY_BUCKETS.iter().position(|le| seconds <= *le) {
            self.buckets[bucket] += 1;
        }
    }
}

impl HttpSeries {
    fn new(ttl: Duration, max_runs: usize, dropped: IntCounter) -> HttpSeries {
        HttpSeries {
            ttl,
            max_runs,
            dropped,
            state: Mutex::new(SeriesState::default()),
        }
    }

    /// A series without run, at zero.
    fn declare(&self, others: [&str; 6]) {
        let mut state = self.state.lock().expect("http series lock");
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(others);
        let series = state.unscoped.entry(hash).or_default();
        if !series.iter().any(|(l, _)| l.iter().map(|v| &**v).eq(others)) {
            series.push((others.map(Box::from), Observed::default()));
        }
    }

    fn observe(&self, labels: [&str; 7], seconds: f64) {
        let [service, method, route, status, mut run_id, gate, persona] = labels;
        let others = [service, method, route, status, gate, persona];
        let mut state = self.state.lock().expect("http series lock");
        if !run_id.is_empty() && !state.runs.contains_key(run_id) && state.runs.len() >= self.max_runs {
            self.dropped.inc();
            run_id = "";
        }
        let series = if run_id.is_empty() {
            let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(others);
            state.unscoped.entry(hash).or_default()
        } else {
            if !state.runs.contains_key(run_id) {
                state.runs.insert(run_id.into(), Vec::new());
            }
            state.runs.get_mut(run_id).expect("just inserted")
        };
        match series.iter_mut().find(|(l, _)| l.iter().map(|v| &**v).eq(others)) {
            Some((_, observed)) => observed.add(seconds),
            None => {
                let mut observed = Observed::default();
                observed.add(seconds);
                series.push((others.map(Box::from), observed));
            }
        }
    }

    fn run_finished(&self, run_id: &str) {
        let mut state = self.state.lock().expect("http series lock");
        if !run_id.is_empty() && state.runs.contains_key(run_id) && !state.finished.contains_key(run_id) {
            state.finished.insert(run_id.into(), Instant::now());
        }
        drop(state);
        self.sweep();
    }

    fn sweep(&self) {
        let mut state = self.state.lock().expect("http series lock");
        let ttl = self.ttl;
        let expired: Vec<Box<str>> = state
            .finished
            .iter()
            .filter(|(_, at)| at.elapsed() >= ttl)
            .map(|(run, _)| run.clone())
            .collect();
        for run in expired {
            state.finished.remove(&run);
            state.runs.remove(&run);
        }
    }

    fn tracked_runs(&self) -> usize {
        let state = self.state.lock().expect("http series lock");
        state.runs.len()
    }

    /// Both families, in the prometheus crate's model.
    fn families(&self) -> Vec<MetricFamily> {
        let state = self.state.lock().expect("http series lock");
        let mut requests = Vec::new();
        let mut durations = Vec::new();
        let unscoped = state.unscoped.values().map(|series| ("", series));
        let runs = state.runs.iter().map(|(run_id, series)| (&**run_id, series));
        for (run_id, series) in unscoped.chain(runs) {
            for (labels, observed) in series {
                let [service, method, route, status, gate, persona] = labels.each_ref().map(|v| &**v);
                // Listed in name order, as the prometheus crate sorts them.
                let pairs: Vec<LabelPair> = [
                    ("gate", gate),
                    ("method", method),
                    ("persona", persona),
                    ("route", route),
                    ("runId", run_id),
                    ("service", service),
                    ("status", status),
                ]
                .into_iter()
                .map(|(name, value)| {
                    let mut pair = LabelPair::default();
                    pair.set_name(name.to_string());
                    pair.set_value(value.to_string());
                    pair
                })
                .collect();

                let mut counter = Counter::default();
                counter.set_value(observed.count as f64);
                let mut metric = Metric::from_label(pairs.clone());
                metric.set_counter(counter);
                requests.push(metric);

                let mut cumulative = 0;
                let buckets = LATENCY_BUCKETS
                    .iter()
                    .zip(observed.buckets)
                    .map(|(le, count)| {
                        cumulative += count;
                        let mut bucket = Bucket::default();
                        bucket.set_upper_bound(*le);
                        bucket.set_cumulative_count(cumulative);
                        bucket
                    })
                    .collect();
                let mut histogram = Histogram::default();
                histogram.set_sample_count(observed.count);
                histogram.set_sample_sum(observed.sum);
                histogram.set_bucket(buckets);
                let mut metric = Metric::from_label(pairs);
                metric.set_histogram(histogram);
                durations.push(metric);
            }
        }
        drop(state);
        let family = |name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>| {
            let mut family = MetricFamily::default();
            family.set_name(name.to_string());
            family.set_help(help.to_string());
            family.set_field_type(kind);
            family.set_metric(metrics);
            family
        };
        vec![
            family(REQUESTS.0, REQUESTS.1, MetricType::COUNTER, requests),
            family(DURATION.0, DURATION.1, MetricType::HISTOGRAM, durations),
        ]
    }
}

const REQUESTS: (&str, &str) = ("http_requests_total", "HTTP requests answered");
const DURATION: (&str, &str) = ("http_request_duration_seconds", "HTTP request latency");
const DROPPED: (&str, &str) = (
    "myloware_metrics_labels_dropped_total",
    "Requests of a run counted without their run: METRICS_MAX_RUN_SERIES runs already had series",
);

/// [`HttpSeries`] as a collector of the service's registry.
struct HttpCollector(Arc<HttpSeries>);

static HTTP_DESCS: std::sync::LazyLock<[Desc; 2]> = std::sync::LazyLock::new(|| {
    let desc = |(name, help): (&str, &str)| {
        let labels = HTTP_LABELS.iter().map(|l| l.to_string()).collect();
        Desc::new(name.to_string(), help.to_string(), labels, HashMap::new()).expect("valid metric")
    };
    [desc(REQUESTS), desc(DURATION)]
});

impl Collector for HttpCollector {
    fn desc(&self) -> Vec<&Desc> {
        HTTP_DESCS.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.0.families()
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
mod tests;
