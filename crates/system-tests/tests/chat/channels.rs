//! Chat channels end to end: gate links pushed to Telegram and an incoming
//! webhook (fakes on loopback that record each request and can fail the
//! first ones), retries, down channels, the Telegram front door, and
//! `mw chat` against a running API.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use myloware_api::store::ChatDelivery;
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::fakes::Channel;
use myloware_testkit::system::{API_KEY, System, start};
use serde_json::{Value, json};

const QUICK: Duration = Duration::from_secs(30);
const BOT_TOKEN: &str = "123456:test-bot-token";
const WEBHOOK_SECRET: &str = "telegram-webhook-secret_1";
/// `TELEGRAM_CHAT_ID`: where links of users from outside Telegram go.
const OPERATOR_CHAT: &str = "-1001";
/// The chat id of a Telegram user writing to the bot.
const TELEGRAM_CHAT: i64 = 424242;
const CANDLES: &str = "make an AISMR video about candles";

/// A loopback URL with nothing listening (connections are refused).
fn refusing_url() -> String {
    format!("http://127.0.0.1:{}", myloware_testkit::free_port())
}

fn telegram_vars(telegram: &Channel) -> Vec<(&'static str, String)> {
    vec![
        ("TELEGRAM_BOT_TOKEN", BOT_TOKEN.to_string()),
        ("TELEGRAM_API_BASE_URL", telegram.url.clone()),
        ("TELEGRAM_CHAT_ID", OPERATOR_CHAT.to_string()),
    ]
}

async fn start_with(db: &Db, vars: &[(&'static str, String)]) -> System {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    start(db, &vars).await
}

fn aismr_for(user: &str) -> Value {
    json!({"project": "aismr", "input": {"object": "candles"}, "options": {"user_id": user}})
}

/// The queued pushes, oldest first.
async fn deliveries(system: &System) -> Vec<ChatDelivery> {
    let mut rows = system.api_state.store.list_chat_deliveries(100).await.unwrap();
    rows.reverse();
    rows
}

async fn wait_deliveries(
    system: &System,
    what: &str,
    timeout: Duration,
    done: impl Fn(&[ChatDelivery]) -> bool,
) -> Vec<ChatDelivery> {
    let deadline = Instant::now() + timeout;
    loop {
        let rows = deliveries(system).await;
        if done(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; deliveries are {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn transcript(system: &System, user: &str) -> Vec<Value> {
    let body = system
        .get(&format!("{}/v1/chat/brendan/{user}/messages", system.api))
        .await;
    body["messages"].as_array().unwrap().clone()
}

async fn runs_of(system: &System, user: &str) -> Vec<Value> {
    let body = system.get(&format!("{}/v1/runs?user_id={user}", system.api)).await;
    body["runs"].as_array().unwrap().clone()
}

async fn a_gate_link_is_pushed_to_telegram_and_the_webhook(db: &Db) {
    let (telegram, webhook) = (Channel::healthy().await, Channel::healthy().await);
    let mut vars = telegram_vars(&telegram);
    vars.push(("CHAT_WEBHOOK_URL", format!("{}/hooks/mw", webhook.url)));
    let system = start_with(db, &vars).await;
    let run_id = system.start_run(aismr_for("u-1")).await;
    system.wait_status(&run_id, "awaiting_ideate", QUICK).await;

    let rows = wait_deliveries(&system, "both pushes delivered", QUICK, |rows| {
        rows.len() == 2 && rows.iter().all(|r| r.status == "delivered")
    })
    .await;
    let mut channels: Vec<&str> = rows.iter().map(|r| r.channel.as_str()).collect();
    channels.sort();
    assert_eq!(channels, ["telegram", "webhook"]);
    assert!(
        rows.iter()
            .all(|r| r.attempts == 1 && r.delivered_at.is_some() && r.last_error.is_none())
    );

    let messages = transcript(&system, "u-1").await;
    let link = messages[0]["link"].as_str().unwrap();
    assert!(link.contains(&format!("/v1/hitl/approve/{run_id}/ideate?token=")));

    let sent = telegram.requests();
    assert_eq!(sent.len(), 1, "one sendMessage: {sent:#?}");
    assert_eq!(sent[0].path, format!("/bot{BOT_TOKEN}/sendMessage"));
    assert_eq!(sent[0].body["chat_id"], OPERATOR_CHAT);
    assert_eq!(sent[0].body["disable_web_page_preview"], true);
    let text = sent[0].body["text"].as_str().unwrap();
    assert!(text.contains(link) && text.contains("ideate"), "{text}");

    let posted = webhook.requests();
    assert_eq!(posted.len(), 1, "one webhook post: {posted:#?}");
    assert_eq!(posted[0].path, "/hooks/mw");
    assert_eq!(
        posted[0].body,
        json!({"text": text}),
        "the same message, as {{\"text\"}}"
    );
    system.stop_idle().await;
}

async fn a_failed_push_is_retried_with_backoff(db: &Db) {
    let error = (
        500,
        json!({"ok": false, "error_code": 500, "description": "Internal Server Error"}),
    );
    let telegram = Channel::failing_first(vec![error.clone(), error]).await;
    let system = start_with(db, &telegram_vars(&telegram)).await;
    let run_id = system.start_run(aismr_for("u-1")).await;

    // Backoff 2 s, then 4 s.
    let rows = wait_deliveries(
        &system,
        "delivery on the third attempt",
        Duration::from_secs(20),
        |rows| rows.iter().any(|r| r.status != "pending"),
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].status.as_str(), rows[0].attempts), ("delivered", 3));
    let sent = telegram.requests();
    assert_eq!(
        sent.iter().map(|s| s.status).collect::<Vec<_>>(),
        [500, 500, 200],
        "three attempts, one delivery"
    );
    assert!(
        sent.iter().all(|s| s.body == sent[0].body),
        "each attempt sends the same message"
    );
    assert!(sent[0].body["text"].as_str().unwrap().contains(&run_id));
    let gaps = [sent[1].at - sent[0].at, sent[2].at - sent[1].at];
    assert!(
        gaps[0] >= Duration::from_millis(1900) && gaps[1] >= Duration::from_millis(3900),
        "the retries wait 2 s, then 4 s: {gaps:?}"
    );
    system.stop_idle().await;
}

async fn telegram_retry_after_sets_the_next_attempt(db: &Db) {
    let flood = (
        429,
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 60",
            "parameters": {"retry_after": 60}}),
    );
    let telegram = Channel::failing_first(vec![flood]).await;
    let system = start_with(db, &telegram_vars(&telegram)).await;
    system.start_run(aismr_for("u-1")).await;

    let rows = wait_deliveries(&system, "the first attempt recorded", QUICK, |rows| {
        rows.iter().any(|r| r.last_error.is_some())
    })
    .await;
    let row = &rows[0];
    assert_eq!((row.status.as_str(), row.attempts), ("pending", 1));
    assert!(row.last_error.as_deref().unwrap().contains("429"), "{row:?}");
    let wait = row.next_attempt_at - chrono::Utc::now();
    assert!(
        wait > chrono::Duration::seconds(50),
        "the next attempt follows retry_after (60 s), not the 2 s backoff: in {wait}"
    );
    assert_eq!(telegram.requests().len(), 1);
    system.stop_idle().await;
}

async fn a_down_channel_does_not_hold_up_the_run(db: &Db) {
    let telegram = Channel::always(500, json!({"ok": false, "description": "Internal Server Error"})).await;
    let mut vars = telegram_vars(&telegram);
    vars.push(("CHAT_WEBHOOK_URL", format!("{}/hooks/mw", refusing_url())));
    let system = start_with(db, &vars).await;
    let run_id = system.start_run(aismr_for("u-1")).await;

    // The user approves both gates in chat while no push gets through.
    system.wait_status(&run_id, "awaiting_ideate", QUICK).await;
    let answer = system.chat_ok("u-1", "approve").await;
    assert_eq!(answer["run_ids"], json!([run_id]), "{answer}");
    system.wait_status(&run_id, "awaiting_prepublish", QUICK).await;
    system.chat_ok("u-1", "approve").await;
    system.wait_status(&run_id, "published", QUICK).await;

    // Both gates and the publication, each to both channels.
    let rows = wait_deliveries(&system, "every push attempted", QUICK, |rows| {
        rows.len() == 6 && rows.iter().all(|r| r.last_error.is_some())
    })
    .await;
    for row in &rows {
        assert!(
            matches!(row.status.as_str(), "pending" | "failed") && row.delivered_at.is_none(),
            "{row:?}"
        );
        let error = row.last_error.as_deref().unwrap();
        match row.channel.as_str() {
            "webhook" => assert_eq!(error, "connection failed"),
            "telegram" => assert!(error.contains("500"), "{error}"),
            other => panic!("unexpected channel {other}"),
        }
    }
    assert!(telegram.requests().iter().all(|s| s.status == 500));
    system.stop_idle().await;
}

async fn telegram_refusing_the_chat_gives_up_at_once(db: &Db) {
    let telegram = Channel::always(
        400,
        json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
    )
    .await;
    let system = start_with(db, &telegram_vars(&telegram)).await;
    let run_id = system.start_run(aismr_for("u-1")).await;

    let rows = wait_deliveries(&system, "the push given up", QUICK, |rows| {
        rows.iter().any(|r| r.status != "pending")
    })
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].status.as_str(), rows[0].attempts), ("failed", 1));
    let error = rows[0].last_error.as_deref().unwrap();
    assert!(error.contains("400") && error.contains("chat not found"), "{error}");
    assert_eq!(telegram.requests().len(), 1, "no retry after a 400");
    // The run does not care.
    system.wait_status(&run_id, "awaiting_ideate", QUICK).await;
    system.stop_idle().await;
}

/// POSTs a Telegram update to the front door, with the secret header if any.
async fn telegram_update(system: &System, secret: Option<&str>, update: &Value) -> (u16, Value) {
    let mut request = system
        .http
        .post(format!("{}/v1/telegram/webhook", system.api))
        .json(update);
    if let Some(secret) = secret {
        request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
    }
    let response = request.send().await.unwrap();
    myloware_testkit::status_and_json(response).await
}

fn update(update_id: i64, text: &str) -> Value {
    json!({"update_id": update_id, "message": {"message_id": update_id, "date": 1_700_000_000,
        "chat": {"id": TELEGRAM_CHAT, "type": "private"}, "from": {"id": TELEGRAM_CHAT, "is_bot": false},
        "text": text}})
}

async fn the_telegram_front_door_runs_each_update_once(db: &Db) {
    let telegram = Channel::healthy().await;
    let mut vars = telegram_vars(&telegram);
    vars.push(("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET.to_string()));
    vars.push(("TELEGRAM_ALLOWED_CHAT_IDS", TELEGRAM_CHAT.to_string()));
    let system = start_with(db, &vars).await;
    let user = format!("telegram:{TELEGRAM_CHAT}");
    let chat_id = TELEGRAM_CHAT.to_string();
    let candles = update(9001, CANDLES);

    for secret in [None, Some("wrong-secret")] {
        let (status, _) = telegram_update(&system, secret, &candles).await;
        assert_eq!(status, 401, "secret {secret:?}");
    }
    assert!(
        transcript(&system, &user).await.is_empty(),
        "no chat turn without the secret"
    );
    assert!(runs_of(&system, &user).await.is_empty());

    // The refused deliveries did not use up the update id.
    assert_eq!(
        telegram_update(&system, Some(WEBHOOK_SECRET), &candles).await,
        (200, json!({"status": "accepted"}))
    );
    let runs = runs_of(&system, &user).await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(
        (runs[0]["project"].as_str(), runs[0]["status"].as_str()),
        (Some("aismr"), Some("pending_workflow"))
    );
    let run_id = runs[0]["runId"].as_str().unwrap().to_string();
    let sent = telegram.wait_requests(1, QUICK).await;
    assert_eq!(sent[0].path, format!("/bot{BOT_TOKEN}/sendMessage"));
    assert_eq!(
        sent[0].body["chat_id"],
        chat_id.as_str(),
        "the reply goes to the user's chat"
    );
    let reply = sent[0].body["text"].as_str().unwrap();
    assert!(
        reply.contains(&format!("/v1/hitl/approve/{run_id}/workflow?token=")),
        "{reply}"
    );

    // Telegram resends an update it thinks was lost: nothing happens twice.
    assert_eq!(
        telegram_update(&system, Some(WEBHOOK_SECRET), &candles).await,
        (200, json!({"status": "duplicate"}))
    );
    assert_eq!(runs_of(&system, &user).await.len(), 1, "no second run");
    assert_eq!(transcript(&system, &user).await.len(), 2, "one question, one answer");
    assert_eq!(deliveries(&system).await.len(), 1, "no second reply queued");

    // "approve" from Telegram starts the run; its next gate link goes to
    // the same chat (not TELEGRAM_CHAT_ID).
    assert_eq!(
        telegram_update(&system, Some(WEBHOOK_SECRET), &update(9002, "approve")).await,
        (200, json!({"status": "accepted"}))
    );
    system.wait_status(&run_id, "awaiting_ideate", QUICK).await;
    let sent = telegram.wait_requests(3, QUICK).await;
    assert_eq!(
        sent.len(),
        3,
        "the reply to candles, to approve, and the ideate link: {sent:#?}"
    );
    assert!(sent.iter().all(|s| s.body["chat_id"] == chat_id.as_str()));
    assert!(sent[1..].iter().any(|s| {
        s.body["text"]
            .as_str()
            .unwrap()
            .contains(&format!("/v1/hitl/approve/{run_id}/ideate?token="))
    }));
    assert_eq!(runs_of(&system, &user).await.len(), 1);

    // "resend the link": a fresh link of the waiting gate, in the same chat.
    assert_eq!(
        telegram_update(&system, Some(WEBHOOK_SECRET), &update(9003, "resend the link please")).await,
        (200, json!({"status": "accepted"}))
    );
    let sent = telegram.wait_requests(4, QUICK).await;
    assert_eq!(sent[3].body["chat_id"], chat_id.as_str());
    let resent = sent[3].body["text"].as_str().unwrap();
    assert!(
        resent.contains(&format!("/v1/hitl/approve/{run_id}/ideate?token=")),
        "{resent}"
    );
    system.stop_idle().await;
}

async fn the_telegram_front_door_is_closed_without_a_secret(db: &Db) {
    let telegram = Channel::healthy().await;
    let system = start_with(db, &telegram_vars(&telegram)).await;
    for secret in [None, Some(WEBHOOK_SECRET)] {
        let (status, body) = telegram_update(&system, secret, &update(1, CANDLES)).await;
        assert_eq!(status, 404, "{body}");
    }
    assert!(
        transcript(&system, &format!("telegram:{TELEGRAM_CHAT}"))
            .await
            .is_empty()
    );
    assert!(telegram.requests().is_empty());
    system.stop_idle().await;
}

/// `mw chat` as an operator runs it, in a folder without `.env.development`.
async fn mw_chat(api_url: &str, user: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mw-system"));
    command
        .arg("chat")
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MW_API_URL", api_url)
        .env("API_KEY", API_KEY);
    if let Some(user) = user {
        command.env("USER", user);
    }
    // The API serves on this test's runtime: wait off it.
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn mw_chat_prints_the_reply_and_the_approval_link(db: &Db) {
    let system = start(db, &[]).await;

    let output = mw_chat(&system.api, Some("tester"), &[CANDLES]).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let runs = runs_of(&system, "cli:tester").await;
    assert_eq!(runs.len(), 1, "the run is the user's cli:$USER: {runs:#?}");
    assert_eq!(runs[0]["status"], "pending_workflow");
    let run_id = runs[0]["runId"].as_str().unwrap();
    let approve = format!(
        "approve {run_id} workflow: {}/v1/hitl/approve/{run_id}/workflow?token=",
        system.api
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.last().unwrap().starts_with(&approve), "the link last:\n{stdout}");
    assert!(
        lines.len() >= 2 && !lines[0].is_empty(),
        "Brendan's reply first:\n{stdout}"
    );
    assert_eq!(transcript(&system, "cli:tester").await.len(), 2);

    // --user and --json; without USER the default is cli:operator.
    let output = mw_chat(&system.api, None, &["--json", "--user", "ops:json", CANDLES]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let answer: Value = serde_json::from_slice(&output.stdout).expect("--json prints JSON");
    assert_eq!(answer["run_ids"].as_array().unwrap().len(), 1, "{answer}");
    assert_eq!(answer["links"][0]["gate"], "workflow");
    assert_eq!(runs_of(&system, "ops:json").await.len(), 1);
    let output = mw_chat(&system.api, None, &["hello"]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(transcript(&system, "cli:operator").await.len(), 2);

    // The API is there but Brendan is not: the API's detail, and what to do.
    system.switch.block(true);
    let output = mw_chat(&system.api, Some("tester"), &["status?"]).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Brendan is unavailable") && stderr.contains("orchestrator"),
        "{stderr}"
    );
    system.switch.block(false);

    // No API at all.
    let output = mw_chat(&refusing_url(), Some("tester"), &[CANDLES]).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(
        stderr.contains("cannot reach the API") && stderr.contains("mw dev"),
        "says what to do: {stderr}"
    );
    assert_eq!(runs_of(&system, "cli:tester").await.len(), 1);
    system.stop_idle().await;
}

conformance_tests!(
    a_gate_link_is_pushed_to_telegram_and_the_webhook,
    a_failed_push_is_retried_with_backoff,
    telegram_retry_after_sets_the_next_attempt,
    a_down_channel_does_not_hold_up_the_run,
    telegram_refusing_the_chat_gives_up_at_once,
    the_telegram_front_door_runs_each_update_once,
    the_telegram_front_door_is_closed_without_a_secret,
    mw_chat_prints_the_reply_and_the_approval_link,
);
