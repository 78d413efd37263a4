//! The providers' and Telegram's webhooks.

use myloware_core::signing;
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use proptest::prelude::*;
use proptest::sample::select;
use reqwest::Method;
use serde_json::json;

#[allow(unused_imports)]
use crate::generators::*;
#[allow(unused_imports)]
use crate::harness::*;

/// kie.ai and Telegram webhooks that are not signed right, and Upload-Post's
/// (unsigned) that are not an upload it completed.
async fn webhooks_refuse_what_is_not_signed(db: &Db) {
    let t = target(db).await;
    let now = chrono::Utc::now().timestamp();

    // kie.ai: one of its signature, its timestamp or our token is wrong.
    let runs = prop_oneof![Just(t.awaiting.clone()), Just(t.proposed.clone()), "run_[a-z0-9]{12}"];
    let kie = (
        runs,
        0u32..14,
        "[a-z0-9-]{1,20}",
        prop_oneof![Just(200i64), any::<i64>()],
        0u8..6,
        text(),
        -1_000_000i64..1_000_000,
        any::<usize>(),
    )
        .prop_map(
            move |(run_id, index, task, code, wrong, junk, skew, at)| {
                let token = signing::callback_token(HITL_SECRET, &run_id, &format!("mock-clip:{index}"));
                let timestamp = now.to_string();
                let signature = signing::kieai_signature(KIE_SECRET.as_bytes(), &task, &timestamp);
                let body = json!({"code": code, "msg": "done", "data": {"taskId": task, "info": {"resultUrls": ["https://x/y.mp4"]}}});
                // Another character, also for case-insensitive hex.
                let mutate = |s: &str| {
                    let at = at % s.len();
                    let c = if s.as_bytes()[at].eq_ignore_ascii_case(&b'a') { 'b' } else { 'a' };
                    format!("{}{c}{}", &s[..at], &s[at + 1..])
                };
                let (token, timestamp, signature, body) = match wrong {
                    // Our token forged or missing.
                    0 => (mutate(&token), timestamp, signature, body),
                    // kie.ai's signature forged, or for another task.
                    1 => (token, timestamp, mutate(&signature), body),
                    2 => (token, timestamp, signature, set(&body, "/data/taskId", json!(format!("{task}x")))),
                    // Stale, or not a time.
                    3 => {
                        let skew = if skew.abs() <= signing::WEBHOOK_TOLERANCE_SECS { skew + 1000 } else { skew };
                        let stale = (now + skew).to_string();
                        let signature = signing::kieai_signature(KIE_SECRET.as_bytes(), &task, &stale);
                        (token, stale, signature, body)
                    }
                    // Absurd times (an i64 difference would overflow).
                    4 => {
                        let absurd = [i64::MIN, i64::MAX, now.wrapping_sub(i64::MIN)][at % 3].to_string();
                        let signature = signing::kieai_signature(KIE_SECRET.as_bytes(), &task, &absurd);
                        (token, absurd, signature, body)
                    }
                    _ => (token, junk.clone(), junk, body),
                };
                let url = format!(
                    "/v1/webhooks/kieai?{}",
                    serde_urlencoded::to_string([("runId", run_id.as_str()), ("index", &index.to_string()), ("token", &token)]).unwrap()
                );
                (url, timestamp, signature, body)
            },
        );
    property(
        "POST /v1/webhooks/kieai",
        CASES,
        (kie, content_type()),
        |((url, timestamp, signature, body), content_type)| {
            let mut request = Request::new(Method::POST, t.api(&url)).body(
                Some(content_type.as_deref().unwrap_or("application/json")),
                body.to_string().into_bytes(),
            );
            for (name, value) in [("x-webhook-timestamp", timestamp), ("x-webhook-signature", signature)] {
                if value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                    request = request.header(name, value);
                }
            }
            let t = &t;
            async move {
                let answer = t.refuse(db, &request).await?;
                prop_assert!([401, 415].contains(&answer.status), "{answer:?}");
                Ok(())
            }
        },
    );

    // kie.ai: anything at all in the query, headers and body.
    let query = proptest::collection::vec(
        (select(vec!["runId", "index", "token", "x"]), "[a-zA-Z0-9_]{0,16}"),
        0..4,
    );
    t.refuses(
        db,
        "POST /v1/webhooks/kieai (anything)",
        CASES,
        (
            query,
            proptest::option::of(header_value()),
            proptest::option::of(header_value()),
            body_of(any_json(), json!({"data": {"taskId": "t"}})),
        ),
        |(query, timestamp, signature, (content_type, body))| {
            let url = format!("/v1/webhooks/kieai?{}", serde_urlencoded::to_string(&query).unwrap());
            let mut request = Request::new(Method::POST, t.api(&url)).body(content_type.as_deref(), body);
            if let Some(timestamp) = timestamp {
                request = request.header("x-webhook-timestamp", timestamp);
            }
            if let Some(signature) = signature {
                request = request.header("x-webhook-signature", signature);
            }
            request
        },
    );

    // Upload-Post (unsigned, only a hint): anything but an `upload_completed`
    // event is ignored or refused, and changes nothing.
    let upload = body_of(
        any_json().prop_filter("not the event that wakes runs", |v| v["event"] != "upload_completed"),
        json!({"event": "upload_failed", "job_id": "j", "result": {"success": true, "url": "https://evil.example/x"}}),
    );
    property(
        "POST /v1/webhooks/upload-post",
        CASES,
        upload,
        |(content_type, body)| {
            let request =
                Request::new(Method::POST, t.api("/v1/webhooks/upload-post")).body(content_type.as_deref(), body);
            let t = &t;
            async move {
                let answer = t.send(db, &request).await?;
                prop_assert!(
                    (answer.status == 200 && answer.body == json!({"status": "ignored"}))
                        || (400..500).contains(&answer.status),
                    "{answer:?}"
                );
                Ok(())
            }
        },
    );

    // Telegram: a wrong secret token, or the right one with an update
    // that has no usable update_id.
    let telegram = (
        prop_oneof![
            Just(None),
            header_value()
                .prop_filter("not the secret", |s| s != TELEGRAM_SECRET)
                .prop_map(Some),
            Just(Some(TELEGRAM_SECRET.to_string())),
        ],
        body_of(
            any_json().prop_filter("no integer update_id", |v| !v["update_id"].is_i64()),
            json!({"message": {"chat": {"id": 5}, "text": "hi"}}),
        ),
    );
    t.refuses(
        db,
        "POST /v1/telegram/webhook",
        CASES,
        telegram,
        |(secret, (content_type, body))| {
            let request = Request::new(Method::POST, t.api("/v1/telegram/webhook")).body(content_type.as_deref(), body);
            match secret {
                Some(secret) => request.header("x-telegram-bot-api-secret-token", secret),
                None => request,
            }
        },
    );
    t.system.stop_idle().await;
}

// Multi-thread: the properties block a worker while the servers run on the other.
conformance_tests!(multi_thread: webhooks_refuse_what_is_not_signed);
