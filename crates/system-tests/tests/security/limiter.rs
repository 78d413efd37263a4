//! Security: limiter. Rate limits key on a *valid* credential's name, else
//! on the peer address: invented keys are not identities, refusals on the
//! open routes are limited per address, verified requests spend no refusal
//! budget, and the audit records the address, never a key fingerprint.

use myloware_testkit::JsonAnswer;

use myloware_db::Db;

use myloware_testkit::conformance_tests;
use serde_json::json;

use myloware_testkit::system::{self, API_KEY, System};

const OPS_KEY: &str = "limiter-ops-key";

async fn rotating_bogus_keys_still_meets_429(db: &Db) {
    let system = start_limited(db).await;
    let run_id = system.aismr_at_ideate("u-1").await;

    let mut statuses = Vec::new();
    for i in 0..10 {
        let response = system
            .http
            .post(format!(
                "{}/v1/hitl/approve/{run_id}/ideate?token=1796677328.{i:064x}",
                system.api
            ))
            .header("x-api-key", format!("bogus-key-{i}"))
            .json(&json!({}))
            .sent()
            .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(
        statuses,
        [403, 403, 403, 429, 429, 429, 429, 429, 429, 429],
        "a new bogus key each time buys no new budget (burst 3)"
    );
    assert_eq!(system.run(&run_id).await["status"], "awaiting_ideate");

    // The audit holds the peer address, never a fingerprint of the keys sent.
    let audit = system.api_state.store.list_audit(&run_id).await.unwrap();
    assert!(audit.len() >= 3, "{audit:#?}");
    for row in &audit {
        assert_eq!(row.ip.as_deref(), Some("127.0.0.1"), "{row:?}");
        assert!(
            !row.actor.starts_with("key:") && !row.actor.starts_with("api_key"),
            "{row:?}"
        );
    }

    // A valid key is its own identity: the cut-off address still starts
    // runs with it, and each named key has its own budget.
    let start = |key: &'static str| {
        let http = system.http.clone();
        let url = format!("{}/v1/runs/start", system.api);
        async move {
            let response = http
                .post(url)
                .header("x-api-key", key)
                .json(&system::smoke())
                .sent()
                .await;
            response.status().as_u16()
        }
    };
    // The admin key started one run already; burst 3.
    let admin = [start(API_KEY).await, start(API_KEY).await, start(API_KEY).await];
    assert_eq!(admin, [201, 201, 429], "the admin key's own budget");
    let ops = [
        start(OPS_KEY).await,
        start(OPS_KEY).await,
        start(OPS_KEY).await,
        start(OPS_KEY).await,
    ];
    assert_eq!(ops, [201, 201, 201, 429], "the ops key's budget is its own");
    system.stop_idle().await;
}

async fn verified_requests_spend_no_refusal_budget(db: &Db) {
    let system = start_limited(db).await;
    let run_id = system.aismr_at_ideate("u-1").await;
    let link = system
        .get(&format!("{}/v1/hitl/link/{run_id}/ideate", system.api))
        .await;
    let url = link["approvalUrl"].as_str().unwrap().to_string();

    // Valid-token page views spend a budget of their own (each is
    // audited): the burst is served, then 429; none of it is a refusal.
    let mut views = Vec::new();
    for _ in 0..5 {
        let response = system.http.get(&url).header("accept", "application/json").sent().await;
        views.push(response.status().as_u16());
    }
    assert_eq!(views, [200, 200, 200, 429, 429], "valid-token views");
    // Refusals are still limited: three, then 429.
    let bad = url.split("token=").next().unwrap().to_string() + "token=1796677328.deadbeef";
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = system.http.get(&bad).header("accept", "application/json").sent().await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [403, 403, 403, 429]);
    let audit = system.api_state.store.list_audit(&run_id).await.unwrap();
    assert!(
        audit
            .iter()
            .filter(|row| row.outcome != "ok")
            .all(|row| row.ip.as_deref() == Some("127.0.0.1")),
        "{audit:#?}"
    );
    system.stop_idle().await;
}

/// Behind a proxy (`TRUST_PROXY_HEADERS`), the client is the address the
/// proxy appended (the last `X-Forwarded-For` entry): rotating the entries
/// a client writes itself neither escapes the limit nor forges the audit.
async fn forwarded_addresses_a_client_writes_itself_are_not_trusted(db: &Db) {
    let system = system::start(
        db,
        &[
            ("RATE_LIMIT_PER_MINUTE", "1"),
            ("RATE_LIMIT_BURST", "3"),
            ("TRUST_PROXY_HEADERS", "true"),
        ],
    )
    .await;
    let run_id = system.aismr_at_ideate("u-1").await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let response = system
            .http
            .post(format!("{}/v1/hitl/approve/{run_id}/ideate", system.api))
            .header("x-forwarded-for", format!("10.9.8.{i}, 203.0.113.7"))
            .header("content-type", "application/json")
            .body(r#"{"token": "1796677328.deadbeef"}"#)
            .sent()
            .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [403, 403, 403, 429, 429]);
    let audit = system.api_state.store.list_audit(&run_id).await.unwrap();
    assert!(!audit.is_empty());
    assert!(
        audit.iter().all(|row| row.ip.as_deref() == Some("203.0.113.7")),
        "{audit:#?}"
    );
    system.stop_idle().await;
}

conformance_tests!(
    rotating_bogus_keys_still_meets_429,
    verified_requests_spend_no_refusal_budget,
    forwarded_addresses_a_client_writes_itself_are_not_trusted,
);

// Helpers.

async fn start_limited(db: &Db) -> System {
    let keys = format!("ops:operator:{OPS_KEY}");
    system::start(
        db,
        &[
            ("RATE_LIMIT_PER_MINUTE", "1"),
            ("RATE_LIMIT_BURST", "3"),
            ("API_KEYS", &keys),
        ],
    )
    .await
}
