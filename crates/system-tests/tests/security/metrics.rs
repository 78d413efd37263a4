//! Security: metrics. Requests of unknown callers or about runs that do not
//! exist add no series to `/metrics` (the finding: 2,000 unauthenticated
//! `GET /v1/runs/run_attackerN` took the API's exposition from 24 KB to
//! 5.8 MB, never swept), the runs with series are capped
//! (`METRICS_MAX_RUN_SERIES`, `myloware_metrics_labels_dropped_total`), and
//! every series the dashboard and the alerts read is there, at zero, on a
//! fresh system.

use myloware_testkit::JsonAnswer;
use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};
use std::path::Path;

use myloware_db::Db;

use myloware_testkit::conformance_tests;
use serde_json::json;

use myloware_testkit::system::{self, API_KEY, System};

async fn scrape(system: &System, base: &str) -> String {
    let response = system.http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// Sends every `(path, key)` GET to `base`, 32 at a time; each answer must
/// be one of `statuses`.
async fn flood(system: &System, base: &str, requests: Vec<(String, Option<&'static str>)>, statuses: &[u16]) {
    for chunk in requests.chunks(32) {
        let mut answers = tokio::task::JoinSet::new();
        for (path, key) in chunk.iter().cloned() {
            let mut request = system.http.get(format!("{base}{path}"));
            if let Some(key) = key {
                request = request.header("x-api-key", key);
            }
            answers.spawn(async move { request.send().await.unwrap().status().as_u16() });
        }
        while let Some(status) = answers.join_next().await {
            let status = status.unwrap();
            assert!(statuses.contains(&status), "answered {status}");
        }
    }
}

/// Names that the attack's ids share, unlike anything the services export.
fn attacker_prefix() -> String {
    format!("run_attacker{:x}", RandomState::new().hash_one(0u8))
}

async fn unknown_callers_and_unknown_runs_add_no_series(db: &Db) {
    let system = system::start(db, &[]).await;
    let prefix = attacker_prefix();
    let long = format!("run_{}", "a".repeat(5000));
    // Warm-up: the routes' own series (401 and 404 of the templates) may
    // appear once; what is measured is what the attack adds beyond them.
    flood(
        &system,
        &system.api,
        vec![
            (format!("/v1/runs/{prefix}warm"), None),
            (format!("/v1/runs/{prefix}warm"), Some(API_KEY)),
        ],
        &[401, 404],
    )
    .await;
    let before = scrape(&system, &system.api).await;

    let mut requests: Vec<(String, Option<&str>)> =
        (0..2000).map(|i| (format!("/v1/runs/{prefix}{i}"), None)).collect();
    requests.extend((0..20).map(|i| (format!("/v1/runs/{long}{i}"), None)));
    requests.extend((0..20).map(|i| (format!("/v1/runs/{long}{i}"), Some(API_KEY))));
    requests.extend((0..200).map(|i| (format!("/v1/runs/{prefix}k{i}"), Some(API_KEY))));
    requests.extend((0..50).map(|i| (format!("/v1/runs/{prefix}a{i}/artifacts"), Some(API_KEY))));
    requests.extend((0..50).map(|i| (format!("/v1/hitl/link/{prefix}l{i}/ideate"), Some(API_KEY))));
    requests.extend((0..50).map(|i| (format!("/v1/hitl/approve/{prefix}h{i}/ideate?token=1.x"), None)));
    requests.extend((0..50).map(|i| (format!("/v1/hitl/approve/{prefix}g{i}/gate{i}"), None)));
    flood(&system, &system.api, requests, &[401, 403, 404]).await;

    let after = scrape(&system, &system.api).await;
    let grown = after.len().saturating_sub(before.len());
    assert!(grown < 20_000, "the API's /metrics grew by {grown} bytes");
    assert!(!after.contains(&prefix), "an attacker's run id became a label");
    assert!(!after.contains("aaaaaaaaaa"), "a 5,000-character id became a label");
    assert!(!after.contains("gate1"), "an unknown gate became a label");

    // The orchestrator: every route with a run id is behind its credential.
    let before = scrape(&system, &system.orchestrator).await;
    let mut requests: Vec<(String, Option<&str>)> = (0..500)
        .map(|i| (format!("/v1/executions/{prefix}{i}"), None))
        .collect();
    requests.extend((0..20).map(|i| (format!("/v1/executions/{long}{i}"), Some("not-a-key"))));
    flood(&system, &system.orchestrator, requests, &[401]).await;
    for path in ["signals", "resume", "cancel"] {
        let response = system
            .http
            .post(format!("{}/v1/executions/{prefix}p/{path}", system.orchestrator))
            .json(&json!({}))
            .sent()
            .await;
        assert_eq!(response.status(), 401, "{path}");
    }
    let after = scrape(&system, &system.orchestrator).await;
    let grown = after.len().saturating_sub(before.len());
    assert!(grown < 20_000, "the orchestrator's /metrics grew by {grown} bytes");
    assert!(!after.contains(&prefix) && !after.contains("aaaaaaaaaa"), "{after}");
    system.stop_idle().await;
}

/// The value of the series whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn run_ids(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| line.starts_with("http_requests_total{"))
        .filter_map(|line| line.split("runId=\"").nth(1)?.split('"').next().map(str::to_owned))
        .filter(|id| !id.is_empty())
        .collect()
}

async fn runs_beyond_the_cap_are_counted_without_their_run(db: &Db) {
    let system = system::start(db, &[("METRICS_MAX_RUN_SERIES", "3")]).await;
    let mut runs = Vec::new();
    for i in 0..6 {
        // Held at the workflow gate: the runs exist and stay still.
        let body = json!({"project": "test_video_gen", "input": {"prompt": format!("cap {i}")},
                          "options": {"requireWorkflowApproval": true}});
        let run_id = system.start_run(body).await;
        let response = system
            .with_key(system.http.get(format!("{}/v1/runs/{run_id}", system.api)))
            .await;
        assert_eq!(response.status(), 200);
        runs.push(run_id);
    }
    let text = scrape(&system, &system.api).await;
    let labelled = run_ids(&text);
    assert_eq!(labelled.len(), 3, "{labelled:?}");
    assert!(labelled.iter().all(|id| runs.contains(id)));
    let dropped = sample(&text, r#"myloware_metrics_labels_dropped_total{service="api"}"#);
    // Three runs over the cap, each started and read: six requests.
    assert_eq!(dropped, Some(6.0), "{text}");
    let unlabelled = r#"http_requests_total{gate="",method="GET",persona="",route="/v1/runs/{runId}",runId="",service="api",status="200"}"#;
    assert_eq!(sample(&text, unlabelled), Some(3.0), "{text}");
    system.stop_idle().await;
}

/// The metric names a PromQL expression reads (selectors, not functions,
/// labels or `by` lists).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut plain = String::new();
    let mut depth = 0;
    for c in expr.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    // `by (a, b)` lists name labels.
    while let Some(at) = plain.find("by (") {
        let end = plain[at..].find(')').map_or(plain.len(), |e| at + e + 1);
        plain.replace_range(at..end, " ");
    }
    let mut names = BTreeSet::new();
    let mut rest = plain.as_str();
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic() || c == '_') {
        rest = &rest[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let (word, after) = rest.split_at(end);
        let is_call = after.trim_start().starts_with('(');
        let preceded_by_digit = plain[..plain.len() - rest.len()].ends_with(|c: char| c.is_ascii_digit());
        if !is_call && !preceded_by_digit && !["offset", "by", "and", "or", "unless", "up"].contains(&word) {
            names.insert(word.to_string());
        }
        rest = after;
    }
    names
}

fn expressions() -> Vec<String> {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let mut exprs = Vec::new();
    let dashboards = deploy.join("grafana/dashboards");
    for entry in std::fs::read_dir(dashboards).unwrap() {
        let dashboard: serde_json::Value =
            serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        let mut stack = vec![dashboard];
        while let Some(value) = stack.pop() {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::String(expr)) = map.get("expr") {
                        exprs.push(expr.clone());
                    }
                    stack.extend(map.into_iter().map(|(_, v)| v));
                }
                serde_json::Value::Array(values) => stack.extend(values),
                _ => {}
            }
        }
    }
    let alerts: serde_yaml_ng::Value =
        serde_yaml_ng::from_slice(&std::fs::read(deploy.join("prometheus/alerts.yml")).unwrap()).unwrap();
    for group in alerts["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            exprs.push(rule["expr"].as_str().unwrap().to_string());
        }
    }
    exprs
}

async fn a_fresh_system_exports_every_series_the_dashboard_reads(db: &Db) {
    let projects = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../projects");
    let system = system::start(db, &[("PROJECTS_DIR", projects.to_str().unwrap())]).await;
    let api = scrape(&system, &system.api).await;
    let orchestrator = scrape(&system, &system.orchestrator).await;
    let exported = |name: &str| {
        [&api, &orchestrator].iter().any(|text| {
            text.lines()
                .any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        })
    };
    let names: BTreeSet<String> = expressions().iter().flat_map(|e| metric_names(e)).collect();
    assert!(
        names.contains("myloware_runs_total") && names.contains("llm_tokens_total"),
        "{names:?}"
    );
    let missing: Vec<&String> = names.iter().filter(|name| !exported(name)).collect();
    assert!(missing.is_empty(), "not exported on a fresh system: {missing:?}");
    for (text, series) in [
        (&api, r#"myloware_runs_total{project="aismr",status="published"}"#),
        (&api, r#"myloware_runs_active{project="aismr",status="running"}"#),
        (
            &api,
            r#"hitl_decisions_total{decision="approve",gate="ideate",via="token"}"#,
        ),
        (
            &api,
            r#"myloware_gate_wait_seconds_count{decision="reject",gate="prepublish",project="aismr"}"#,
        ),
        (&api, r#"myloware_metrics_labels_dropped_total{service="api"}"#),
        (&orchestrator, r#"llm_tokens_total{kind="input",model="gpt-4o-mini"}"#),
        (
            &orchestrator,
            r#"kieai_job_seconds_count{mode="mock",outcome="succeeded"}"#,
        ),
        (
            &orchestrator,
            r#"myloware_persona_step_duration_seconds_count{outcome="completed",persona="riley",project="aismr"}"#,
        ),
        (
            &orchestrator,
            r#"myloware_metrics_labels_dropped_total{service="orchestrator"}"#,
        ),
    ] {
        assert_eq!(sample(text, series), Some(0.0), "{series} in\n{text}");
    }
    system.stop_idle().await;
}

conformance_tests!(
    unknown_callers_and_unknown_runs_add_no_series,
    runs_beyond_the_cap_are_counted_without_their_run,
    a_fresh_system_exports_every_series_the_dashboard_reads,
);
