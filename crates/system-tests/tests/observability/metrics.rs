//! Metrics of a real run: the runbook's `http_requests_total{runId=…}` and
//! the per-gate latency series on both services, the domain metrics, and
//! the run's series dropped after `METRICS_RUN_SERIES_TTL`.

use myloware_testkit::JsonAnswer;
use std::time::Duration;

use myloware_db::Db;

use myloware_testkit::system::{System, aismr, start};
use myloware_testkit::{conformance_tests, wait_until};
use serde_json::json;

const QUICK: Duration = Duration::from_secs(30);

async fn scrape(system: &System, base: &str) -> String {
    system.http.get(format!("{base}/metrics")).text_answer().await
}

/// `metric` with `labels` has the value `expected`.
fn assert_value(text: &str, metric: &str, labels: &[(&str, &str)], expected: f64) {
    assert_eq!(value(text, metric, labels), Some(expected), "{metric} {labels:?}");
}

/// The value of the first series of `metric` whose labels contain every
/// `name="value"` of `labels`.
fn value(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")) || line.starts_with(&format!("{metric} ")))
        .find(|line| labels.iter().all(|(k, v)| line.contains(&format!("{k}=\"{v}\""))))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn a_runs_metrics_are_exported_by_both_services(db: &Db) {
    let system = start(db, &[]).await;
    let run_id = system.publish_aismr("m-1").await;
    let api = scrape(&system, &system.api).await;
    let orchestrator = scrape(&system, &system.orchestrator).await;
    let run = [("runId", run_id.as_str())];

    // The runbook's query, on both services.
    assert!(value(&api, "http_requests_total", &run).is_some(), "{api}");
    assert!(
        value(&orchestrator, "http_requests_total", &run).is_some(),
        "{orchestrator}"
    );
    // The start (run id in the body) is labelled with its run too.
    assert_value(
        &api,
        "http_requests_total",
        &[("route", "/v1/runs/start"), ("runId", &run_id)],
        1.0,
    );
    // Latency per persona gate.
    for (gate, persona) in [("ideate", "iggy"), ("prepublish", "quinn")] {
        let labels = [("runId", run_id.as_str()), ("gate", gate), ("persona", persona)];
        assert_value(&api, "http_request_duration_seconds_count", &labels, 1.0);
    }

    // Domain metrics of the API.
    let published = [("project", "aismr"), ("status", "published")];
    assert_value(&api, "myloware_runs_total", &published, 1.0);
    for gate in ["ideate", "prepublish"] {
        let labels = [("gate", gate), ("decision", "approve"), ("via", "api_key")];
        assert_value(&api, "hitl_decisions_total", &labels, 1.0);
        let labels = [("project", "aismr"), ("gate", gate), ("decision", "approve")];
        assert_value(&api, "myloware_gate_wait_seconds_count", &labels, 1.0);
    }
    let callbacks = [
        ("provider", "kieai"),
        ("signature", "verified"),
        ("result", "processed"),
    ];
    assert_value(&api, "webhook_events_total", &callbacks, 12.0);
    for gauge in ["myloware_dead_letters_open", "commands_pending", "chat_pushes_pending"] {
        assert_value(&api, gauge, &[], 0.0);
    }

    // And of the orchestrator.
    for persona in ["iggy", "riley", "alex", "quinn"] {
        let labels = [("project", "aismr"), ("persona", persona), ("outcome", "completed")];
        assert_value(
            &orchestrator,
            "myloware_persona_step_duration_seconds_count",
            &labels,
            1.0,
        );
    }
    let mock_ok = [("mode", "mock"), ("outcome", "succeeded")];
    assert_value(&orchestrator, "kieai_job_seconds_count", &mock_ok, 12.0);
    assert_value(&orchestrator, "shotstack_render_seconds_count", &mock_ok, 1.0);
    assert_value(&orchestrator, "upload_post_seconds_count", &mock_ok, 1.0);
    let submits = [("provider", "kieai"), ("operation", "submit"), ("status", "ok")];
    assert_value(&orchestrator, "provider_requests_total", &submits, 12.0);
    for gauge in ["outbox_pending", "executions_runnable", "executions_waiting"] {
        assert!(value(&orchestrator, gauge, &[]).is_some(), "{gauge}");
    }

    // A second run waits at its gate: it is active.
    let waiting = system.start_run(aismr("pebbles")).await;
    system.wait_status(&waiting, "awaiting_ideate", QUICK).await;
    let api = scrape(&system, &system.api).await;
    let labels = [("project", "aismr"), ("status", "awaiting_ideate")];
    assert_value(&api, "myloware_runs_active", &labels, 1.0);
    system.cancel(&waiting, json!({})).await;
    system.wait_status(&waiting, "cancelled", QUICK).await;
    system.stop_idle().await;
}

async fn a_finished_runs_series_go_after_the_ttl(db: &Db) {
    let system = start(db, &[("METRICS_RUN_SERIES_TTL", "2")]).await;
    let run_id = system.publish_aismr("m-1").await;
    let run = [("runId", run_id.as_str())];
    // The run is over: its series stay for the TTL...
    assert!(value(&scrape(&system, &system.api).await, "http_requests_total", &run).is_some());
    // ...then leave both registries (the run's counters stay).
    let (system_ref, run_id_ref) = (&system, run_id.as_str());
    let what = "the run's series to leave both registries";
    let api = wait_until(
        Duration::from_secs(15),
        Duration::from_millis(250),
        what,
        move || async move {
            let api = scrape(system_ref, &system_ref.api).await;
            let orchestrator = scrape(system_ref, &system_ref.orchestrator).await;
            if !api.contains(run_id_ref) && !orchestrator.contains(run_id_ref) {
                Ok(api)
            } else {
                Err(format!("series of {run_id_ref} still exported"))
            }
        },
    )
    .await;
    assert_value(&api, "myloware_runs_total", &[("status", "published")], 1.0);
    system.stop_idle().await;
}

conformance_tests!(
    a_runs_metrics_are_exported_by_both_services,
    a_finished_runs_series_go_after_the_ttl,
);
