//! The contract of the metric families the services export, the
//! dashboard's and the alerts' expressions, and promtool's verdict on them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use myloware_testkit::promql::{Matcher, Scrape, parse_exposition, references, substitute};
use myloware_testkit::system::System;
use serde_json::{Value, json};

#[allow(unused_imports)]
use crate::scrape::*;

pub const QUICK: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// The contract: the metric families the services export (OBSERVABILITY.md and
// the lead's list), their type, who exports them and their labels.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Exporter {
    Api,
    Orchestrator,
    Both,
}

pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub exporter: Exporter,
    pub labels: &'static [&'static str],
}

pub const HTTP_LABELS: &[&str] = &["service", "method", "route", "status", "runId", "gate", "persona"];
pub const PROVIDER_JOB_LABELS: &[&str] = &["mode", "outcome"];

pub const CONTRACT: &[Family] = &[
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
    Family {
        name: "myloware_spend_usd_total",
        kind: Kind::Counter,
        exporter: Exporter::Api,
        labels: &["provider", "project", "mode"],
    },
];

/// Families a mock run through both gates cannot produce; their labels are
/// checked against the contract instead of a scrape.
pub const ABSENT_IN_MOCK_RUNS: &[&str] = &[
    // Counted only with an LLM configured (OPENAI_API_KEY); mock runs are scripted.
    "llm_tokens_total",
];

const GATES: &[&str] = &["workflow", "ideate", "prepublish"];
const DECISIONS: &[&str] = &["approve", "reject"];
const MODES: &[&str] = &["mock", "live"];
/// Labels, each with the values it may take.
pub type LabelValues = &'static [(&'static str, &'static [&'static str])];
/// The labels of a provider's job timing.
const PROVIDER_JOB: LabelValues = &[("mode", MODES), ("outcome", &["succeeded", "failed"])];

/// The values each label may take, per family (`*` for every family).
pub const LABEL_VALUES: &[(&str, LabelValues)] = &[
    ("*", &[("service", &["api", "orchestrator"])]),
    (
        "myloware_runs_total",
        &[("status", &["published", "failed", "cancelled", "rejected", "expired"])],
    ),
    (
        "myloware_gate_wait_seconds",
        &[("decision", DECISIONS), ("gate", GATES)],
    ),
    (
        "hitl_decisions_total",
        &[
            ("decision", DECISIONS),
            ("via", &["token", "api_key", "chat"]),
            ("gate", GATES),
        ],
    ),
    (
        "webhook_events_total",
        &[
            ("provider", &["kieai", "upload_post", "telegram"]),
            ("signature", &["verified", "missing", "rejected", "unsigned"]),
            ("result", &["processed", "duplicate", "dlq", "rejected"]),
        ],
    ),
    ("myloware_chat_turns_total", &[("outcome", &["ok", "error"])]),
    (
        "myloware_persona_step_duration_seconds",
        &[("outcome", &["completed", "failed"])],
    ),
    ("kieai_job_seconds", PROVIDER_JOB),
    ("shotstack_render_seconds", PROVIDER_JOB),
    ("upload_post_seconds", PROVIDER_JOB),
    (
        "provider_requests_total",
        &[("mode", MODES), ("status", &["ok", "error"])],
    ),
    ("llm_tokens_total", &[("kind", &["input", "output"])]),
    (
        "myloware_spend_usd_total",
        &[
            ("provider", &["kieai", "shotstack", "upload_post", "openai"]),
            ("mode", MODES),
        ],
    ),
];

/// Which persona a gate route names (the runbook's "latency per persona gate").
pub const GATE_PERSONAS: &[(&str, &str)] = &[("workflow", "brendan"), ("ideate", "iggy"), ("prepublish", "quinn")];

/// Dashboard queries that stay empty after successful mock runs (`place`
/// endings, see [`expressions`]).
pub const NO_DATA_AFTER_A_MOCK_RUN: &[&str] = &[
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
pub const TARGET_LABELS: &[&str] = &["job", "instance"];

pub fn family(name: &str) -> Option<&'static Family> {
    CONTRACT.iter().find(|f| f.name == name)
}

pub fn allowed_values(family: &str, label: &str) -> Option<&'static [&'static str]> {
    LABEL_VALUES
        .iter()
        .filter(|(f, _)| *f == family || *f == "*")
        .flat_map(|(_, labels)| labels.iter())
        .find(|(l, _)| *l == label)
        .map(|(_, values)| *values)
}

// ---------------------------------------------------------------------------
// Files and tools.
// ---------------------------------------------------------------------------

pub fn repo() -> PathBuf {
    myloware_testkit::repo()
}

pub fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn yaml(path: &str) -> Value {
    let mut value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"));
    value.apply_merge().unwrap();
    serde_json::to_value(value).unwrap()
}

/// `PROMTOOL_BIN`/`PROMETHEUS_BIN`, else the command on `PATH`; `None` (with
/// a note) when it is missing outside CI; a failure under CI.
pub fn tool(name: &str, var: &str) -> Option<PathBuf> {
    myloware_testkit::tool(name, var, "Debian: apt-get install prometheus")
}

pub fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mw-{what}-{}", myloware_testkit::unique_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------------------
// The expressions of the dashboard and the alerts.
// ---------------------------------------------------------------------------

pub struct Expression {
    /// Where it is, for messages.
    pub place: String,
    /// As written (Grafana variables included).
    pub text: String,
    /// Grafana's `label_values(selector, label)`: the label it lists.
    pub lists_label: Option<String>,
    /// An alert's `histogram_quantile(...) > threshold`.
    pub quantile_threshold: Option<f64>,
}

pub fn dashboard() -> Value {
    serde_json::from_str(&read("deploy/grafana/dashboards/myloware-orchestration.json")).expect("the dashboard is JSON")
}

pub fn expressions() -> Vec<Expression> {
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

pub fn collect_panels<'a>(panels: &'a Value, into: &mut Vec<&'a Value>) {
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
pub fn family_of(metric: &str) -> (String, &'static str) {
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

pub async fn scrape(system: &System, base: &str) -> Scrape {
    let response = system.http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200, "{base}/metrics");
    parse_exposition(&response.text().await.unwrap())
}

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
