//! What runs cost, end to end: a live run against the fake providers
//! records the price table times the calls the fakes counted, a mock run
//! what its calls would have cost (mode `mock`), and the API shows both
//! with the run and per day.

use std::time::Duration;

use myloware_core::ProviderMode;
use myloware_core::costs::{PriceTable, render_seconds, usd};
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::fakes::{Calls, Providers};
use myloware_testkit::system::{self, System, start};
use serde_json::{Value, json};

const QUICK: Duration = Duration::from_secs(30);

/// A published test_video_gen run (no gates).
async fn published(system: &System) -> (String, Value) {
    let run_id = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "what it costs"}}))
        .await;
    let run = system.wait_status(&run_id, "published", QUICK).await;
    (run_id, run)
}

/// What the price table says `clips` clips, `renders` renders and
/// `publishes` publishes of test_video_gen cost, per provider.
fn priced(clips: usize, renders: usize, publishes: usize) -> [(&'static str, i64); 3] {
    let prices = PriceTable::default();
    let spec = system::catalog().get("test_video_gen").unwrap().clone();
    [
        ("kieai", prices.clip("veo3_fast").usd_micros * clips as i64),
        (
            "shotstack",
            prices.render(render_seconds(&spec)).usd_micros * renders as i64,
        ),
        ("upload_post", prices.publish().usd_micros * publishes as i64),
    ]
}

/// The orchestrator's spend of `run_id` per provider, every row in `mode`.
async fn spent(system: &System, run_id: &str, mode: ProviderMode) -> [(&'static str, i64); 3] {
    let rows = system.orchestrator_state.store.spend(run_id).await.unwrap();
    assert!(
        rows.iter().all(|r| r.mode == mode && r.project == "test_video_gen"),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .all(|r| r.journal_key.as_deref().is_some_and(|k| k.starts_with(run_id))),
        "every provider cost is a journaled call's: {rows:?}"
    );
    ["kieai", "shotstack", "upload_post"].map(|provider| {
        let total = rows
            .iter()
            .filter(|r| r.charge.provider == provider)
            .map(|r| r.charge.usd_micros)
            .sum();
        (provider, total)
    })
}

/// The API shows what the orchestrator recorded, with the run and today.
async fn shown(system: &System, run: &Value, expected: &[(&str, i64); 3], mode: &str) {
    let total: i64 = expected.iter().map(|(_, micros)| micros).sum();
    let cost = &run["cost"];
    assert_eq!(cost["spentUsd"], usd(total), "{cost}");
    assert_eq!(cost["estimatedUsd"], usd(total), "no retry, no LLM: as estimated");
    assert_eq!(cost["mode"], mode);
    for (provider, micros) in expected {
        assert_eq!(cost["byProvider"][provider], usd(*micros), "{provider}: {cost}");
    }
    let today = chrono::Utc::now().date_naive().to_string();
    let costs = system
        .get(&format!(
            "{}/v1/costs?from={today}&to={today}&project=test_video_gen",
            system.api
        ))
        .await;
    let day = costs["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["mode"] == mode)
        .unwrap_or_else(|| panic!("no {mode} day in {costs}"));
    assert_eq!(day["spentUsd"], usd(total), "{costs}");
}

async fn a_live_runs_cost_is_the_price_table_times_the_calls_the_fakes_counted(db: &Db) {
    let calls = Calls::default();
    let providers = Providers::start(&calls).await;
    let system = start(db, &providers.vars()).await;
    let (run_id, run) = published(&system).await;
    let expected = priced(
        calls.count("kieai.submit"),
        calls.count("shotstack.render"),
        calls.count("upload_post.publish"),
    );
    assert_eq!(expected[0].1, 2 * 400_000, "two clips were paid for");
    assert_eq!(spent(&system, &run_id, ProviderMode::Live).await, expected);
    shown(&system, &run, &expected, "live").await;
    assert!(system.mock_calls(&run_id).await.is_empty(), "no mock was used");
    system.stop_idle().await;
}

async fn a_mock_run_records_what_it_would_have_cost(db: &Db) {
    let system = start(db, &[]).await;
    let (run_id, run) = published(&system).await;
    let calls = system.mock_calls(&run_id).await;
    let count = |provider: &str, operation: &str| calls.get(&(provider.into(), operation.into())).map_or(0, Vec::len);
    let expected = priced(
        count("kieai", "submit"),
        count("shotstack", "render"),
        count("upload_post", "publish"),
    );
    assert_eq!(expected[2].1, 600_000, "one publish");
    assert_eq!(spent(&system, &run_id, ProviderMode::Mock).await, expected);
    shown(&system, &run, &expected, "mock").await;
    system.stop_idle().await;
}

conformance_tests!(
    a_live_runs_cost_is_the_price_table_times_the_calls_the_fakes_counted,
    a_mock_run_records_what_it_would_have_cost,
);
