//! Security: telegram. Only chats in `TELEGRAM_ALLOWED_CHAT_IDS` are
//! heard, only `TELEGRAM_APPROVER_CHAT_IDS` decide gates, and each chat's
//! turns are rate-limited.

use myloware_testkit::JsonAnswer;
use std::time::Duration;

use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::fakes::Channel;
use serde_json::{Value, json};

use myloware_testkit::system::{self, System, gate};

const QUICK: Duration = Duration::from_secs(30);
const BOT_TOKEN: &str = "123456:test-bot-token";
const SECRET: &str = "telegram-webhook-secret_1";
const CANDLES: &str = "make an AISMR video about candles";
/// Allowed, and an approver.
const BOSS: i64 = 424242;
/// Allowed to chat, not to decide.
const INTERN: i64 = 555;
/// In no list.
const STRANGER: i64 = 666;

async fn a_strangers_updates_are_ignored_with_nothing_run_stored_or_replied(db: &Db) {
    let telegram = Channel::healthy().await;
    let system = start_telegram(db, &telegram, &[("TELEGRAM_ALLOWED_CHAT_IDS", &BOSS.to_string())]).await;
    let stranger = format!("telegram:{STRANGER}");

    // The old attack: propose, then approve every gate.
    let texts = [CANDLES, "approve", "approve", "approve"];
    for (i, text) in texts.into_iter().enumerate() {
        assert_eq!(
            send(&system, 100 + i as i64, STRANGER, text).await,
            (200, json!({"status": "ignored"})),
            "update {i} ({text:?}) from a stranger"
        );
    }
    assert!(runs_of(&system, &stranger).await.is_empty(), "no run for a stranger");
    let store = &system.api_state.store;
    assert!(
        store.chat_messages(&stranger, 100).await.unwrap().is_empty(),
        "nothing stored"
    );
    assert!(
        store.list_webhooks("telegram").await.unwrap().is_empty(),
        "no delivery row for a stranger's update"
    );
    assert!(
        store.list_chat_deliveries(100).await.unwrap().is_empty(),
        "no reply queued"
    );

    // The door works for an allowed chat (so the stranger was refused for
    // who they are, not because Telegram is off).
    assert_eq!(
        send(&system, 200, BOSS, CANDLES).await,
        (200, json!({"status": "accepted"}))
    );
    assert_eq!(runs_of(&system, &format!("telegram:{BOSS}")).await.len(), 1);
    let sent = telegram.wait_requests(1, QUICK).await;
    assert!(
        sent.iter()
            .all(|seen| seen.body["chat_id"] == BOSS.to_string().as_str()),
        "replies go to the allowed chat only: {sent:#?}"
    );
    system.stop_idle().await;
}

async fn only_approver_chats_decide_gates(db: &Db) {
    let telegram = Channel::healthy().await;
    let system = boss_and_intern(db, &telegram).await;

    // The intern may chat: the proposal is made, but "approve" decides nothing.
    let intern = format!("telegram:{INTERN}");
    assert_eq!(send(&system, 1, INTERN, CANDLES).await.1["status"], "accepted");
    let runs = runs_of(&system, &intern).await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run_id = runs[0]["runId"].as_str().unwrap().to_string();
    assert_eq!(send(&system, 2, INTERN, "approve").await.1["status"], "accepted");
    let run = system.run(&run_id).await;
    assert_eq!(
        run["status"], "pending_workflow",
        "the intern's approve decided nothing"
    );
    assert!(
        run["gates"].as_array().unwrap().iter().all(|g| g["decision"].is_null()),
        "{:#?}",
        run["gates"]
    );
    let messages = system.api_state.store.chat_messages(&intern, 100).await.unwrap();
    let last = &messages.last().unwrap().text;
    assert!(last.contains("may not decide gates"), "Brendan says why: {last}");
    // The refused attempt is audited as the chat's.
    let audit = system.api_state.store.list_audit(&run_id).await.unwrap();
    let attempts: Vec<_> = audit
        .iter()
        .map(|a| (a.actor.as_str(), a.action.as_str(), a.gate.as_deref(), a.accepted))
        .collect();
    assert_eq!(attempts, [(intern.as_str(), "approve", Some("workflow"), false)]);
    assert!(audit[0].outcome.contains("TELEGRAM_APPROVER_CHAT_IDS"), "{audit:?}");

    // The boss's "approve" counts, and the gate records the chat.
    let boss = format!("telegram:{BOSS}");
    assert_eq!(send(&system, 3, BOSS, CANDLES).await.1["status"], "accepted");
    let run_id = runs_of(&system, &boss).await[0]["runId"].as_str().unwrap().to_string();
    assert_eq!(send(&system, 4, BOSS, "approve").await.1["status"], "accepted");
    let run = system
        .wait_for(&run_id, QUICK, "the workflow gate approved", |run| {
            gate(run, "workflow")["decision"] == "approve"
        })
        .await;
    assert_eq!(gate(&run, "workflow")["approver"], format!("telegram:{BOSS}"));
    system.wait_status(&run_id, "awaiting_ideate", QUICK).await;
    system.stop_idle().await;
}

/// "change: …" from an approver chat sends the gate back to its persona;
/// from another chat it is refused and audited.
async fn approver_chats_request_changes(db: &Db) {
    let telegram = Channel::healthy().await;
    let system = boss_and_intern(db, &telegram).await;
    let boss = format!("telegram:{BOSS}");
    assert_eq!(send(&system, 1, BOSS, CANDLES).await.1["status"], "accepted");
    let run_id = runs_of(&system, &boss).await[0]["runId"].as_str().unwrap().to_string();
    assert_eq!(send(&system, 2, BOSS, "approve").await.1["status"], "accepted");
    system.wait_status(&run_id, "awaiting_ideate", QUICK).await;

    assert_eq!(
        send(&system, 3, BOSS, "change: fewer metals, more fabrics").await.1["status"],
        "accepted"
    );
    let run = system
        .wait_for(&run_id, QUICK, "the ideate gate to wait again", |run| {
            gate(run, "ideate")["status"] == "awaiting" && gate(run, "ideate")["revisions"] == 1
        })
        .await;
    assert_eq!(run["revisions"][0]["by"], boss.as_str());
    assert_eq!(run["revisions"][0]["feedback"], "fewer metals, more fabrics");
    let messages = system.api_state.store.chat_messages(&boss, 100).await.unwrap();
    assert!(
        messages.iter().any(|m| m.text.contains("sent back for changes")),
        "Brendan confirms: {messages:#?}"
    );

    // Another allowed chat may talk, not decide: nothing sent back.
    let intern = format!("telegram:{INTERN}");
    assert_eq!(send(&system, 4, INTERN, CANDLES).await.1["status"], "accepted");
    let theirs = runs_of(&system, &intern).await[0]["runId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        send(&system, 5, INTERN, "change: other ideas").await.1["status"],
        "accepted"
    );
    let audit = system.api_state.store.list_audit(&theirs).await.unwrap();
    let refused: Vec<_> = audit.iter().filter(|a| a.action == "revise").collect();
    assert_eq!(refused.len(), 1, "{audit:?}");
    assert!(
        !refused[0].accepted && refused[0].outcome.contains("TELEGRAM_APPROVER_CHAT_IDS"),
        "{refused:?}"
    );
    assert_eq!(system.run(&theirs).await["status"], "pending_workflow");
    system.stop_idle().await;
}

async fn a_chat_sending_too_fast_is_rate_limited(db: &Db) {
    let telegram = Channel::healthy().await;
    let system = start_telegram(
        db,
        &telegram,
        &[
            ("TELEGRAM_ALLOWED_CHAT_IDS", &BOSS.to_string()),
            ("RATE_LIMIT_PER_MINUTE", "1"),
            ("RATE_LIMIT_BURST", "2"),
        ],
    )
    .await;
    let user = format!("telegram:{BOSS}");
    let answers = [
        send(&system, 1, BOSS, "hello").await,
        send(&system, 2, BOSS, "what can you do?").await,
        send(&system, 3, BOSS, CANDLES).await,
    ];
    assert_eq!(answers[0], (200, json!({"status": "accepted"})));
    assert_eq!(answers[1], (200, json!({"status": "accepted"})));
    assert_eq!(answers[2], (200, json!({"status": "rate_limited"})));
    let messages = system.api_state.store.chat_messages(&user, 100).await.unwrap();
    assert_eq!(messages.len(), 4, "two turns ran, the third did not");
    assert!(messages.iter().all(|m| m.text != CANDLES));
    assert!(
        runs_of(&system, &user).await.is_empty(),
        "the limited turn proposed nothing"
    );
    system.stop_idle().await;
}

conformance_tests!(
    a_strangers_updates_are_ignored_with_nothing_run_stored_or_replied,
    only_approver_chats_decide_gates,
    approver_chats_request_changes,
    a_chat_sending_too_fast_is_rate_limited,
);

#[test]
fn a_bot_without_allowed_chats_is_warned_about() {
    let config = |vars: &[(&str, &str)]| {
        myloware_core::config::Config::from_lookup(|name| {
            vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        })
        .expect("valid configuration")
    };
    let warnings = config(&[("TELEGRAM_BOT_TOKEN", BOT_TOKEN)]).warnings();
    assert!(
        warnings.iter().any(|w| w.contains("TELEGRAM_ALLOWED_CHAT_IDS")),
        "{warnings:?}"
    );
    let allowed = BOSS.to_string();
    assert!(
        config(&[
            ("TELEGRAM_BOT_TOKEN", BOT_TOKEN),
            ("TELEGRAM_ALLOWED_CHAT_IDS", &allowed)
        ])
        .warnings()
        .is_empty()
    );
    assert!(config(&[]).warnings().is_empty(), "no bot, no warning");
}

// Helpers.

/// Telegram with two allowed chats, the boss's the only approver chat.
async fn boss_and_intern(db: &Db, telegram: &Channel) -> System {
    let allowed = format!("{BOSS},{INTERN}");
    let approvers = BOSS.to_string();
    start_telegram(
        db,
        telegram,
        &[
            ("TELEGRAM_ALLOWED_CHAT_IDS", &allowed),
            ("TELEGRAM_APPROVER_CHAT_IDS", &approvers),
        ],
    )
    .await
}

async fn start_telegram(db: &Db, telegram: &Channel, extra: &[(&str, &str)]) -> System {
    let mut vars = vec![
        ("TELEGRAM_BOT_TOKEN", BOT_TOKEN),
        ("TELEGRAM_API_BASE_URL", telegram.url.as_str()),
        ("TELEGRAM_CHAT_ID", "-1001"),
        ("TELEGRAM_WEBHOOK_SECRET", SECRET),
    ];
    vars.extend_from_slice(extra);
    system::start(db, &vars).await
}

/// POSTs an update from `chat` with the right secret.
async fn send(system: &System, update_id: i64, chat: i64, text: &str) -> (u16, Value) {
    let update = json!({"update_id": update_id, "message": {"message_id": update_id, "date": 1_700_000_000,
        "chat": {"id": chat, "type": "private"}, "from": {"id": chat, "is_bot": false}, "text": text}});
    let response = system
        .http
        .post(format!("{}/v1/telegram/webhook", system.api))
        .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
        .json(&update)
        .sent()
        .await;
    myloware_testkit::status_and_json(response).await
}

async fn runs_of(system: &System, user: &str) -> Vec<Value> {
    let body = system.get(&format!("{}/v1/runs?user_id={user}", system.api)).await;
    body["runs"].as_array().unwrap().clone()
}
