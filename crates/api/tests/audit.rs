//! The audit of operator actions, on SQLite and (with `TEST_DATABASE_URL`)
//! Postgres: the store (filters, order, pages; the `gate_audit` view an
//! older release still writes through; the upgrade that moves its rows),
//! and over real HTTP every decision (accepted and refused), cancel, retry
//! and replay with its actor and outcome, `GET /v1/audit` and
//! `GET /v1/runs/{runId}/audit` with their filters, pages and refusals.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{API_KEY, TestApp, spawn_app};
use myloware_api::store::{self, AuditAction, AuditEntry, AuditQuery, AuditRecord, DeadLetterKind, now};
use myloware_core::Gate;
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::db::TestDb;
use myloware_testkit::system::awaiting_gate;
use serde_json::{Value, json};

fn entry(action: AuditAction, actor: &str, run_id: Option<&str>, accepted: bool, at: DateTime<Utc>) -> AuditEntry {
    AuditEntry {
        at,
        actor: actor.into(),
        action,
        run_id: run_id.map(str::to_owned),
        gate: None,
        accepted,
        outcome: if accepted { "done" } else { "refused" }.into(),
        ip: Some("192.0.2.7".into()),
        user_agent: Some("audit-test".into()),
        detail: None,
    }
}

/// What `records` say, as the entries that were recorded.
fn as_entries(records: &[AuditRecord]) -> Vec<AuditEntry> {
    records
        .iter()
        .map(|r| AuditEntry {
            at: r.at,
            actor: r.actor.clone(),
            action: r.action.parse().unwrap(),
            run_id: r.run_id.clone(),
            gate: r.gate.clone(),
            accepted: r.accepted,
            outcome: r.outcome.clone(),
            ip: r.ip.clone(),
            user_agent: r.user_agent.clone(),
            detail: r.detail.clone(),
        })
        .collect()
}

async fn the_audit_reads_newest_first_filtered_and_paged(db: &Db) {
    let store = store::open(db);
    let earlier = now() - Duration::hours(2);
    let (a, b) = ("run_auditaaaaaaaa", "run_auditbbbbbbbb");
    let approve = AuditEntry {
        gate: Some("ideate".into()),
        detail: Some(json!({"reason": null, "note": "ceo@company.com"})),
        ..entry(AuditAction::Approve, "key:ann", Some(a), true, earlier)
    };
    let view = AuditEntry {
        gate: Some("ideate".into()),
        ip: None,
        user_agent: None,
        ..entry(AuditAction::View, "token:0123456789abcdef", Some(a), false, earlier)
    };
    let cancel = entry(AuditAction::Cancel, "key:ops", Some(b), true, now());
    let replay = AuditEntry {
        detail: Some(json!({"deadLetter": 7})),
        ..entry(AuditAction::Replay, "key:ops", None, true, now())
    };
    let retry = entry(AuditAction::Retry, "key:ops", Some(a), false, now());
    let all = [&approve, &view, &cancel, &replay, &retry];
    for e in all {
        store.record_audit(e).await.unwrap();
    }
    let query = |q: AuditQuery| {
        let store = store.clone();
        async move { store.audit(&AuditQuery { limit: 10, ..q }).await.unwrap() }
    };
    let newest_first: Vec<AuditEntry> = all.iter().rev().map(|e| (*e).clone()).collect();
    let everything = query(AuditQuery::default()).await;
    assert_eq!(
        as_entries(&everything),
        newest_first,
        "read back as written, newest first"
    );
    assert!(everything.windows(2).all(|w| w[0].seq > w[1].seq));

    let of_a = query(AuditQuery {
        run_id: Some(a.into()),
        ..Default::default()
    })
    .await;
    assert_eq!(as_entries(&of_a), [retry.clone(), view.clone(), approve.clone()]);
    let by_ops = query(AuditQuery {
        actor: Some("key:ops".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(as_entries(&by_ops), [retry.clone(), replay.clone(), cancel.clone()]);
    let recent = query(AuditQuery {
        since: Some(now() - Duration::hours(1)),
        ..Default::default()
    })
    .await;
    assert_eq!(recent.len(), 3, "{recent:?}");
    let both = query(AuditQuery {
        run_id: Some(a.into()),
        actor: Some("key:ann".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(as_entries(&both), std::slice::from_ref(&approve));

    // Pages: `before` is the last seq of the page before.
    let first = store
        .audit(&AuditQuery {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    let second = query(AuditQuery {
        before: Some(first[1].seq),
        limit: 2,
        ..Default::default()
    })
    .await;
    assert_eq!(as_entries(&second), [cancel.clone(), view.clone(), approve.clone()]);

    // A run's whole audit, oldest first.
    let listed = store.list_audit(a).await.unwrap();
    assert_eq!(as_entries(&listed), [approve, view, retry]);
}

/// `sql` with `run_id` and `at` bound, on either backend.
async fn exec(db: &Db, sql: &str, run_id: &str, at: DateTime<Utc>) -> u64 {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match db {
        Db::Sqlite(pool) => sqlx::query(sql)
            .bind(run_id)
            .bind(at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
        Db::Postgres(pool) => sqlx::query(sql)
            .bind(run_id)
            .bind(at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
    }
    .unwrap()
}

/// The release before the `audit` table, still running during a rolling
/// deploy: its insert, read and prune of `gate_audit`, verbatim.
const OLD_INSERT: &str = "INSERT INTO gate_audit (run_id, gate, at, action, outcome, credential, ip, user_agent) \
     VALUES ($1, 'ideate', $2, 'approve', 'approved', 'key:ann', '10.0.0.1', 'curl/8')";
const OLD_REFUSED: &str = "INSERT INTO gate_audit (run_id, gate, at, action, outcome, credential, ip, user_agent) \
     VALUES ($1, 'ideate', $2, 'approve', 'invalid or expired token', 'none', '10.0.0.2', NULL)";
const OLD_PRUNE: &str = "DELETE FROM gate_audit WHERE run_id = $1 AND at < $2 AND NOT EXISTS \
     (SELECT 1 FROM runs WHERE runs.id = gate_audit.run_id AND runs.status NOT IN ('published', 'failed', 'cancelled', 'rejected'))";

async fn an_older_release_still_writes_and_prunes_the_audit_through_gate_audit(db: &Db) {
    let store = store::open(db);
    let run = "run_olderrelease0";
    let at = now() - Duration::days(40);
    exec(db, OLD_INSERT, run, at).await;
    exec(db, OLD_REFUSED, run, at).await;
    store
        .record_audit(&entry(AuditAction::Cancel, "key:ops", Some(run), true, at))
        .await
        .unwrap();
    let audit = store.list_audit(run).await.unwrap();
    let seen: Vec<(&str, &str, bool, Option<&str>)> = audit
        .iter()
        .map(|r| (r.actor.as_str(), r.action.as_str(), r.accepted, r.gate.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("key:ann", "approve", true, Some("ideate")),
            ("none", "approve", false, Some("ideate")),
            ("key:ops", "cancel", true, None),
        ]
    );
    assert_eq!(audit[0].ip.as_deref(), Some("10.0.0.1"));
    assert_eq!(audit[0].at, at);

    // Its prune deletes its rows (the gate ones) from the one audit.
    exec(db, OLD_PRUNE, run, now()).await;
    let left = store.list_audit(run).await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].action, "cancel");
}

/// The last migration before the `audit` table.
const BEFORE_AUDIT: i64 = 20261221000001;

/// Rows an older release wrote to `gate_audit` are the audit's after the
/// upgrade, in their order, and new ones follow them.
async fn gate_audit_rows_are_kept_by_the_upgrade(db: &TestDb) {
    let run = "run_beforeupgrade";
    let at = now() - Duration::hours(1);
    exec(db, OLD_INSERT, run, at).await;
    exec(db, OLD_REFUSED, run, at).await;
    exec(
        db,
        "INSERT INTO gate_audit (run_id, gate, at, action, outcome, credential) \
         VALUES ($1, 'prepublish', $2, 'view', 'shown', 'token:0123456789abcdef')",
        run,
        at,
    )
    .await;
    db.migrate().await.unwrap();

    let store = store::open(db);
    let audit = store.list_audit(run).await.unwrap();
    let seen: Vec<(i64, &str, &str, bool, &str)> = audit
        .iter()
        .map(|r| {
            (
                r.seq,
                r.actor.as_str(),
                r.action.as_str(),
                r.accepted,
                r.outcome.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, "key:ann", "approve", true, "approved"),
            (2, "none", "approve", false, "invalid or expired token"),
            (3, "token:0123456789abcdef", "view", true, "shown"),
        ]
    );
    assert_eq!(audit[0].at, at);
    assert_eq!(audit[0].user_agent.as_deref(), Some("curl/8"));
    store
        .record_audit(&entry(AuditAction::Retry, "key:ops", Some(run), true, now()))
        .await
        .unwrap();
    let after = store.list_audit(run).await.unwrap();
    assert_eq!(
        after.last().map(|r| r.seq),
        Some(4),
        "the sequence goes on after the copied rows"
    );
}

#[tokio::test]
async fn sqlite_gate_audit_rows_are_kept_by_the_upgrade() {
    let db = TestDb::sqlite_migrated_to(Some(BEFORE_AUDIT)).await;
    gate_audit_rows_are_kept_by_the_upgrade(&db).await;
}

#[tokio::test]
async fn postgres_gate_audit_rows_are_kept_by_the_upgrade() {
    let Some(db) = TestDb::postgres_migrated_to(Some(BEFORE_AUDIT)).await else {
        return;
    };
    gate_audit_rows_are_kept_by_the_upgrade(&db).await;
}

const OPS: &str = "audit-operator-key";
const ANN: &str = "audit-approver-key";
const VIC: &str = "audit-viewer-key";

async fn with_roles(db: &Db) -> TestApp {
    spawn_app(
        db,
        &[(
            "API_KEYS",
            &format!("ops:operator:{OPS},ann:approver:{ANN},vic:viewer:{VIC}"),
        )],
    )
    .await
}

/// `method path` with `key`, a user agent, and `body` unless null: the
/// status and the JSON answer.
async fn call(app: &TestApp, method: &str, path: &str, key: &str, body: Value) -> (u16, Value) {
    let mut request = app
        .http
        .request(method.parse().unwrap(), app.url(path))
        .header("x-api-key", key)
        .header("user-agent", "audit-test/1");
    if !body.is_null() {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn started(app: &TestApp) -> String {
    let (status, body) = call(
        app,
        "POST",
        "/v1/runs/start",
        OPS,
        json!({"project": "test_video_gen", "input": {"topic": "audit"}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["runId"].as_str().unwrap().to_string()
}

/// Fails `run_id` as the orchestrator reports it.
async fn fail(app: &TestApp, run_id: &str) {
    let event = |seq: i64, kind: &str, data: Value| json!({"eventId": format!("{run_id}-{seq}"), "runId": run_id, "seq": seq, "type": kind, "at": Utc::now(), "data": data});
    let events = [
        event(1, "execution.started", json!({})),
        event(
            2,
            "execution.failed",
            json!({"error": {"code": "x", "message": "boom", "persona": "alex"}}),
        ),
    ];
    let response = app
        .internal_post("/v1/internal/events", &json!({"events": events}))
        .await;
    assert_eq!(response.status(), 200);
}

/// `(actor, action, gate, accepted, outcome)` of each entry.
fn summary(page: &Value) -> Vec<(String, String, Option<String>, bool, String)> {
    page["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries in {page}"))
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
                e["gate"].as_str().map(str::to_owned),
                e["accepted"].as_bool().unwrap(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn row(
    actor: &str,
    action: &str,
    gate: Option<&str>,
    accepted: bool,
    outcome: &str,
) -> (String, String, Option<String>, bool, String) {
    (
        actor.into(),
        action.into(),
        gate.map(str::to_owned),
        accepted,
        outcome.into(),
    )
}

async fn every_operator_action_is_audited_with_its_actor_and_outcome(db: &Db) {
    let app = with_roles(db).await;

    // Decisions: a forged token, a key that may not decide, the approver's
    // approval and its repeat.
    let (gated, _) = awaiting_gate(&app.state, Gate::Ideate, json!({"ideas": []})).await;
    let approve = format!("/v1/hitl/approve/{gated}/ideate");
    let (status, _) = call(&app, "POST", &format!("{approve}?token=forged"), "", Value::Null).await;
    assert_eq!(status, 403);
    assert_eq!(call(&app, "POST", &approve, OPS, json!({})).await.0, 403);
    let (status, body) = call(&app, "POST", &approve, ANN, json!({"approver": "ceo@company.com"})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("approved")), "{body}");
    assert_eq!(
        call(&app, "POST", &approve, ANN, json!({})).await.1["status"],
        "already_approved"
    );

    // A cancel, and one of a run that already ended.
    let cancelled = started(&app).await;
    let cancel = format!("/v1/runs/{cancelled}/cancel");
    let (status, _) = call(
        &app,
        "POST",
        &cancel,
        OPS,
        json!({"reason": "wrong topic", "actor": "cli:me"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(call(&app, "POST", &cancel, OPS, json!({})).await.0, 409);

    // A retry of a failed run, and of a cancelled one.
    let failed = started(&app).await;
    fail(&app, &failed).await;
    assert_eq!(
        call(&app, "POST", &format!("/v1/runs/{failed}/retry"), API_KEY, Value::Null)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&app, "POST", &format!("/v1/runs/{cancelled}/retry"), OPS, Value::Null)
            .await
            .0,
        409
    );

    // A replay of a dead letter of the failed run, and of one that is not there.
    let signal = json!({"signalId": "kieai:task-audit", "signal": {"type": "clip.reported", "taskId": "task-audit", "index": 0}});
    let seq = app
        .state
        .store
        .add_dead_letter(DeadLetterKind::Signal, Some(&failed), &signal, "refused")
        .await
        .unwrap();
    let (status, body) = call(&app, "POST", &format!("/v1/dlq/{seq}/replay"), OPS, Value::Null).await;
    assert_eq!((status, body["resolved"].as_bool()), (200, Some(true)), "{body}");
    assert_eq!(
        call(&app, "POST", "/v1/dlq/999999/replay", OPS, Value::Null).await.0,
        404
    );

    // Each run's audit, newest first, read by the approver.
    let (status, page) = call(&app, "GET", &format!("/v1/runs/{gated}/audit"), ANN, Value::Null).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        summary(&page),
        [
            row("key:ann", "approve", Some("ideate"), true, "already_approved"),
            row("key:ann", "approve", Some("ideate"), true, "approved"),
            row(
                "key:ops",
                "approve",
                Some("ideate"),
                false,
                "the key \"ops\" (operator) may not decide gates"
            ),
            row("none", "approve", Some("ideate"), false, "invalid or expired token"),
        ]
    );
    let approval = &page["entries"][1];
    assert_eq!(approval["runId"], gated.as_str());
    assert_eq!(approval["ip"], "127.0.0.1");
    assert_eq!(approval["userAgent"], "audit-test/1");
    assert_eq!(approval["detail"], json!({"reason": null, "note": "ceo@company.com"}));
    assert!(approval["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        page["entries"][3]["detail"],
        Value::Null,
        "a stranger's text is not kept"
    );
    assert_eq!(page["nextCursor"], Value::Null);

    let (_, page) = call(&app, "GET", &format!("/v1/runs/{cancelled}/audit"), OPS, Value::Null).await;
    assert_eq!(
        summary(&page),
        [
            row(
                "key:ops",
                "retry",
                None,
                false,
                "run is cancelled; only a failed run can be retried"
            ),
            row("key:ops", "cancel", None, false, "run is already cancelled"),
            row("key:ops", "cancel", None, true, "cancelled"),
        ]
    );
    assert_eq!(
        page["entries"][2]["detail"],
        json!({"reason": "wrong topic", "note": "cli:me"})
    );

    let admin = format!("key:key-{}", myloware_core::auth::ApiKeys::fingerprint(API_KEY));
    let (_, page) = call(&app, "GET", &format!("/v1/runs/{failed}/audit"), OPS, Value::Null).await;
    assert_eq!(
        summary(&page),
        [
            row("key:ops", "replay", None, true, "resolved"),
            row(&admin, "retry", None, true, "retried (attempt 1)"),
        ]
    );
    assert_eq!(page["entries"][0]["detail"], json!({"deadLetter": seq}));

    // Everything, and by actor: the replay of nothing names no run.
    let (_, page) = call(&app, "GET", "/v1/audit?actor=key:ops", OPS, Value::Null).await;
    let by_ops = summary(&page);
    assert_eq!(by_ops.len(), 6, "{page}");
    assert!(by_ops.iter().all(|e| e.0 == "key:ops"));
    assert_eq!(
        by_ops[0],
        row("key:ops", "replay", None, false, "dead letter not found")
    );
    assert_eq!(page["entries"][0]["runId"], Value::Null);
    assert_eq!(page["entries"][0]["detail"], json!({"deadLetter": 999999}));
    let (_, page) = call(&app, "GET", "/v1/audit", API_KEY, Value::Null).await;
    assert_eq!(summary(&page).len(), 10, "{page}");
}

async fn the_audit_routes_filter_page_and_refuse(db: &Db) {
    let app = with_roles(db).await;
    let runs = [started(&app).await, started(&app).await];
    let long = "x".repeat(3000);
    for run in &runs {
        assert_eq!(
            call(
                &app,
                "POST",
                &format!("/v1/runs/{run}/cancel"),
                OPS,
                json!({"reason": long})
            )
            .await
            .0,
            200
        );
        assert_eq!(
            call(&app, "POST", &format!("/v1/runs/{run}/cancel"), API_KEY, json!({}))
                .await
                .0,
            409
        );
    }
    let (first, second) = (&runs[0], &runs[1]);

    // Filters: run, actor, since.
    let (_, page) = call(&app, "GET", &format!("/v1/audit?runId={first}"), OPS, Value::Null).await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 2, "{page}");
    assert!(
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["runId"] == first.as_str())
    );
    let (_, page) = call(
        &app,
        "GET",
        &format!("/v1/runs/{second}/audit?actor=key:ops"),
        OPS,
        Value::Null,
    )
    .await;
    assert_eq!(summary(&page), [row("key:ops", "cancel", None, true, "cancelled")]);
    let kept = page["entries"][0]["detail"]["reason"].as_str().unwrap();
    assert_eq!(kept.len(), 2000, "a reason is kept to 2000 characters");
    let future = (Utc::now() + Duration::minutes(5)).to_rfc3339();
    let query = serde_urlencoded::to_string([("since", future.as_str())]).unwrap();
    let (status, page) = call(&app, "GET", &format!("/v1/audit?{query}"), OPS, Value::Null).await;
    assert_eq!((status, &page["entries"]), (200, &json!([])));
    let past = serde_urlencoded::to_string([("since", "2020-01-01T00:00:00+02:00")]).unwrap();
    let (_, page) = call(&app, "GET", &format!("/v1/audit?{past}"), OPS, Value::Null).await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 4);

    // Pages of three: the newest three, then the oldest one, then nothing more.
    let (_, page) = call(&app, "GET", "/v1/audit?limit=3", OPS, Value::Null).await;
    let seqs: Vec<i64> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs.len(), 3);
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first: {seqs:?}");
    let cursor = page["nextCursor"].as_str().expect("a second page").to_string();
    let (_, next) = call(
        &app,
        "GET",
        &format!("/v1/audit?limit=3&cursor={cursor}"),
        OPS,
        Value::Null,
    )
    .await;
    assert_eq!(next["entries"].as_array().unwrap().len(), 1);
    assert!(next["entries"][0]["seq"].as_i64().unwrap() < seqs[2]);
    assert_eq!(next["nextCursor"], Value::Null);
    assert_eq!(next["entries"][0]["runId"], first.as_str(), "the first cancel");

    // Refusals: a viewer, an unknown key, an unknown run, bad filters (the field named).
    for path in ["/v1/audit".to_string(), format!("/v1/runs/{first}/audit")] {
        let (status, body) = call(&app, "GET", &path, VIC, Value::Null).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body["detail"].as_str().unwrap().contains("viewer"), "{body}");
        assert_eq!(call(&app, "GET", &path, "not-a-key", Value::Null).await.0, 401);
    }
    let (status, body) = call(&app, "GET", "/v1/runs/run_unknown000000/audit", OPS, Value::Null).await;
    assert_eq!((status, body), (404, json!({"detail": "run not found"})));
    for (query, field) in [
        ("since=yesterday", "since"),
        ("since=2026-12-22", "since"),
        ("runId=nope", "runId"),
        ("actor=", "actor"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("cursor=-3", "cursor"),
    ] {
        let (status, body) = call(&app, "GET", &format!("/v1/audit?{query}"), OPS, Value::Null).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["detail"][0]["loc"], json!(["query", field]), "{query}: {body}");
    }
    let (status, _) = call(
        &app,
        "GET",
        &format!("/v1/runs/{first}/audit?limit=500"),
        OPS,
        Value::Null,
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = call(&app, "GET", "/v1/audit?limit=2&limit=3", OPS, Value::Null).await;
    assert_eq!(status, 400, "a parameter given twice");
}

conformance_tests!(
    the_audit_reads_newest_first_filtered_and_paged,
    an_older_release_still_writes_and_prunes_the_audit_through_gate_audit,
    every_operator_action_is_audited_with_its_actor_and_outcome,
    the_audit_routes_filter_page_and_refuse,
);
