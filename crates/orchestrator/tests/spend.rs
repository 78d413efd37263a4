//! The costs of paid calls (table `spend`) on SQLite and Postgres: a
//! provider call's cost is recorded once per journal key, with its journal
//! entry and its `cost.recorded` event; an LLM request's with its step.

use chrono::{DateTime, Duration, Utc};
use myloware_core::ProviderMode;
use myloware_core::costs::{Charge, PriceTable};
use myloware_core::wire::EventKind;
use myloware_db::Db;
use myloware_orchestrator::store::{
    self, ExecStatus, JournalBegin, JournalStatus, NewEvent, NewExecution, OrchestratorStore, Spend, StepCommit,
};
use myloware_testkit::conformance_tests;
use serde_json::json;

async fn claimed(db: &Db, run_id: &str, project: &str) -> std::sync::Arc<dyn OrchestratorStore> {
    let store = store::open(db);
    let new = NewExecution {
        run_id: run_id.into(),
        project: project.into(),
        request: json!({"runId": run_id}),
        state: json!({}),
    };
    let started = NewEvent {
        kind: EventKind::ExecutionStarted,
        data: json!({}),
    };
    store.create_execution(&new, &started).await.unwrap();
    let now = Utc::now();
    let claimed = store.claim("w", now, now + Duration::seconds(30)).await.unwrap();
    assert_eq!(claimed.map(|e| e.run_id).as_deref(), Some(run_id));
    store
}

fn spend(run_id: &str, project: &str, charge: Charge, mode: ProviderMode, key: Option<&str>) -> Spend {
    spend_at(run_id, project, charge, mode, key, Utc::now())
}

fn spend_at(
    run_id: &str,
    project: &str,
    charge: Charge,
    mode: ProviderMode,
    key: Option<&str>,
    at: DateTime<Utc>,
) -> Spend {
    Spend {
        run_id: run_id.into(),
        project: project.into(),
        charge,
        mode,
        journal_key: key.map(str::to_owned),
        at,
    }
}

fn cost_event(spend: &Spend) -> NewEvent {
    NewEvent {
        kind: EventKind::CostRecorded,
        data: json!({"usdMicros": spend.charge.usd_micros, "key": spend.journal_key}),
    }
}

/// A commit of `spend` (LLM requests) with their events, parking the run.
fn commit(run_id: &str, spend: Vec<Spend>) -> StepCommit {
    StepCommit {
        run_id: run_id.into(),
        worker: "w".into(),
        node: 1,
        status: ExecStatus::Waiting,
        state: json!({}),
        wait: Some(json!({"for": "clips"})),
        wake_at: None,
        events: spend.iter().map(cost_event).collect(),
        consumed_through: None,
        keep_lease_until: None,
        spend,
        jobs_ended: Vec::new(),
        release_jobs: false,
    }
}

async fn a_paid_call_is_recorded_once_per_journal_key(db: &Db) {
    let store = claimed(db, "run_a", "aismr").await;
    let prices = PriceTable::default();
    let key = "run_a:riley:clip:0";
    assert_eq!(
        store
            .journal_begin("run_a", "w", key, "kieai", "submit", &json!({"index": 0}))
            .await
            .unwrap(),
        JournalBegin::Begun
    );
    let clip = spend(
        "run_a",
        "aismr",
        prices.clip("veo3_fast"),
        ProviderMode::Live,
        Some(key),
    );
    let answer = json!({"taskId": "task-1"});
    // A step that runs again after a crash records the same success again.
    for (attempt, recorded) in [(1, true), (2, false)] {
        assert_eq!(
            store
                .journal_succeeded_paid("run_a", key, &answer, &clip, &cost_event(&clip))
                .await
                .unwrap(),
            recorded,
            "attempt {attempt}"
        );
    }
    let journal = store.journal("run_a").await.unwrap();
    assert_eq!(
        (journal[0].status, journal[0].response.clone()),
        (JournalStatus::Succeeded, Some(answer))
    );
    let rows = store.spend("run_a").await.unwrap();
    assert_eq!(rows.len(), 1, "one cost per journal key");
    assert_eq!(
        (
            rows[0].charge.provider.as_str(),
            rows[0].charge.operation.as_str(),
            rows[0].charge.usd_micros
        ),
        ("kieai", "submit", 400_000)
    );
    assert_eq!(
        (
            rows[0].charge.model.as_deref(),
            rows[0].mode,
            rows[0].journal_key.as_deref()
        ),
        (Some("veo3_fast"), ProviderMode::Live, Some(key))
    );
    assert_eq!(rows[0].project, "aismr");

    // Its event took the next seq; the step's events follow it.
    let llm = spend(
        "run_a",
        "aismr",
        prices.llm_request("gpt-4o-mini", 1000, 500),
        ProviderMode::Live,
        None,
    );
    assert!(store.commit_step(&commit("run_a", vec![llm])).await.unwrap());
    let outbox = store.outbox("run_a").await.unwrap();
    let kinds: Vec<(i64, &str)> = outbox.iter().map(|e| (e.run_seq, e.kind.as_str())).collect();
    assert_eq!(
        kinds,
        [(1, "execution.started"), (2, "cost.recorded"), (3, "cost.recorded")]
    );
    assert_eq!(outbox[1].data["key"], key);
    assert_eq!(store.get_execution("run_a").await.unwrap().unwrap().event_seq, 3);
}

async fn llm_costs_are_committed_with_their_step_only(db: &Db) {
    let store = claimed(db, "run_a", "aismr").await;
    let prices = PriceTable::default();
    let request = |input| {
        spend(
            "run_a",
            "aismr",
            prices.llm_request("gpt-4o-mini", input, 100),
            ProviderMode::Mock,
            None,
        )
    };
    // Two requests without a journal key: both kept.
    assert!(
        store
            .commit_step(&commit("run_a", vec![request(1000), request(2000)]))
            .await
            .unwrap()
    );
    let rows = store.spend("run_a").await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.charge.units).collect::<Vec<_>>(),
        [1100.0, 2100.0]
    );
    assert!(
        rows.iter()
            .all(|r| r.journal_key.is_none() && r.charge.provider == "openai")
    );
    // A worker that lost its lease commits no cost.
    let mut lost = commit("run_a", vec![request(3000)]);
    lost.worker = "someone-else".into();
    assert!(!store.commit_step(&lost).await.unwrap());
    assert_eq!(store.spend("run_a").await.unwrap().len(), 2);
}

async fn spent_since_sums_by_project_and_mode(db: &Db) {
    let store = claimed(db, "run_a", "aismr").await;
    let prices = PriceTable::default();
    let now = Utc::now();
    let yesterday = now - Duration::days(1);
    let clip = || prices.clip("veo3_fast");
    let rows = vec![
        spend_at("run_a", "aismr", clip(), ProviderMode::Live, Some("k1"), now),
        spend_at("run_a", "aismr", clip(), ProviderMode::Live, Some("k2"), yesterday),
        spend_at("run_a", "aismr", prices.publish(), ProviderMode::Mock, Some("k3"), now),
        spend_at(
            "run_a",
            "other",
            prices.render(60.0),
            ProviderMode::Live,
            Some("k4"),
            now,
        ),
    ];
    assert!(store.commit_step(&commit("run_a", rows)).await.unwrap());
    let today = now - Duration::hours(1);
    let spent = |project, since, mode| {
        let store = store.clone();
        async move { store.spent_since(project, since, mode).await.unwrap() }
    };
    assert_eq!(spent(Some("aismr"), today, ProviderMode::Live).await, 400_000);
    assert_eq!(
        spent(Some("aismr"), yesterday - Duration::hours(1), ProviderMode::Live).await,
        800_000
    );
    assert_eq!(spent(None, today, ProviderMode::Live).await, 400_000 + 300_000);
    assert_eq!(spent(Some("aismr"), today, ProviderMode::Mock).await, 600_000);
    assert_eq!(spent(Some("nobody"), today, ProviderMode::Live).await, 0);
}

conformance_tests!(
    a_paid_call_is_recorded_once_per_journal_key,
    llm_costs_are_committed_with_their_step_only,
    spent_since_sums_by_project_and_mode,
);
