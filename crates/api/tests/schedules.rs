//! Schedules over real HTTP, and their firings: the real API (its firing
//! loop ticking every 20 ms) against a fake orchestrator that counts the
//! starts it accepts, on SQLite and (with `TEST_DATABASE_URL`) Postgres.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use common::{API_KEY, LIVE_SECRETS, TestApp, eventually, spawn_app};
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use serde_json::{Value, json};

const TICK: (&str, &str) = ("SCHEDULE_TICK_MS", "50");
const VIEWER: &str = "viewer-key-for-schedule-tests";
const WAIT: Duration = Duration::from_secs(15);

/// A yearly schedule (it never fires during a test unless made due).
fn yearly(input: Value) -> Value {
    json!({"project": "test_video_gen", "cron": "0 0 1 1 *", "timezone": "Europe/Paris", "input": input})
}

async fn create(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app.post("/v1/schedules").json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn created(app: &TestApp, body: Value) -> Value {
    let (status, schedule) = create(app, body).await;
    assert_eq!(status, 201, "{schedule}");
    schedule
}

async fn read(app: &TestApp, id: &str) -> Value {
    let (status, schedule) = app.get_json(&format!("/v1/schedules/{id}")).await;
    assert_eq!(status, 200, "{schedule}");
    schedule
}

async fn act(app: &TestApp, id: &str, action: &str) -> Value {
    let response = app.post(&format!("/v1/schedules/{id}/{action}")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Makes the schedule due at `at` through the store (as if its time had
/// come while the test waited): paused, then resumed at `at`.
async fn due_at(app: &TestApp, id: &str, at: DateTime<Utc>) {
    let store = &app.state.store;
    assert!(store.pause_schedule(id).await.unwrap());
    assert!(store.resume_schedule(id, Some(at)).await.unwrap());
}

/// Waits until the schedule has recorded `n` firings; its view.
async fn firings(app: &TestApp, id: &str, n: usize) -> Value {
    eventually(WAIT, &format!("{n} firings of {id}"), || async {
        let schedule = read(app, id).await;
        (schedule["firings"].as_array().unwrap().len() >= n).then_some(schedule)
    })
    .await
}

/// The runs recorded for schedule `id`, oldest first.
async fn runs_of(db: &Db, id: &str) -> Vec<Value> {
    let store = myloware_api::store::open(db);
    let runs = store
        .list_runs(&myloware_api::store::RunQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut runs: Vec<Value> = runs
        .into_iter()
        .filter(|run| run.payload["metadata"]["schedule"]["id"] == id)
        .map(|run| json!({"id": run.id, "payload": run.payload, "status": run.status.as_str()}))
        .collect();
    runs.reverse();
    runs
}

async fn schedule_rows(db: &Db) -> (i64, i64) {
    let sql = "SELECT (SELECT COUNT(*) FROM schedules), (SELECT COUNT(*) FROM schedule_firings)";
    match db {
        Db::Sqlite(pool) => sqlx::query_as(sql).fetch_one(pool).await.unwrap(),
        Db::Postgres(pool) => sqlx::query_as(sql).fetch_one(pool).await.unwrap(),
    }
}

async fn schedules_are_created_listed_paused_resumed_and_deleted(db: &Db) {
    let keys = format!("viewer:viewer:{VIEWER}");
    let app = spawn_app(db, &[("API_KEYS", &keys)]).await;
    let before = Utc::now();
    let schedule = created(&app, yearly(json!({"topic": "new year"}))).await;
    let id = schedule["id"].as_str().unwrap().to_string();
    assert!(myloware_core::ids::is_schedule_id(&id), "{id}");
    assert_eq!(schedule["status"], "active");
    assert_eq!(schedule["inputs"], json!([{"topic": "new year"}]));
    assert_eq!(schedule["firings"], json!([]));
    assert_eq!(schedule["createdBy"].as_str().unwrap().split(':').next(), Some("key"));
    // Midnight of January 1st in Paris: 23:00 UTC the day before.
    let next: DateTime<Utc> = schedule["nextFireAt"].as_str().unwrap().parse().unwrap();
    assert!(next > before, "{next}");
    assert_eq!(next.format("%m-%d %H:%M").to_string(), "12-31 23:00");

    // Listed (newest first, paged) and read by any key, changed only with Operate.
    let other = created(
        &app,
        json!({"project": "aismr", "cron": "30 8 * * 1-5", "timezone": "UTC",
               "inputs": [{"object": "soap"}, {"object": "sand"}], "options": {"user_id": "u-1"}}),
    )
    .await;
    let viewer = |request: reqwest::RequestBuilder| request.header("x-api-key", VIEWER);
    let list: Value = viewer(app.http.get(app.url("/v1/schedules?limit=1")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["schedules"].as_array().unwrap().len(), 1);
    assert_eq!(list["schedules"][0]["id"], other["id"]);
    let cursor = list["nextCursor"].as_str().unwrap();
    let (_, page) = app.get_json(&format!("/v1/schedules?limit=1&cursor={cursor}")).await;
    assert_eq!(page["schedules"][0]["id"], id.as_str());
    assert_eq!(page["nextCursor"], Value::Null);
    let (_, aismr) = app.get_json("/v1/schedules?project=aismr").await;
    assert_eq!(aismr["schedules"].as_array().unwrap().len(), 1);
    let refused = viewer(app.http.post(app.url("/v1/schedules")))
        .json(&yearly(json!({"topic": "x"})))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let refused = viewer(app.http.post(app.url(&format!("/v1/schedules/{id}/pause"))))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let anonymous = app.http.get(app.url("/v1/schedules")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // Pause (twice: nothing changes the second time), then resume.
    let paused = act(&app, &id, "pause").await;
    assert_eq!(
        (&paused["status"], &paused["nextFireAt"]),
        (&json!("paused"), &Value::Null)
    );
    assert_eq!(act(&app, &id, "pause").await["status"], "paused");
    let (_, paused_only) = app.get_json("/v1/schedules?status=paused").await;
    assert_eq!(paused_only["schedules"].as_array().unwrap().len(), 1);
    let resumed = act(&app, &id, "resume").await;
    assert_eq!(resumed["status"], "active");
    assert_eq!(resumed["nextFireAt"], schedule["nextFireAt"]);
    assert_eq!(act(&app, &id, "resume").await["nextFireAt"], schedule["nextFireAt"]);

    // Deleted: gone, and a second delete is a 404.
    let delete = || {
        app.http
            .delete(app.url(&format!("/v1/schedules/{id}")))
            .header("x-api-key", API_KEY)
    };
    assert_eq!(delete().send().await.unwrap().status(), 204);
    assert_eq!(delete().send().await.unwrap().status(), 404);
    let (status, body) = app.get_json(&format!("/v1/schedules/{id}")).await;
    assert_eq!((status, body), (404, json!({"detail": "schedule not found"})));
    for path in ["/v1/schedules/sch_000000000000", "/v1/schedules/nope"] {
        assert_eq!(app.get_json(path).await.0, 404, "{path}");
        let response = app.post(&format!("{path}/resume")).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    let (status, body) = app.get_json("/v1/schedules?status=sleeping").await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["query", "status"]));
    assert_eq!(schedule_rows(db).await, (1, 0));
}

async fn bad_schedules_are_refused_naming_the_field_and_nothing_is_stored(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let base = yearly(json!({"topic": "candles"}));
    let with = |change: Value| {
        let mut body = base.clone();
        for (field, value) in change.as_object().unwrap() {
            match value {
                Value::Null => {
                    body.as_object_mut().unwrap().remove(field);
                }
                value => body[field] = value.clone(),
            }
        }
        body
    };
    let cases = [
        (with(json!({"project": "nope"})), vec!["body", "project"]),
        (with(json!({"project": "general"})), vec!["body", "project"]),
        (with(json!({"cron": "61 * * * *"})), vec!["body", "cron"]),
        (with(json!({"cron": "* * * *"})), vec!["body", "cron"]),
        (with(json!({"cron": "0 0 30 2 *"})), vec!["body", "cron"]),
        (with(json!({"timezone": "Mars/Olympus"})), vec!["body", "timezone"]),
        (with(json!({"inputs": [{"topic": "b"}]})), vec!["body", "inputs"]),
        (with(json!({"input": null})), vec!["body", "input"]),
        (with(json!({"input": {"topic": "  "}})), vec!["body", "input"]),
        (
            with(json!({"input": null, "inputs": [{"topic": "a"}, {"topic": "x".repeat(4001)}]})),
            vec!["body", "inputs", "1", "topic"],
        ),
        (with(json!({"input": null, "inputs": []})), vec!["body", "inputs"]),
        (
            with(json!({"options": {"skip": ["riley"]}})),
            vec!["body", "options", "skip"],
        ),
    ];
    for (body, loc) in cases {
        let (status, answer) = create(&app, body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
        let locs: Vec<&Value> = answer["detail"].as_array().unwrap().iter().map(|e| &e["loc"]).collect();
        assert!(locs.contains(&&json!(loc)), "{body}: {answer}");
    }
    // Every field at fault at once.
    let (status, answer) = create(
        &app,
        json!({"project": "nope", "cron": "x", "timezone": "y", "input": {"topic": ""}}),
    )
    .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = answer["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loc"][1].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["project", "cron", "input"], "{answer}");
    // Unknown fields and wrong types: the body's 422.
    for body in [with(json!({"when": "daily"})), with(json!({"cron": 5}))] {
        assert_eq!(create(&app, body).await.0, 422);
    }
    assert_eq!(schedule_rows(db).await, (0, 0));
}

async fn a_due_schedule_fires_exactly_once(db: &Db) {
    let app = spawn_app(db, &[TICK]).await;
    let schedule = created(
        &app,
        json!({"project": "test_video_gen", "cron": "0 * * * *", "timezone": "UTC",
               "input": {"topic": "hourly"}, "options": {"user_id": "u-sched"}}),
    )
    .await;
    let id = schedule["id"].as_str().unwrap();
    // Due three hours ago: the API was down since. It fires once, for the
    // earliest time, and goes on from the next hour.
    // (Not in the last seconds of an hour: the count would take one more.)
    let soon = Utc::now() + chrono::Duration::seconds(10);
    if soon.duration_trunc(chrono::Duration::hours(1)).unwrap() > Utc::now() {
        tokio::time::sleep(Duration::from_secs(11)).await;
    }
    let hour = Utc::now().duration_trunc(chrono::Duration::hours(1)).unwrap();
    let due = hour - chrono::Duration::hours(3);
    due_at(&app, id, due).await;
    let fired = firings(&app, id, 1).await;
    let firing = &fired["firings"][0];
    assert_eq!(firing["outcome"], "started", "{fired}");
    assert_eq!(
        firing["fireAt"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap(),
        due
    );
    assert_eq!(firing["skipped"], 3, "{fired}");
    let next: DateTime<Utc> = fired["nextFireAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(next, hour + chrono::Duration::hours(1));
    // The run: a start like any, tracing back to its schedule and firing.
    let run_id = firing["runId"].as_str().unwrap();
    let (_, run) = app.get_json(&format!("/v1/runs/{run_id}")).await;
    assert_eq!(run["payload"]["metadata"]["schedule"]["id"], id);
    assert_eq!(run["payload"]["input"], json!({"topic": "hourly"}));
    assert_eq!(run["payload"]["user_id"], "u-sched");
    eventually(WAIT, "the start delivered", || async {
        (app.orchestrator.starts().len() == 1).then_some(())
    })
    .await;
    assert_eq!(app.orchestrator.starts()[0]["runId"], run_id);
    // Many ticks later: still one firing, one run, one start.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(read(&app, id).await["firings"].as_array().unwrap().len(), 1);
    assert_eq!(runs_of(db, id).await.len(), 1);
    assert_eq!(app.orchestrator.starts().len(), 1);
}

async fn inputs_rotate_and_pause_stops_firing_until_resumed(db: &Db) {
    let app = spawn_app(db, &[TICK]).await;
    let inputs = json!([{"topic": "a"}, {"topic": "b"}]);
    let schedule = created(
        &app,
        json!({"project": "test_video_gen", "cron": "* * * * * *", "timezone": "UTC", "inputs": inputs}),
    )
    .await;
    let id = schedule["id"].as_str().unwrap();
    firings(&app, id, 3).await;
    let paused = act(&app, id, "pause").await;
    let fired = paused["firings"].as_array().unwrap().len();
    let topics: Vec<Value> = runs_of(db, id)
        .await
        .iter()
        .map(|run| run["payload"]["input"]["topic"].clone())
        .collect();
    assert_eq!(topics.len(), fired);
    for (i, topic) in topics.iter().enumerate() {
        assert_eq!(topic, &inputs[i % 2]["topic"], "{topics:?}");
    }
    // Every firing second once, none twice.
    let times: HashSet<String> = paused["firings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fireAt"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(times.len(), fired);
    // Paused: no firing for over two seconds.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(read(&app, id).await["firings"].as_array().unwrap().len(), fired);
    // Resumed: firing again, the rotation going on where it stopped.
    let resumed = act(&app, id, "resume").await;
    let next: DateTime<Utc> = resumed["nextFireAt"].as_str().unwrap().parse().unwrap();
    assert!(next > Utc::now() - chrono::Duration::seconds(1), "{next}");
    firings(&app, id, fired + 1).await;
    act(&app, id, "pause").await;
    let runs = runs_of(db, id).await;
    assert_eq!(runs[fired]["payload"]["input"]["topic"], inputs[fired % 2]["topic"]);
}

async fn a_restart_neither_loses_nor_repeats_a_firing(db: &Db) {
    // The orchestrator is down when the schedule fires: the run is kept
    // with its start, undelivered.
    let first = spawn_app(db, &[TICK]).await;
    first.orchestrator.answer(503);
    let schedule = created(&first, yearly(json!({"topic": "restart"}))).await;
    let id = schedule["id"].as_str().unwrap().to_string();
    due_at(&first, &id, Utc::now() - chrono::Duration::minutes(5)).await;
    firings(&first, &id, 1).await;
    drop(first);
    // Another API process on the same database: the start is delivered
    // once, and the firing is not made again.
    let second = spawn_app(db, &[TICK]).await;
    eventually(WAIT, "the start delivered after the restart", || async {
        (second.orchestrator.starts().len() == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let runs = runs_of(db, &id).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(second.orchestrator.starts().len(), 1);
    assert_eq!(second.orchestrator.starts()[0]["runId"], runs[0]["id"]);
    assert_eq!(read(&second, &id).await["firings"].as_array().unwrap().len(), 1);
}

async fn two_apis_on_one_database_start_each_firing_once(db: &Db) {
    let tick = ("SCHEDULE_TICK_MS", "50");
    let (a, b) = (spawn_app(db, &[tick]).await, spawn_app(db, &[tick]).await);
    let mut ids = Vec::new();
    for topic in ["one", "two", "three", "four", "five", "six"] {
        let body = json!({"project": "test_video_gen", "cron": "* * * * * *", "timezone": "UTC",
                          "input": {"topic": topic}});
        ids.push(created(&a, body).await["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        firings(&b, id, 4).await;
    }
    for id in &ids {
        act(&a, id, "pause").await;
    }
    let (mut recorded, mut runs) = (0, HashSet::new());
    for id in &ids {
        let firings = read(&a, id).await["firings"].as_array().unwrap().clone();
        let started = runs_of(db, id).await;
        assert_eq!(started.len(), firings.len(), "{id}: a run per firing");
        let times: HashSet<&Value> = started
            .iter()
            .map(|run| &run["payload"]["metadata"]["schedule"]["fireAt"])
            .collect();
        assert_eq!(times.len(), started.len(), "{id}: a firing time started twice");
        recorded += firings.len();
        runs.extend(started.iter().map(|run| run["id"].as_str().unwrap().to_string()));
    }
    // Every run reached the orchestrator. (Both APIs' reconcilers may
    // deliver one start: deliveries are at least once, and the
    // orchestrator takes a run id once; the run itself exists once.)
    let delivered = || {
        [a.orchestrator.starts(), b.orchestrator.starts()]
            .concat()
            .iter()
            .map(|start| start["runId"].as_str().unwrap().to_string())
            .collect::<HashSet<String>>()
    };
    eventually(WAIT, "every start delivered", || async {
        (delivered() == runs).then_some(())
    })
    .await;
    assert_eq!(runs.len(), recorded);
    assert_eq!(schedule_rows(db).await, (ids.len() as i64, recorded as i64));
}

/// The store's side, without timing luck: two claims of one firing at
/// once, and a firing time claimed again after its schedule was set back.
async fn a_firing_is_claimed_once_and_its_time_never_starts_two_runs(db: &Db) {
    use myloware_api::store::{Fired, FiringClaim, FiringStart, NewRun};
    // No firing loop: the test claims by hand (the API is only for creating).
    let app = spawn_app(db, &[("SCHEDULE_TICK_MS", "60000")]).await;
    let schedule = created(&app, yearly(json!({"topic": "claimed"}))).await;
    let id = schedule["id"].as_str().unwrap();
    let due = Utc::now().duration_trunc(chrono::Duration::seconds(1)).unwrap() - chrono::Duration::minutes(1);
    due_at(&app, id, due).await;
    let store = &app.state.store;
    let run = |n: u32| NewRun {
        gate: None,
        id: myloware_core::ids::new_run_id(),
        project: "test_video_gen".into(),
        status: myloware_core::RunStatus::Pending,
        user_id: None,
        payload: json!({"metadata": {"schedule": {"id": id, "n": n}}}),
        result: json!({}),
        created_at: myloware_api::store::now(),
        estimated_usd_micros: None,
        max_active: None,
        notice: None,
    };
    let claim = FiringClaim {
        schedule_id: id.to_string(),
        fire_at: due,
        next_fire_at: Some(due + chrono::Duration::days(365)),
        skipped: 0,
        refusal_notice: None,
    };
    let (one, two) = (run(1), run(2));
    let start = |run| FiringStart::Run {
        run,
        command: None,
        next_input: 0,
    };
    let (first, second) = tokio::join!(
        store.fire_schedule(&claim, start(&one)),
        store.fire_schedule(&claim, start(&two))
    );
    let outcomes = [first.unwrap(), second.unwrap()];
    assert_eq!(
        outcomes.iter().filter(|o| matches!(o, Fired::Started(_))).count(),
        1,
        "{outcomes:?}"
    );
    assert!(outcomes.contains(&Fired::Lost), "{outcomes:?}");
    // Set back to the same firing time (as a resume could): the firing
    // time's record refuses a second run, and nothing is written.
    due_at(&app, id, due).await;
    let three = run(3);
    assert_eq!(store.fire_schedule(&claim, start(&three)).await.unwrap(), Fired::Lost);
    assert_eq!(runs_of(db, id).await.len(), 1);
    assert_eq!(schedule_rows(db).await, (1, 1));
    // A paused schedule is not claimed.
    assert!(store.pause_schedule(id).await.unwrap());
    let later = FiringClaim {
        fire_at: due + chrono::Duration::days(365),
        ..claim
    };
    let four = run(4);
    assert_eq!(store.fire_schedule(&later, start(&four)).await.unwrap(), Fired::Lost);
    assert_eq!(runs_of(db, id).await.len(), 1);
}

async fn a_firing_over_a_budget_or_the_run_cap_is_recorded_as_refused(db: &Db) {
    let mut vars = LIVE_SECRETS.to_vec();
    vars.extend([TICK, ("SPEND_LIMIT_DAILY_USD", "0.01")]);
    let app = spawn_app(db, &vars).await;
    let schedule = created(&app, yearly(json!({"topic": "too dear"}))).await;
    let id = schedule["id"].as_str().unwrap();
    let due = Utc::now() - chrono::Duration::minutes(1);
    due_at(&app, id, due).await;
    let fired = firings(&app, id, 1).await;
    let firing = &fired["firings"][0];
    assert_eq!(firing["outcome"], "refused", "{fired}");
    assert_eq!(firing["runId"], Value::Null);
    let reason = firing["reason"].as_str().unwrap();
    assert!(reason.contains("SPEND_LIMIT_DAILY_USD"), "{reason}");
    // Not tried again: it goes on to its next time.
    assert_eq!(fired["nextFireAt"], schedule["nextFireAt"]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(schedule_rows(db).await, (1, 1));
    assert!(runs_of(db, id).await.is_empty());
    assert!(app.orchestrator.starts().is_empty());
    // The operators are told (the schedule has no owner), once.
    let told = app.state.store.chat_messages("mw:operators", 10).await.unwrap();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0]
            .text
            .starts_with(&format!("Schedule {id} (test_video_gen) did not start its run of "))
    );
    assert!(told[0].text.ends_with(reason), "{}", told[0].text);
    drop(app);

    // MAX_ACTIVE_RUNS: one run is active, the firing is refused with the cap.
    let app = spawn_app(db, &[TICK, ("MAX_ACTIVE_RUNS", "1")]).await;
    let (status, _) = app
        .start_run(json!({"project": "test_video_gen", "input": {"topic": "busy"}}))
        .await;
    assert_eq!(status, 201);
    let mut body = yearly(json!({"topic": "one too many"}));
    body["options"] = json!({"user_id": "u-owner"});
    let capped = created(&app, body).await;
    let capped_id = capped["id"].as_str().unwrap();
    due_at(&app, capped_id, due).await;
    let fired = firings(&app, capped_id, 1).await;
    let firing = &fired["firings"][0];
    assert_eq!(firing["outcome"], "refused", "{fired}");
    assert!(
        firing["reason"].as_str().unwrap().contains("MAX_ACTIVE_RUNS"),
        "{fired}"
    );
    assert!(runs_of(db, capped_id).await.is_empty());
    // Its owner is told, with the reason.
    let told = app.state.store.chat_messages("u-owner", 10).await.unwrap();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].text.contains(capped_id) && told[0].text.contains("MAX_ACTIVE_RUNS"),
        "{told:?}"
    );
}

// Multi-thread: two APIs (and their loops) serve while the test waits.
conformance_tests!(
    multi_thread: schedules_are_created_listed_paused_resumed_and_deleted,
    bad_schedules_are_refused_naming_the_field_and_nothing_is_stored,
    a_due_schedule_fires_exactly_once,
    inputs_rotate_and_pause_stops_firing_until_resumed,
    a_restart_neither_loses_nor_repeats_a_firing,
    two_apis_on_one_database_start_each_firing_once,
    a_firing_is_claimed_once_and_its_time_never_starts_two_runs,
    a_firing_over_a_budget_or_the_run_cap_is_recorded_as_refused,
);
