//! Provider webhooks and the orchestrator's events over real HTTP, on
//! SQLite and (with `TEST_DATABASE_URL`) Postgres.

mod common;

use std::time::Duration;

use chrono::Utc;
use myloware_core::signing;
use myloware_db::Db;
use myloware_testkit::JsonAnswer;
use myloware_testkit::conformance_tests;
use serde_json::{Value, json};

use common::{TestApp, eventually, spawn_app};

const MOCK_KEY: &[u8] = b"mock-kieai-signing-secret";

async fn started_run(app: &TestApp) -> String {
    let (_, started) = app
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "smoke"}}))
        .await;
    started["runId"].as_str().unwrap().to_string()
}

fn callback_path(run_id: &str, index: u32, token: Option<&str>) -> String {
    let token = token.map(str::to_owned).unwrap_or_else(|| {
        signing::callback_token(
            b"dev-hitl-secret-not-for-production",
            run_id,
            &format!("mock-clip:{index}"),
        )
    });
    format!("/v1/webhooks/kieai?runId={run_id}&index={index}&token={token}")
}

async fn post_callback(app: &TestApp, path: &str, body: &Value, signature: Option<String>) -> (u16, Value) {
    let timestamp = Utc::now().timestamp().to_string();
    let mut request = app
        .http
        .post(app.url(path))
        .json(body)
        .header("x-webhook-timestamp", &timestamp);
    if let Some(signature) = signature {
        request = request.header("x-webhook-signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn sign(task_id: &str) -> String {
    signing::kieai_signature(MOCK_KEY, task_id, &Utc::now().timestamp().to_string())
}

async fn a_signed_kieai_callback_is_relayed_once(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let run_id = started_run(&app).await;
    let body = json!({"code": 200, "msg": "success", "data": {"taskId": "task-9", "info": {"resultUrls": ["https://cdn/0.mp4"]}}});
    let path = callback_path(&run_id, 0, None);
    assert_eq!(
        post_callback(&app, &path, &body, Some(sign("task-9"))).await,
        (200, json!({"status": "accepted"}))
    );
    assert_eq!(
        post_callback(&app, &path, &body, Some(sign("task-9"))).await,
        (200, json!({"status": "duplicate"}))
    );

    let relayed = eventually(Duration::from_secs(5), "the signal relay", || async {
        let commands = app.orchestrator.commands();
        (!commands.is_empty()).then_some(commands)
    })
    .await;
    assert_eq!(relayed.len(), 1, "one signal for two deliveries: {relayed:?}");
    let (relayed_run, action, delivery) = &relayed[0];
    assert_eq!((relayed_run.as_str(), action.as_str()), (run_id.as_str(), "signals"));
    assert_eq!(
        delivery["signal"],
        json!({"type": "clip.reported", "taskId": "task-9", "index": 0}),
        "a trigger: the body's code and URLs are not relayed"
    );
    assert_eq!(delivery["signalId"], "kieai:task-9");

    let deliveries = app.state.store.list_webhooks("kieai").await.unwrap();
    let outcomes: Vec<(&str, &str)> = deliveries
        .iter()
        .map(|d| (d.signature_status.as_str(), d.outcome.as_str()))
        .collect();
    assert_eq!(outcomes, [("verified", "accepted"), ("verified", "duplicate")]);
    assert_eq!(deliveries[0].headers["x-webhook-signature"], "[redacted]");
}

async fn forged_callbacks_are_refused_and_consume_nothing(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let run_id = started_run(&app).await;
    let body = json!({"code": 200, "msg": "ok", "data": {"taskId": "task-1", "info": {"resultUrls": ["u"]}}});
    let good_path = callback_path(&run_id, 0, None);
    let cases = [
        (good_path.clone(), None, "missing"),
        (good_path.clone(), Some(sign("task-2")), "rejected"),
        (good_path.clone(), Some(String::new()), "rejected"),
        (
            callback_path(&run_id, 0, Some("00ff")),
            Some(sign("task-1")),
            "rejected",
        ),
        (
            callback_path(
                &run_id,
                1,
                Some(&signing::callback_token(
                    b"dev-hitl-secret-not-for-production",
                    &run_id,
                    "mock-clip:0",
                )),
            ),
            Some(sign("task-1")),
            "rejected",
        ),
    ];
    for (path, signature, _) in &cases {
        let (status, answer) = post_callback(&app, path, &body, signature.clone()).await;
        assert_eq!(
            (status, answer),
            (401, json!({"detail": "invalid signature"})),
            "{path} {signature:?}"
        );
    }
    let deliveries = app.state.store.list_webhooks("kieai").await.unwrap();
    let statuses: Vec<&str> = deliveries.iter().map(|d| d.signature_status.as_str()).collect();
    assert_eq!(statuses, cases.iter().map(|c| c.2).collect::<Vec<_>>());
    assert!(
        deliveries.iter().all(|d| d.idempotency_key.is_none()),
        "no key consumed"
    );
    // The genuine callback still goes through afterwards.
    assert_eq!(
        post_callback(&app, &good_path, &body, Some(sign("task-1"))).await.0,
        200
    );
    let response = app.http.post(app.url(&good_path)).body("x").send().await.unwrap();
    assert_eq!(response.status(), 415);
}

async fn events_apply_once_and_in_order(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let run_id = started_run(&app).await;
    let event = |seq: i64, kind: &str, data: Value| json!({"eventId": format!("e-{run_id}-{seq}"), "runId": run_id, "seq": seq, "type": kind, "at": Utc::now(), "data": data});
    let post = |events: Vec<Value>| {
        let app = &app;
        async move {
            let (status, answers) = app.deliver_events(&events).await;
            assert_eq!(status, 200, "{answers:?}");
            answers
        }
    };
    // seq 3 before 2: refused until 2 arrives.
    let results = post(vec![
        event(1, "execution.started", json!({})),
        event(3, "status.changed", json!({"status": "rendering"})),
    ])
    .await;
    assert_eq!(results, ["applied", "out_of_order"]);
    let results = post(vec![
        event(2, "status.changed", json!({"status": "generating"})),
        event(3, "status.changed", json!({"status": "rendering"})),
        event(2, "status.changed", json!({"status": "generating"})),
    ])
    .await;
    assert_eq!(results, ["applied", "applied", "duplicate"]);
    let (_, run) = app.get_json(&format!("/v1/runs/{run_id}")).await;
    assert_eq!(run["status"], "rendering");

    let results = post(vec![
        event(
            4,
            "execution.failed",
            json!({"error": {"code": "x", "message": "boom", "persona": "alex"}}),
        ),
        event(
            5,
            "execution.completed",
            json!({"videos": [], "renderUrl": "late", "publishUrls": ["late"]}),
        ),
    ])
    .await;
    assert_eq!(results, ["applied", "applied"]);
    let (_, run) = app.get_json(&format!("/v1/runs/{run_id}")).await;
    assert_eq!(run["status"], "failed", "a late completion never moves a terminal run");
    assert_eq!(run["result"]["error"]["message"], "boom");
    assert_eq!(run["result"]["renderUrl"], Value::Null);

    let unknown = json!({"eventId": "e-x", "runId": "run_unknown00000", "seq": 1, "type": "execution.started", "at": Utc::now(), "data": {}});
    assert_eq!(post(vec![unknown]).await, ["unknown_run"]);
}

/// A run's twelve clip callbacks arriving together: each signal reaches
/// the orchestrator in exactly one request (concurrent callers used to
/// each re-send the run's oldest pending command).
async fn concurrent_callbacks_of_a_run_send_each_signal_once(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let run_id = started_run(&app).await;
    let sends: Vec<_> = (0..12u32)
        .map(|index| {
            let task = format!("task-c{index}");
            let body = json!({"code": 200, "msg": "ok", "data": {"taskId": task, "info": {"resultUrls": ["u"]}}});
            let timestamp = Utc::now().timestamp().to_string();
            let request = app
                .http
                .post(app.url(&callback_path(&run_id, index, None)))
                .json(&body)
                .header("x-webhook-timestamp", &timestamp)
                .header(
                    "x-webhook-signature",
                    signing::kieai_signature(MOCK_KEY, &task, &timestamp),
                );
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    for send in sends {
        assert_eq!(send.await.unwrap(), 200);
    }
    let relayed: Vec<String> = app
        .orchestrator
        .commands()
        .into_iter()
        .filter(|(_, action, _)| action == "signals")
        .map(|(_, _, body)| body["signalId"].as_str().unwrap().to_string())
        .collect();
    let mut distinct = relayed.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(relayed.len(), 12, "one request per signal: {relayed:?}");
    assert_eq!(distinct.len(), 12, "{relayed:?}");
    let commands = app.state.store.list_commands(&run_id).await.unwrap();
    assert!(
        commands.iter().all(|c| c.acked_at.is_some() && c.attempts == 1),
        "{commands:?}"
    );
}

async fn a_hundred_identical_callbacks_at_once_are_processed_once(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let run_id = started_run(&app).await;
    let body = json!({"code": 200, "msg": "ok", "data": {"taskId": "task-par", "info": {"resultUrls": ["u"]}}});
    let path = callback_path(&run_id, 1, None);
    let timestamp = Utc::now().timestamp().to_string();
    let signature = signing::kieai_signature(MOCK_KEY, "task-par", &timestamp);
    let sends = (0..100).map(|_| {
        let request = app
            .http
            .post(app.url(&path))
            .json(&body)
            .header("x-webhook-timestamp", &timestamp)
            .header("x-webhook-signature", &signature);
        tokio::spawn(async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap()["status"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
    });
    let mut outcomes = Vec::new();
    for send in sends {
        outcomes.push(send.await.unwrap());
    }
    assert_eq!(outcomes.iter().filter(|o| o.1 == "accepted").count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| o.1 == "duplicate").count(), 99);
    assert!(outcomes.iter().all(|o| o.0 == 200));
    let signals = app.state.store.list_commands(&run_id).await.unwrap();
    assert_eq!(
        signals
            .iter()
            .filter(|c| c.kind() == myloware_api::store::CommandKind::Signal)
            .count(),
        1
    );
}

async fn stale_and_replayed_signatures_are_refused(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let run_id = started_run(&app).await;
    let body = json!({"code": 200, "msg": "ok", "data": {"taskId": "task-old", "info": {"resultUrls": ["u"]}}});
    let stale = (Utc::now().timestamp() - 301).to_string();
    let signature = signing::kieai_signature(MOCK_KEY, "task-old", &stale);
    let response = app
        .http
        .post(app.url(&callback_path(&run_id, 0, None)))
        .json(&body)
        .header("x-webhook-timestamp", &stale)
        .header("x-webhook-signature", &signature)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "older than 5 minutes");
    // A signature replayed on another task's body does not verify.
    let other = json!({"code": 200, "msg": "ok", "data": {"taskId": "task-new", "info": {"resultUrls": ["u"]}}});
    let (status, _) = post_callback(&app, &callback_path(&run_id, 0, None), &other, Some(sign("task-old"))).await;
    assert_eq!(status, 401);
    let recorded = app.state.store.list_webhooks("kieai").await.unwrap();
    assert!(
        recorded
            .iter()
            .all(|d| d.signature_status == "rejected" && d.idempotency_key.is_none())
    );
}

async fn refused_signals_are_dead_lettered_and_really_replayed(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let run_id = started_run(&app).await;
    app.orchestrator.answer_signals(404);
    let body = json!({"code": 200, "msg": "ok", "data": {"taskId": "task-dlq", "info": {"resultUrls": ["u"]}}});
    let (status, _) = post_callback(&app, &callback_path(&run_id, 0, None), &body, Some(sign("task-dlq"))).await;
    assert_eq!(status, 200, "the delivery itself is accepted");
    let (_, list) = app.get_json("/v1/dlq").await;
    let letters = list["deadLetters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{list}");
    assert_eq!(
        (letters[0]["kind"].as_str(), letters[0]["runId"].as_str()),
        (Some("signal"), Some(run_id.as_str()))
    );
    assert!(letters[0]["error"].as_str().unwrap().contains("404"));
    let seq = letters[0]["seq"].as_i64().unwrap();

    // Still refused: the entry records the attempt, no second entry.
    let replay = app.post(&format!("/v1/dlq/{seq}/replay")).send().await.unwrap();
    let answer: Value = replay.json().await.unwrap();
    assert_eq!(answer["resolved"], false, "{answer}");
    assert_eq!(
        app.get_json("/v1/dlq").await.1["deadLetters"].as_array().unwrap().len(),
        1
    );

    app.orchestrator.answer_signals(202);
    let answer: Value = app.post(&format!("/v1/dlq/{seq}/replay")).json_answer().await;
    assert_eq!(answer, json!({"seq": seq, "resolved": true}));
    let relayed = app.orchestrator.commands();
    assert_eq!(relayed.len(), 1, "the replay reached the orchestrator: {relayed:?}");
    assert_eq!(
        relayed[0].2["signalId"], "kieai:task-dlq:replay:2",
        "a new id: idempotency does not swallow it"
    );
    assert_eq!(relayed[0].2["signal"]["type"], "clip.reported");
    assert_eq!(app.get_json("/v1/dlq").await.1["deadLetters"], json!([]));
    assert_eq!(
        app.get_json("/v1/dlq?all=true").await.1["deadLetters"][0]["attempts"],
        2
    );
    let again = app.post(&format!("/v1/dlq/{seq}/replay")).send().await.unwrap();
    assert_eq!(again.status(), 409);
}

/// Three callbacks arriving while the orchestrator is down, then one
/// drain once it is back: their signals in one request, in order; an
/// orchestrator without the batch route (an older version) gets them one
/// by one instead, none lost.
async fn waiting_signals_go_in_one_request_or_one_by_one_to_an_older_orchestrator(db: &Db) {
    for batches in [true, false] {
        let app = spawn_app(db, &[]).await;
        if batches {
            app.orchestrator.accept_batches();
        }
        let run_id = started_run(&app).await;
        app.orchestrator.answer_signals(503);
        for index in 0..3u32 {
            // Task ids are idempotency keys: new ones for each round.
            let task = format!("task-{batches}-{index}");
            let body = json!({"code": 200, "msg": "ok", "data": {"taskId": task, "info": {"resultUrls": ["u"]}}});
            let (status, _) = post_callback(&app, &callback_path(&run_id, index, None), &body, Some(sign(&task))).await;
            assert_eq!(status, 200, "accepted while the orchestrator is down");
        }
        assert!(app.orchestrator.commands().is_empty());

        app.orchestrator.answer_signals(202);
        myloware_api::commands::deliver_pending(&app.state, &run_id)
            .await
            .unwrap();

        let relayed = app.orchestrator.commands();
        let ids: Vec<&str> = if batches {
            assert_eq!(relayed.len(), 1, "one request: {relayed:?}");
            assert_eq!(relayed[0].1, "signals/batch");
            relayed[0].2["signals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["signalId"].as_str().unwrap())
                .collect()
        } else {
            assert!(relayed.iter().all(|(_, action, _)| action == "signals"), "{relayed:?}");
            relayed
                .iter()
                .map(|(_, _, body)| body["signalId"].as_str().unwrap())
                .collect()
        };
        let expected: Vec<String> = (0..3).map(|index| format!("kieai:task-{batches}-{index}")).collect();
        assert_eq!(ids, expected, "batches: {batches}");
        let commands = app.state.store.list_commands(&run_id).await.unwrap();
        assert!(commands.iter().all(|c| c.acked_at.is_some()), "{commands:?}");
        assert!(
            app.get_json("/v1/dlq").await.1["deadLetters"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
}

async fn a_verified_callback_for_an_unknown_run_is_dead_lettered(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let body = json!({"code": 200, "msg": "ok", "data": {"taskId": "task-x", "info": {"resultUrls": ["u"]}}});
    let path = callback_path("run_unknown00000", 0, None);
    let (status, answer) = post_callback(&app, &path, &body, Some(sign("task-x"))).await;
    assert_eq!((status, answer), (200, json!({"status": "dead_lettered"})));
    let (_, list) = app.get_json("/v1/dlq").await;
    assert_eq!(list["deadLetters"][0]["kind"], "webhook");
    assert_eq!(list["deadLetters"][0]["error"], "unknown run");
    assert!(app.orchestrator.commands().is_empty());
}

async fn upload_post_webhooks_only_wake_publishing_runs_once_per_delivery(db: &Db) {
    use myloware_api::store::NewRun;
    use myloware_core::RunStatus;
    let app = spawn_app(db, &[]).await;
    let pending = started_run(&app).await;
    let publishing = app
        .state
        .store
        .insert_run(&NewRun {
            gate: None,
            id: myloware_core::ids::new_run_id(),
            project: "test_video_gen".into(),
            status: RunStatus::Publishing,
            user_id: None,
            payload: json!({"project": "test_video_gen", "input": {}}),
            result: json!({}),
            created_at: myloware_api::store::now(),
            estimated_usd_micros: None,
            max_active: None,
            notice: None,
        })
        .await
        .unwrap()
        .id;
    let post = |body: Value| {
        let request = app.http.post(app.url("/v1/webhooks/upload-post")).json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let completed = json!({"event": "upload_completed", "job_id": "j1", "platform": "tiktok",
        "result": {"success": true, "url": "https://evil.example/video"}});
    assert_eq!(
        post(json!({"event": "upload_failed", "job_id": "j0"})).await,
        (200, json!({"status": "ignored"}))
    );
    assert_eq!(post(completed.clone()).await, (200, json!({"status": "accepted"})));
    assert_eq!(post(completed).await, (200, json!({"status": "duplicate"})));
    let relayed = eventually(Duration::from_secs(5), "the publish hint", || async {
        let commands = app.orchestrator.commands();
        (!commands.is_empty()).then_some(commands)
    })
    .await;
    assert_eq!(relayed.len(), 1, "{relayed:?}");
    assert_eq!(relayed[0].0, publishing, "not {pending}, which is not publishing");
    assert_eq!(
        relayed[0].2["signal"],
        json!({"type": "publish.updated", "requestId": format!("{publishing}:quinn:publish:1"), "status": "hint"}),
        "nothing of the body is relayed"
    );
    let statuses: Vec<String> = app
        .state
        .store
        .list_webhooks("upload-post")
        .await
        .unwrap()
        .iter()
        .map(|d| format!("{}/{}", d.signature_status, d.outcome))
        .collect();
    // The other event was answered `ignored` and not kept.
    assert_eq!(statuses, ["unsigned/accepted", "unsigned/duplicate"]);
}

conformance_tests!(
    upload_post_webhooks_only_wake_publishing_runs_once_per_delivery,
    refused_signals_are_dead_lettered_and_really_replayed,
    waiting_signals_go_in_one_request_or_one_by_one_to_an_older_orchestrator,
    a_verified_callback_for_an_unknown_run_is_dead_lettered,
    a_hundred_identical_callbacks_at_once_are_processed_once,
    stale_and_replayed_signatures_are_refused,
    a_signed_kieai_callback_is_relayed_once,
    concurrent_callbacks_of_a_run_send_each_signal_once,
    forged_callbacks_are_refused_and_consume_nothing,
    events_apply_once_and_in_order,
);
