//! Every route: keys, unknown routes and methods, oversized and non-JSON
//! bodies.

use myloware_core::signing;
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::system::API_KEY;
use proptest::prelude::*;
use proptest::sample::select;
use reqwest::Method;
use serde_json::json;

#[allow(unused_imports)]
use crate::generators::*;
#[allow(unused_imports)]
use crate::harness::*;

/// Every route of both services without the API key (or with a wrong
/// one): 401 JSON and nothing recorded; unknown routes and methods: 404
/// and 405 JSON.
async fn keys_routes_and_methods(db: &Db) {
    let t = target(db).await;
    let protected = vec![
        ("api", Method::POST, "/v1/runs/start".to_string()),
        ("api", Method::GET, "/v1/runs".to_string()),
        ("api", Method::GET, format!("/v1/runs/{}", t.awaiting)),
        ("api", Method::POST, format!("/v1/runs/{}/cancel", t.proposed)),
        ("api", Method::POST, "/v1/internal/events".to_string()),
        ("api", Method::GET, format!("/v1/hitl/link/{}/ideate", t.awaiting)),
        ("api", Method::GET, "/v1/hitl/pending".to_string()),
        ("api", Method::POST, "/v1/chat/brendan".to_string()),
        ("api", Method::GET, "/v1/chat/brendan/u-1/messages".to_string()),
        ("api", Method::GET, "/v1/dlq".to_string()),
        ("api", Method::POST, "/v1/dlq/1/replay".to_string()),
        ("api", Method::GET, "/openapi.json".to_string()),
        ("api", Method::GET, "/ready".to_string()),
        ("orchestrator", Method::POST, "/v1/executions".to_string()),
        ("orchestrator", Method::GET, format!("/v1/executions/{}", t.awaiting)),
        (
            "orchestrator",
            Method::POST,
            format!("/v1/executions/{}/signals", t.awaiting),
        ),
        (
            "orchestrator",
            Method::POST,
            format!("/v1/executions/{}/resume", t.awaiting),
        ),
        (
            "orchestrator",
            Method::POST,
            format!("/v1/executions/{}/cancel", t.awaiting),
        ),
        ("orchestrator", Method::POST, "/v1/chat/brendan".to_string()),
        ("orchestrator", Method::GET, "/ready".to_string()),
    ];
    let valid_bodies = [
        start_base(),
        json!({"gate": "ideate", "decision": "approve"}),
        json!({"user_id": "u-1", "message": "start a run"}),
        event_base(&t.awaiting, t.awaiting_seq + 1),
    ];
    property(
        "no key, no entry",
        CASES,
        (
            select(protected),
            proptest::option::of(header_value().prop_filter("not the key", |k| k != API_KEY)),
            select(valid_bodies.to_vec()),
            proptest::option::of("[ -~]{0,40}"),
        ),
        |((service, method, path), key, body, request_id)| {
            let internal = service == "orchestrator" || path.starts_with("/v1/internal/");
            let base = if service == "api" {
                t.api(&path)
            } else {
                t.orchestrator(&path)
            };
            let mut request = Request::new(method, base).json(&body);
            if let Some(key) = key {
                request = request.header("x-api-key", key);
            }
            if let Some(id) = &request_id {
                request = request.header("x-request-id", id.clone());
            }
            let t = &t;
            async move {
                let answer = t.refuse(db, &request).await?;
                prop_assert_eq!(answer.status, 401, "{:?}", answer);
                // Internal routes take the services' signature, nothing else.
                let detail = if internal {
                    "this route takes the internal credential only"
                } else {
                    "invalid API key"
                };
                prop_assert_eq!(&answer.body, &json!({ "detail": detail }));
                // A sane caller request id is echoed; any other is replaced.
                if let (Some(sent), Some(got)) = (&request_id, &answer.request_id) {
                    let sane = (1..=128).contains(&sent.len())
                        && sent.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
                    prop_assert_eq!(sane, sent == got, "sent {:?}, got {:?}", sent, got);
                }
                Ok(())
            }
        },
    );
    let methods = select(vec![
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ]);
    property(
        "unknown routes and methods",
        CASES,
        (any::<bool>(), methods, "(/[a-zA-Z0-9_.-]{0,12}){1,4}"),
        |(api, method, path)| {
            let url = if api { t.api(&path) } else { t.orchestrator(&path) };
            let request = Request::new(method, url).key().json(&json!({}));
            let t = &t;
            async move {
                t.send(db, &request).await?;
                Ok(())
            }
        },
    );
    t.system.stop_idle().await;
}

/// Deterministic edges of every JSON route: a body over the limit is a
/// JSON 413, a body that is not JSON a JSON 415, and neither records.
async fn oversized_and_non_json_bodies(db: &Db) {
    let t = target(db).await;
    let routes = [
        t.api("/v1/runs/start"),
        t.api(&format!("/v1/runs/{}/cancel", t.proposed)),
        t.api("/v1/chat/brendan"),
        t.api("/v1/internal/events"),
        t.api("/v1/telegram/webhook"),
        t.api("/v1/webhooks/upload-post"),
        t.api(&format!(
            "/v1/webhooks/kieai?runId={}&index=0&token={}",
            t.awaiting,
            signing::callback_token(HITL_SECRET, &t.awaiting, "mock-clip:0")
        )),
        t.orchestrator("/v1/executions"),
        t.orchestrator(&format!("/v1/executions/{}/signals", t.awaiting)),
        t.orchestrator(&format!("/v1/executions/{}/resume", t.awaiting)),
        t.orchestrator("/v1/chat/brendan"),
    ];
    let huge = format!("{{\"message\": \"{}\"}}", "x".repeat(1024 * 1024 + 10)).into_bytes();
    for url in &routes {
        for (content_type, body, status) in [
            ("application/json", huge.clone(), 413),
            ("text/plain", b"{\"a\": 1}".to_vec(), 415),
        ] {
            let mut request = Request::new(Method::POST, url.clone())
                .key()
                .header("x-telegram-bot-api-secret-token", TELEGRAM_SECRET)
                .body(Some(content_type), body);
            if url.starts_with(&t.orchestrator("")) {
                request = request.header(INTERNAL_MARK, "1");
            }
            let answer = t.refuse(db, &request).await.unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(answer.status, status, "{url}: {answer:?}");
        }
    }
    t.system.stop_idle().await;
}

// Multi-thread: the properties block a worker while the servers run on the other.
conformance_tests!(multi_thread: keys_routes_and_methods, oversized_and_non_json_bodies);
