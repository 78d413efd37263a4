//! Costs over real HTTP, on SQLite and (with `TEST_DATABASE_URL`)
//! Postgres: a run's estimate when it is created, its `cost.recorded`
//! events applied once each, the run's `cost`, `GET /v1/costs` per day,
//! project and mode, and `myloware_spend_usd_total`.

mod common;

use common::{API_KEY, TestApp, spawn_app};
use myloware_core::ProviderMode;
use myloware_core::costs::{PriceTable, usd};
use myloware_core::wire::CostRecorded;
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use serde_json::{Value, json};

/// A `cost.recorded` event of `run_id` at `seq`, on `at`.
fn cost_event(run_id: &str, seq: i64, cost: &CostRecorded, at: &str) -> Value {
    json!({"eventId": format!("{run_id}-cost-{seq}"), "runId": run_id, "seq": seq, "type": "cost.recorded",
           "at": at, "data": cost})
}

async fn deliver(app: &TestApp, events: Vec<Value>) -> Vec<String> {
    let (status, answers) = app.deliver_events(&events).await;
    assert_eq!(status, 200, "{answers:?}");
    answers
}

async fn start(app: &TestApp, project: &str) -> String {
    let (status, body) = app
        .start_run(json!({"project": project, "input": {"topic": "costs"}}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["runId"].as_str().unwrap().to_string()
}

fn spend_metric(app: &TestApp, provider: &str, project: &str, mode: &str) -> f64 {
    let exposition = app.state.metrics.http.render();
    let labels = [
        format!("provider=\"{provider}\""),
        format!("project=\"{project}\""),
        format!("mode=\"{mode}\""),
    ];
    let line = exposition
        .lines()
        .find(|line| line.starts_with("myloware_spend_usd_total{") && labels.iter().all(|l| line.contains(l.as_str())))
        .unwrap_or_else(|| panic!("{labels:?} not in\n{exposition}"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

async fn costs_are_applied_once_and_shown_with_the_run(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let prices = PriceTable::default();
    let run_id = start(&app, "test_video_gen").await;

    // The estimate is known at once: two clips, 16 s rendered, one publish.
    let (status, run) = app.get_json(&format!("/v1/runs/{run_id}")).await;
    assert_eq!(status, 200);
    let expected = 2 * 400_000 + 80_000 + 600_000;
    assert_eq!(
        run["cost"],
        json!({"estimatedUsd": usd(expected), "spentUsd": 0.0, "mode": "mock",
               "byProvider": {"kieai": 0.0, "shotstack": 0.0, "upload_post": 0.0, "openai": 0.0}})
    );

    let clip = CostRecorded::new(&prices.clip("veo3_fast"), ProviderMode::Mock, Some("k:clip:0"));
    let llm = CostRecorded::new(&prices.llm_request("gpt-4o-mini", 1000, 500), ProviderMode::Mock, None);
    let events = vec![
        cost_event(&run_id, 1, &clip, "2026-01-05T10:00:00Z"),
        cost_event(&run_id, 2, &llm, "2026-01-05T23:59:59Z"),
    ];
    assert_eq!(deliver(&app, events.clone()).await, ["applied", "applied"]);
    // The outbox sends again after a lost answer: nothing counts twice.
    assert_eq!(deliver(&app, events).await, ["duplicate", "duplicate"]);

    let (_, run) = app.get_json(&format!("/v1/runs/{run_id}")).await;
    assert_eq!(run["cost"]["spentUsd"], usd(400_000 + 450));
    assert_eq!(run["cost"]["byProvider"]["kieai"], 0.4);
    assert_eq!(run["cost"]["byProvider"]["openai"], 0.00045);
    assert_eq!(run["cost"]["estimatedUsd"], usd(expected), "the estimate stays");
    assert_eq!(spend_metric(&app, "kieai", "test_video_gen", "mock"), 0.4);
    assert_eq!(spend_metric(&app, "openai", "test_video_gen", "mock"), 0.00045);
    assert_eq!(
        spend_metric(&app, "shotstack", "aismr", "mock"),
        0.0,
        "declared at zero"
    );
}

async fn costs_are_summed_per_day_project_and_mode(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let prices = PriceTable::default();
    let first = start(&app, "test_video_gen").await;
    let second = start(&app, "aismr").await;
    let live = |charge| CostRecorded::new(&charge, ProviderMode::Live, Some("k"));
    let mock = |charge| CostRecorded::new(&charge, ProviderMode::Mock, Some("k"));
    assert_eq!(
        deliver(
            &app,
            vec![
                cost_event(&first, 1, &live(prices.clip("veo3_fast")), "2026-01-05T01:00:00Z"),
                cost_event(&first, 2, &live(prices.clip("veo3_fast")), "2026-01-05T02:00:00Z"),
                cost_event(&first, 3, &live(prices.render(16.0)), "2026-01-06T00:00:00Z"),
                cost_event(&second, 1, &mock(prices.publish()), "2026-01-05T12:00:00Z"),
                cost_event(&second, 2, &live(prices.publish()), "2026-02-05T12:00:00Z"),
            ],
        )
        .await,
        ["applied"; 5]
    );
    let (status, costs) = app.get_json("/v1/costs?from=2026-01-05&to=2026-01-06").await;
    assert_eq!(status, 200, "{costs}");
    let zero = json!({"kieai": 0.0, "shotstack": 0.0, "upload_post": 0.0, "openai": 0.0});
    let with = |provider: &str, amount: f64| {
        let mut by = zero.clone();
        by[provider] = json!(amount);
        by
    };
    assert_eq!(
        costs,
        json!({"from": "2026-01-05", "to": "2026-01-06", "totalUsd": usd(1_480_000), "days": [
            {"day": "2026-01-05", "project": "aismr", "mode": "mock", "spentUsd": 0.6, "byProvider": with("upload_post", 0.6)},
            {"day": "2026-01-05", "project": "test_video_gen", "mode": "live", "spentUsd": 0.8, "byProvider": with("kieai", 0.8)},
            {"day": "2026-01-06", "project": "test_video_gen", "mode": "live", "spentUsd": 0.08, "byProvider": with("shotstack", 0.08)},
        ]})
    );
    let (_, aismr) = app
        .get_json("/v1/costs?from=2026-01-01&to=2026-02-28&project=aismr")
        .await;
    let days: Vec<(&str, &str)> = aismr["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["day"].as_str().unwrap(), d["mode"].as_str().unwrap()))
        .collect();
    assert_eq!(days, [("2026-01-05", "mock"), ("2026-02-05", "live")]);
    assert_eq!(aismr["totalUsd"], 1.2);
    // Nothing spent in the default range (the last 30 days) here.
    let (_, recent) = app.get_json("/v1/costs").await;
    assert_eq!(
        (recent["days"].clone(), recent["totalUsd"].clone()),
        (json!([]), json!(0.0))
    );
    let today = chrono::Utc::now().date_naive();
    assert_eq!(recent["to"], today.to_string());
    assert_eq!(recent["from"], (today - chrono::Days::new(29)).to_string());
}

async fn the_costs_query_is_checked(db: &Db) {
    let viewer = "costs-viewer-key";
    let app = spawn_app(db, &[("API_KEYS", &format!("vic:viewer:{viewer}"))]).await;
    for (query, field) in [
        ("from=2026-02-30", "from"),
        ("from=2026-1-05", "from"),
        ("to=yesterday", "to"),
        ("from=2026-01-01&to=2026-01-01T00:00:00Z", "to"),
    ] {
        let (status, body) = app.get_json(&format!("/v1/costs?{query}")).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["detail"][0]["loc"], json!(["query", field]), "{query}: {body}");
    }
    let (status, body) = app.get_json("/v1/costs?from=2026-01-01&from=2026-01-02").await;
    assert_eq!(status, 400, "a parameter given twice: {body}");
    assert!(body["detail"].is_string(), "{body}");
    // A long range keeps its last 366 days; reversed dates are read in order.
    let (_, long) = app.get_json("/v1/costs?from=2020-01-01&to=2026-01-01").await;
    assert_eq!(
        (long["from"].as_str(), long["to"].as_str()),
        (Some("2025-01-01"), Some("2026-01-01"))
    );
    let (_, reversed) = app.get_json("/v1/costs?from=2026-01-31&to=2026-01-01").await;
    assert_eq!(
        (reversed["from"].as_str(), reversed["to"].as_str()),
        (Some("2026-01-01"), Some("2026-01-31"))
    );
    // A viewer's key is enough; no key is refused.
    let costs = |key: Option<&str>| {
        let mut request = app.http.get(app.url("/v1/costs"));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        request.send()
    };
    for (key, status) in [(Some(viewer), 200), (Some(API_KEY), 200), (None, 401)] {
        assert_eq!(costs(key).await.unwrap().status(), status, "{key:?}");
    }
}

/// What an API refuses that does not know an event type (as one from
/// before `cost.recorded` does with it): the whole batch, 422, nothing
/// applied; the orchestrator's outbox then sends costs as artifacts.
async fn a_batch_with_an_unknown_event_type_is_refused_whole(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let run_id = start(&app, "test_video_gen").await;
    let batch = json!({"events": [
        {"eventId": "e1", "runId": run_id, "seq": 1, "type": "execution.started", "at": "2026-01-05T10:00:00Z", "data": {}},
        {"eventId": "e2", "runId": run_id, "seq": 2, "type": "cost.estimated", "at": "2026-01-05T10:00:00Z", "data": {}},
    ]});
    let response = app.internal_post("/v1/internal/events", &batch).await;
    assert_eq!(response.status(), 422);
    assert!(app.state.store.list_events(&run_id).await.unwrap().is_empty());
    // Its costs as artifacts are applied like any artifact.
    let legacy = json!({"eventId": "e3", "runId": run_id, "seq": 1, "type": "artifact.created", "at": "2026-01-05T10:00:00Z",
                        "data": {"kind": "cost.recorded", "persona": null, "data": {"provider": "kieai", "usdMicros": 400_000}}});
    assert_eq!(deliver(&app, vec![legacy]).await, ["applied"]);
    assert_eq!(
        app.state.store.list_artifacts(&run_id).await.unwrap()[0].kind,
        "cost.recorded"
    );
}

conformance_tests!(
    a_batch_with_an_unknown_event_type_is_refused_whole,
    costs_are_applied_once_and_shown_with_the_run,
    costs_are_summed_per_day_project_and_mode,
    the_costs_query_is_checked,
);
