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
use std::path::Path;
use std::time::Duration;

use myloware_testkit::process::{Process, Scratch};
use myloware_testkit::promql::substitute;
use myloware_testkit::system::{System, start};
use serde_json::{Value, json};

#[allow(unused_imports)]
use crate::contract::*;
#[allow(unused_imports)]
use crate::scrape::*;

// ---------------------------------------------------------------------------
// A real Prometheus on deploy/prometheus/prometheus.yml.
// ---------------------------------------------------------------------------

/// Prometheus as a child process, killed on drop (then its folder removed).
struct Prometheus {
    process: Process,
    url: String,
    _dir: Scratch,
}

impl Prometheus {
    fn log(&self) -> String {
        self.process.log_tail(200)
    }
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
    let dir = Scratch::new("prometheus");
    let listen = format!("127.0.0.1:{}", myloware_testkit::free_port());
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        serde_yaml_ng::to_string(&test_config(system, &listen)).unwrap(),
    )
    .unwrap();
    let args = [
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", dir.path().join("data").display()),
        format!("--web.listen-address={listen}"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let process = Process::spawn("prometheus", binary, &args, &[], dir.path()).expect("prometheus starts");
    Prometheus {
        process,
        url: format!("http://{listen}"),
        _dir: dir,
    }
}

/// Polls `probe` until it gives a value, failing with Prometheus' log after `timeout`.
async fn eventually<T, F, Fut>(prometheus: &Prometheus, timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    myloware_testkit::wait_until(timeout, Duration::from_millis(200), what, move || {
        let attempt = probe();
        async move {
            let log = |last| format!("{last}\nprometheus log:\n{}", prometheus.log());
            attempt.await.map_err(log)
        }
    })
    .await
}

/// The JSON answer of `request`, or why there is none (for `eventually`).
async fn json_of(request: reqwest::RequestBuilder) -> Result<Value, String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    response.json().await.map_err(|e| e.to_string())
}

async fn query(http: &reqwest::Client, prometheus: &Prometheus, promql: &str) -> Result<Vec<Value>, String> {
    let body = json_of(
        http.get(format!("{}/api/v1/query", prometheus.url))
            .query(&[("query", promql)]),
    )
    .await?;
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
        let targets = json_of(http.get(format!("{}/api/v1/targets", p.url))).await?;
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
        let body = json_of(http.get(format!("{}/api/v1/rules", p.url))).await?;
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
