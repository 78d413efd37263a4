//! Security: retention. Every table that grows, in both services, is pruned
//! by `POST /v1/retention/prune` (`mw retention prune`): old rows of a
//! finished run go, per table and counted; an unfinished run keeps every
//! row (the orchestrator's exactly-once rests on its journal and signals);
//! a dry run deletes nothing. The finding: `gate_audit` (now `audit`; and the
//! orchestrator's journal, outbox, signals) were never pruned.

use myloware_testkit::JsonAnswer;
use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use serde_json::{Value, json};

use myloware_testkit::system::{self, System};

async fn exec(db: &Db, sql: &str, at: DateTime<Utc>) {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match db {
        Db::Sqlite(pool) => sqlx::query(sql).bind(at).execute(pool).await.map(drop),
        Db::Postgres(pool) => sqlx::query(sql).bind(at).execute(pool).await.map(drop),
    }
    .unwrap();
}

async fn count(db: &Db, sql: &str) -> i64 {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match db {
        Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
    }
    .unwrap()
}

/// A run in `status` (and its execution in `execution`) with one row in
/// every table that grows, all from `at`. Signals are consumed, commands
/// acknowledged, events and pushes delivered: nothing left for the
/// services to do.
async fn seed(db: &Db, run: &str, status: &str, execution: &str, at: DateTime<Utc>) {
    for sql in [
        format!(
            "INSERT INTO runs (id, project, status, payload, result, created_at, updated_at) \
             VALUES ('{run}', 'test_video_gen', '{status}', '{{}}', '{{}}', $1, $1)"
        ),
        format!(
            "INSERT INTO audit (run_id, gate, at, action, accepted, outcome, actor) \
             VALUES ('{run}', 'ideate', $1, 'approve', FALSE, 'invalid or expired token', 'token:x')"
        ),
        format!(
            "INSERT INTO run_events (event_id, run_id, seq, kind, data, at, applied_at) \
             VALUES ('{run}:1', '{run}', 1, 'status_changed', '{{}}', $1, $1)"
        ),
        format!(
            "INSERT INTO commands (run_id, kind, body, created_at, acked_at, next_attempt_at) \
             VALUES ('{run}', 'start', '{{}}', $1, $1, $1)"
        ),
        format!(
            "INSERT INTO webhook_deliveries (provider, idempotency_key, run_id, headers, body, signature_status, outcome, received_at) \
             VALUES ('kieai', '{run}:clip', '{run}', '{{}}', '{{}}', 'verified', 'accepted', $1)"
        ),
        format!(
            "INSERT INTO artifacts (id, run_id, kind, data, created_at) VALUES ('{run}:a', '{run}', 'render.url', '{{}}', $1)"
        ),
        format!(
            "INSERT INTO dead_letters (kind, run_id, payload, error, created_at, resolved_at) \
             VALUES ('signal', '{run}', '{{}}', 'refused', $1, $1)"
        ),
        format!(
            "INSERT INTO chat_messages (user_id, role, text, run_id, created_at) VALUES ('u', 'assistant', '{run}', '{run}', $1)"
        ),
        format!(
            "INSERT INTO chat_deliveries (message_seq, channel, target, text, status, next_attempt_at, delivered_at, created_at) \
             SELECT seq, 'webhook', 'http://127.0.0.1:9/', '{run}', 'delivered', $1, $1, $1 FROM chat_messages WHERE run_id = '{run}'"
        ),
        format!(
            "INSERT INTO schedules (id, project, cron, timezone, inputs, options, status, created_by, created_at, updated_at) \
             VALUES ('{run}', 'test_video_gen', '0 9 * * *', 'UTC', '[]', '{{}}', 'paused', 'key:x', $1, $1)"
        ),
        format!(
            "INSERT INTO schedule_firings (schedule_id, fire_at, fired_at, outcome, run_id) \
             VALUES ('{run}', $1, $1, 'started', '{run}')"
        ),
        format!(
            "INSERT INTO executions (run_id, project, request, status, state, created_at, updated_at) \
             VALUES ('{run}', 'test_video_gen', '{{}}', '{execution}', '{{}}', $1, $1)"
        ),
        format!(
            "INSERT INTO journal (run_id, key, provider, operation, status, request, created_at, updated_at) \
             VALUES ('{run}', '{run}:clip', 'kieai', 'submit', 'succeeded', '{{}}', $1, $1)"
        ),
        format!(
            "INSERT INTO outbox (event_id, run_id, run_seq, kind, data, created_at, delivered_at, next_attempt_at) \
             VALUES ('{run}:1', '{run}', 1, 'status_changed', '{{}}', $1, $1, $1)"
        ),
        format!(
            "INSERT INTO signals (run_id, signal_id, body, received_at, consumed_at) \
             VALUES ('{run}', 'gate:ideate', '{{}}', $1, $1)"
        ),
        format!(
            "INSERT INTO mock_provider_calls (provider, operation, key, run_id, request, response, created_at) \
             VALUES ('kieai', 'submit', '{run}:clip', '{run}', '{{}}', '{{}}', $1)"
        ),
    ] {
        exec(db, &sql, at).await;
    }
}

const API_TABLES: [&str; 9] = [
    "artifacts",
    "audit",
    "chat_deliveries",
    "chat_messages",
    "commands",
    "dead_letters",
    "run_events",
    "schedule_firings",
    "webhook_deliveries",
];
const ORCHESTRATOR_TABLES: [&str; 4] = ["journal", "mock_provider_calls", "outbox", "signals"];

/// Rows of `run` in every table (chat pushes through their message).
async fn rows_of(db: &Db, run: &str) -> BTreeMap<&'static str, i64> {
    let mut rows = BTreeMap::new();
    for table in API_TABLES.into_iter().chain(ORCHESTRATOR_TABLES) {
        let sql = match table {
            "chat_deliveries" => format!("SELECT COUNT(*) FROM chat_deliveries WHERE text = '{run}'"),
            _ => format!("SELECT COUNT(*) FROM {table} WHERE run_id = '{run}'"),
        };
        rows.insert(table, count(db, &sql).await);
    }
    rows
}

async fn prune(system: &System, dry_run: bool) -> Value {
    let (status, body) = system
        .post(
            &format!("{}/v1/retention/prune", system.api),
            json!({"olderThanDays": 30, "dryRun": dry_run}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn every_table_of_a_finished_run_is_pruned_and_an_unfinished_one_keeps_all(db: &Db) {
    let system = system::start(db, &[]).await;
    let old = Utc::now() - Duration::days(40);
    let (finished, unfinished) = ("run_retentionfinished", "run_retentionwaiting");
    seed(db, finished, "published", "completed", old).await;
    seed(db, unfinished, "awaiting_ideate", "waiting", old).await;
    // A webhook refused before any run was found, and a replay of a dead
    // letter that named none: no run, old.
    exec(
        db,
        "INSERT INTO webhook_deliveries (provider, idempotency_key, run_id, headers, body, signature_status, outcome, received_at) \
         VALUES ('upload-post', NULL, NULL, '{}', 'x', 'rejected', 'rejected', $1)",
        old,
    )
    .await;
    exec(
        db,
        "INSERT INTO audit (run_id, at, action, accepted, outcome, actor) \
         VALUES (NULL, $1, 'replay', TRUE, 'resolved', 'key:ops')",
        old,
    )
    .await;
    let seeded = rows_of(db, unfinished).await;
    assert!(seeded.values().all(|n| *n == 1), "{seeded:?}");

    let expected_api: BTreeMap<String, u64> = API_TABLES
        .iter()
        .map(|t| {
            (
                t.to_string(),
                if matches!(*t, "webhook_deliveries" | "audit") {
                    2
                } else {
                    1
                },
            )
        })
        .collect();
    let expected_orchestrator: BTreeMap<String, u64> = ORCHESTRATOR_TABLES.iter().map(|t| (t.to_string(), 1)).collect();

    let dry = prune(&system, true).await;
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["api"], json!(expected_api), "{dry}");
    assert_eq!(dry["orchestrator"], json!(expected_orchestrator), "{dry}");
    assert_eq!(rows_of(db, finished).await, seeded, "a dry run deletes nothing");
    assert_eq!(rows_of(db, unfinished).await, seeded);

    let done = prune(&system, false).await;
    assert_eq!(done["dryRun"], false);
    assert_eq!(
        (&done["api"], &done["orchestrator"]),
        (&dry["api"], &dry["orchestrator"]),
        "as counted"
    );
    let gone = rows_of(db, finished).await;
    assert!(gone.values().all(|n| *n == 0), "left of the finished run: {gone:?}");
    for table in ["webhook_deliveries", "audit"] {
        assert_eq!(
            count(db, &format!("SELECT COUNT(*) FROM {table} WHERE run_id IS NULL")).await,
            0,
            "{table}"
        );
    }
    assert_eq!(
        rows_of(db, unfinished).await,
        seeded,
        "the unfinished run keeps every row"
    );
    // The records themselves stay.
    for table in ["runs", "executions"] {
        assert_eq!(count(db, &format!("SELECT COUNT(*) FROM {table}")).await, 2, "{table}");
    }
    let again = prune(&system, false).await;
    let left: Vec<&Value> = again["api"].as_object().unwrap().values().collect();
    assert!(left.iter().all(|n| **n == 0), "{again}");
    system.stop_idle().await;
}

async fn a_bad_prune_request_changes_nothing(db: &Db) {
    let system = system::start(db, &[]).await;
    let old = Utc::now() - Duration::days(40);
    seed(db, "run_retentionbad", "published", "completed", old).await;
    let before = rows_of(db, "run_retentionbad").await;
    let url = format!("{}/v1/retention/prune", system.api);
    for body in [
        json!({"olderThanDays": 0}),
        json!({"olderThanDays": -5, "dryRun": false}),
        json!({"olderThanDays": 3651}),
        json!({"olderThanDays": "30"}),
        json!({"olderThanDays": 30, "tables": ["runs"]}),
    ] {
        let (status, answer) = system.post(&url, body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
    }
    // The orchestrator's route checks the same way, and wants its credential.
    let response = system
        .http
        .post(format!("{}/v1/retention/prune", system.orchestrator))
        .json(&json!({"olderThanDays": 1}))
        .sent()
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(rows_of(db, "run_retentionbad").await, before, "nothing changed");
    system.stop_idle().await;
}

conformance_tests!(
    every_table_of_a_finished_run_is_pruned_and_an_unfinished_one_keeps_all,
    a_bad_prune_request_changes_nothing,
);
