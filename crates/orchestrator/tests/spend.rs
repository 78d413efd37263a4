//! The costs of paid calls (table `spend`) on SQLite and Postgres: a
//! provider call's cost is recorded once per journal key, with its journal
//! entry and its `cost.recorded` event; an LLM request's with its step.

use chrono::{DateTime, Duration, Utc};
use myloware_core::ProviderMode;
use myloware_core::costs::{Charge, PriceTable};
use myloware_core::wire::EventKind;
use myloware_db::Db;
use myloware_orchestrator::store::{
    self, ExecStatus, JournalBegin, JournalStatus, NewEvent, NewExecution, NextCall, OrchestratorStore, PaidAnswer,
    Spend, StepCommit,
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

/// Riley's clips one after another: each answer is written with the next
/// clip's begin. The answer (its journal entry, its one cost, its event at
/// the next seq) is written whatever the begin finds: the next call begun,
/// begun before, a cancel, a lost lease.
async fn an_answer_is_written_with_the_next_calls_begin(db: &Db) {
    let store = claimed(db, "run_a", "aismr").await;
    let prices = PriceTable::default();
    let key = |i: u32| format!("run_a:riley:clip:{i}");
    let clip = |i: u32| {
        spend(
            "run_a",
            "aismr",
            prices.clip("veo3_fast"),
            ProviderMode::Mock,
            Some(&key(i)),
        )
    };
    let request = |i: u32| json!({"index": i});
    let answer = |i: u32| json!({"taskId": format!("task-{i}")});
    let pay_then_begin = |i: u32| {
        let store = store.clone();
        let (key_i, key_next, spend_i, request_next, answer_i) =
            (key(i), key(i + 1), clip(i), request(i + 1), answer(i));
        async move {
            let paid = PaidAnswer {
                key: key_i,
                response: answer_i,
                event: cost_event(&spend_i),
                spend: spend_i,
            };
            let next = NextCall {
                key: &key_next,
                provider: "kieai",
                operation: "submit",
                request: &request_next,
            };
            store.journal_paid_then_begin("run_a", "w", &paid, next).await.unwrap()
        }
    };
    assert_eq!(
        store
            .journal_begin("run_a", "w", &key(0), "kieai", "submit", &request(0))
            .await
            .unwrap(),
        JournalBegin::Begun
    );
    assert_eq!(pay_then_begin(0).await, (true, JournalBegin::Begun));
    // Sent again (a step re-run): the answer is not recorded twice and the
    // next call is found begun, unanswered.
    let (recorded, again) = pay_then_begin(0).await;
    assert!(!recorded, "one cost per journal key");
    match again {
        JournalBegin::Existing(entry) => {
            assert_eq!(
                (entry.key.as_str(), entry.status, entry.response),
                (key(1).as_str(), JournalStatus::Started, None)
            )
        }
        other => panic!("expected the entry begun before, got {other:?}"),
    }
    // A cancel: clip 1's answer is written, clip 2 is not begun.
    store.request_cancel("run_a").await.unwrap();
    assert_eq!(pay_then_begin(1).await, (true, JournalBegin::Cancelled));

    let journal = store.journal("run_a").await.unwrap();
    let entries: Vec<(&str, JournalStatus, Option<serde_json::Value>)> = journal
        .iter()
        .map(|e| (e.key.as_str(), e.status, e.response.clone()))
        .collect();
    assert_eq!(
        entries,
        [
            (key(0).as_str(), JournalStatus::Succeeded, Some(answer(0))),
            (key(1).as_str(), JournalStatus::Succeeded, Some(answer(1))),
        ]
    );
    let costs: Vec<Option<String>> = store
        .spend("run_a")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.journal_key)
        .collect();
    assert_eq!(costs, [Some(key(0)), Some(key(1))]);
    let outbox = store.outbox("run_a").await.unwrap();
    let events: Vec<(i64, &str, &serde_json::Value)> = outbox
        .iter()
        .map(|e| (e.run_seq, e.kind.as_str(), &e.data["key"]))
        .collect();
    assert_eq!(
        events,
        [
            (1, "execution.started", &serde_json::Value::Null),
            (2, "cost.recorded", &json!(key(0))),
            (3, "cost.recorded", &json!(key(1))),
        ]
    );

    // Another worker holds the run now: the answer is still written.
    let store = claimed(db, "run_b", "aismr").await;
    let key_b = "run_b:riley:clip:0";
    assert_eq!(
        store
            .journal_begin("run_b", "w", key_b, "kieai", "submit", &request(0))
            .await
            .unwrap(),
        JournalBegin::Begun
    );
    let spend_b = spend(
        "run_b",
        "aismr",
        prices.clip("veo3_fast"),
        ProviderMode::Mock,
        Some(key_b),
    );
    let paid = PaidAnswer {
        key: key_b.into(),
        response: answer(0),
        event: cost_event(&spend_b),
        spend: spend_b,
    };
    let next = NextCall {
        key: "run_b:riley:clip:1",
        provider: "kieai",
        operation: "submit",
        request: &request(1),
    };
    assert_eq!(
        store
            .journal_paid_then_begin("run_b", "other", &paid, next)
            .await
            .unwrap(),
        (true, JournalBegin::LeaseLost)
    );
    let journal = store.journal("run_b").await.unwrap();
    assert_eq!(journal.len(), 1, "nothing begun without the lease");
    assert_eq!(
        (journal[0].status, journal[0].response.clone()),
        (JournalStatus::Succeeded, Some(answer(0)))
    );
    assert_eq!(store.spend("run_b").await.unwrap().len(), 1);
    let kinds: Vec<(i64, String)> = store
        .outbox("run_b")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.run_seq, e.kind))
        .collect();
    assert_eq!(kinds, [(1, "execution.started".into()), (2, "cost.recorded".into())]);
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
    an_answer_is_written_with_the_next_calls_begin,
    llm_costs_are_committed_with_their_step_only,
    spent_since_sums_by_project_and_mode,
);
