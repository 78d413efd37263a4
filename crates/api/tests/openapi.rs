//! The OpenAPI document against the handlers: every status a request can
//! get is listed for its operation, with its body, and the request schemas
//! say what the handlers check. (`scripts/contract-fuzz` checks the same
//! with generated requests against `mw dev`.)

mod common;

use common::spawn_app;
use myloware_db::Db;
use myloware_testkit::JsonAnswer;
use myloware_testkit::conformance_tests;
use serde_json::{Value, json};

async fn the_openapi_document_describes_the_routes(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let (status, doc) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with('3'));
    for path in [
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
        "/v1/projects",
        "/v1/projects/{project}",
        "/v1/runs/start",
        "/v1/runs",
        "/v1/runs/{runId}",
        "/v1/runs/{runId}/artifacts",
        "/v1/runs/{runId}/cancel",
        "/v1/runs/{runId}/audit",
        "/v1/audit",
        "/v1/assets/{project}/{runId}/{file}",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
}

/// Bad paths, queries and bodies get statuses the OpenAPI document lists
/// for their operation; the answers a test cannot easily provoke (the rate
/// limits, 500) are listed too, and a status no request can get is not.
async fn every_refusal_is_a_status_the_document_lists(db: &Db) {
    let app = spawn_app(db, &[("MAX_BODY_BYTES", "2048")]).await;
    let (status, doc) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    let operation = |method: &str, path: &str| doc["paths"][path][method].clone();
    let listed =
        |method: &str, path: &str, status: u16| operation(method, path)["responses"].get(status.to_string()).is_some();
    let big = "x".repeat(4096);
    let run = "run_000000000000";
    let (approve, reject, cancel) = (
        format!("/v1/hitl/approve/{run}/ideate"),
        format!("/v1/hitl/reject/{run}/ideate"),
        format!("/v1/runs/{run}/cancel"),
    );
    let open = |path: &str| app.http.post(app.url(path));
    let typed = |request: reqwest::RequestBuilder, content_type: &str, body: String| {
        request.header("content-type", content_type).body(body)
    };
    let signed = |content_type: &str, body: &str| {
        let mut request = typed(open("/v1/internal/events"), content_type, body.to_string())
            .build()
            .unwrap();
        myloware_http::internal::sign(&app.state.config.internal_keys(), &mut request);
        request
    };
    const DECISION: &str = "/v1/hitl/approve/{runId}/{gate}";
    const JSON: &str = "application/json";
    const FORM: &str = "application/x-www-form-urlencoded";
    let cases = [
        (
            "post",
            DECISION,
            typed(open(&approve), "text/plain", "token=x".into()),
            400,
        ),
        ("post", DECISION, typed(open(&approve), FORM, "token=%00".into()), 422),
        ("post", DECISION, typed(open(&approve), JSON, "{".into()), 422),
        (
            "post",
            DECISION,
            typed(open(&approve), FORM, format!("token={big}")),
            413,
        ),
        ("post", DECISION, open(&approve), 403),
        (
            "post",
            "/v1/hitl/reject/{runId}/{gate}",
            typed(open(&reject), "text/plain", "x".into()),
            400,
        ),
        (
            "post",
            "/v1/hitl/reject/{runId}/{gate}",
            typed(open(&reject), FORM, format!("reason={big}")),
            413,
        ),
        (
            "get",
            DECISION,
            app.http.get(app.url("/v1/hitl/approve/%FF/ideate")),
            400,
        ),
        (
            "post",
            "/v1/runs/start",
            typed(app.post("/v1/runs/start"), "text/plain", "{}".into()),
            415,
        ),
        (
            "post",
            "/v1/runs/start",
            app.post("/v1/runs/start")
                .json(&json!({"project": "aismr", "input": {"topic": big}})),
            413,
        ),
        (
            "post",
            "/v1/runs/{runId}/cancel",
            typed(app.post(&cancel), "text/plain", "{}".into()),
            415,
        ),
        (
            "post",
            "/v1/runs/{runId}/cancel",
            typed(app.post(&cancel), JSON, "{".into()),
            422,
        ),
        (
            "post",
            "/v1/runs/{runId}/cancel",
            app.post(&cancel).json(&json!({"reason": big})),
            413,
        ),
        ("post", "/v1/runs/{runId}/cancel", app.post("/v1/runs/%FF/cancel"), 400),
        (
            "post",
            "/v1/chat/brendan",
            typed(app.post("/v1/chat/brendan"), "text/plain", "{}".into()),
            415,
        ),
        (
            "post",
            "/v1/chat/brendan",
            app.post("/v1/chat/brendan")
                .json(&json!({"user_id": "u-1", "message": big})),
            413,
        ),
        ("get", "/v1/runs", app.get("/v1/runs?status=running&status=failed"), 400),
        ("get", "/v1/runs/{runId}", app.get("/v1/runs/%FF"), 400),
        (
            "get",
            "/v1/runs/{runId}/artifacts",
            app.get("/v1/runs/%FF/artifacts"),
            400,
        ),
        ("get", "/v1/projects/{project}", app.get("/v1/projects/%FF"), 400),
        (
            "get",
            "/v1/chat/brendan/{user_id}/messages",
            app.get("/v1/chat/brendan/%FF/messages"),
            400,
        ),
        (
            "get",
            "/v1/hitl/link/{runId}/{gate}",
            app.get("/v1/hitl/link/%FF/ideate"),
            400,
        ),
        ("get", "/v1/dlq", app.get("/v1/dlq?all=maybe"), 400),
        ("get", "/v1/audit", app.get("/v1/audit?limit=1&limit=2"), 400),
        ("get", "/v1/audit", app.get("/v1/audit?since=yesterday"), 422),
        ("get", "/v1/runs/{runId}/audit", app.get("/v1/runs/%FF/audit"), 400),
        (
            "get",
            "/v1/runs/{runId}/audit",
            app.get(&format!("/v1/runs/{run}/audit")),
            404,
        ),
        (
            "get",
            "/v1/runs/{runId}/audit",
            app.get(&format!("/v1/runs/{run}/audit?cursor=x")),
            422,
        ),
        ("post", "/v1/dlq/{seq}/replay", app.post("/v1/dlq/abc/replay"), 400),
        ("get", "/health", app.http.get(app.url("/health?probe=%00")), 400),
        ("get", "/openapi.json", app.http.get(app.url("/openapi.json")), 401),
        (
            "get",
            "/openapi.json",
            app.http.get(app.url("/openapi.json")).header("x-api-key", "wrong"),
            401,
        ),
    ];
    let mut wrong = Vec::new();
    for (method, path, request, expected) in cases {
        let request = request.build().unwrap();
        let url = request.url().to_string();
        let status = app.http.execute(request).await.unwrap().status().as_u16();
        if status != expected || !listed(method, path, status) {
            wrong.push(format!(
                "{method} {url}: {status} (expected {expected}; listed for {path}: {})",
                listed(method, path, status)
            ));
        }
    }
    for (request, expected) in [(signed("text/plain", "{}"), 415), (signed(JSON, &big), 413)] {
        let status = app.http.execute(request).await.unwrap().status().as_u16();
        if status != expected || !listed("post", "/v1/internal/events", status) {
            wrong.push(format!("post /v1/internal/events: {status} (expected {expected})"));
        }
    }
    let unprovoked = [
        ("get", DECISION, 429),
        ("get", DECISION, 500),
        ("post", DECISION, 429),
        ("post", DECISION, 500),
        ("post", "/v1/hitl/reject/{runId}/{gate}", 422),
        ("post", "/v1/hitl/reject/{runId}/{gate}", 429),
        ("post", "/v1/hitl/reject/{runId}/{gate}", 500),
        ("post", "/v1/telegram/webhook", 500),
        ("post", "/v1/chat/brendan", 500),
        ("post", "/v1/internal/events", 401),
        ("get", "/v1/hitl/pending", 403),
        ("get", "/v1/audit", 403),
        ("get", "/v1/runs/{runId}/audit", 403),
    ];
    for (method, path, status) in unprovoked {
        if !listed(method, path, status) {
            wrong.push(format!("{method} {path}: {status} not listed"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Every role may read: a read route cannot answer 403.
    assert!(!listed("get", "/openapi.json", 403));
    assert!(!listed("get", "/v1/runs", 403));
    assert_eq!(operation("get", "/openapi.json")["security"], json!([{"api_key": []}]));
    assert_eq!(
        operation("post", "/v1/internal/events")["security"],
        json!([{"internal": []}])
    );
}

/// Every refusal has a body schema (the error body; 422 the list form),
/// and every text of a request (parameters, bodies, the schemas they name)
/// is NUL-free or an enum.
async fn every_answer_has_a_body_and_request_text_is_nul_free(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let (_, doc) = app.get_json("/openapi.json").await;
    let mut wrong = Vec::new();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.starts_with('2') {
                    continue;
                }
                let schema = &response["content"]["application/json"]["schema"];
                // Readiness' 503 is its report, or the deadline's error body.
                let schema = schema["anyOf"].get(1).unwrap_or(schema);
                let schema = &schema["$ref"];
                let expected = if status == "422" {
                    "ValidationErrorBody"
                } else {
                    "ErrorBody"
                };
                if *schema != json!(format!("#/components/schemas/{expected}")) {
                    wrong.push(format!("{method} {path} {status}: {schema}"));
                }
            }
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let schema = &parameter["schema"];
                if schema["type"] == "string" && schema.get("pattern").is_none() && schema.get("enum").is_none() {
                    wrong.push(format!("{method} {path} parameter {}: {schema}", parameter["name"]));
                }
            }
        }
    }
    assert!(operations > 20, "{operations} operations");
    let schemas = &doc["components"]["schemas"];
    for name in [
        "StartRunRequest",
        "RunInput",
        "CancelRequest",
        "ChatRequest",
        "DecisionBody",
        "EventBatch",
    ] {
        for (field, schema) in schemas[name]["properties"].as_object().unwrap() {
            let texts = schema["type"] == "string" || schema["type"] == json!(["string", "null"]);
            if texts && schema.get("pattern").is_none() && schema.get("enum").is_none() {
                wrong.push(format!("{name}.{field}: {schema}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(schemas["JsonValue"]["anyOf"][0]["pattern"], "^[^\\u0000]*$");
}

/// The rules of a run's start, a chat turn, the list's filters and a
/// prune are in their schemas.
async fn the_request_schemas_state_the_handlers_rules(db: &Db) {
    let app = spawn_app(db, &[]).await;
    let (_, doc) = app.get_json("/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    // Runnable projects only: `general` is conversation only.
    assert_eq!(
        schemas["StartRunRequest"]["properties"]["project"]["enum"],
        json!(["aismr", "test_video_gen"])
    );
    let input = &schemas["RunInput"];
    let required: Vec<&Value> = input["anyOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["required"][0])
        .collect();
    assert_eq!(required, ["prompt", "title", "subject", "object", "topic"]);
    assert_eq!(input["properties"]["topic"]["maxLength"], 4000);
    assert_eq!(input["properties"]["modifiers"]["maxItems"], 50);
    assert_eq!(input["properties"]["modifiers"]["items"]["maxLength"], 200);
    assert_eq!(input["additionalProperties"], false);
    let options = &schemas["RunOptions"];
    assert_eq!(
        options["properties"]["skip"]["items"]["enum"],
        json!(["brendan", "iggy", "alex", "quinn"])
    );
    assert_eq!(
        options["additionalProperties"]["$ref"],
        "#/components/schemas/JsonValue"
    );
    assert_eq!(
        schemas["ChatRequest"]["properties"]["user_id"]["pattern"],
        "^[A-Za-z0-9_.:@-]{1,128}$"
    );
    assert_eq!(schemas["ChatRequest"]["properties"]["message"]["maxLength"], 4000);
    let days = &schemas["PruneRequest"]["properties"]["olderThanDays"];
    assert_eq!((&days["minimum"], &days["maximum"]), (&json!(1), &json!(3650)));
    let list = &doc["paths"]["/v1/runs"]["get"]["parameters"];
    let param = |name: &str| list.as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["schema"].clone();
    assert!(
        param("status")["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("awaiting_ideate"))
    );
    assert_eq!(
        (param("limit")["minimum"].clone(), param("limit")["maximum"].clone()),
        (json!(1), json!(100))
    );
    let gate = doc["paths"]["/v1/hitl/link/{runId}/{gate}"]["get"]["parameters"][1]["schema"].clone();
    assert_eq!(gate["$ref"], "#/components/schemas/Gate");

    // What the schemas allow at their edges is accepted.
    let (status, body) = app
        .start_run(json!({"project": "aismr", "input": {"topic": " x "}, "options": {"skip": ["riley", "alex", "quinn"], "extra": {"k": [1, null]}}}))
        .await;
    assert_eq!(status, 201, "{body}");
    let decision = app
        .http
        .post(app.url("/v1/hitl/reject/run_000000000000/ideate"))
        .header("accept", "application/json")
        .json(&json!({"reason": "50%00 sure"}))
        .sent()
        .await;
    assert_eq!(decision.status(), 403, "a JSON body may hold the text %00");
}

conformance_tests!(
    the_openapi_document_describes_the_routes,
    every_refusal_is_a_status_the_document_lists,
    every_answer_has_a_body_and_request_text_is_nul_free,
    the_request_schemas_state_the_handlers_rules,
);
