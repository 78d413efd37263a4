//! Known edges, each a test of its own.

use myloware_core::signing;
use myloware_testkit::TestDb;
use reqwest::Method;
use serde_json::json;

#[allow(unused_imports)]
use crate::generators::*;
#[allow(unused_imports)]
use crate::harness::*;

/// Sends each request and collects every answer that is a 5xx or an error
/// that is not JSON `{"detail"}`, or not one of `statuses`.
async fn misanswered(t: &Target, requests: Vec<(Request, &[u16])>) -> Vec<String> {
    let mut wrong = Vec::new();
    for (request, statuses) in requests {
        let answer = send(&t.system.http, &request).await;
        if well_formed(&answer).is_err() || !statuses.contains(&answer.status) {
            wrong.push(format!(
                "{} {} -> {} {} {:?}",
                request.method, request.url, answer.status, answer.content_type, answer.text
            ));
        }
    }
    wrong
}

/// Fails naming every request that is [`misanswered`].
async fn assert_answered(t: &Target, requests: Vec<(Request, &[u16])>) {
    let wrong = misanswered(t, requests).await;
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// `ValidJson` reads the first JSON value and ignores what follows it:
/// `{valid}{anything}` is accepted (and recorded) instead of a 422.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailing_data_after_a_json_body_is_refused() {
    let test_db = TestDb::sqlite().await;
    let t = target(&test_db.db).await;
    let start = start_base().to_string();
    let execution = execution_base("run_trailingdata").to_string();
    let requests = vec![
        (
            Request::new(Method::POST, t.api("/v1/runs/start"))
                .key()
                .body(Some("application/json"), format!("{start}{start}").into_bytes()),
            &[422][..],
        ),
        (
            Request::new(Method::POST, t.api("/v1/runs/start")).key().body(
                Some("application/json"),
                format!("{start} trailing garbage").into_bytes(),
            ),
            &[422][..],
        ),
        (
            Request::new(Method::POST, t.orchestrator("/v1/executions"))
                .key()
                .body(Some("application/json"), format!("{execution}]").into_bytes()),
            &[422][..],
        ),
    ];
    let wrong = misanswered(&t, requests).await;
    let query = myloware_api::store::RunQuery {
        limit: 100,
        ..Default::default()
    };
    let runs = t.system.api_state.store.list_runs(&query).await.unwrap().len();
    let execution = t
        .system
        .orchestrator_state
        .store
        .get_execution("run_trailingdata")
        .await
        .unwrap();
    assert!(
        wrong.is_empty() && runs == 2 && execution.is_none(),
        "{wrong:#?}; {runs} runs (2 before); execution created: {}",
        execution.is_some()
    );
}

/// docs/api.md: `GET /openapi.json` needs the API key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_needs_the_api_key() {
    let test_db = TestDb::sqlite().await;
    let t = target(&test_db.db).await;
    for key in [None, Some("wrong-key")] {
        let mut request = Request::new(Method::GET, t.api("/openapi.json"));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let answer = send(&t.system.http, &request).await;
        assert_eq!(
            (answer.status, &answer.body),
            (401, &json!({"detail": "invalid API key"})),
            "key {key:?}"
        );
    }
}

/// Query strings and path parameters that do not parse into their types
/// are answered by axum's own rejections: plain-text 400s, not JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsable_query_and_path_parameters_are_json_errors() {
    let test_db = TestDb::sqlite().await;
    let t = target(&test_db.db).await;
    let get = |url: String| Request::new(Method::GET, url).key();
    let post = |url: String| Request::new(Method::POST, url).key().json(&json!({}));
    let requests = vec![
        (get(t.api("/v1/runs?limit=abc")), &[400, 422][..]),
        (get(t.api("/v1/runs?limit=-1")), &[400, 422][..]),
        (get(t.api("/v1/dlq?all=maybe")), &[400, 422][..]),
        (post(t.api("/v1/dlq/abc/replay")), &[400, 404, 422][..]),
        (post(t.api("/v1/dlq/99999999999999999999/replay")), &[400, 404, 422][..]),
        (get(t.api("/v1/runs/%FF")), &[400, 404][..]),
        (get(t.api("/v1/hitl/link/%FF/ideate")), &[400, 404][..]),
        (
            post(t.api("/v1/webhooks/kieai?runId=run_abc&index=abc&token=00")),
            &[400, 401, 422][..],
        ),
        (
            post(t.api("/v1/webhooks/kieai?runId=run_a&runId=run_b")),
            &[400, 401, 422][..],
        ),
        (get(t.orchestrator("/v1/executions/%FF")), &[400, 404][..]),
        (post(t.orchestrator("/v1/executions/%FF/signals")), &[400, 404, 422][..]),
        (post(t.orchestrator("/v1/executions/%FF/cancel")), &[400, 404][..]),
    ];
    assert_answered(&t, requests).await;
}

/// docs/api.md: "A bad `status`, `limit` or `cursor` is a 422 naming the
/// query parameter" — a `limit` that is not a number is a 400 instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_that_is_not_a_number_is_a_422_naming_it() {
    let test_db = TestDb::sqlite().await;
    let t = target(&test_db.db).await;
    for limit in ["abc", "-1", "1.5", "99999999999"] {
        let answer = send(
            &t.system.http,
            &Request::new(Method::GET, t.api(&format!("/v1/runs?limit={limit}"))).key(),
        )
        .await;
        assert_eq!(answer.status, 422, "limit={limit}: {answer:?}");
        assert_eq!(
            answer.body["detail"][0]["loc"],
            json!(["query", "limit"]),
            "limit={limit}: {answer:?}"
        );
    }
}

/// A decision form over the body limit: a JSON 413 like every other route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_hitl_decision_is_a_json_413() {
    let test_db = TestDb::sqlite().await;
    let t = target(&test_db.db).await;
    let form = format!("reason={}", "x".repeat(1024 * 1024 + 10)).into_bytes();
    let requests = vec![
        (
            Request::new(Method::POST, t.api(&format!("/v1/hitl/approve/{}/ideate", t.awaiting)))
                .header("accept", "application/json")
                .body(Some("application/x-www-form-urlencoded"), form.clone()),
            &[413][..],
        ),
        (
            Request::new(Method::POST, t.api(&format!("/v1/hitl/reject/{}/workflow", t.proposed)))
                .header("accept", "application/json")
                .body(Some("application/json"), form),
            &[413][..],
        ),
    ];
    assert_answered(&t, requests).await;
}

/// An unsigned kie.ai callback whose timestamp is i64::MIN: refused (401),
/// not a panic in `verify_kieai`'s `(now - sent).abs()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kieai_callback_with_an_extreme_timestamp_is_refused() {
    let test_db = TestDb::sqlite().await;
    let t = target(&test_db.db).await;
    let requests = vec![(
        Request::new(
            Method::POST,
            t.api(&format!("/v1/webhooks/kieai?runId={}&index=0&token=00", t.awaiting)),
        )
        .header("x-webhook-timestamp", i64::MIN.to_string())
        .header("x-webhook-signature", "AAAA")
        .json(&json!({"code": 200, "data": {"taskId": "task-1"}})),
        &[401][..],
    )];
    assert_answered(&t, requests).await;
}

/// Postgres refuses U+0000 in text and JSONB: a route that stores or
/// queries caller text holding one must refuse it (4xx) or store it, never
/// answer 500. The HITL decision bodies (form or JSON) of decisions that
/// are taken carry `reason` and `approver` into the gates table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_are_not_a_500_on_postgres() {
    let Some(test_db) = TestDb::postgres().await else {
        return;
    };
    let t = target(&test_db.db).await;
    let nul = "a\u{0}b";
    let any: &[u16] = &[200, 201, 400, 401, 404, 415, 422];
    let now = chrono::Utc::now().timestamp();
    let ideate = signing::hitl_token(HITL_SECRET, &t.awaiting, "ideate", now + 3600);
    let workflow = signing::hitl_token(HITL_SECRET, &t.proposed, "workflow", now + 3600);
    let requests = vec![
        (
            Request::new(Method::POST, t.api("/v1/runs/start"))
                .key()
                .json(&json!({"project": "test_video_gen", "input": {"prompt": nul}})),
            any,
        ),
        (
            Request::new(Method::POST, t.api("/v1/chat/brendan"))
                .key()
                .json(&json!({"user_id": "u-9", "message": nul})),
            any,
        ),
        (Request::new(Method::GET, t.api("/v1/runs?project=%00")).key(), any),
        (
            Request::new(Method::GET, t.api("/v1/chat/brendan/%00/messages")).key(),
            any,
        ),
        // A raw NUL byte in a webhook body, recorded as text even when refused.
        (
            Request::new(Method::POST, t.api("/v1/webhooks/kieai?runId=run_abc&index=0&token=00"))
                .body(Some("application/json"), b"{\"code\": 200, \"msg\": \"a\0b\"}".to_vec()),
            any,
        ),
        (
            Request::new(Method::POST, t.api("/v1/webhooks/upload-post"))
                .body(Some("application/json"), b"{\"request_id\": \"a\0b\"}".to_vec()),
            any,
        ),
        (
            Request::new(Method::POST, t.api("/v1/telegram/webhook")).body(
                Some("application/json"),
                b"{\"update_id\": 1, \"text\": \"a\0b\"}".to_vec(),
            ),
            any,
        ),
        (
            Request::new(Method::POST, t.api("/v1/internal/events"))
                .key()
                .json(&json!({"events": [{
                "eventId": "nul-1", "runId": t.proposed, "seq": 1, "type": "persona.started",
                "at": "2026-01-01T00:00:00Z", "data": {"persona": nul}}]})),
            any,
        ),
        // Decisions that are taken (valid tokens), with a NUL in the body.
        (
            Request::new(Method::POST, t.api(&format!("/v1/hitl/approve/{}/ideate", t.awaiting)))
                .header("accept", "application/json")
                .body(
                    Some("application/x-www-form-urlencoded"),
                    format!("token={ideate}&reason=a%00b&approver=x%00y").into_bytes(),
                ),
            any,
        ),
        (
            Request::new(Method::POST, t.api(&format!("/v1/hitl/reject/{}/workflow", t.proposed)))
                .header("accept", "application/json")
                .json(&json!({"token": workflow, "reason": nul, "approver": nul})),
            any,
        ),
    ];
    assert_answered(&t, requests).await;
}

/// A body's objects given as JSON arrays (serde's sequence form of a
/// struct, which serde_json would take field by field: `input:
/// ["candles"]` as `{"prompt": "candles"}`) are refused: the documented
/// (and OpenAPI) shape is an object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_given_as_arrays_are_refused() {
    let test_db = TestDb::sqlite().await;
    let t = target(&test_db.db).await;
    let requests = vec![
        (
            Request::new(Method::POST, t.api("/v1/runs/start"))
                .key()
                .json(&json!({"project": "test_video_gen", "input": ["an array, not an object"]})),
            &[422][..],
        ),
        (
            Request::new(Method::POST, t.api("/v1/runs/start"))
                .key()
                .json(&json!(["test_video_gen", {"prompt": "p"}])),
            &[422][..],
        ),
        (
            Request::new(Method::POST, t.api("/v1/chat/brendan"))
                .key()
                .json(&json!(["u-1", "hello"])),
            &[422][..],
        ),
        (
            Request::new(Method::POST, t.api(&format!("/v1/runs/{}/cancel", t.proposed)))
                .key()
                .json(&json!([])),
            &[422][..],
        ),
    ];
    assert_answered(&t, requests).await;
}
