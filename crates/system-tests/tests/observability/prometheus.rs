//! The dashboard and the alerts against what the services really export
//! (OBSERVABILITY.md; the runbook's section 3): every PromQL expression of
//! `deploy/grafana` and `deploy/prometheus/alerts.yml` parses (promtool) and
//! names only metrics and labels that a scrape of both services shows after
//! a mock run through both gates; a real Prometheus started on
//! `deploy/prometheus/prometheus.yml` scrapes a running system, loads the
//! alerts without errors and answers the runbook's
//! `http_requests_total{runId="<run>"}` for a run started here.
//!
//! promtool and prometheus come from Debian's `prometheus` package
//! (`PROMTOOL_BIN`/`PROMETHEUS_BIN`, else `PATH`); without them the tests
//! that need them say so and pass, except under `CI`, where they fail.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use myloware_db::Db;

use myloware_testkit::conformance_tests;
use myloware_testkit::promql::{Exported, Matcher, Scrape, listed_values, parse_exposition, references, substitute};
use myloware_testkit::system::{API_KEY, System, start};
use serde_json::{Value, json};

const QUICK: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// The contract: the metric families the services export (OBSERVABILITY.md and
// the lead's list), their type, who exports them and their labels.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Exporter {
    Api,
    Orchestrator,
    Both,
}

struct Family {
    name: &'static str,
    kind: Kind,
    exporter: Exporter,
    labels: &'static [&'static str],
}

const HTTP_LABELS: &[&str] = &["service", "method", "route", "status", "runId", "gate", "persona"];
const PROVIDER_JOB_LABELS: &[&str] = &["mode", "outcome"];

const CONTRACT: &[Family] = &[
    Family {
        name: "http_requests_total",
        kind: Kind::Counter,
        exporter: Exporter::Both,
        labels: HTTP_LABELS,
    },
    Family {
        name: "http_request_duration_seconds",
        kind: Kind::Histogram,
        exporter: Exporter::Both,
        labels: HTTP_LABELS,
    },
    Family {
        name: "myloware_runs_total",
        kind: Kind::Counter,
        exporter: Exporter::Api,
        labels: &["project", "status"],
    },
    Family {
        name: "myloware_runs_active",
        kind: Kind::Gauge,
        exporter: Exporter::Api,
        labels: &["project", "status"],
    },
    Family {
        name: "myloware_gate_wait_seconds",
        kind: Kind::Histogram,
        exporter: Exporter::Api,
        labels: &["project", "gate", "decision"],
    },
    Family {
        name: "hitl_decisions_total",
        kind: Kind::Counter,
        exporter: Exporter::Api,
        labels: &["gate", "decision", "via"],
    },
    Family {
        name: "webhook_events_total",
        kind: Kind::Counter,
        exporter: Exporter::Api,
        labels: &["provider", "signature", "result"],
    },
    Family {
        name: "myloware_dead_letters_open",
        kind: Kind::Gauge,
        exporter: Exporter::Api,
        labels: &[],
    },
    Family {
        name: "commands_pending",
        kind: Kind::Gauge,
        exporter: Exporter::Api,
        labels: &[],
    },
    Family {
        name: "chat_pushes_pending",
        kind: Kind::Gauge,
        exporter: Exporter::Api,
        labels: &[],
    },
    Family {
        name: "myloware_chat_turns_total",
        kind: Kind::Counter,
        exporter: Exporter::Api,
        labels: &["outcome"],
    },
    Family {
        name: "myloware_persona_step_duration_seconds",
        kind: Kind::Histogram,
        exporter: Exporter::Orchestrator,
        labels: &["project", "persona", "outcome"],
    },
    Family {
        name: "kieai_job_seconds",
        kind: Kind::Histogram,
        exporter: Exporter::Orchestrator,
        labels: PROVIDER_JOB_LABELS,
    },
    Family {
        name: "shotstack_render_seconds",
        kind: Kind::Histogram,
        exporter: Exporter::Orchestrator,
        labels: PROVIDER_JOB_LABELS,
    },
    Family {
        name: "upload_post_seconds",
        kind: Kind::Histogram,
        exporter: Exporter::Orchestrator,
        labels: PROVIDER_JOB_LABELS,
    },
    Family {
        name: "provider_requests_total",
        kind: Kind::Counter,
        exporter: Exporter::Orchestrator,
        labels: &["provider", "operation", "mode", "status"],
    },
    Family {
        name: "outbox_pending",
        kind: Kind::Gauge,
        exporter: Exporter::Orchestrator,
        labels: &[],
    },
    Family {
        name: "executions_runnable",
        kind: Kind::Gauge,
        exporter: Exporter::Orchestrator,
        labels: &[],
    },
    Family {
        name: "executions_waiting",
        kind: Kind::Gauge,
        exporter: Exporter::Orchestrator,
        labels: &[],
    },
    Family {
        name: "llm_tokens_total",
        kind: Kind::Counter,
        exporter: Exporter::Orchestrator,
        labels: &["model", "kind"],
    },
];

/// Families a mock run through both gates cannot produce; their labels are
/// checked against the contract instead of a scrape.
const ABSENT_IN_MOCK_RUNS: &[&str] = &[
    // Counted only with an LLM configured (OPENAI_API_KEY); mock runs are scripted.
    "llm_tokens_total",
];

/// The values a label may take, per family (`*` for every family).
const LABEL_VALUES: &[(&str, &str, &[&str])] = &[
    ("*", "service", &["api", "orchestrator"]),
    (
        "myloware_runs_total",
        "status",
        &["published", "failed", "cancelled", "rejected"],
    ),
    ("myloware_gate_wait_seconds", "decision", &["approve", "reject"]),
    (
        "myloware_gate_wait_seconds",
        "gate",
        &["workflow", "ideate", "prepublish"],
    ),
    ("hitl_decisions_total", "decision", &["approve", "reject"]),
    ("hitl_decisions_total", "via", &["token", "api_key", "chat"]),
    ("hitl_decisions_total", "gate", &["workflow", "ideate", "prepublish"]),
    (
        "webhook_events_total",
        "provider",
        &["kieai", "upload_post", "telegram"],
    ),
    (
        "webhook_events_total",
        "signature",
        &["verified", "missing", "rejected", "unsigned"],
    ),
    (
        "webhook_events_total",
        "result",
        &["processed", "duplicate", "dlq", "rejected"],
    ),
    ("myloware_chat_turns_total", "outcome", &["ok", "error"]),
    (
        "myloware_persona_step_duration_seconds",
        "outcome",
        &["completed", "failed"],
    ),
    ("kieai_job_seconds", "mode", &["mock", "live"]),
    ("kieai_job_seconds", "outcome", &["succeeded", "failed"]),
    ("shotstack_render_seconds", "mode", &["mock", "live"]),
    ("shotstack_render_seconds", "outcome", &["succeeded", "failed"]),
    ("upload_post_seconds", "mode", &["mock", "live"]),
    ("upload_post_seconds", "outcome", &["succeeded", "failed"]),
    ("provider_requests_total", "mode", &["mock", "live"]),
    ("provider_requests_total", "status", &["ok", "error"]),
    ("llm_tokens_total", "kind", &["input", "output"]),
];

/// Which persona a gate route names (the runbook's "latency per persona gate").
const GATE_PERSONAS: &[(&str, &str)] = &[("workflow", "brendan"), ("ideate", "iggy"), ("prepublish", "quinn")];

/// Dashboard queries that stay empty after successful mock runs (`place`
/// endings, see [`expressions`]).
const NO_DATA_AFTER_A_MOCK_RUN: &[&str] = &[
    // 5xx ratios: no request failed.
    "panel \"Run start: p95 latency and 5xx rate\" target B",
    "panel \"Chat: p95 latency and 5xx rate\" target B",
    // No provider job or request failed.
    "panel \"Provider jobs failed in the last hour\" target A",
    "panel \"Provider jobs failed in the last hour\" target B",
    "panel \"Provider jobs failed in the last hour\" target C",
    "panel \"Provider error ratio\" target A",
    // No LLM configured (llm_tokens_total, see ABSENT_IN_MOCK_RUNS).
    "panel \"LLM tokens per minute\" target A",
    "panel \"LLM tokens in the time range\" target A",
];

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: &[&str] = &["job", "instance"];

fn family(name: &str) -> Option<&'static Family> {
    CONTRACT.iter().find(|f| f.name == name)
}

fn allowed_values(family: &str, label: &str) -> Option<&'static [&'static str]> {
    LABEL_VALUES
        .iter()
        .find(|(f, l, _)| *l == label && (*f == family || *f == "*"))
        .map(|(_, _, values)| *values)
}

// ---------------------------------------------------------------------------
// Files and tools.
// ---------------------------------------------------------------------------

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    let mut value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"));
    value.apply_merge().unwrap();
    serde_json::to_value(value).unwrap()
}

/// `PROMTOOL_BIN`/`PROMETHEUS_BIN`, else the command on `PATH`; `None` (with
/// a note) when it is missing outside CI; a failure under CI.
fn tool(name: &str, var: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(name));
    let found = Command::new(&path)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} is required under CI (Debian: apt-get install prometheus; or set {var})"
    );
    eprintln!("note: {name} not found (apt-get install prometheus, or set {var}); skipping this test");
    None
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mw-{what}-{}", unique_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Unique enough for folders of concurrent test processes.
fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

// ---------------------------------------------------------------------------
// The expressions of the dashboard and the alerts.
// ---------------------------------------------------------------------------

struct Expression {
    /// Where it is, for messages.
    place: String,
    /// As written (Grafana variables included).
    text: String,
    /// Grafana's `label_values(selector, label)`: the label it lists.
    lists_label: Option<String>,
    /// An alert's `histogram_quantile(...) > threshold`.
    quantile_threshold: Option<f64>,
}

fn dashboard() -> Value {
    serde_json::from_str(&read("deploy/grafana/dashboards/myloware-orchestration.json")).expect("the dashboard is JSON")
}

fn expressions() -> Vec<Expression> {
    let mut found = Vec::new();
    let dashboard = dashboard();
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let query = variable["query"]["query"]
            .as_str()
            .or(variable["query"].as_str())
            .unwrap_or_default();
        let name = variable["name"].as_str().unwrap_or_default();
        let (text, lists_label) = match query.trim().strip_prefix("label_values(") {
            Some(rest) => {
                let inner = rest.trim_end().strip_suffix(')').expect("label_values(...) is closed");
                let (selector, label) = inner.rsplit_once(',').expect("label_values(selector, label)");
                (selector.trim().to_string(), Some(label.trim().to_string()))
            }
            None => (query.to_string(), None),
        };
        found.push(Expression {
            place: format!("dashboard variable {name}"),
            text,
            lists_label,
            quantile_threshold: None,
        });
    }
    let mut panels = Vec::new();
    collect_panels(&dashboard["panels"], &mut panels);
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                found.push(Expression {
                    place: format!(
                        "dashboard panel {:?} target {}",
                        panel["title"].as_str().unwrap_or_default(),
                        target["refId"].as_str().unwrap_or_default()
                    ),
                    text: expr.to_string(),
                    lists_label: None,
                    quantile_threshold: None,
                });
            }
        }
    }
    for group in yaml("deploy/prometheus/alerts.yml")["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let text = rule["expr"]
                .as_str()
                .expect("every rule has an expr")
                .trim()
                .to_string();
            let threshold = text
                .contains("histogram_quantile(")
                .then(|| text.rsplit_once('>').and_then(|(_, n)| n.trim().parse::<f64>().ok()))
                .flatten();
            found.push(Expression {
                place: format!(
                    "alert {}",
                    rule["alert"].as_str().or(rule["record"].as_str()).unwrap_or_default()
                ),
                text,
                lists_label: None,
                quantile_threshold: threshold,
            });
        }
    }
    found
}

fn collect_panels<'a>(panels: &'a Value, into: &mut Vec<&'a Value>) {
    for panel in panels.as_array().into_iter().flatten() {
        into.push(panel);
        collect_panels(&panel["panels"], into);
    }
}

// ---------------------------------------------------------------------------
// Just enough PromQL to find selectors and label names.
// ---------------------------------------------------------------------------

/// `(family, suffix)`: `http_request_duration_seconds_bucket` is the
/// histogram `http_request_duration_seconds` with suffix `_bucket`.
fn family_of(metric: &str) -> (String, &'static str) {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = metric.strip_suffix(suffix)
            && family(base).is_some_and(|f| f.kind == Kind::Histogram)
        {
            return (base.to_string(), suffix);
        }
    }
    (metric.to_string(), "")
}

// ---------------------------------------------------------------------------
// The Prometheus text exposition.
// ---------------------------------------------------------------------------

async fn scrape(system: &System, base: &str) -> Scrape {
    let response = system.http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200, "{base}/metrics");
    parse_exposition(&response.text().await.unwrap())
}

// ---------------------------------------------------------------------------
// A run through both gates, and what a scrape of it must show.
// ---------------------------------------------------------------------------

async fn approve(system: &System, run_id: &str, gate: &str) {
    let response = system
        .http
        .post(format!("{}/v1/hitl/approve/{run_id}/{gate}", system.api))
        .header("x-api-key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "approving {gate} of {run_id}");
}

/// A mock aismr run approved at both gates (by API key), published.
async fn aismr_through_both_gates(system: &System, user: &str) -> String {
    let run_id = system
        .start_run(json!({"project": "aismr", "input": {"object": "candles"}, "options": {"user_id": user}}))
        .await;
    system.wait_status(&run_id, "awaiting_ideate", QUICK).await;
    approve(system, &run_id, "ideate").await;
    system.wait_status(&run_id, "awaiting_prepublish", QUICK).await;
    approve(system, &run_id, "prepublish").await;
    system.wait_status(&run_id, "published", QUICK).await;
    run_id
}

/// Both services' scrapes; each check returns its problems, one line each.
struct Check {
    api: Scrape,
    orchestrator: Scrape,
}

impl Check {
    /// The family's exports from the service(s) that should export it.
    fn exports(&self, family: &Family) -> Vec<(&'static str, Option<&Exported>)> {
        let api = ("api", self.api.get(family.name));
        let orchestrator = ("orchestrator", self.orchestrator.get(family.name));
        match family.exporter {
            Exporter::Api => vec![api],
            Exporter::Orchestrator => vec![orchestrator],
            Exporter::Both => vec![api, orchestrator],
        }
    }

    /// The labels a query may use on `family`: the scraped ones (the
    /// contract's for families a mock run cannot show) and the target's.
    fn labels_of(&self, family: &Family) -> BTreeSet<String> {
        let mut labels: BTreeSet<String> = TARGET_LABELS.iter().map(|l| l.to_string()).collect();
        if ABSENT_IN_MOCK_RUNS.contains(&family.name) {
            labels.extend(family.labels.iter().map(|l| l.to_string()));
        }
        for (_, exported) in self.exports(family) {
            labels.extend(exported.into_iter().flat_map(|e| e.labels.iter().cloned()));
        }
        labels
    }

    /// Every family of the contract is exported by its service(s), of its
    /// type, with exactly its labels, and enumerated labels keep to their values.
    fn contract(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for family in CONTRACT {
            if ABSENT_IN_MOCK_RUNS.contains(&family.name) {
                continue;
            }
            let expected_kind = match family.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            let expected: BTreeSet<String> = family.labels.iter().map(|l| l.to_string()).collect();
            let mut found = Vec::new();
            for (service, exported) in self.exports(family) {
                let Some(exported) = exported else {
                    found.push(format!(
                        "{} is not exported by the {service} (expected a {expected_kind} with labels {:?})",
                        family.name, family.labels
                    ));
                    continue;
                };
                if exported.kind != expected_kind {
                    found.push(format!(
                        "{} on the {service} is a {:?}, not a {expected_kind}",
                        family.name, exported.kind
                    ));
                }
                if exported.series.is_empty() {
                    found.push(format!("{} on the {service} has no series", family.name));
                } else if exported.labels != expected {
                    found.push(format!(
                        "{} on the {service} has labels {:?}, the contract says {:?}",
                        family.name, exported.labels, expected
                    ));
                }
                for series in &exported.series {
                    for (label, value) in series {
                        if let Some(values) = allowed_values(family.name, label)
                            && !values.contains(&value.as_str())
                        {
                            found.push(format!(
                                "{} on the {service} has {label}={value:?}, not one of {values:?}",
                                family.name
                            ));
                        }
                    }
                }
            }
            found.dedup();
            problems.extend(found);
        }
        problems
    }

    /// The runbook's two promises: the run's requests carry its `runId` on
    /// both services, and gate routes carry the gate's persona.
    fn run_series(&self, run_id: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for (service, scrape) in [("api", &self.api), ("orchestrator", &self.orchestrator)] {
            let requests = scrape
                .get("http_requests_total")
                .map(|e| e.series.as_slice())
                .unwrap_or_default();
            if !requests
                .iter()
                .any(|s| s.get("runId").map(String::as_str) == Some(run_id))
            {
                problems.push(format!(
                    "no http_requests_total series of the {service} carries runId={run_id:?} (the runbook's query finds nothing there)"
                ));
            }
        }
        let requests = self
            .api
            .get("http_requests_total")
            .map(|e| e.series.clone())
            .unwrap_or_default();
        for (gate, persona) in GATE_PERSONAS.iter().filter(|(g, _)| *g != "workflow") {
            let approvals: Vec<_> = requests
                .iter()
                .filter(|s| {
                    s.get("route").map(String::as_str) == Some("/v1/hitl/approve/{runId}/{gate}")
                        && s.get("runId").map(String::as_str) == Some(run_id)
                        && s.get("gate").map(String::as_str) == Some(gate)
                })
                .collect();
            if approvals.is_empty() {
                problems.push(format!(
                    "no http_requests_total{{route=\"/v1/hitl/approve/{{runId}}/{{gate}}\", runId={run_id:?}, gate={gate:?}}} on the api"
                ));
            }
            for series in approvals {
                if series.get("persona").map(String::as_str) != Some(persona) {
                    problems.push(format!(
                        "the {gate} approval of {run_id} has persona={:?}, expected {persona:?}",
                        series.get("persona")
                    ));
                }
            }
        }
        problems
    }

    /// Every metric, label and listed value an expression uses is exported.
    fn expression(&self, expression: &Expression) -> Vec<String> {
        let mut problems = Vec::new();
        let text = substitute(&expression.text, ("5m", "1h"), &BTreeMap::new());
        let refs = references(&text);
        let place = &expression.place;
        if refs.selectors.is_empty() {
            problems.push(format!("{place}: no metric selector found in {text:?}"));
        }
        let mut usable: BTreeSet<String> = TARGET_LABELS.iter().map(|l| l.to_string()).collect();
        for (metric, matchers) in &refs.selectors {
            if metric == "up" {
                for m in matchers.iter().filter(|m| !TARGET_LABELS.contains(&m.label.as_str())) {
                    problems.push(format!("{place}: up has no label {:?}", m.label));
                }
                continue;
            }
            let (name, suffix) = family_of(metric);
            let Some(family) = family(&name) else {
                problems.push(format!("{place}: {metric} is not a metric of the services"));
                continue;
            };
            if family.kind == Kind::Histogram && suffix.is_empty() {
                problems.push(format!("{place}: {metric} is a histogram: use _bucket, _sum or _count"));
            }
            let exported = self.exports(family);
            if !ABSENT_IN_MOCK_RUNS.contains(&family.name) && exported.iter().all(|(_, e)| e.is_none()) {
                problems.push(format!("{place}: {metric} is not exported (scrape after a mock run)"));
            }
            let labels = self.labels_of(family);
            usable.extend(labels.iter().cloned());
            if suffix == "_bucket" {
                usable.insert("le".into());
            }
            for matcher in matchers {
                let known = labels.contains(&matcher.label)
                    || matcher.label == "__name__"
                    || (suffix == "_bucket" && matcher.label == "le");
                if !known {
                    problems.push(format!("{place}: {metric} has no label {:?}", matcher.label));
                    continue;
                }
                let Some(values) = listed_values(matcher) else { continue };
                if let Some(allowed) = allowed_values(family.name, &matcher.label) {
                    for value in values.iter().filter(|v| !allowed.contains(&v.as_str())) {
                        problems.push(format!(
                            "{place}: {metric}{{{}{}{value:?}}}: {value:?} is not one of {allowed:?}",
                            matcher.label, matcher.op
                        ));
                    }
                } else if matcher.label == "route" {
                    let routes: BTreeSet<&str> = exported
                        .iter()
                        .filter_map(|(_, e)| *e)
                        .flat_map(|e| e.series.iter().filter_map(|s| s.get("route").map(String::as_str)))
                        .collect();
                    for value in values.iter().filter(|v| !routes.contains(v.as_str())) {
                        problems.push(format!(
                            "{place}: route {value:?} of {metric} was not seen in a scrape (routes: {routes:?})"
                        ));
                    }
                }
            }
            if let Some(threshold) = expression.quantile_threshold
                && suffix == "_bucket"
            {
                let top = exported
                    .iter()
                    .filter_map(|(_, e)| *e)
                    .flat_map(|e| e.buckets.iter().copied())
                    .fold(f64::NAN, f64::max);
                if top.is_finite() && top < threshold {
                    problems.push(format!(
                        "{place}: the threshold {threshold} is above {name}'s largest bucket ({top}): histogram_quantile can never exceed it"
                    ));
                }
            }
        }
        for label in refs.grouping.iter().chain(expression.lists_label.iter()) {
            if !usable.contains(label) {
                problems.push(format!(
                    "{place}: label {label:?} (by/without/on or listed) is not a label of the metrics it selects"
                ));
            }
        }
        problems
    }
}

/// What the dashboard shows after ordinary use: a run through both gates
/// (returned), a run held at its first gate (so non-terminal runs show in
/// `myloware_runs_active`), a chat turn (the chat route and
/// `myloware_chat_turns_total`) and an unsigned webhook (a signature problem
/// in `webhook_events_total`).
async fn exercise(system: &System) -> String {
    let run_id = aismr_through_both_gates(system, "u1").await;
    let waiting = system
        .start_run(json!({"project": "aismr", "input": {"object": "soap"}, "options": {"user_id": "u2"}}))
        .await;
    system.wait_status(&waiting, "awaiting_ideate", QUICK).await;
    let (status, _) = system
        .post(
            &format!("{}/v1/chat/brendan", system.api),
            json!({"user_id": "u3", "message": "hello"}),
        )
        .await;
    assert_eq!(status, 200, "a chat turn");
    let unsigned = system
        .http
        .post(format!("{}/v1/webhooks/kieai", system.api))
        .json(&json!({"code": 200, "data": {"taskId": "t-unsigned"}}))
        .send()
        .await
        .unwrap();
    assert!(unsigned.status().is_client_error(), "an unsigned webhook is refused");
    run_id
}

async fn dashboard_and_alerts_name_exported_metrics(db: &Db) {
    let system = start(db, &[]).await;
    let run_id = exercise(&system).await;

    let check = Check {
        api: scrape(&system, &system.api).await,
        orchestrator: scrape(&system, &system.orchestrator).await,
    };
    let mut problems = check.contract();
    problems.extend(check.run_series(&run_id));
    for expression in expressions() {
        problems.extend(check.expression(&expression));
    }
    problems.dedup();
    assert!(
        problems.is_empty(),
        "{} problem(s) between the services' /metrics and deploy/ (OBSERVABILITY.md):\n  - {}",
        problems.len(),
        problems.join("\n  - ")
    );
    system.stop_idle().await;
}

conformance_tests!(dashboard_and_alerts_name_exported_metrics);

// ---------------------------------------------------------------------------
// promtool: every expression parses.
// ---------------------------------------------------------------------------

#[test]
fn every_dashboard_and_alert_expression_parses() {
    let Some(promtool) = tool("promtool", "PROMTOOL_BIN") else {
        return;
    };
    let expressions = expressions();
    let rules: Vec<Value> = expressions
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json!({
                "record": format!("check:expr_{i}"),
                "expr": substitute(&e.text, ("5m", "1h"), &BTreeMap::new()),
            })
        })
        .collect();
    let file = json!({"groups": [{"name": "dashboard-and-alerts", "rules": rules}]});
    let dir = temp_dir("promql");
    let path = dir.join("expressions.yml");
    std::fs::write(&path, serde_yaml_ng::to_string(&file).unwrap()).unwrap();
    let output = Command::new(promtool)
        .arg("check")
        .arg("rules")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let listing: Vec<String> = expressions
        .iter()
        .enumerate()
        .map(|(i, e)| format!("  check:expr_{i}  {}", e.place))
        .collect();
    assert!(
        output.status.success(),
        "promtool check rules failed:\n{}{}\nexpressions:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        listing.join("\n")
    );
    assert!(expressions.len() > 20, "the dashboard and the alerts were read");
}

#[test]
fn selectors_and_label_names_are_found() {
    let refs = references(
        r#"histogram_quantile(0.95, sum by (le, gate) (rate(http_request_duration_seconds_bucket{service="api", route=~"/a|/b"}[5m])))
           / ignoring(gate) group_left max without (instance) (up{job="x"} offset 1h) > bool 0.5"#,
    );
    assert_eq!(
        refs.selectors,
        [
            (
                "http_request_duration_seconds_bucket".to_string(),
                vec![
                    Matcher {
                        label: "service".into(),
                        op: "=".into(),
                        value: "api".into()
                    },
                    Matcher {
                        label: "route".into(),
                        op: "=~".into(),
                        value: "/a|/b".into()
                    }
                ]
            ),
            (
                "up".to_string(),
                vec![Matcher {
                    label: "job".into(),
                    op: "=".into(),
                    value: "x".into()
                }]
            ),
        ]
    );
    assert_eq!(refs.grouping, ["le", "gate", "gate", "instance"]);
    let values = BTreeMap::from([("runId", "run_1")]);
    assert_eq!(
        substitute(
            r#"rate(x{runId=~"$runId", service=~"${service}"}[$__rate_interval]) [$__range]"#,
            ("1m", "1h"),
            &values
        ),
        r#"rate(x{runId=~"run_1", service=~".*"}[1m]) [1h]"#
    );
    let scrape = parse_exposition(
        "# TYPE h histogram\nh_bucket{a=\"1\",le=\"0.5\"} 1\nh_bucket{a=\"1\",le=\"+Inf\"} 1\nh_sum{a=\"1\"} 0.1\nh_count{a=\"1\"} 1\n# TYPE g gauge\ng 3\n",
    );
    assert_eq!(scrape["h"].labels, BTreeSet::from(["a".to_string()]));
    assert_eq!(scrape["h"].buckets, [0.5]);
    assert_eq!(scrape["g"].kind, "gauge");
    assert_eq!(scrape["g"].series.len(), 1);
}

// ---------------------------------------------------------------------------
// A real Prometheus on deploy/prometheus/prometheus.yml.
// ---------------------------------------------------------------------------

/// Prometheus as a child process, killed (and its folder removed) on drop.
struct Prometheus {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// deploy/prometheus/prometheus.yml with the compose targets pointed at
/// `system`, 1 s scrapes and evaluations, and alerts.yml by absolute path.
fn test_config(system: &System, listen: &str) -> Value {
    let mut config = yaml("deploy/prometheus/prometheus.yml");
    for key in ["scrape_interval", "scrape_timeout", "evaluation_interval"] {
        config["global"][key] = json!("1s");
    }
    let alerts = repo().join("deploy/prometheus/alerts.yml").canonicalize().unwrap();
    config["rule_files"] = json!([alerts]);
    let host = |url: &str| url.trim_start_matches("http://").to_string();
    let targets = BTreeMap::from([
        ("api:8080", host(&system.api)),
        ("orchestrator:8090", host(&system.orchestrator)),
        ("localhost:9090", listen.to_string()),
    ]);
    for job in config["scrape_configs"].as_array_mut().unwrap() {
        for static_config in job["static_configs"].as_array_mut().unwrap() {
            for target in static_config["targets"].as_array_mut().unwrap() {
                let compose = target.as_str().unwrap().to_string();
                let local = targets
                    .get(compose.as_str())
                    .unwrap_or_else(|| panic!("unexpected target {compose} in prometheus.yml"));
                *target = json!(local);
            }
        }
    }
    config
}

fn start_prometheus(binary: &Path, system: &System) -> Prometheus {
    let dir = temp_dir("prometheus");
    let listen = format!("127.0.0.1:{}", free_port());
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        serde_yaml_ng::to_string(&test_config(system, &listen)).unwrap(),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address={listen}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("prometheus starts");
    Prometheus {
        child,
        url: format!("http://{listen}"),
        dir,
    }
}

/// Polls `probe` until it gives a value, failing with Prometheus' log after `timeout`.
async fn eventually<T, F, Fut>(prometheus: &Prometheus, timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) => assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {last}\nprometheus log:\n{}",
                prometheus.log()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn query(http: &reqwest::Client, prometheus: &Prometheus, promql: &str) -> Result<Vec<Value>, String> {
    let response = http
        .get(format!("{}/api/v1/query", prometheus.url))
        .query(&[("query", promql)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(format!("{promql}: {body}"));
    }
    Ok(body["data"]["result"].as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn prometheus_scrapes_both_services_and_answers_the_runbook_query() {
    let Some(binary) = tool("prometheus", "PROMETHEUS_BIN") else {
        return;
    };
    let test_db = myloware_testkit::TestDb::sqlite().await;
    let system = start(&test_db.db, &[]).await;
    let prometheus = start_prometheus(&binary, &system);
    let client = reqwest::Client::new();
    let (http, p) = (&client, &prometheus);
    eventually(p, QUICK, "prometheus to be ready", move || async move {
        let response = http
            .get(format!("{}/-/ready", p.url))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        response
            .status()
            .is_success()
            .then_some(())
            .ok_or(response.status().to_string())
    })
    .await;

    let run_id = exercise(&system).await;

    // The runbook: curl ".../api/v1/query?query=http_requests_total{runId=\"run_abc123\"}"
    let runbook = format!("http_requests_total{{runId=\"{run_id}\"}}");
    let runbook = runbook.as_str();
    let series = eventually(p, QUICK, "the run's series from both services", move || async move {
        let series = query(http, p, runbook).await?;
        let jobs: BTreeSet<&str> = series.iter().filter_map(|s| s["metric"]["job"].as_str()).collect();
        (jobs.contains("myloware-api") && jobs.contains("myloware-orchestrator"))
            .then_some(series.clone())
            .ok_or(format!("jobs with the run so far: {jobs:?}"))
    })
    .await;
    for s in &series {
        let metric = &s["metric"];
        let expected_service = match metric["job"].as_str() {
            Some("myloware-api") => "api",
            _ => "orchestrator",
        };
        assert_eq!(metric["service"], expected_service, "{s}");
        assert_eq!(metric["runId"], run_id.as_str());
    }

    // Both services' targets (and Prometheus' own) are up. A target not yet
    // scraped is "unknown", so wait for every target's first scrape.
    eventually(p, QUICK, "every target to be scraped and up", move || async move {
        let targets: Value = http
            .get(format!("{}/api/v1/targets", p.url))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let not_up: Vec<String> = targets["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["health"] != "up")
            .map(|t| format!("{} is {} ({})", t["scrapeUrl"], t["health"], t["lastError"]))
            .collect();
        not_up.is_empty().then_some(()).ok_or(not_up.join("; "))
    })
    .await;

    // Every alert of alerts.yml is loaded and evaluates without error on real data.
    let rules = eventually(p, QUICK, "every alert rule to be evaluated", move || async move {
        let body: Value = http
            .get(format!("{}/api/v1/rules", p.url))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let rules: Vec<Value> = body["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let pending: Vec<&str> = rules
            .iter()
            .filter(|r| r["health"] == "unknown")
            .filter_map(|r| r["name"].as_str())
            .collect();
        (!rules.is_empty() && pending.is_empty())
            .then_some(rules.clone())
            .ok_or(format!("not evaluated yet: {pending:?}"))
    })
    .await;
    let alert_count = yaml("deploy/prometheus/alerts.yml")["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .sum::<usize>();
    assert_eq!(rules.len(), alert_count, "every rule of alerts.yml is loaded");
    for rule in &rules {
        assert_eq!(
            rule["health"], "ok",
            "{} does not evaluate: {}",
            rule["name"], rule["lastError"]
        );
    }

    // Every dashboard query runs, with $runId the run, and shows data once
    // Prometheus has scraped twice (rates need two samples), except those a
    // successful mock run cannot fill.
    let values = BTreeMap::from([("runId", run_id.as_str())]);
    let expressions = expressions();
    for place in NO_DATA_AFTER_A_MOCK_RUN {
        assert!(
            expressions.iter().any(|e| e.place.ends_with(place)),
            "NO_DATA_AFTER_A_MOCK_RUN names {place}, which the dashboard does not have"
        );
    }
    for expression in expressions.into_iter().filter(|e| e.place.starts_with("dashboard")) {
        let promql = substitute(&expression.text, ("1m", "5m"), &values);
        let promql = promql.as_str();
        if NO_DATA_AFTER_A_MOCK_RUN
            .iter()
            .any(|place| expression.place.ends_with(place))
        {
            query(http, p, promql)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", expression.place));
            continue;
        }
        let what = format!("{} to show data", expression.place);
        eventually(p, QUICK, &what, move || async move {
            let result = query(http, p, promql).await?;
            (!result.is_empty())
                .then_some(())
                .ok_or(format!("no series for {promql}"))
        })
        .await;
    }
    // Rates need two scrapes of a series, so the panel may take a moment.
    let gates_panel = substitute(&panel_expr("p95 latency per persona gate"), ("1m", "5m"), &values);
    let gates_panel = gates_panel.as_str();
    let expected: BTreeSet<(String, String)> = GATE_PERSONAS
        .iter()
        .filter(|(gate, _)| *gate != "workflow")
        .map(|(gate, persona)| (gate.to_string(), persona.to_string()))
        .collect();
    let expected = &expected;
    eventually(
        p,
        QUICK,
        "the persona-gate panel to show the run's gates",
        move || async move {
            let series = query(http, p, gates_panel).await?;
            let shown: BTreeSet<(String, String)> = series
                .iter()
                .map(|s| {
                    let label = |l: &str| s["metric"][l].as_str().unwrap_or_default().to_string();
                    (label("gate"), label("persona"))
                })
                .collect();
            shown
                .is_superset(expected)
                .then_some(())
                .ok_or(format!("(gate, persona) shown: {shown:?}, expected {expected:?}"))
        },
    )
    .await;
    drop(prometheus);
    system.stop_idle().await;
}

fn panel_expr(title: &str) -> String {
    let dashboard = dashboard();
    let mut panels = Vec::new();
    collect_panels(&dashboard["panels"], &mut panels);
    let panel = panels
        .into_iter()
        .find(|p| p["title"] == title)
        .unwrap_or_else(|| panic!("the dashboard has a panel {title:?}"));
    panel["targets"][0]["expr"].as_str().unwrap().to_string()
}
