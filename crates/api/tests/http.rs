//! The API over real HTTP, on SQLite and (with `TEST_DATABASE_URL`) Postgres.

mod common;

use myloware_testkit::JsonAnswer;
use std::time::Duration;

use common::{API_KEY, LIVE_SECRETS, TestApp, eventually, spawn_app};
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use serde_json::{Value, json};

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

/// The id of the run `body` starts.
async fn started_run(app: &TestApp, body: Value) -> String {
    let (_, started) = app.start_run(body).await;
    started["runId"].as_str().expect("a started run").to_string()
}

/// One delivery of the outbox holding the events of many runs, interleaved:
/// each run's events apply in seq order, a repeated seq is a duplicate, a gap waits (out of order), and an
/// unknown run's events are answered as such; every answer in the order of
/// the batch.
async fn one_delivery_applies_many_runs_each_in_order(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let mut runs = Vec::new();
    for _ in 0..12 {
        runs.push(started_run(&app, json!({"project": "test_video_gen", "input": {"topic": "batch"}})).await);
    }
    runs.push("run_unknown000000000000".to_string());
    let event = |run: &str, seq: i64, kind: &str, data: Value| {
        json!({"eventId": format!("{run}-{seq}-{kind}"), "runId": run, "seq": seq, "type": kind,
               "at": "2026-01-05T10:00:00Z", "data": data})
    };
    let mut events = Vec::new();
    let mut expected = Vec::new();
    for seq in 1..=2 {
        for run in &runs {
            let (kind, data) = match seq {
                1 => ("execution.started", json!({})),
                _ => ("persona.started", json!({"persona": "iggy"})),
            };
            events.push(event(run, seq, kind, data));
            expected.push(if run.starts_with("run_unknown") {
                "unknown_run"
            } else {
                "applied"
            });
        }
    }
    events.push(event(&runs[0], 1, "status.changed", json!({"status": "running"})));
    expected.push("duplicate");
    events.push(event(&runs[1], 4, "status.changed", json!({"status": "running"})));
    expected.push("out_of_order");

    let (status, statuses) = app.deliver_events(&events).await;
    assert_eq!(status, 200);
    assert_eq!(statuses, expected);
    for run in &runs[..12] {
        let (status, body) = app.get_json(&format!("/v1/runs/{run}")).await;
        assert_eq!(status, 200);
        assert_eq!(
            (body["status"].as_str(), body["currentPersona"].as_str()),
            (Some("running"), Some("iggy")),
            "{run}"
        );
    }
}

/// A run whose events cannot be written (here: an event id another run's
/// event already has) fails the delivery's shared transaction; the other
/// runs then apply one by one, and its events are answered "send again".
/// A delivery where nothing can be written fails as a whole.
async fn a_run_that_cannot_be_written_holds_back_no_other(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(started_run(&app, json!({"project": "test_video_gen", "input": {"topic": "batch"}})).await);
    }
    let event = |id: &str, run: &str, seq: i64, kind: &str| {
        json!({"eventId": id, "runId": run, "seq": seq, "type": kind, "at": "2026-01-05T10:00:00Z",
               "data": {"persona": "iggy"}})
    };
    let deliver = |events: Vec<Value>| {
        let app = &app;
        async move { app.deliver_events(&events).await }
    };
    assert_eq!(
        deliver(vec![event("taken", &runs[0], 1, "execution.started")]).await,
        (200, vec!["applied".to_string()])
    );
    let (status, answers) = deliver(vec![
        event("a-2", &runs[0], 2, "persona.started"),
        event("taken", &runs[1], 1, "execution.started"),
        event("c-1", &runs[2], 1, "execution.started"),
    ])
    .await;
    assert_eq!(
        (status, answers),
        (200, vec!["applied".into(), "out_of_order".into(), "applied".into()])
    );
    let applied = |run: String| {
        let store = app.state.store.clone();
        async move {
            let events = store.list_events(&run).await.unwrap();
            events.into_iter().map(|e| e.event_id).collect::<Vec<String>>()
        }
    };
    for (run, status, events) in [
        (&runs[0], "running", vec!["taken", "a-2"]),
        (&runs[1], "pending", vec![]),
        (&runs[2], "running", vec!["c-1"]),
    ] {
        let (_, body) = app.get_json(&format!("/v1/runs/{run}")).await;
        assert_eq!(body["status"], status, "{run}");
        assert_eq!(applied(run.clone()).await, events, "{run}");
    }
    // Alone, it fails the delivery; sent again with its own id, it applies.
    let (status, _) = deliver(vec![event("taken", &runs[1], 1, "execution.started")]).await;
    assert_eq!(status, 500);
    let (status, answers) = deliver(vec![event("b-1", &runs[1], 1, "execution.started")]).await;
    assert_eq!((status, answers), (200, vec!["applied".to_string()]));
    assert_eq!(applied(runs[1].clone()).await, ["b-1"]);
}

/// The outbox sends a delivery again while the first is still being
/// applied (its request timed out): deliveries of the same events at once
/// apply each event once, in order, whichever commits first; every other
/// answer for it is "duplicate".
async fn the_same_delivery_sent_at_once_applies_each_event_once(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let mut runs = Vec::new();
    for _ in 0..16 {
        runs.push(started_run(&app, json!({"project": "test_video_gen", "input": {"topic": "again"}})).await);
    }
    let mut events = Vec::new();
    for seq in 1..=3 {
        for run in &runs {
            let (kind, data) = match seq {
                1 => ("execution.started", json!({})),
                2 => ("persona.started", json!({"persona": "iggy"})),
                _ => (
                    "persona.completed",
                    json!({"persona": "iggy", "output": {"ideas": seq}}),
                ),
            };
            events.push(
                json!({"eventId": format!("{run}-{seq}"), "runId": run, "seq": seq, "type": kind,
                               "at": "2026-01-05T10:00:00Z", "data": data}),
            );
        }
    }
    let body = json!({"events": events});
    let answers = futures_util::future::join_all((0..4).map(|_| async {
        let response = app.internal_post("/v1/internal/events", &body).await;
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()
    }))
    .await;
    for (at, event) in events.iter().enumerate() {
        let statuses: Vec<&str> = answers
            .iter()
            .map(|answer| answer["results"][at]["status"].as_str().unwrap())
            .collect();
        let applied = statuses.iter().filter(|s| **s == "applied").count();
        let duplicates = statuses.iter().filter(|s| **s == "duplicate").count();
        assert_eq!((applied, duplicates), (1, 3), "{}: {statuses:?}", event["eventId"]);
    }
    for run in &runs {
        let applied = app.state.store.list_events(run).await.unwrap();
        let seqs: Vec<i64> = applied.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3], "{run}");
        let artifacts = app.state.store.list_artifacts(run).await.unwrap();
        assert_eq!(artifacts.len(), 1, "{run}: one persona.output");
        let (_, body) = app.get_json(&format!("/v1/runs/{run}")).await;
        assert_eq!(body["status"], "running", "{run}");
    }
}

async fn cancelling_ends_a_run_once(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let run_id = started_run(&app, json!({"project": "aismr", "input": {"object": "soap"}})).await;
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
        ids.push(started_run(&app, json!({"project": project, "input": {"topic": "t"}})).await);
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
    let run_id = started_run(&app, json!({"project": "aismr", "input": {"topic": "t"}})).await;
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
    one_delivery_applies_many_runs_each_in_order,
    a_run_that_cannot_be_written_holds_back_no_other,
    the_same_delivery_sent_at_once_applies_each_event_once,
    cancelling_ends_a_run_once,
    workflow_approval_holds_the_run_with_its_proposal,
    runs_are_listed_newest_first_with_filters_and_cursors,
    run_starts_are_rate_limited_per_client,
    metrics_label_requests_by_route_template_and_run,
    readiness_reports_which_dependency_failed,
);
