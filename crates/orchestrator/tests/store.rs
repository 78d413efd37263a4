//! The orchestrator store's conformance suite (SQLite, and Postgres when
//! `TEST_DATABASE_URL` is set).

use std::path::Path;

use chrono::{Duration, Utc};
use myloware_core::project::Catalog;
use myloware_core::wire::EventKind;
use myloware_db::Db;
use myloware_orchestrator::store::{
    self, Created, ExecStatus, JournalBegin, NewEvent, NewExecution, OrchestratorStore, SignalOutcome, StepCommit,
};
use myloware_providers::mock::MockCall;
use myloware_testkit::conformance_tests;
use serde_json::json;

fn catalog() -> Catalog {
    Catalog::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../projects")).expect("the real catalog loads")
}

async fn ingest_replaces_the_knowledge_base(db: &Db) {
    let store = store::open(db);
    let docs = catalog().knowledge_documents();
    store.replace_knowledge(&docs).await.unwrap();
    store.replace_knowledge(&docs).await.unwrap();
    assert_eq!(
        store.knowledge_count().await.unwrap(),
        docs.len() as i64,
        "re-ingesting does not duplicate"
    );
    store.replace_knowledge(&docs[..3]).await.unwrap();
    assert_eq!(store.knowledge_count().await.unwrap(), 3);
}

async fn knowledge_is_full_text_searchable_by_project_and_persona(db: &Db) {
    let store = store::open(db);
    store.replace_knowledge(&catalog().knowledge_documents()).await.unwrap();

    let hits = store
        .search_knowledge("whispered word", Some("aismr"), None, 5)
        .await
        .unwrap();
    assert!(
        !hits.is_empty(),
        "the aismr guardrail about the whispered word is found"
    );
    assert!(
        hits.iter()
            .any(|h| h.kind == "guardrail" && h.body.to_lowercase().contains("whisper")),
        "{hits:?}"
    );
    assert!(
        hits.iter().all(|h| h.project.as_deref().is_none_or(|p| p == "aismr")),
        "{hits:?}"
    );

    // Stemming: "hands" finds "hands visible" whatever the inflection.
    let hits = store.search_knowledge("hand", Some("aismr"), None, 5).await.unwrap();
    assert!(!hits.is_empty());

    let other_project = store
        .search_knowledge("whispered", Some("test_video_gen"), None, 5)
        .await
        .unwrap();
    assert!(other_project.iter().all(|h| h.project.is_none()), "{other_project:?}");

    let riley = store
        .search_knowledge("prompt clip camera", None, Some("riley"), 10)
        .await
        .unwrap();
    assert!(
        riley.iter().all(|h| h.persona.as_deref().is_none_or(|p| p == "riley")),
        "{riley:?}"
    );
    assert!(riley.iter().any(|h| h.persona.as_deref() == Some("riley")), "{riley:?}");

    // Operators of the query languages are plain words here, never syntax errors.
    for query in ["\"unbalanced", "a OR (b", "NEAR(x y)", "foo:*", "!!!", ""] {
        store.search_knowledge(query, None, None, 5).await.unwrap();
    }
}

fn new_execution(run_id: &str) -> NewExecution {
    NewExecution {
        run_id: run_id.into(),
        project: "test_video_gen".into(),
        request: json!({"runId": run_id}),
        state: json!({}),
    }
}

fn started() -> NewEvent {
    NewEvent {
        kind: EventKind::ExecutionStarted,
        data: json!({}),
    }
}

fn commit(run_id: &str, worker: &str, status: ExecStatus, events: usize) -> StepCommit {
    StepCommit {
        run_id: run_id.into(),
        worker: worker.into(),
        node: 1,
        status,
        state: json!({"step": 1}),
        wait: (status == ExecStatus::Waiting).then(|| json!({"for": "clips"})),
        wake_at: None,
        events: (0..events)
            .map(|i| NewEvent {
                kind: EventKind::StatusChanged,
                data: json!({"i": i}),
            })
            .collect(),
        consumed_through: None,
        keep_lease_until: None,
        spend: Vec::new(),
        jobs_ended: Vec::new(),
        release_jobs: false,
    }
}

fn soon(secs: i64) -> chrono::DateTime<Utc> {
    Utc::now() + Duration::seconds(secs)
}

/// Creates execution `run` and has `worker` claim it (the one claimable).
async fn create_and_claim(store: &dyn OrchestratorStore, run: &str, worker: &str) {
    store.create_execution(&new_execution(run), &started()).await.unwrap();
    let claimed = store.claim(worker, Utc::now(), soon(30)).await.unwrap();
    assert_eq!(claimed.map(|e| e.run_id).as_deref(), Some(run), "{worker} claims {run}");
}

/// A claim commits without waiting for its WAL flush on Postgres
/// (docs/engine.md, "Leases and workers"), and only the claim: the
/// connection that ran it waits for the flush again in its next
/// transaction (a step's commit, a journal entry).
async fn only_the_claim_skips_the_wait_for_the_disk(db: &Db) {
    let Db::Postgres(pool) = db else {
        return; // SQLite: no such setting.
    };
    // One connection, so the claim and the check share it.
    let one = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(pool.connect_options().as_ref().clone())
        .await
        .unwrap();
    let store = store::open(&Db::Postgres(one.clone()));
    store
        .create_execution(&new_execution("run_flush000001"), &started())
        .await
        .unwrap();
    let claimed = store.claim_many("p-1:", Utc::now(), soon(30), 4).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let claimed = store.claim("w-2", Utc::now(), soon(30)).await.unwrap();
    assert!(claimed.is_none());
    let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&one)
        .await
        .unwrap();
    assert_eq!(setting, "on", "the claim's setting ended with its transaction");
}

/// A claim of several takes the oldest free executions, each under an owner
/// of its own, and never one another claim holds.
async fn a_claim_of_several_takes_the_oldest_free_ones_each_with_its_owner(db: &Db) {
    let store = store::open(db);
    for run in ["run_many0000001", "run_many0000002", "run_many0000003"] {
        store.create_execution(&new_execution(run), &started()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let first = store.claim_many("p-1:", Utc::now(), soon(30), 2).await.unwrap();
    let owners: Vec<(String, Option<String>)> = first
        .iter()
        .map(|e| (e.run_id.clone(), e.lease_owner.clone()))
        .collect();
    assert_eq!(
        owners,
        vec![
            ("run_many0000001".to_string(), Some("p-1:run_many0000001".to_string())),
            ("run_many0000002".to_string(), Some("p-1:run_many0000002".to_string())),
        ]
    );
    let rest = store.claim_many("p-2:", Utc::now(), soon(30), 5).await.unwrap();
    assert_eq!(
        rest.iter().map(|e| e.run_id.as_str()).collect::<Vec<_>>(),
        vec!["run_many0000003"]
    );
    assert!(
        store
            .claim_many("p-3:", Utc::now(), soon(30), 5)
            .await
            .unwrap()
            .is_empty()
    );
    // The owner commits under its own name; another owner cannot.
    assert!(
        !store
            .commit_step(&commit(
                "run_many0000001",
                "p-1:run_many0000002",
                ExecStatus::Completed,
                1
            ))
            .await
            .unwrap()
    );
    assert!(
        store
            .commit_step(&commit(
                "run_many0000001",
                "p-1:run_many0000001",
                ExecStatus::Completed,
                1
            ))
            .await
            .unwrap()
    );
    // An expired lease is claimable again.
    let later = Utc::now() + Duration::seconds(60);
    let again = store
        .claim_many("p-4:", later, later + Duration::seconds(30), 5)
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|e| e.run_id.as_str()).collect::<Vec<_>>(),
        vec!["run_many0000002", "run_many0000003"]
    );
}

/// The claim takes the oldest run first, not the one that became runnable
/// first: a run woken by a signal goes ahead of younger runs that were
/// runnable before it, so runs finish in about the order they started.
async fn a_woken_run_is_claimed_before_younger_runnable_ones(db: &Db) {
    let store = store::open(db);
    let runs = ["run_fifo0000001", "run_fifo0000002", "run_fifo0000003"];
    for run in runs {
        store.create_execution(&new_execution(run), &started()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Each is driven once: the oldest parks, the younger two stay runnable.
    let claimed = store.claim_many("p-1:", Utc::now(), soon(30), 3).await.unwrap();
    assert_eq!(claimed.len(), 3);
    for (run, status) in runs
        .iter()
        .zip([ExecStatus::Waiting, ExecStatus::Runnable, ExecStatus::Runnable])
    {
        assert!(
            store
                .commit_step(&commit(run, &format!("p-1:{run}"), status, 0))
                .await
                .unwrap()
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // The oldest is woken last, and still goes first; the claim brings the
    // step's inputs: the signals not consumed yet, in seq order.
    store.add_signal(runs[0], "s1", &json!({"n": 1})).await.unwrap();
    store.add_signal(runs[0], "s2", &json!({"n": 2})).await.unwrap();
    let next = store.claim("w-2", Utc::now(), soon(30)).await.unwrap().unwrap();
    assert_eq!(next.run_id, runs[0]);
    let pending = store.pending_signals(runs[0]).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(next.pending_signals, Some(pending));
    let rest = store.claim_many("p-3:", Utc::now(), soon(30), 5).await.unwrap();
    assert_eq!(
        rest.iter().map(|e| e.run_id.as_str()).collect::<Vec<_>>(),
        runs[1..].to_vec()
    );
    assert!(rest.iter().all(|e| e.pending_signals == Some(Vec::new())));
    assert_eq!(
        store.get_execution(runs[1]).await.unwrap().unwrap().pending_signals,
        None,
        "only a claim reads them"
    );
}

/// Creates execution `run`, claimed by `worker`, and parks it (waiting,
/// no deadline) with `events` events.
async fn park_new(store: &dyn OrchestratorStore, run: &str, worker: &str, events: usize) {
    create_and_claim(store, run, worker).await;
    assert!(
        store
            .commit_step(&commit(run, worker, ExecStatus::Waiting, events))
            .await
            .unwrap()
    );
}

/// Worker `w` parks `run_a`, having read its signals up to seq `through`:
/// the status the execution is left in.
async fn park_having_read(store: &dyn OrchestratorStore, through: i64) -> ExecStatus {
    let mut park = commit("run_a", "w", ExecStatus::Waiting, 0);
    park.consumed_through = Some(through);
    assert!(store.commit_step(&park).await.unwrap());
    store.get_execution("run_a").await.unwrap().unwrap().status
}

/// A store holding execution `run_a`, claimed by worker `w`.
async fn claimed_run_a(db: &Db) -> std::sync::Arc<dyn OrchestratorStore> {
    let store = store::open(db);
    create_and_claim(&*store, "run_a", "w").await;
    store
}

async fn executions_are_created_once_per_run(db: &Db) {
    let store = store::open(db);
    assert_eq!(
        store
            .create_execution(&new_execution("run_a"), &started())
            .await
            .unwrap(),
        Created::Created
    );
    assert_eq!(
        store
            .create_execution(&new_execution("run_a"), &started())
            .await
            .unwrap(),
        Created::Exists { same: true }
    );
    let other = NewExecution {
        request: json!({"runId": "run_a", "x": 1}),
        ..new_execution("run_a")
    };
    assert_eq!(
        store.create_execution(&other, &started()).await.unwrap(),
        Created::Exists { same: false }
    );
    let outbox = store.outbox("run_a").await.unwrap();
    assert_eq!(outbox.len(), 1, "one execution.started");
    assert_eq!((outbox[0].run_seq, outbox[0].kind.as_str()), (1, "execution.started"));
    let execution = store.get_execution("run_a").await.unwrap().unwrap();
    assert_eq!(
        (execution.status, execution.node, execution.event_seq),
        (ExecStatus::Runnable, 0, 1)
    );
}

async fn one_worker_holds_an_execution_until_its_lease_expires(db: &Db) {
    let store = store::open(db);
    store
        .create_execution(&new_execution("run_a"), &started())
        .await
        .unwrap();
    let claims = (0..6).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.claim(&format!("w{i}"), Utc::now(), soon(30)).await.unwrap() })
    });
    let mut winners = Vec::new();
    for claim in claims {
        if let Some(execution) = claim.await.unwrap() {
            winners.push(execution.lease_owner.unwrap());
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim: {winners:?}");
    let holder = winners.remove(0);
    assert!(store.claim("late", Utc::now(), soon(30)).await.unwrap().is_none());
    assert!(store.extend_lease("run_a", &holder, soon(30)).await.unwrap());
    assert!(!store.extend_lease("run_a", "late", soon(30)).await.unwrap());

    // Once the lease has expired, another worker takes over, and the old
    // holder can no longer commit or journal.
    let taken = store
        .claim("rescuer", soon(31), soon(60))
        .await
        .unwrap()
        .expect("expired lease is claimable");
    assert_eq!(taken.lease_owner.as_deref(), Some("rescuer"));
    store.add_signal("run_a", "s1", &json!({})).await.unwrap();
    let seen = store.pending_signals("run_a").await.unwrap();
    let mut fenced = commit("run_a", &holder, ExecStatus::Waiting, 2);
    fenced.consumed_through = Some(seen[0].seq);
    assert!(!store.commit_step(&fenced).await.unwrap());
    assert_eq!(
        store.pending_signals("run_a").await.unwrap().len(),
        1,
        "the fenced commit consumed no signal"
    );
    assert_eq!(
        store
            .journal_begin("run_a", &holder, "k", "kieai", "submit", &json!({}))
            .await
            .unwrap(),
        JournalBegin::LeaseLost
    );
    assert_eq!(
        store.outbox("run_a").await.unwrap().len(),
        1,
        "the fenced commit wrote nothing"
    );
    assert!(
        store
            .commit_step(&commit("run_a", "rescuer", ExecStatus::Runnable, 2))
            .await
            .unwrap()
    );

    // A worker whose step failed gives the lease back: no wait for expiry.
    store
        .claim("unlucky", Utc::now(), soon(30))
        .await
        .unwrap()
        .expect("runnable again");
    store.release_lease("run_a", "someone-else").await.unwrap();
    assert!(
        store.claim("next", Utc::now(), soon(30)).await.unwrap().is_none(),
        "only the holder releases"
    );
    store.release_lease("run_a", "unlucky").await.unwrap();
    assert!(store.claim("next", Utc::now(), soon(30)).await.unwrap().is_some());
}

async fn a_commit_appends_events_in_sequence_and_releases_the_lease(db: &Db) {
    let store = claimed_run_a(db).await;
    let mut keep = commit("run_a", "w", ExecStatus::Runnable, 2);
    keep.keep_lease_until = Some(soon(30));
    assert!(store.commit_step(&keep).await.unwrap());
    assert!(
        store
            .commit_step(&commit("run_a", "w", ExecStatus::Completed, 3))
            .await
            .unwrap()
    );
    let seqs: Vec<i64> = store.outbox("run_a").await.unwrap().iter().map(|e| e.run_seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    let execution = store.get_execution("run_a").await.unwrap().unwrap();
    assert_eq!(
        (execution.status, execution.steps, execution.event_seq),
        (ExecStatus::Completed, 2, 6)
    );
    assert_eq!(execution.lease_owner, None);
    assert_eq!(execution.state, json!({"step": 1}));
    assert!(
        store.claim("w", Utc::now(), soon(30)).await.unwrap().is_none(),
        "completed work is never claimed"
    );
}

/// A run's signals in one call: each id once (a repeat in the list, or an
/// id used before, is not new), seqs in the list's order, the waiting
/// execution woken; nothing for a run without an execution.
async fn several_signals_are_added_in_order_each_once(db: &Db) {
    let store = store::open(db);
    let list = |ids: &[&str]| -> Vec<(String, serde_json::Value)> {
        ids.iter().map(|id| (id.to_string(), json!({"id": id}))).collect()
    };
    assert_eq!(store.add_signals("run_x", &list(&["s1"])).await.unwrap(), None);
    park_new(&*store, "run_a", "w", 0).await;
    assert_eq!(store.add_signals("run_a", &[]).await.unwrap(), Some(Vec::new()));
    assert_eq!(
        store.get_execution("run_a").await.unwrap().unwrap().status,
        ExecStatus::Waiting,
        "no signal, no wake"
    );
    let added = store
        .add_signals("run_a", &list(&["s2", "s1", "s2", "s3"]))
        .await
        .unwrap();
    assert_eq!(added, Some(vec![true, true, false, true]));
    assert_eq!(
        store.get_execution("run_a").await.unwrap().unwrap().status,
        ExecStatus::Runnable,
        "woken"
    );
    let added = store.add_signals("run_a", &list(&["s1", "s4"])).await.unwrap();
    assert_eq!(added, Some(vec![false, true]), "s1 was used before");
    let pending: Vec<(String, serde_json::Value)> = store
        .pending_signals("run_a")
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.signal_id, s.body))
        .collect();
    assert_eq!(pending, list(&["s2", "s1", "s3", "s4"]), "in seq order, the lists'");
}

async fn signals_wake_waiting_executions_once(db: &Db) {
    let store = store::open(db);
    assert_eq!(
        store.add_signal("run_x", "s1", &json!({})).await.unwrap(),
        SignalOutcome::UnknownExecution
    );
    park_new(&*store, "run_a", "w", 0).await;
    assert_eq!(
        store.get_execution("run_a").await.unwrap().unwrap().status,
        ExecStatus::Waiting
    );
    assert!(
        store.claim("w", Utc::now(), soon(30)).await.unwrap().is_none(),
        "parked without a deadline"
    );

    assert_eq!(
        store.add_signal("run_a", "s1", &json!({"n": 1})).await.unwrap(),
        SignalOutcome::Accepted
    );
    assert_eq!(
        store.add_signal("run_a", "s1", &json!({"n": 1})).await.unwrap(),
        SignalOutcome::Duplicate
    );
    assert_eq!(
        store.get_execution("run_a").await.unwrap().unwrap().status,
        ExecStatus::Runnable
    );
    let claimed = store
        .claim("w", Utc::now(), soon(30))
        .await
        .unwrap()
        .expect("woken by the signal");
    let pending = store.pending_signals(&claimed.run_id).await.unwrap();
    assert_eq!(pending.len(), 1);

    // A signal that arrives while the step runs keeps the execution runnable
    // when the step parks: it is never missed.
    store.add_signal("run_a", "s2", &json!({"n": 2})).await.unwrap();
    assert_eq!(park_having_read(&*store, pending[0].seq).await, ExecStatus::Runnable);
    let left: Vec<String> = store
        .pending_signals("run_a")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.signal_id)
        .collect();
    assert_eq!(left, ["s2"]);

    // Once every signal is consumed, a park parks.
    store.claim("w", Utc::now(), soon(30)).await.unwrap().unwrap();
    let pending = store.pending_signals("run_a").await.unwrap();
    assert_eq!(park_having_read(&*store, pending[0].seq).await, ExecStatus::Waiting);
}

/// The race of `add_signal` and a parking step on Postgres (read
/// committed): the signal's transaction holds the execution's row when the
/// park's UPDATE arrives, so the park waits for it, and must then see the
/// signal it committed. Seen in CI: a park decided with the snapshot from
/// before the wait parked anyway, and the run waited forever.
///
/// The interleaving is forced with a lock on the signals table: add_signal
/// takes the execution's row, then waits to insert; the park then waits for
/// the row; releasing the table lets both finish in that order. On SQLite,
/// where writers take turns, both just wait for a write transaction.
async fn a_signal_committed_while_a_step_parks_is_never_missed(db: &Db) {
    let store = claimed_run_a(db).await;

    // The blocker answers with its Postgres backend pid (0 on SQLite).
    let (held, is_held) = tokio::sync::oneshot::channel::<i32>();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    macro_rules! blocker {
        ($pool:expr, $begin:expr, $lock:expr, $pid:expr) => {{
            let pool = $pool.clone();
            tokio::spawn(async move {
                let mut tx = pool.begin_with(sqlx::AssertSqlSafe($begin)).await.unwrap();
                sqlx::query($lock).execute(&mut *tx).await.unwrap();
                let pid: i32 = sqlx::query_scalar($pid).fetch_one(&mut *tx).await.unwrap();
                held.send(pid).unwrap();
                released.await.unwrap();
                tx.commit().await.unwrap();
            })
        }};
    }
    let blocker = match db {
        Db::Postgres(pool) => blocker!(
            pool,
            "BEGIN",
            "LOCK TABLE signals IN SHARE MODE",
            "SELECT pg_backend_pid()"
        ),
        Db::Sqlite(pool) => blocker!(pool, myloware_db::SQLITE_BEGIN, "SELECT 1", "SELECT 0"),
    };
    let blocker_pid = is_held.await.unwrap();
    let signal = tokio::spawn({
        let store = store.clone();
        async move { store.add_signal("run_a", "s1", &json!({"n": 1})).await }
    });
    let signal_pid = blocked_by(db, blocker_pid).await;
    let park = tokio::spawn({
        let store = store.clone();
        async move { store.commit_step(&commit("run_a", "w", ExecStatus::Waiting, 0)).await }
    });
    blocked_by(db, signal_pid).await;
    release.send(()).unwrap();
    blocker.await.unwrap();
    assert_eq!(signal.await.unwrap().unwrap(), SignalOutcome::Accepted);
    assert!(park.await.unwrap().unwrap());
    assert_eq!(
        store.get_execution("run_a").await.unwrap().unwrap().status,
        ExecStatus::Runnable,
        "a pending signal keeps the execution runnable"
    );
}

/// On Postgres, the pid of a session waiting for a lock `pid` holds, once
/// there is one. On SQLite (a writer waits in its busy handler, invisibly),
/// 0 after a moment.
async fn blocked_by(db: &Db, pid: i32) -> i32 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let Db::Postgres(pool) = db else { return 0 };
        let waiter: Option<i32> =
            sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)) LIMIT 1")
                .bind(pid)
                .fetch_optional(pool)
                .await
                .unwrap();
        if let Some(waiter) = waiter {
            return waiter;
        }
        assert!(std::time::Instant::now() < deadline, "nobody waited for session {pid}");
    }
}

async fn deadlines_and_cancels_make_parked_executions_runnable(db: &Db) {
    let store = claimed_run_a(db).await;
    let mut park = commit("run_a", "w", ExecStatus::Waiting, 0);
    park.wake_at = Some(soon(60));
    assert!(store.commit_step(&park).await.unwrap());
    assert!(store.claim("w", Utc::now(), soon(30)).await.unwrap().is_none());
    assert!(
        store.claim("w", soon(61), soon(90)).await.unwrap().is_some(),
        "due at its deadline"
    );

    park_new(&*store, "run_b", "w2", 0).await;
    let cancel_requested = || async { store.get_execution("run_b").await.unwrap().unwrap().cancel_requested };
    assert!(!cancel_requested().await);
    assert_eq!(store.request_cancel("run_b").await.unwrap(), Some(ExecStatus::Runnable));
    assert!(cancel_requested().await);
    assert_eq!(store.request_cancel("run_nope").await.unwrap(), None);
}

async fn the_journal_lets_a_call_be_begun_once(db: &Db) {
    let store = claimed_run_a(db).await;
    let request = json!({"index": 0});
    let begin = || store.journal_begin("run_a", "w", "run_a:riley:clip:0", "kieai", "submit", &request);
    assert_eq!(begin().await.unwrap(), JournalBegin::Begun);
    let JournalBegin::Existing(entry) = begin().await.unwrap() else {
        panic!("second begin must see the first")
    };
    assert_eq!((entry.status.as_str(), entry.response), ("started", None));
    store
        .journal_finish("run_a", "run_a:riley:clip:0", true, &json!({"taskId": "t"}))
        .await
        .unwrap();
    let JournalBegin::Existing(entry) = begin().await.unwrap() else {
        panic!("the entry stays")
    };
    assert_eq!(
        (entry.status.as_str(), entry.response),
        ("succeeded", Some(json!({"taskId": "t"})))
    );
    assert_eq!(store.journal("run_a").await.unwrap().len(), 1);
}

/// The journal is the last look at a cancel before a paid call: once a
/// cancel is requested no call is begun, even one begun before, and nothing
/// is written.
async fn no_call_is_begun_once_a_cancel_is_requested(db: &Db) {
    let store = claimed_run_a(db).await;
    let request = json!({});
    let begin = |key: &'static str| store.journal_begin("run_a", "w", key, "kieai", "submit", &request);
    assert_eq!(begin("run_a:riley:clip:0").await.unwrap(), JournalBegin::Begun);
    assert_eq!(store.request_cancel("run_a").await.unwrap(), Some(ExecStatus::Runnable));
    assert_eq!(begin("run_a:riley:clip:1").await.unwrap(), JournalBegin::Cancelled);
    assert_eq!(begin("run_a:riley:clip:0").await.unwrap(), JournalBegin::Cancelled);
    let keys: Vec<String> = store
        .journal("run_a")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, ["run_a:riley:clip:0"]);
    // The lease is checked first: another worker learns it lost the run.
    assert_eq!(
        store
            .journal_begin("run_a", "w2", "run_a:riley:clip:1", "kieai", "submit", &json!({}))
            .await
            .unwrap(),
        JournalBegin::LeaseLost
    );
}

async fn the_outbox_keeps_each_runs_order(db: &Db) {
    let store = store::open(db);
    for run in ["run_a", "run_b"] {
        // Parked, so the next claim takes the other run.
        park_new(&*store, run, "w", 2).await;
    }
    let due = store.outbox_due(Utc::now(), 100).await.unwrap();
    let order: Vec<(String, i64)> = due.iter().map(|e| (e.run_id.clone(), e.run_seq)).collect();
    assert_eq!(order.len(), 6);
    for run in ["run_a", "run_b"] {
        let seqs: Vec<i64> = order.iter().filter(|(r, _)| r == run).map(|(_, s)| *s).collect();
        assert_eq!(seqs, [1, 2, 3]);
    }
    // run_a's first event is delivered; the rest of run_a waits for a retry.
    // run_b is unaffected.
    let first_a = due.iter().find(|e| e.run_id == "run_a").unwrap().event_id.clone();
    store.outbox_delivered(&[first_a]).await.unwrap();
    store.outbox_retry("run_a", "API down", soon(60)).await.unwrap();
    let due = store.outbox_due(Utc::now(), 100).await.unwrap();
    assert!(due.iter().all(|e| e.run_id == "run_b"), "{due:?}");
    let later = store.outbox_due(soon(61), 100).await.unwrap();
    let a: Vec<i64> = later
        .iter()
        .filter(|e| e.run_id == "run_a")
        .map(|e| e.run_seq)
        .collect();
    assert_eq!(a, [2, 3]);
    assert_eq!(store.counts().await.unwrap().outbox_pending, 5);
}

async fn mock_calls_are_all_recorded(db: &Db) {
    let store = store::open(db);
    let call = MockCall {
        provider: "kieai".into(),
        operation: "submit".into(),
        key: "run_a:riley:clip:0".into(),
        run_id: "run_a".into(),
        request: json!({}),
        response: json!({"taskId": "t1"}),
    };
    store.record_mock_call(&call).await.unwrap();
    store
        .record_mock_call(&MockCall {
            response: json!({"taskId": "t2"}),
            ..call.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        store.mock_calls("run_a").await.unwrap().len(),
        2,
        "duplicates are counted, not merged"
    );
    let first = store
        .find_mock_call("kieai", "submit", "run_a:riley:clip:0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.response, json!({"taskId": "t1"}));
    assert!(
        store
            .find_mock_call("kieai", "status", "run_a:riley:clip:0")
            .await
            .unwrap()
            .is_none()
    );
}

async fn knowledge_hits_are_ranked_best_match_first(db: &Db) {
    let store = store::open(db);
    let doc = |id: &str, body: &str| myloware_core::project::KnowledgeDoc {
        id: id.into(),
        project: Some("aismr".into()),
        persona: None,
        kind: "project_notes",
        title: format!("note {id}"),
        body: body.into(),
    };
    store
        .replace_knowledge(&[
            doc(
                "one-term",
                "A candle on a shelf next to a teacup and a spoon and a plate.",
            ),
            doc("none", "A teacup of porcelain that rings when tapped."),
            doc(
                "all-terms",
                "A wax candle melting upward, the wax hums; candle light flickers on wax.",
            ),
        ])
        .await
        .unwrap();
    let hits = store
        .search_knowledge("candle wax", Some("aismr"), None, 5)
        .await
        .unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(
        ids,
        ["all-terms", "one-term"],
        "the document matching more, more often, ranks first"
    );
    // Query syntax is never passed through: operators are just words.
    let odd = store
        .search_knowledge("candle\" OR * NEAR( -wax", Some("aismr"), None, 5)
        .await
        .unwrap();
    assert_eq!(odd.first().map(|h| h.id.as_str()), Some("all-terms"));
}

/// One execution in `status`, last changed at `at`, with a row in every
/// table retention looks at (an undelivered event too), written directly
/// so that they can be old.
async fn seed_execution(db: &Db, run: &str, status: &str, at: chrono::DateTime<Utc>) {
    for sql in [
        format!(
            "INSERT INTO executions (run_id, project, request, status, state, created_at, updated_at) \
             VALUES ('{run}', 'aismr', '{{}}', '{status}', '{{}}', $1, $1)"
        ),
        format!(
            "INSERT INTO journal (run_id, key, provider, operation, status, request, created_at, updated_at) \
             VALUES ('{run}', 'k', 'kieai', 'submit', 'succeeded', '{{}}', $1, $1)"
        ),
        format!(
            "INSERT INTO outbox (event_id, run_id, run_seq, kind, data, created_at, delivered_at, next_attempt_at) \
             VALUES ('{run}:1', '{run}', 1, 'status_changed', '{{}}', $1, $1, $1), \
                    ('{run}:2', '{run}', 2, 'status_changed', '{{}}', $1, NULL, $1)"
        ),
        format!(
            "INSERT INTO signals (run_id, signal_id, body, received_at, consumed_at) VALUES ('{run}', 's', '{{}}', $1, $1)"
        ),
        format!(
            "INSERT INTO mock_provider_calls (provider, operation, key, run_id, request, response, created_at) \
             VALUES ('kieai', 'submit', 'k', '{run}', '{{}}', '{{}}', $1)"
        ),
    ] {
        let sql = sqlx::AssertSqlSafe(sql);
        match db {
            Db::Sqlite(pool) => sqlx::query(sql).bind(at).execute(pool).await.map(drop),
            Db::Postgres(pool) => sqlx::query(sql).bind(at).execute(pool).await.map(drop),
        }
        .unwrap();
    }
}

async fn retention_prunes_only_finished_executions_rows(db: &Db) {
    let store = store::open(db);
    let old = Utc::now() - Duration::days(40);
    seed_execution(db, "run_oldcompleted", "completed", old).await;
    seed_execution(db, "run_oldcancelled", "cancelled", old).await;
    seed_execution(db, "run_oldwaiting", "waiting", old).await;
    seed_execution(db, "run_oldrunnable", "runnable", old).await;
    seed_execution(db, "run_recentfailed", "failed", Utc::now()).await;
    let cutoff = Utc::now() - Duration::days(30);
    let expected: std::collections::BTreeMap<String, u64> = [
        ("journal", 2),
        ("mock_provider_calls", 2),
        ("outbox", 2),
        ("signals", 2),
    ]
    .into_iter()
    .map(|(table, n)| (table.to_string(), n))
    .collect();
    assert_eq!(store.prune(cutoff, true).await.unwrap(), expected, "the dry run counts");
    assert_eq!(
        store.journal("run_oldcompleted").await.unwrap().len(),
        1,
        "a dry run deletes nothing"
    );
    assert_eq!(store.prune(cutoff, false).await.unwrap(), expected, "as counted");
    for run in ["run_oldcompleted", "run_oldcancelled"] {
        assert!(store.journal(run).await.unwrap().is_empty(), "{run}");
        assert!(store.mock_calls(run).await.unwrap().is_empty(), "{run}");
        let outbox = store.outbox(run).await.unwrap();
        assert_eq!(outbox.len(), 1, "the undelivered event stays");
        assert!(outbox[0].delivered_at.is_none());
        assert!(store.find_signal(run, "s").await.unwrap().is_none(), "{run}");
        assert!(store.get_execution(run).await.unwrap().is_some(), "the execution stays");
    }
    for run in ["run_oldwaiting", "run_oldrunnable", "run_recentfailed"] {
        assert_eq!(store.journal(run).await.unwrap().len(), 1, "{run}");
        assert_eq!(store.mock_calls(run).await.unwrap().len(), 1, "{run}");
        assert_eq!(store.outbox(run).await.unwrap().len(), 2, "{run}");
        assert!(store.find_signal(run, "s").await.unwrap().is_some(), "{run}");
    }
    let left = store.prune(cutoff, false).await.unwrap();
    assert!(left.values().all(|n| *n == 0), "{left:?}");
}

/// A retry makes a failed execution runnable once, with its new state, and
/// sets the failed journal entries aside so their calls can be made again;
/// succeeded ones stay, so their calls are never made again.
async fn a_retry_reopens_a_failed_execution_and_sets_failed_calls_aside(db: &Db) {
    let store = claimed_run_a(db).await;
    for (key, succeeded) in [("run_a:alex:render", false), ("run_a:riley:clip:0", true)] {
        store
            .journal_begin("run_a", "w", key, "p", "op", &json!({}))
            .await
            .unwrap();
        store.journal_finish("run_a", key, succeeded, &json!({})).await.unwrap();
    }
    assert!(
        !store.retry_execution("run_a", 1, &json!({})).await.unwrap(),
        "a running execution is not retried"
    );
    assert!(
        store
            .commit_step(&commit("run_a", "w", ExecStatus::Failed, 1))
            .await
            .unwrap()
    );
    assert!(store.retry_execution("run_a", 1, &json!({"retries": 1})).await.unwrap());
    assert!(
        !store.retry_execution("run_a", 1, &json!({})).await.unwrap(),
        "only once"
    );
    let execution = store.get_execution("run_a").await.unwrap().unwrap();
    assert_eq!(execution.status, ExecStatus::Runnable);
    assert_eq!(execution.state, json!({"retries": 1}));
    assert!(execution.lease_owner.is_none() && execution.wait.is_none());
    let mut keys: Vec<(String, String)> = store
        .journal("run_a")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.status.as_str().to_string()))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            ("run_a:alex:render:failed:1".to_string(), "failed".to_string()),
            ("run_a:riley:clip:0".to_string(), "succeeded".to_string()),
        ]
    );
    let claimed = store.claim("w2", Utc::now(), soon(30)).await.unwrap().unwrap();
    assert_eq!(claimed.run_id, "run_a", "runnable again");
    assert_eq!(
        store
            .journal_begin("run_a", "w2", "run_a:alex:render", "p", "op", &json!({}))
            .await
            .unwrap(),
        JournalBegin::Begun,
        "the failed call can be made again"
    );
}

/// `MAX_PROVIDER_JOBS`: a slot per job key, at most `cap` per provider even
/// when taken at once; freed by the step that learns the job ended, and all
/// of a run's when it ends.
async fn provider_job_slots_never_exceed_the_cap(db: &Db) {
    let store = claimed_run_a(db).await;
    // Open the pool's connections first, so the takes overlap.
    let warm: Vec<_> = (0..12)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.provider_jobs("kieai").await.unwrap() })
        })
        .collect();
    for task in warm {
        task.await.unwrap();
    }
    let takes: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .take_job_slot("run_a", &format!("k{i}"), "kieai", 3)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut taken = 0;
    for take in takes {
        taken += usize::from(take.await.unwrap());
    }
    assert_eq!(taken, 3, "three of ten concurrent takes");
    let held = store.provider_jobs("kieai").await.unwrap();
    assert!(
        store.take_job_slot("run_a", &held[0], "kieai", 3).await.unwrap(),
        "held already"
    );
    assert!(!store.take_job_slot("run_a", "k-next", "kieai", 3).await.unwrap());
    assert!(
        store.take_job_slot("run_a", "render", "shotstack", 3).await.unwrap(),
        "per provider"
    );

    let mut step = commit("run_a", "w", ExecStatus::Runnable, 0);
    step.keep_lease_until = Some(soon(30));
    step.jobs_ended = vec![held[0].clone()];
    assert!(store.commit_step(&step).await.unwrap());
    assert_eq!(store.provider_jobs("kieai").await.unwrap(), held[1..].to_vec());
    assert!(
        store.take_job_slot("run_a", "k-next", "kieai", 3).await.unwrap(),
        "a freed slot"
    );

    let mut end = commit("run_a", "w", ExecStatus::Failed, 0);
    end.release_jobs = true;
    assert!(store.commit_step(&end).await.unwrap());
    assert!(store.provider_jobs("kieai").await.unwrap().is_empty());
    assert!(store.provider_jobs("shotstack").await.unwrap().is_empty());
}

conformance_tests!(
    only_the_claim_skips_the_wait_for_the_disk,
    a_claim_of_several_takes_the_oldest_free_ones_each_with_its_owner,
    a_woken_run_is_claimed_before_younger_runnable_ones,
    provider_job_slots_never_exceed_the_cap,
    a_retry_reopens_a_failed_execution_and_sets_failed_calls_aside,
    knowledge_hits_are_ranked_best_match_first,
    ingest_replaces_the_knowledge_base,
    knowledge_is_full_text_searchable_by_project_and_persona,
    executions_are_created_once_per_run,
    one_worker_holds_an_execution_until_its_lease_expires,
    a_commit_appends_events_in_sequence_and_releases_the_lease,
    signals_wake_waiting_executions_once,
    several_signals_are_added_in_order_each_once,
    a_signal_committed_while_a_step_parks_is_never_missed,
    deadlines_and_cancels_make_parked_executions_runnable,
    the_journal_lets_a_call_be_begun_once,
    no_call_is_begun_once_a_cancel_is_requested,
    the_outbox_keeps_each_runs_order,
    mock_calls_are_all_recorded,
    retention_prunes_only_finished_executions_rows,
);
