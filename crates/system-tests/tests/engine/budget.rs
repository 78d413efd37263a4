//! Spending limits and the cap on active runs: a live run whose estimate is
//! more than a limit has left is refused (409) before anything is stored or
//! paid, at its start and when its proposal is approved; a running run with
//! no room for its next paid call is held until the limit allows;
//! concurrent starts never exceed `MAX_ACTIVE_RUNS`.

use std::time::Duration;

use myloware_core::costs::{PriceTable, usd};
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::fakes::{Calls, Providers};
use myloware_testkit::system::{self, API_KEY, artifacts_of, start};
use serde_json::json;

/// What a test_video_gen run is estimated at (no LLM), in micro-dollars:
/// exactly what it spends against the fakes.
fn estimate() -> i64 {
    let spec = system::catalog().get("test_video_gen").unwrap().clone();
    PriceTable::default().estimate(&spec, None).total()
}

/// `SPEND_LIMIT_DAILY_USD` of `micros`.
fn daily_limit(micros: i64) -> String {
    format!("{:.6}", usd(micros))
}

async fn a_live_run_over_a_spend_limit_is_refused_before_any_paid_call(db: &Db) {
    let calls = Calls::default();
    let providers = Providers::start(&calls).await;
    // Room for one run, not two.
    let limit = daily_limit(estimate() * 3 / 2);
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

/// Run A (aismr) spends on its clips and render, then waits at its
/// prepublish gate while run B (test_video_gen) spends exactly what is left
/// of the day's limit. Approved, A is held before its publish (nothing
/// published), a proposal made meanwhile cannot be approved (409), and both
/// go on once the limit is raised (the services restarted, as a changed
/// secret does): A publishes once.
async fn a_run_held_by_a_spend_limit_continues_once_the_limit_is_raised(db: &Db) {
    let calls = Calls::default();
    let providers = Providers::start(&calls).await;
    let mut live = providers.owned_vars();
    // The render copied before the gate outlives each restart.
    let assets = myloware_testkit::process::Scratch::new("held-assets");
    live.push(("ASSET_DIR".into(), assets.path().display().to_string()));
    let with = |extra: &[(&'static str, &str)]| -> Vec<(String, String)> {
        let mut vars = live.clone();
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        vars
    };
    let start_with = |vars: Vec<(String, String)>| async move {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        start(db, &vars).await
    };

    let system = start_with(with(&[])).await;
    let a = system
        .start_run(json!({"project": "aismr", "input": {"object": "candles"}}))
        .await;
    system.wait_status(&a, "awaiting_ideate", Duration::from_secs(30)).await;
    system.approve(&a, "ideate").await;
    let waiting = system
        .wait_status(&a, "awaiting_prepublish", Duration::from_secs(60))
        .await;
    let spent_by_a = myloware_core::costs::micros(waiting["cost"]["spentUsd"].as_f64().unwrap());
    assert!(spent_by_a > 0, "{}", waiting["cost"]);
    system.stop_idle().await;

    // Room for B and not a cent more.
    let limit = daily_limit(spent_by_a + estimate());
    let system = start_with(with(&[("SPEND_LIMIT_DAILY_USD", &limit), ("BUDGET_RECHECK_SECS", "1")])).await;
    let proposal = json!({"project": "test_video_gen", "input": {"prompt": "proposed"},
                          "options": {"requireWorkflowApproval": true}});
    let c = system.start_run(proposal).await;
    let b = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "spends the rest"}}))
        .await;
    system.wait_status(&b, "published", Duration::from_secs(30)).await;

    system.approve(&a, "prepublish").await;
    let held = system.wait_status(&a, "awaiting_budget", Duration::from_secs(30)).await;
    let hold = &artifacts_of(&held, "budget.held")
        .next()
        .expect("a budget.held artifact")["data"];
    assert_eq!(hold["limit"], "daily spend limit (SPEND_LIMIT_DAILY_USD)", "{hold}");
    assert_eq!(hold["leftUsd"], 0.0, "{hold}");
    assert_eq!(hold["persona"], "quinn", "{hold}");
    assert_eq!(hold["calls"], json!({"call": "upload_post.publish", "count": 1}));
    let pending = system.get(&format!("{}/v1/hitl/pending", system.api)).await;
    assert_eq!(pending["held"][0]["runId"], a.as_str(), "{pending}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(calls.publishes(&a), 0, "nothing published past the limit");
    let still = system.get(&format!("{}/v1/runs/{a}", system.api)).await;
    assert_eq!(still["status"], "awaiting_budget", "looked again and held again");

    let approve_c = format!("{}/v1/hitl/approve/{c}/workflow", system.api);
    let (status, answer) = system.post(&approve_c, json!({})).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("daily spend limit (SPEND_LIMIT_DAILY_USD)"),
        "{answer}"
    );
    let proposed = system.get(&format!("{}/v1/runs/{c}", system.api)).await;
    assert_eq!(proposed["status"], "pending_workflow", "still a proposal");
    system.stop_idle().await;

    let raised = daily_limit(spent_by_a + 3 * estimate());
    let system = start_with(with(&[
        ("SPEND_LIMIT_DAILY_USD", &raised),
        ("BUDGET_RECHECK_SECS", "1"),
    ]))
    .await;
    let published = system.wait_status(&a, "published", Duration::from_secs(30)).await;
    assert_eq!(calls.publishes(&a), 1);
    let released: Vec<&serde_json::Value> = artifacts_of(&published, "budget.released").collect();
    assert_eq!(released.len(), 1, "{}", published["artifacts"]);
    system.approve(&c, "workflow").await;
    system.wait_status(&c, "published", Duration::from_secs(30)).await;
    system.stop_idle().await;
}

/// With `MAX_PROVIDER_JOBS=1`, two live runs of two clips each share one
/// kie.ai slot: every submission comes after the previous task's result
/// was fetched (`record-info`), and both runs publish.
async fn live_runs_share_the_provider_job_slots(db: &Db) {
    let calls = Calls::default();
    let providers = Providers::start(&calls).await;
    let mut vars = providers.vars();
    vars.push(("MAX_PROVIDER_JOBS", "1"));
    let system = start(db, &vars).await;
    let runs = [
        system
            .start_run(json!({"project": "test_video_gen", "input": {"prompt": "first"}}))
            .await,
        system
            .start_run(json!({"project": "test_video_gen", "input": {"prompt": "second"}}))
            .await,
    ];
    for run in &runs {
        system.wait_status(run, "published", Duration::from_secs(60)).await;
    }
    let mut in_flight: Vec<String> = Vec::new();
    let mut submitted = 0;
    for (operation, body) in calls.all() {
        match operation.as_str() {
            "kieai.submit" => {
                assert!(
                    in_flight.is_empty(),
                    "task-{submitted} submitted while {in_flight:?} generate"
                );
                in_flight.push(format!("task-{submitted}"));
                submitted += 1;
            }
            "kieai.record_info" => in_flight.retain(|task| body["taskId"] != task.as_str()),
            _ => {}
        }
    }
    assert_eq!(submitted, 4);
    // A clip's answer waits for the next clip's begin; a step that stops
    // for want of a slot writes it before parking. Each answer and its cost
    // once.
    for run in &runs {
        let store = &system.orchestrator_state.store;
        let answered: Vec<(String, bool)> = store
            .journal(run)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.provider == "kieai")
            .map(|e| (e.key, e.response.is_some_and(|r| r["taskId"].is_string())))
            .collect();
        assert_eq!(answered.len(), 2, "{answered:?}");
        assert!(answered.iter().all(|(_, answered)| *answered), "{answered:?}");
        let clip_costs = store
            .spend(run)
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.charge.provider == "kieai")
            .count();
        assert_eq!(clip_costs, 2, "one cost per clip of {run}");
    }
    system.stop_idle().await;
}

conformance_tests!(
    live_runs_share_the_provider_job_slots,
    a_run_held_by_a_spend_limit_continues_once_the_limit_is_raised,
    a_live_run_over_a_spend_limit_is_refused_before_any_paid_call,
    a_mock_run_is_never_refused_by_a_spend_limit,
    concurrent_starts_never_exceed_the_run_cap,
);
