//! Spending limits and the cap on active runs, at a run's start: a live run
//! whose estimate is more than a limit has left is refused (409) before
//! anything is stored or paid; concurrent starts never exceed
//! `MAX_ACTIVE_RUNS`.

use std::time::Duration;

use myloware_core::costs::{PriceTable, usd};
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::fakes::{Calls, Providers};
use myloware_testkit::system::{self, API_KEY, start};
use serde_json::json;

/// What a test_video_gen run is estimated at (no LLM), in micro-dollars.
fn estimate() -> i64 {
    let spec = system::catalog().get("test_video_gen").unwrap().clone();
    PriceTable::default().estimate(&spec, None).total()
}

async fn a_live_run_over_a_spend_limit_is_refused_before_any_paid_call(db: &Db) {
    let calls = Calls::default();
    let providers = Providers::start(&calls).await;
    // Room for one run, not two.
    let limit = format!("{:.6}", usd(estimate() * 3 / 2));
    let mut vars = providers.vars();
    vars.push(("SPEND_LIMIT_DAILY_USD", &limit));
    let system = start(db, &vars).await;
    let body = json!({"project": "test_video_gen", "input": {"prompt": "within budget"}});
    let run_id = system.start_run(body.clone()).await;
    system.wait_status(&run_id, "published", Duration::from_secs(30)).await;
    let paid = calls.all().len();

    let (status, answer) = system.post(&format!("{}/v1/runs/start", system.api), body).await;
    assert_eq!(status, 409, "{answer}");
    let detail = answer["detail"].as_str().unwrap();
    assert!(detail.contains("daily spend limit (SPEND_LIMIT_DAILY_USD)"), "{detail}");
    assert!(
        detail.contains(&format!("estimated at {:.2} USD", usd(estimate()))),
        "{detail}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(calls.all().len(), paid, "no provider was called");
    let runs = system.get(&format!("{}/v1/runs", system.api)).await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "nothing stored: {runs}");
    system.stop_idle().await;
}

async fn a_mock_run_is_never_refused_by_a_spend_limit(db: &Db) {
    let system = start(db, &[("SPEND_LIMIT_DAILY_USD", "0")]).await;
    let run_id = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "mock spends nothing"}}))
        .await;
    system.wait_status(&run_id, "published", Duration::from_secs(30)).await;
    system.stop_idle().await;
}

async fn concurrent_starts_never_exceed_the_run_cap(db: &Db) {
    let system = start(db, &[("MAX_ACTIVE_RUNS", "3")]).await;
    let url = format!("{}/v1/runs/start", system.api);
    // Proposals wait for their workflow gate: they stay active.
    let body =
        json!({"project": "aismr", "input": {"object": "candles"}, "options": {"requireWorkflowApproval": true}});
    let starts: Vec<_> = (0..10)
        .map(|_| {
            let request = system.http.post(&url).header("x-api-key", API_KEY).json(&body);
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for start in starts {
        statuses.push(start.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [201, 201, 201, 409, 409, 409, 409, 409, 409, 409]);
    let runs = system.get(&format!("{}/v1/runs", system.api)).await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 3, "{runs}");

    let (status, answer) = system.post(&url, body).await;
    assert_eq!(status, 409);
    assert!(
        answer["detail"].as_str().unwrap().contains("MAX_ACTIVE_RUNS (3)"),
        "{answer}"
    );
    system.stop_idle().await;
}

conformance_tests!(
    a_live_run_over_a_spend_limit_is_refused_before_any_paid_call,
    a_mock_run_is_never_refused_by_a_spend_limit,
    concurrent_starts_never_exceed_the_run_cap,
);
