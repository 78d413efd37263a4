//! Security: internal. The orchestrator's routes and the API's
//! `/v1/internal/*` take the internal credential (an HMAC over method,
//! path, time and body with `INTERNAL_SECRET`) and nothing else: an
//! operator key is refused, and a forged event changes nothing.

use myloware_core::internal::{HEADER, InternalKeys};
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use serde_json::{Value, json};

use myloware_testkit::system::{self, API_KEY, System};

async fn operator_keys_are_refused_on_every_internal_route(db: &Db) {
    let system = system::start(db, &[]).await;
    let run_id = system.aismr_at_ideate("u-1").await;
    let before = system.run(&run_id).await;

    // A forged gate.reached with the (admin) operator key.
    let forged = forged_gate_reached(&system, &run_id).await;
    let response = system
        .with_key(
            system
                .http
                .post(format!("{}/v1/internal/events", system.api))
                .json(&forged),
        )
        .await;
    assert_eq!(
        response.status().as_u16(),
        401,
        "the operator key on /v1/internal/events"
    );
    let after = system.run(&run_id).await;
    assert_eq!(after["status"], before["status"], "the run did not move");
    assert_eq!(after["gates"], before["gates"], "no gate opened");
    let applied = system.api_state.store.list_events(&run_id).await.unwrap();
    assert!(
        !applied.iter().any(|e| e.event_id.starts_with("forged-")),
        "the forged event was not applied"
    );

    let o = &system.orchestrator;
    let routes = [
        ("GET", format!("{o}/ready")),
        ("POST", format!("{o}/v1/executions")),
        ("GET", format!("{o}/v1/executions/{run_id}")),
        ("POST", format!("{o}/v1/executions/{run_id}/signals")),
        ("POST", format!("{o}/v1/executions/{run_id}/resume")),
        ("POST", format!("{o}/v1/executions/{run_id}/cancel")),
        ("POST", format!("{o}/v1/chat/brendan")),
    ];
    for (method, url) in &routes {
        let request = system
            .http
            .request(method.parse().unwrap(), url)
            .header("x-api-key", API_KEY)
            .json(&json!({}));
        let status = request.send().await.unwrap().status().as_u16();
        assert_eq!(status, 401, "{method} {url} with the operator key");
    }
    for path in ["/health", "/metrics"] {
        let status = system.http.get(format!("{o}{path}")).send().await.unwrap().status();
        assert_eq!(status.as_u16(), 200, "{path} is open");
    }
    // The run was neither cancelled nor signalled.
    assert_eq!(system.run(&run_id).await["status"], "awaiting_ideate");
    system.stop_idle().await;
}

async fn only_a_fresh_signature_over_the_sent_body_is_accepted(db: &Db) {
    let system = system::start(db, &[]).await;
    let url = format!("{}/v1/internal/events", system.api);
    let body = serde_json::to_vec(&json!({"events": []})).unwrap();
    let keys = system.api_state.config.internal_keys();
    let now = chrono::Utc::now().timestamp();

    // Signed as the orchestrator signs: accepted.
    let mut request = system
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body(body.clone())
        .build()
        .unwrap();
    myloware_http::internal::sign(&keys, &mut request);
    assert_eq!(system.http.execute(request).await.unwrap().status().as_u16(), 200);

    let wrong = InternalKeys::new("not-the-internal-secret-at-all".into(), None);
    let altered = serde_json::to_vec(&json!({"events": [], "x": 1})).unwrap();
    let cases = [
        (
            "wrong secret",
            wrong.sign("POST", "/v1/internal/events", &body, now),
            body.clone(),
        ),
        (
            "stale",
            keys.sign("POST", "/v1/internal/events", &body, now - 600),
            body.clone(),
        ),
        (
            "body altered after signing",
            keys.sign("POST", "/v1/internal/events", &body, now),
            altered,
        ),
        (
            "other path",
            keys.sign("POST", "/v1/internal/other", &body, now),
            body.clone(),
        ),
        ("missing", String::new(), body.clone()),
    ];
    for (what, header, sent) in cases {
        let mut request = system
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(sent);
        if !header.is_empty() {
            request = request.header(HEADER, header);
        }
        let status = request.send().await.unwrap().status().as_u16();
        assert_eq!(status, 401, "{what}");
    }
    system.stop_idle().await;
}

/// Rotation: with `INTERNAL_SECRET_PREVIOUS` set to the old secret, a
/// request signed with it is still accepted (machines not yet restarted);
/// once the previous secret is unset, it is refused.
async fn the_previous_internal_secret_is_accepted_during_a_rotation(db: &Db) {
    const OLD: &str = "the-old-internal-secret-being-rotated-out";
    const NEW: &str = "the-new-internal-secret-being-rotated-in";
    let old = InternalKeys::new(OLD.into(), None);
    for (previous, expected) in [(Some(OLD), 200), (None, 401)] {
        let mut vars = vec![("INTERNAL_SECRET", NEW)];
        vars.extend(previous.map(|p| ("INTERNAL_SECRET_PREVIOUS", p)));
        let system = system::start(db, &vars).await;
        let url = format!("{}/v1/internal/events", system.api);
        let mut request = system.http.post(&url).json(&json!({"events": []})).build().unwrap();
        myloware_http::internal::sign(&old, &mut request);
        let status = system.http.execute(request).await.unwrap().status().as_u16();
        assert_eq!(status, expected, "previous secret {previous:?}");
        system.stop_idle().await;
    }
}

conformance_tests!(
    operator_keys_are_refused_on_every_internal_route,
    only_a_fresh_signature_over_the_sent_body_is_accepted,
    the_previous_internal_secret_is_accepted_during_a_rotation,
);

// Helpers.

/// A `gate.reached` for the prepublish gate, next in the run's sequence.
async fn forged_gate_reached(system: &System, run_id: &str) -> Value {
    let applied = system.api_state.store.list_events(run_id).await.unwrap();
    let seq = applied.iter().map(|e| e.seq).max().unwrap_or(0) + 1;
    json!({"events": [{
        "eventId": format!("forged-{seq}"),
        "runId": run_id,
        "seq": seq,
        "type": "gate.reached",
        "at": chrono::Utc::now(),
        "data": {"gate": "prepublish"},
    }]})
}
