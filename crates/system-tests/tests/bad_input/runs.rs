//! `POST /v1/runs/start` and `POST /v1/runs/{runId}/cancel`.

use myloware_db::Db;
use myloware_testkit::conformance_tests;
use proptest::prelude::*;
use reqwest::Method;
use serde_json::json;

#[allow(unused_imports)]
use crate::generators::*;
#[allow(unused_imports)]
use crate::harness::*;

async fn run_start_refuses_bad_bodies(db: &Db) {
    let t = target(db).await;
    let bodies = body_of(bad_start(), start_base());
    let url = t.api("/v1/runs/start");
    t.refuses_bodies(db, "POST /v1/runs/start", &url, CASES * 2, bodies);
    t.system.stop_idle().await;
}

/// Cancel bodies that are not a cancel request (always sent with a body
/// and a content type: a bodiless cancel is a valid cancel).
async fn cancel_refuses_bad_bodies(db: &Db) {
    let t = target(db).await;
    let bodies = body_of(
        any_json().prop_filter("not a cancel request", not_a::<myloware_api::runs::CancelRequest>),
        json!({"reason": "r"}),
    )
    .prop_filter("not empty", |(_, body)| !body.0.is_empty());
    let runs = prop_oneof![
        Just(t.proposed.clone()),
        Just(t.awaiting.clone()),
        "run_[a-z0-9]{12}",
        "[a-zA-Z0-9_.-]{1,20}",
    ];
    t.refuses(
        db,
        "POST /v1/runs/{runId}/cancel",
        CASES,
        (runs, bodies),
        |(run_id, (content_type, body))| {
            let content_type = content_type.unwrap_or_else(|| "application/json".into());
            Request::new(Method::POST, t.api(&format!("/v1/runs/{run_id}/cancel")))
                .key()
                .body(Some(&content_type), body)
        },
    );
    t.system.stop_idle().await;
}

// Multi-thread: the properties block a worker while the servers run on the other.
conformance_tests!(multi_thread: run_start_refuses_bad_bodies, cancel_refuses_bad_bodies);
