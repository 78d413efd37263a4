//! `POST /v1/internal/events` (the orchestrator's events to the API).

use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::system;
use proptest::prelude::*;
use proptest::sample::select;
use reqwest::Method;
use serde_json::json;

#[allow(unused_imports)]
use crate::generators::*;
#[allow(unused_imports)]
use crate::harness::*;

const EVENT_KINDS: [&str; 10] = [
    "execution.started",
    "persona.started",
    "persona.completed",
    "artifact.created",
    "status.changed",
    "gate.reached",
    "execution.completed",
    "execution.failed",
    "execution.cancelled",
    "execution.rejected",
];

/// Event batches that are malformed, or well-formed but for unknown runs,
/// already applied seqs, or seqs after a gap: nothing is applied.
async fn internal_events_apply_nothing_out_of_place(db: &Db) {
    let t = target(db).await;
    let (awaiting, proposed, last) = (t.awaiting.clone(), t.proposed.clone(), t.awaiting_seq);
    let runs = prop_oneof![
        Just((awaiting, last)),
        Just((proposed, 0)),
        "run_[a-z0-9]{12}".prop_map(|r| (r, -1))
    ];
    let event = (
        runs,
        any::<i64>(),
        select(EVENT_KINDS.to_vec()),
        any_json(),
        "[a-z0-9-]{1,20}",
    )
        .prop_filter_map("not the next seq", |((run_id, last), seq, kind, data, id)| {
            // Unknown runs (`last` -1) take any seq.
            (last < 0 || seq != last + 1).then(|| {
                json!({"eventId": id, "runId": run_id, "seq": seq, "type": kind, "at": "2026-01-01T00:00:00Z", "data": data})
            })
        });
    let batches = prop_oneof![
        proptest::collection::vec(event, 1..5).prop_map(|events| json!({ "events": events })),
        any_json().prop_filter("not a batch", not_a::<myloware_core::wire::EventBatch>),
        any_json().prop_map(|e| json!({"events": [e]})),
    ];
    property(
        "POST /v1/internal/events",
        CASES * 2,
        body_of(batches, event_base("run_abcdefabcdef", 1)),
        |(content_type, body)| {
            let request = Request::new(Method::POST, t.api("/v1/internal/events"))
                .key()
                .body(content_type.as_deref(), body);
            let t = &t;
            async move {
                let answer = t.send(db, &request).await?;
                if answer.status == 200 {
                    for result in answer.body["results"].as_array().unwrap() {
                        prop_assert!(
                            ["duplicate", "out_of_order", "unknown_run"].contains(&result["status"].as_str().unwrap()),
                            "{answer:?}"
                        );
                    }
                } else {
                    refused(&answer)?;
                }
                Ok(())
            }
        },
    );
    t.system.stop_idle().await;
}

/// Events the API applies (the next seq of a run) with any data at all:
/// applied without a 5xx, and the run, its gates and the lists still read.
async fn internal_events_with_any_data_are_applied_without_failing(db: &Db) {
    let system = system::start(db, &[]).await;
    let run_id = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "p"},
            "options": {"requireWorkflowApproval": true, "user_id": "u-3"}}))
        .await;
    let seq = std::sync::atomic::AtomicI64::new(0);
    let data = prop_oneof![
        any_json(),
        (select(vec!["persona", "gate", "status", "kind"]), text()).prop_map(|(k, v)| json!({ k: v })),
        (
            select(vec!["kieai.clip", "render.url", "publish.url", "other"]),
            any_json()
        )
            .prop_map(|(kind, data)| json!({"kind": kind, "persona": "riley", "data": data})),
        any_json().prop_map(|v| json!({"videos": v, "renderUrl": v, "publishUrls": v, "error": v})),
        (any::<i64>(), text(), any_json())
            .prop_map(|(i, s, u)| json!({"kind": "kieai.clip", "data": {"index": i, "status": s, "url": u}})),
    ];
    property(
        "POST /v1/internal/events (applied)",
        CASES * 2,
        (select(EVENT_KINDS.to_vec()), data),
        |(kind, data)| {
            let (system, run_id, seq) = (&system, &run_id, &seq);
            async move {
                let last = last_event_seq(system, run_id).await;
                let next = last + 1;
                let id = seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = json!({"events": [{"eventId": format!("fuzz-{id}"), "runId": run_id, "seq": next,
                    "type": kind, "at": "2026-01-01T00:00:00Z", "data": data}]});
                let request = Request::new(Method::POST, format!("{}/v1/internal/events", system.api))
                    .key()
                    .json(&body);
                let answer = send(&system.http, &request).await;
                well_formed(&answer)?;
                if has_nul(&request) {
                    // Refused at the door on both backends (Postgres cannot store it).
                    refused(&answer)?;
                    prop_assert_eq!(last_event_seq(system, run_id).await, last, "applied anyway");
                    return Ok(());
                }
                prop_assert_eq!(answer.status, 200, "{:?}", answer);
                prop_assert_eq!(&answer.body["results"][0]["status"], "applied", "{:?}", answer);
                for path in [
                    format!("/v1/runs/{run_id}"),
                    format!("/v1/runs/{run_id}/artifacts"),
                    "/v1/runs".to_string(),
                    "/v1/hitl/pending".to_string(),
                    "/v1/chat/brendan/u-3/messages".to_string(),
                ] {
                    let read = send(
                        &system.http,
                        &Request::new(Method::GET, format!("{}{path}", system.api)).key(),
                    )
                    .await;
                    prop_assert_eq!(read.status, 200, "GET {} after {}: {:?}", path, body, read);
                }
                Ok(())
            }
        },
    );
}

// Multi-thread: the properties block a worker while the servers run on the other.
conformance_tests!(multi_thread: internal_events_apply_nothing_out_of_place, internal_events_with_any_data_are_applied_without_failing);
