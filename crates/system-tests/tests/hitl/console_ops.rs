//! The console's schedules, costs and operations pages over real HTTP, as
//! a browser without script uses them (`myloware_testkit::console`): what
//! each role is offered and refused, what the forms change, and that text
//! from the store is escaped.

use std::time::Duration;

use myloware_api::store::{
    Channel, ChatMessage, DeadLetterKind, NewCommand, Push, Schedule, ScheduleQuery, ScheduleStatus, now,
};
use myloware_core::wire::{ExecutionCommand, SignalDelivery};
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::console::Console;
use myloware_testkit::system::{API_KEY, System, smoke, start};
use serde_json::json;

const QUICK: Duration = Duration::from_secs(30);
const VIEWER_KEYS: (&str, &str) = ("API_KEYS", "view:viewer:view-key-0123456789abcdef");
const VIEWER_KEY: &str = "view-key-0123456789abcdef";

async fn signed_in(system: &System, key: &str) -> Console {
    Console::sign_in(&system.api, key).await.expect("signed in")
}

fn schedule_form<'a>(project: &'a str, cron: &'a str, input: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("project", project),
        ("cron", cron),
        ("timezone", "Europe/Paris"),
        ("input", input),
    ]
}

async fn schedules(system: &System) -> Vec<Schedule> {
    let all = ScheduleQuery {
        limit: 100,
        ..ScheduleQuery::default()
    };
    system.api_state.store.list_schedules(&all).await.unwrap()
}

async fn only_schedule(system: &System) -> Schedule {
    let schedules = schedules(system).await;
    assert_eq!(schedules.len(), 1, "{schedules:?}");
    schedules.into_iter().next().unwrap()
}

/// A dead letter of `run_id` (a signal for a clip nobody asked for),
/// failing with `error`: its seq.
async fn dead_letter(system: &System, run_id: Option<&str>, error: &str) -> i64 {
    let signal = json!({"signalId": "kieai:task-console", "signal": {"type": "clip.reported", "taskId": "task-console", "index": 0}});
    system
        .api_state
        .store
        .add_dead_letter(DeadLetterKind::Signal, run_id, &signal, error)
        .await
        .unwrap()
}

/// A test_video_gen run, published (mock providers).
async fn published(system: &System) -> String {
    let run_id = system.start_run(smoke()).await;
    system.wait_status(&run_id, "published", QUICK).await;
    run_id
}

async fn an_operator_creates_pauses_resumes_and_deletes_a_schedule(db: &Db) {
    let system = start(db, &[]).await;
    let console = signed_in(&system, API_KEY).await;
    let page = console.get("/console/schedules").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("No schedules.") && page.body.contains(r#"action="/console/schedules""#));
    assert!(
        page.body.contains(r#"<option value="aismr">"#),
        "the runnable projects to choose from"
    );

    // A refused create keeps what was typed and names the field at fault.
    let refused = console
        .post(
            "/console/schedules",
            &schedule_form("aismr", "every day", r#"{"object": "candles"}"#),
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("cron: "), "{}", refused.body);
    assert!(
        refused.body.contains(r#"value="every day""#) && refused.body.contains("{&#34;object&#34;: &#34;candles&#34;}")
    );
    let refused = console
        .post("/console/schedules", &schedule_form("aismr", "0 9 * * *", "{}"))
        .await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.body.contains("input: at least one of prompt"),
        "{}",
        refused.body
    );
    assert!(schedules(&system).await.is_empty());

    let created = console
        .post(
            "/console/schedules",
            &schedule_form("aismr", "0 9 * * *", r#"{"object": "candles"}"#),
        )
        .await;
    assert_eq!(
        (created.status, created.location.as_deref()),
        (303, Some("/console/schedules"))
    );
    let schedule = only_schedule(&system).await;
    assert_eq!(
        (
            schedule.project.as_str(),
            schedule.cron.as_str(),
            schedule.timezone.as_str()
        ),
        ("aismr", "0 9 * * *", "Europe/Paris")
    );
    assert_eq!(schedule.inputs, [json!({"object": "candles"})]);
    assert!(schedule.created_by.starts_with("key:"), "{}", schedule.created_by);
    let id = schedule.id.clone();
    let page = console.get("/console/schedules").await.body;
    assert!(page.contains(&id) && page.contains("candles") && page.contains("Europe/Paris"));
    assert!(page.contains(&format!(r#"action="/console/schedules/{id}/pause""#)));
    assert!(!page.contains(&format!(r#"action="/console/schedules/{id}/resume""#)));

    let paused = console.post(&format!("/console/schedules/{id}/pause"), &[]).await;
    assert_eq!(
        (paused.status, paused.location.as_deref()),
        (303, Some("/console/schedules"))
    );
    let paused = only_schedule(&system).await;
    assert_eq!((paused.status, paused.next_fire_at), (ScheduleStatus::Paused, None));
    let page = console.get("/console/schedules").await.body;
    assert!(page.contains(&format!(r#"action="/console/schedules/{id}/resume""#)));

    let resumed = console.post(&format!("/console/schedules/{id}/resume"), &[]).await;
    assert_eq!(resumed.status, 303);
    let resumed = only_schedule(&system).await;
    assert_eq!(resumed.status, ScheduleStatus::Active);
    assert!(resumed.next_fire_at.is_some());

    let deleted = console.post(&format!("/console/schedules/{id}/delete"), &[]).await;
    assert_eq!(deleted.status, 303);
    assert!(schedules(&system).await.is_empty());
    let again = console.post(&format!("/console/schedules/{id}/delete"), &[]).await;
    assert_eq!(again.status, 404, "{}", again.body);
    assert!(again.body.contains("schedule not found"));
    system.stop_idle().await;
}

async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing(db: &Db) {
    let system = start(db, &[]).await;
    let console = signed_in(&system, API_KEY).await;
    let form = schedule_form("aismr", "0 9 * * *", r#"{"object": "candles"}"#);
    let refused = console.post_exactly("/console/schedules", &form).await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("CSRF"));
    let mut forged = form.clone();
    forged.push(("csrf", "0000"));
    assert_eq!(console.post_exactly("/console/schedules", &forged).await.status, 403);
    assert!(schedules(&system).await.is_empty());

    assert_eq!(console.post("/console/schedules", &form).await.status, 303);
    let id = only_schedule(&system).await.id;
    for action in ["pause", "delete"] {
        let refused = console
            .post_exactly(&format!("/console/schedules/{id}/{action}"), &[])
            .await;
        assert_eq!(refused.status, 403, "{action}");
    }
    assert_eq!(only_schedule(&system).await.status, ScheduleStatus::Active);

    let seq = dead_letter(&system, None, "refused").await;
    let refused = console.post_exactly(&format!("/console/dlq/{seq}/replay"), &[]).await;
    assert_eq!(refused.status, 403);
    assert_eq!(system.api_state.store.dead_letters(false, 10).await.unwrap().len(), 1);

    // Without a session at all: sent to sign in, or refused.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/console/schedules", "/console/costs", "/console/ops"] {
        let response = anonymous.get(format!("{}{path}", system.api)).send().await.unwrap();
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(response.headers()["location"], "/console/login");
    }
    let response = anonymous
        .post(format!("{}/console/schedules/{id}/delete", system.api))
        .form(&[("csrf", console.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(only_schedule(&system).await.status, ScheduleStatus::Active);
    system.stop_idle().await;
}

async fn a_viewer_is_offered_no_forms_and_refused_every_post(db: &Db) {
    let system = start(db, &[VIEWER_KEYS]).await;
    let operator = signed_in(&system, API_KEY).await;
    let form = schedule_form("aismr", "0 9 * * *", r#"{"object": "candles"}"#);
    assert_eq!(operator.post("/console/schedules", &form).await.status, 303);
    let id = only_schedule(&system).await.id;
    let seq = dead_letter(&system, None, "refused by the orchestrator").await;

    let viewer = signed_in(&system, VIEWER_KEY).await;
    let page = viewer.get("/console/schedules").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(&id) && page.body.contains("candles"),
        "the viewer reads the list"
    );
    assert!(
        !page.body.contains(r#"action="/console/schedules"#),
        "no form: {}",
        page.body
    );
    assert!(!page.body.contains("New schedule"));
    let page = viewer.get("/console/ops").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("refused by the orchestrator"),
        "the viewer reads the queue"
    );
    assert!(!page.body.contains("/replay"), "no replay button");
    assert!(!page.body.contains(r#"id="audit""#), "a viewer may not read the audit");
    assert_eq!(viewer.get("/console/costs").await.status, 200);

    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/console/schedules".into(), form.clone()),
        (format!("/console/schedules/{id}/pause"), vec![]),
        (format!("/console/schedules/{id}/resume"), vec![]),
        (format!("/console/schedules/{id}/delete"), vec![]),
        (format!("/console/dlq/{seq}/replay"), vec![]),
    ];
    for (path, fields) in &posts {
        let refused = viewer.post(path, fields).await;
        assert_eq!(refused.status, 403, "{path}");
        assert!(refused.body.contains("may not do this"), "{path}: {}", refused.body);
    }
    assert_eq!(only_schedule(&system).await.status, ScheduleStatus::Active);
    assert_eq!(system.api_state.store.dead_letters(false, 10).await.unwrap().len(), 1);

    // The operator (an admin) sees the forms and the audit.
    let page = operator.get("/console/ops").await.body;
    assert!(page.contains(&format!(r#"action="/console/dlq/{seq}/replay""#)));
    assert!(page.contains(r#"id="audit""#) && page.contains("sign_in"));
    system.stop_idle().await;
}

/// What the console writes for an amount (`views::usd`).
fn usd(amount: f64) -> String {
    let text = format!("{amount:.4}");
    format!("{} USD", text.trim_end_matches('0').trim_end_matches('.'))
}

async fn the_costs_page_shows_a_mock_runs_cost_in_a_chart_and_the_budgets(db: &Db) {
    let system = start(db, &[("SPEND_LIMIT_DAILY_USD", "5")]).await;
    published(&system).await;
    let report = system.get(&format!("{}/v1/costs", system.api)).await;
    let total = report["totalUsd"].as_f64().unwrap();
    assert!(
        total > 0.0,
        "a mock run records what its calls would have cost: {report}"
    );
    let console = signed_in(&system, API_KEY).await;
    let answer = console.get("/console/costs").await;
    assert_eq!(answer.status, 200);
    let page = answer.body;
    let svg = &page[page.find("<svg class=\"chart\"").expect("a chart")..];
    let svg = &svg[..svg.find("</svg>").unwrap()];
    assert_eq!(svg.matches(r#"<rect class="mock""#).count(), 1, "one day of mock spend");
    assert!(!svg.contains(r#"<rect class="live""#));
    assert_eq!(svg.matches("<g><title>").count(), 30, "a bar per day of the last 30");
    let today = chrono::Utc::now().date_naive().to_string();
    let amount = usd(total);
    assert!(svg.contains(&format!("{today}: {amount}")), "the bar's title: {svg}");
    assert!(!page.contains("<script>"), "no script draws it");

    let table = &page[page.find(r#"<table class="costs">"#).unwrap()..];
    assert!(table.contains(&format!(
        "<td>{today}</td><td>test_video_gen</td><td>mock</td><td>{amount}</td>"
    )));
    let budgets = &page[page.find(r#"<table class="budgets">"#).unwrap()..];
    assert!(
        budgets.contains("<td>all projects</td><td>today</td><td>5 USD</td><td>0 USD</td><td>5 USD</td>"),
        "mock spend does not count against a limit: {budgets}"
    );
    assert!(budgets.contains("<td>all projects</td><td>this month</td><td>no limit</td>"));
    assert!(budgets.contains("<td>test_video_gen</td><td>today</td><td>no limit</td>"));

    let refused = console.get("/console/costs?from=yesterday").await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("is not a day"));
    let one_day = console.get(&format!("/console/costs?from={today}&to={today}")).await;
    assert_eq!(one_day.status, 200);
    assert_eq!(one_day.body.matches("<g><title>").count(), 1, "one day asked");
    system.stop_idle().await;
}

async fn a_dead_letter_is_replayed_from_the_operations_page(db: &Db) {
    let system = start(db, &[]).await;
    let run_id = published(&system).await;
    let seq = dead_letter(&system, Some(&run_id), "the orchestrator refused it").await;
    let console = signed_in(&system, API_KEY).await;
    let page = console.get("/console/ops").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("the orchestrator refused it") && page.body.contains(&format!("/console/runs/{run_id}"))
    );
    assert!(page.body.contains("None waiting."), "no command owed");

    let replayed = console.post(&format!("/console/dlq/{seq}/replay"), &[]).await;
    assert_eq!(
        (replayed.status, replayed.location.as_deref()),
        (303, Some("/console/ops#dlq"))
    );
    let letter = system.api_state.store.get_dead_letter(seq).await.unwrap().unwrap();
    assert!(letter.resolved_at.is_some(), "the orchestrator took the signal again");
    let audit = system.api_state.store.list_audit(&run_id).await.unwrap();
    let replay = audit
        .iter()
        .find(|a| a.action == "replay")
        .expect("the replay is audited");
    assert!(replay.accepted && replay.actor.starts_with("key:") && replay.outcome == "resolved");
    let page = console.get("/console/ops").await.body;
    assert!(page.contains("None open."));
    assert!(page.contains("<td>replay</td>"), "the audit on the page");

    let again = console.post(&format!("/console/dlq/{seq}/replay"), &[]).await;
    assert_eq!(again.status, 409);
    assert!(again.body.contains("already replayed"));
    assert_eq!(console.post("/console/dlq/999999/replay", &[]).await.status, 404);
    assert_eq!(console.post("/console/dlq/nine/replay", &[]).await.status, 404);
    system.stop_idle().await;
}

async fn the_operations_page_shows_deliveries_still_owed(db: &Db) {
    let system = start(db, &[]).await;
    let run_id = published(&system).await;
    // A command the orchestrator cannot be reached for.
    system.switch.block(true);
    let delivery = SignalDelivery {
        signal_id: "console:owed".into(),
        signal: serde_json::from_value(json!({"type": "clip.reported", "taskId": "task-owed", "index": 0})).unwrap(),
        replay_of: None,
    };
    let command = NewCommand::new(&run_id, ExecutionCommand::Signal(delivery));
    system.api_state.store.enqueue_command(&command).await.unwrap();
    assert!(
        myloware_api::commands::deliver_pending(&system.api_state, &run_id)
            .await
            .is_err()
    );
    // A push to a webhook whose URL holds its secret.
    let message = ChatMessage {
        user_id: "console-ops".into(),
        role: "assistant".into(),
        text: "hello".into(),
        run_id: None,
        gate: None,
        link: None,
        created_at: now(),
        pushes: vec![Push {
            channel: Channel::Webhook,
            target: "http://127.0.0.1:9/hooks/secret-path-token".into(),
        }],
    };
    system.api_state.store.append_chat(&message).await.unwrap();

    let console = signed_in(&system, API_KEY).await;
    let answer = console.get("/console/ops").await;
    assert_eq!(answer.status, 200);
    let page = answer.body;
    let commands = &page[page.find(r#"id="commands""#).unwrap()..page.find(r#"id="pushes""#).unwrap()];
    assert!(
        commands.contains(&format!(r#"<a href="/console/runs/{run_id}">"#)) && commands.contains("<td>signal</td>"),
        "{commands}"
    );
    assert!(
        !commands.contains("<td>signal</td><td>0</td>"),
        "its failed attempt is counted: {commands}"
    );
    let pushes = &page[page.find(r#"id="pushes""#).unwrap()..];
    assert!(
        pushes.contains("<td>webhook</td><td class=\"url\">127.0.0.1</td>"),
        "{pushes}"
    );
    assert!(!page.contains("secret-path-token"), "a webhook is shown by its host");
    // The run's clips called back (the mock provider signs as kie.ai does).
    let webhooks = &page[page.find(r#"id="webhooks""#).unwrap()..];
    assert!(
        webhooks.contains("<td>kieai</td>") && webhooks.contains(&format!(r#"<a href="/console/runs/{run_id}">"#)),
        "{webhooks}"
    );

    system.switch.block(false);
    myloware_api::commands::deliver_pending(&system.api_state, &run_id)
        .await
        .unwrap();
    assert!(console.get("/console/ops").await.body.contains("None waiting."));
    system.stop_idle().await;
}

async fn text_from_the_store_is_escaped_on_every_page(db: &Db) {
    let system = start(db, &[]).await;
    let console = signed_in(&system, API_KEY).await;
    let payload = "<script>alert(1)</script>";
    let input = serde_json::to_string(&json!({ "object": payload })).unwrap();
    let form = schedule_form("aismr", "0 9 * * *", &input);
    assert_eq!(console.post("/console/schedules", &form).await.status, 303);
    let page = console.get("/console/schedules").await.body;
    assert!(page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"), "{page}");
    assert!(!page.contains(payload), "{page}");

    // A project that is not one, echoed in the refusal and the form.
    let project = "<img src=x onerror=alert(2)>";
    let refused = console
        .post(
            "/console/schedules",
            &schedule_form(project, "<b>bold</b>", r#"{"object": "x"}"#),
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("unknown project"), "{}", refused.body);
    assert!(
        !refused.body.contains(project) && !refused.body.contains("<b>bold</b>"),
        "{}",
        refused.body
    );

    dead_letter(&system, None, "<img src=x onerror=alert(3)>").await;
    let page = console.get("/console/ops").await.body;
    assert!(page.contains("&#60;img src=x onerror=alert(3)&#62;"), "{page}");
    assert!(!page.contains(r#"{"signalId""#), "the payload's quotes are escaped too");
    system.stop_idle().await;
}

conformance_tests!(
    an_operator_creates_pauses_resumes_and_deletes_a_schedule,
    a_post_without_the_csrf_token_is_refused_and_changes_nothing,
    a_viewer_is_offered_no_forms_and_refused_every_post,
    the_costs_page_shows_a_mock_runs_cost_in_a_chart_and_the_budgets,
    a_dead_letter_is_replayed_from_the_operations_page,
    the_operations_page_shows_deliveries_still_owed,
    text_from_the_store_is_escaped_on_every_page,
);
