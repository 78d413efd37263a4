//! The API over real HTTP, on SQLite and (with `TEST_DATABASE_URL`) Postgres.

mod common;

use myloware_testkit::JsonAnswer;
use std::time::Duration;

use common::{API_KEY, eventually, spawn_app};
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use serde_json::{Value, json};

const LIVE_SECRETS: [(&str, &str); 5] = [
    ("USE_MOCK_PROVIDERS", "false"),
    ("KIEAI_API_KEY", "kie-key"),
    ("KIEAI_SIGNING_SECRET", "kie-signing"),
    ("SHOTSTACK_API_KEY", "shotstack-key"),
    ("UPLOAD_POST_API_KEY", "upload-key"),
];

async fn the_runbook_check_reports_the_provider_mode(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let (status, project) = app.get_json("/v1/projects/test_video_gen").await;
    assert_eq!(status, 200);
    assert_eq!(project["providers"]["mode"], "mock");
    assert_eq!(
        project["providers"]["kieai"],
        json!({"host": "api.kie.ai", "configured": false})
    );
    assert_eq!(project["gates"], json!([]));
    assert_eq!(project["workflow"], json!(["iggy", "riley", "alex", "quinn"]));
    assert_eq!(
        project["specs"]["videos"][0],
        json!({"subject": "moon", "header": "cheeseburger"})
    );

    let live = spawn_app(db, &LIVE_SECRETS).await;
    let (_, project) = live.get_json("/v1/projects/test_video_gen").await;
    assert_eq!(project["providers"]["mode"], "live");
    assert_eq!(project["providers"]["uploadPost"]["configured"], true);
    let body = live.get("/v1/projects/test_video_gen").text_answer().await;
    assert!(
        !body.contains("kie-key") && !body.contains("upload-signing"),
        "secrets leak: {body}"
    );
}

async fn projects_are_listed_with_their_gates(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let (status, body) = app.get_json("/v1/projects").await;
    assert_eq!(status, 200);
    let projects = body["projects"].as_array().unwrap();
    let names: Vec<&str> = projects.iter().map(|p| p["project"].as_str().unwrap()).collect();
    assert_eq!(names, ["aismr", "general", "test_video_gen"]);
    let aismr = &projects[0];
    assert_eq!(aismr["gates"], json!(["ideate", "prepublish"]));
    assert_eq!(aismr["videoCount"], 12);
    let (status, body) = app.get_json("/v1/projects/nope").await;
    assert_eq!((status, body), (404, json!({"detail": "project not found"})));
}

async fn requests_without_a_valid_key_are_refused_with_a_request_id(db: &Db) {
    let app = spawn_app(db, &[]).await;
    for key in [None, Some("wrong"), Some("")] {
        let mut request = app.http.get(app.url("/v1/runs"));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "key {key:?}");
        assert!(response.headers().contains_key("x-request-id"));
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"detail": "invalid API key"})
        );
    }
    // The caller's request id is echoed when sane, replaced otherwise.
    let response = app.get("/v1/runs").header("x-request-id", "trace-42").sent().await;
    assert_eq!(response.headers()["x-request-id"], "trace-42");
    let response = app.get("/v1/runs").header("x-request-id", "bad id!").sent().await;
    assert_ne!(response.headers()["x-request-id"], "bad id!");
    // Open routes need no key.
    let health: Value = app.http.get(app.url("/health")).json_answer().await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["service"], "api");
    assert_eq!(app.http.get(app.url("/metrics")).send().await.unwrap().status(), 200);
}

async fn a_started_run_reads_back_in_the_documented_shape(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let (status, started) = app
        .start_run(
            json!({"project": "test_video_gen", "input": {"topic": "moon and sun"}, "options": {"user_id": "u-7"}}),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["status"], "pending");
    let run_id = started["runId"].as_str().unwrap();
    assert!(run_id.starts_with("run_") && run_id.len() == 16, "{run_id}");
    assert!(
        run_id[4..]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );

    let (status, run) = app.get_json(&format!("/v1/runs/{run_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(run["runId"], run_id);
    assert_eq!(run["project"], "test_video_gen");
    assert_eq!(run["status"], "pending");
    assert_eq!(run["currentPersona"], Value::Null);
    assert!(run["createdAt"].as_str().unwrap().ends_with('Z'));
    assert!(run["updatedAt"].is_string());
    let payload = &run["payload"];
    assert_eq!(payload["project"], "test_video_gen");
    assert_eq!(payload["input"], json!({"topic": "moon and sun"}));
    assert_eq!(payload["user_id"], "u-7");
    assert_eq!(payload["options"]["user_id"], "u-7");
    assert_eq!(
        payload["graph_spec"],
        json!({"pipeline": ["iggy", "riley", "alex", "quinn"], "hitl_gates": []})
    );
    assert_eq!(payload["metadata"]["providers"], json!({"mode": "mock"}));
    assert_eq!(payload["metadata"]["project_spec"]["project"], "test_video_gen");
    assert_eq!(payload["metadata"]["project_spec"]["specs"]["videoCount"], 2);
    assert!(payload["metadata"].get("workflow_proposal").is_none());
    let result = &run["result"];
    assert_eq!(result["totalVideos"], 2);
    assert_eq!(
        result["videos"],
        json!([
            {"index": 0, "subject": "moon", "header": "cheeseburger", "status": "pending"},
            {"index": 1, "subject": "sun", "header": "pickle", "status": "pending"}
        ])
    );
    assert_eq!(result["publishUrls"], json!([]));
    assert_eq!(result["renderUrl"], Value::Null);
    assert_eq!(result["error"], Value::Null);
    assert_eq!(run["gates"], json!([]));
    assert_eq!(run["artifacts"], json!([]));

    // The orchestrator was handed exactly this run, once.
    let starts = app.orchestrator.starts();
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0]["runId"], run_id);
    assert_eq!(starts[0]["providersMode"], "mock");
    assert_eq!(starts[0]["graphSpec"], payload["graph_spec"]);
    assert_eq!(starts[0]["videos"], result["videos"]);
}

async fn a_run_started_while_the_orchestrator_is_down_is_delivered_later(db: &Db) {
    let app = spawn_app(db, &[]).await;
    app.orchestrator.answer(503);
    let (status, started) = app
        .start_run(json!({"project": "aismr", "input": {"object": "candles"}}))
        .await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["status"], "pending");
    assert!(
        started["detail"].as_str().unwrap().contains("will be started"),
        "{started}"
    );
    let run_id = started["runId"].as_str().unwrap().to_string();
    let (status, run) = app.get_json(&format!("/v1/runs/{run_id}")).await;
    assert_eq!(
        (status, run["status"].as_str()),
        (200, Some("pending")),
        "the run is recorded"
    );

    app.orchestrator.answer(202);
    let starts = eventually(
        Duration::from_secs(10),
        "the reconciler to deliver the start",
        || async {
            let starts = app.orchestrator.starts();
            (!starts.is_empty()).then_some(starts)
        },
    )
    .await;
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0]["runId"], run_id.as_str());
    assert_eq!(starts[0]["project"], "aismr");
    assert_eq!(starts[0]["graphSpec"]["hitl_gates"], json!(["ideate", "prepublish"]));
}

async fn bad_run_requests_get_clear_422s_and_create_nothing(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let cases = [
        (
            json!({"project": "test_video_gen", "input": {}}),
            vec!["body", "input"],
            "at least one of prompt",
        ),
        (
            json!({"project": "test_video_gen", "input": {"prompt": "   "}}),
            vec!["body", "input"],
            "non-empty",
        ),
        (
            json!({"project": "nope", "input": {"topic": "x"}}),
            vec!["body", "project"],
            "known projects: aismr, general, test_video_gen",
        ),
        (
            json!({"project": "general", "input": {"topic": "x"}}),
            vec!["body", "project"],
            "conversation only",
        ),
        (
            json!({"input": {"topic": "x"}}),
            vec!["body"],
            "missing field `project`",
        ),
        (
            json!({"project": "aismr", "input": {"topic": 5}}),
            vec!["body", "input", "topic"],
            "invalid type",
        ),
        (
            json!({"project": "aismr", "input": {"topic": "x", "colour": "red"}}),
            vec!["body", "input", "colour"],
            "unknown field `colour`",
        ),
    ];
    for (body, loc, message) in cases {
        let (status, answer) = app.start_run(body.clone()).await;
        assert_eq!(status, 422, "{body} -> {answer}");
        let detail = &answer["detail"][0];
        assert_eq!(detail["loc"], json!(loc), "{body} -> {answer}");
        assert!(detail["msg"].as_str().unwrap().contains(message), "{body} -> {answer}");
        assert!(detail["type"].is_string());
    }
    let response = app
        .post("/v1/runs/start")
        .header("content-type", "application/json")
        .body("{not json")
        .sent()
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.json::<Value>().await.unwrap()["detail"][0]["type"],
        "json_invalid"
    );
    let response = app.post("/v1/runs/start").body("project=aismr").send().await.unwrap();
    assert_eq!(response.status(), 415);
    assert!(
        response.json::<Value>().await.unwrap()["detail"]
            .as_str()
            .unwrap()
            .contains("application/json")
    );

    let (_, runs) = app.get_json("/v1/runs").await;
    assert_eq!(runs["runs"], json!([]), "no run was created");
    assert!(app.orchestrator.starts().is_empty());
}

async fn oversized_bodies_get_a_json_413(db: &Db) {
    let app = spawn_app(db, &[("MAX_BODY_BYTES", "2048")]).await;
    let big = "x".repeat(4096);
    let (status, body) = app
        .start_run(json!({"project": "aismr", "input": {"topic": big}}))
        .await;
    assert_eq!(status, 413);
    assert_eq!(body, json!({"detail": "request body too large (limit 2048 bytes)"}));
}

async fn unknown_runs_are_404(db: &Db) {
    let app = spawn_app(db, &[]).await;
    for path in [
        "/v1/runs/run_000000000000",
        "/v1/runs/not-a-run",
        "/v1/runs/run_000000000000/artifacts",
    ] {
        let (status, body) = app.get_json(path).await;
        assert_eq!((status, body), (404, json!({"detail": "run not found"})), "{path}");
    }
    let response = app.post("/v1/runs/run_000000000000/cancel").send().await.unwrap();
    assert_eq!(response.status(), 404);
    let (status, body) = app.get_json("/v1/nothing/here").await;
    assert_eq!((status, body), (404, json!({"detail": "not found"})));
    let response = app
        .http
        .delete(app.url("/v1/runs"))
        .header("x-api-key", API_KEY)
        .sent()
        .await;
    assert_eq!(response.status(), 405);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": "method not allowed"})
    );
}

async fn cancelling_ends_a_run_once(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let (_, started) = app
        .start_run(json!({"project": "aismr", "input": {"object": "soap"}}))
        .await;
    let run_id = started["runId"].as_str().unwrap();
    let path = format!("/v1/runs/{run_id}/cancel");

    let response = app
        .post(&path)
        .json(&json!({"reason": "wrong object", "actor": "ops"}))
        .sent()
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"runId": run_id, "status": "cancelled"})
    );

    let response = app.post(&path).send().await.unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": "run is already cancelled"})
    );

    let (_, artifacts) = app.get_json(&format!("/v1/runs/{run_id}/artifacts")).await;
    let artifacts = artifacts["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 1, "the second cancel recorded nothing");
    assert_eq!(artifacts[0]["kind"], "run.cancelled");
    assert_eq!(artifacts[0]["data"]["reason"], "wrong object");
    assert_eq!(artifacts[0]["data"]["actor"], "ops");
    let (_, run) = app.get_json(&format!("/v1/runs/{run_id}")).await;
    assert_eq!(run["status"], "cancelled");
}

async fn workflow_approval_holds_the_run_with_its_proposal(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let (status, started) = app
        .start_run(json!({"project": "aismr", "input": {"object": "candles", "modifiers": ["glass"]}, "options": {"requireWorkflowApproval": true}}))
        .await;
    assert_eq!(status, 201);
    assert_eq!(started["status"], "pending_workflow");
    let (_, run) = app
        .get_json(&format!("/v1/runs/{}", started["runId"].as_str().unwrap()))
        .await;
    assert_eq!(
        run["payload"]["metadata"]["workflow_proposal"],
        json!({
            "project": "aismr",
            "pipeline": ["iggy", "riley", "alex", "quinn"],
            "gates": ["ideate", "prepublish"],
            "input": {"object": "candles", "modifiers": ["glass"]}
        })
    );
    assert!(
        app.orchestrator.starts().is_empty(),
        "nothing starts before the workflow gate"
    );
}

async fn runs_are_listed_newest_first_with_filters_and_cursors(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let mut ids = Vec::new();
    for project in ["aismr", "test_video_gen", "aismr", "aismr", "test_video_gen"] {
        let (_, started) = app
            .start_run(json!({"project": project, "input": {"topic": "t"}}))
            .await;
        ids.push(started["runId"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut path = "/v1/runs?limit=2".to_string();
    loop {
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, 200);
        seen.extend(
            page["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["runId"].as_str().unwrap().to_string()),
        );
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/v1/runs?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "every run once, newest first");

    let (_, page) = app.get_json("/v1/runs?project=test_video_gen").await;
    assert_eq!(page["runs"].as_array().unwrap().len(), 2);
    let (_, page) = app.get_json("/v1/runs?status=pending&project=aismr").await;
    assert_eq!(page["runs"].as_array().unwrap().len(), 3);
    assert_eq!(page["nextCursor"], Value::Null);

    for (query, field) in [
        ("status=done", "status"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("cursor=abc", "cursor"),
    ] {
        let (status, body) = app.get_json(&format!("/v1/runs?{query}")).await;
        assert_eq!(status, 422, "{query}");
        assert_eq!(body["detail"][0]["loc"], json!(["query", field]), "{query}");
    }
}

async fn run_starts_are_rate_limited_per_client(db: &Db) {
    let app = spawn_app(db, &[("RATE_LIMIT_PER_MINUTE", "6"), ("RATE_LIMIT_BURST", "2")]).await;
    let body = json!({"project": "aismr", "input": {"topic": "t"}});
    for _ in 0..2 {
        assert_eq!(app.start_run(body.clone()).await.0, 201);
    }
    let response = app.post("/v1/runs/start").json(&body).send().await.unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    assert!(
        response.json::<Value>().await.unwrap()["detail"]
            .as_str()
            .unwrap()
            .contains("too many requests")
    );
    // Reads are not limited.
    assert_eq!(app.get_json("/v1/runs").await.0, 200);
}

async fn metrics_label_requests_by_route_template_and_run(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let (_, started) = app
        .start_run(json!({"project": "aismr", "input": {"topic": "t"}}))
        .await;
    let run_id = started["runId"].as_str().unwrap();
    app.get_json(&format!("/v1/runs/{run_id}")).await;
    let text = app.http.get(app.url("/metrics")).text_answer().await;
    let line = text
        .lines()
        .find(|l| l.starts_with("http_requests_total{") && l.contains(&format!("runId=\"{run_id}\"")))
        .unwrap_or_else(|| panic!("no series for the run in:\n{text}"));
    assert!(line.contains("route=\"/v1/runs/{runId}\""), "{line}");
    assert!(
        line.contains("service=\"api\"") && line.contains("status=\"200\"") && line.contains("method=\"GET\""),
        "{line}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "histogram exported"
    );
    assert!(
        !text.contains(&format!("route=\"/v1/runs/{run_id}\"")),
        "raw paths never become labels"
    );
}

async fn readiness_reports_which_dependency_failed(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let (status, body) = app.get_json("/ready").await;
    assert_eq!(
        (status, &body["checks"]),
        (200, &json!({"database": "ok", "orchestrator": "ok"}))
    );
    app.orchestrator.answer(503);
    let (status, body) = app.get_json("/ready").await;
    assert_eq!(
        (status, &body["checks"]),
        (503, &json!({"database": "ok", "orchestrator": "failed"}))
    );
}

conformance_tests!(
    the_runbook_check_reports_the_provider_mode,
    projects_are_listed_with_their_gates,
    requests_without_a_valid_key_are_refused_with_a_request_id,
    a_started_run_reads_back_in_the_documented_shape,
    a_run_started_while_the_orchestrator_is_down_is_delivered_later,
    bad_run_requests_get_clear_422s_and_create_nothing,
    oversized_bodies_get_a_json_413,
    unknown_runs_are_404,
    cancelling_ends_a_run_once,
    workflow_approval_holds_the_run_with_its_proposal,
    runs_are_listed_newest_first_with_filters_and_cursors,
    run_starts_are_rate_limited_per_client,
    metrics_label_requests_by_route_template_and_run,
    readiness_reports_which_dependency_failed,
);

mod webhooks_and_events {
    use std::time::Duration;

    use chrono::Utc;
    use myloware_core::signing;
    use myloware_db::Db;
    use myloware_testkit::JsonAnswer;
    use myloware_testkit::conformance_tests;
    use serde_json::{Value, json};

    use super::common::{TestApp, eventually, spawn_app};

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
        myloware_testkit::status_and_json(response).await
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
                let response = app
                    .internal_post("/v1/internal/events", &json!({"events": events}))
                    .await;
                assert_eq!(response.status(), 200);
                let body: Value = response.json().await.unwrap();
                body["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["status"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
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
            .sent()
            .await;
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
        a_verified_callback_for_an_unknown_run_is_dead_lettered,
        a_hundred_identical_callbacks_at_once_are_processed_once,
        stale_and_replayed_signatures_are_refused,
        a_signed_kieai_callback_is_relayed_once,
        concurrent_callbacks_of_a_run_send_each_signal_once,
        forged_callbacks_are_refused_and_consume_nothing,
        events_apply_once_and_in_order,
    );
}
