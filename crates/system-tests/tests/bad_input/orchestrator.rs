//! The orchestrator's routes.

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

/// The orchestrator's routes with bodies that must be refused (or that
/// name executions that do not exist).
async fn orchestrator_refuses_bad_bodies(db: &Db) {
    let t = target(db).await;
    let base = execution_base("run_fuzzfuzzfuzz");
    let (b1, b2, b3, b4, b5) = (base.clone(), base.clone(), base.clone(), base.clone(), base.clone());
    let starts =
        prop_oneof![
            prop_oneof![Just(String::new()), "[A-Z]{1,10}", "run_[A-Z ./]{1,10}", "[a-z]{1,12}"]
                .prop_map(move |id| set(&b1, "/runId", json!(id))),
            prop_oneof![
                Just(json!({"pipeline": [], "hitl_gates": []})),
                Just(json!({"pipeline": ["alex", "quinn"], "hitl_gates": []})),
                Just(json!({"pipeline": ["quinn", "iggy"], "hitl_gates": []})),
                Just(json!({"pipeline": ["brendan"], "hitl_gates": []})),
                Just(json!({"pipeline": ["riley"], "hitl_gates": ["prepublish"]})),
                Just(json!({"pipeline": ["iggy", "riley"], "hitl_gates": ["workflow"]})),
                not_object(),
            ]
            .prop_map(move |g| set(&b2, "/graphSpec", g)),
            (select(vec![
                "runId",
                "project",
                "graphSpec",
                "projectSpec",
                "providersMode",
                "input"
            ]))
            .prop_map(move |field| remove(&b3, &format!("/{field}"))),
            (
                select(vec!["project", "projectSpec", "providersMode", "videos"]),
                any_json()
            )
                .prop_filter_map("wrong type", move |(field, value)| {
                    let body = set(&b4, &format!("/{field}"), value);
                    not_a::<myloware_core::wire::StartExecution>(&body).then_some(body)
                }),
            any_json().prop_filter("not a start", not_a::<myloware_core::wire::StartExecution>),
            Just(b5),
        ]
        .prop_filter("may be a valid start", |v| !execution_may_be_accepted(v));
    let url = t.orchestrator("/v1/executions");
    t.refuses_bodies(
        db,
        "orchestrator POST /v1/executions",
        &url,
        CASES,
        body_of(starts, base.clone()),
    );

    // Signals, resumes, cancels: bad bodies for the real executions; any
    // well-formed one only for executions that do not exist.
    let real = prop_oneof![Just(t.awaiting.clone()), Just(t.proposed.clone())];
    let unknown = "run_[a-z0-9]{12}";
    let signal =
        json!({"signalId": "s-1", "signal": {"type": "clip.completed", "taskId": "t", "index": 0, "url": "u"}});
    let resume = json!({"gate": "ideate", "decision": "approve"});
    let cases = prop_oneof![
        (
            real.clone(),
            body_of(
                any_json().prop_filter("not a signal", not_a::<myloware_core::wire::SignalDelivery>),
                signal.clone()
            )
        )
            .prop_map(|(run, body)| ("signals", run, body)),
        (unknown, body_of(any_json(), signal.clone())).prop_map(|(run, body)| ("signals", run, body)),
        (
            real.clone(),
            body_of(
                prop_oneof![
                    any_json(),
                    text().prop_map(|d| json!({"gate": "ideate", "decision": d})),
                    select(vec!["approve", "reject"]).prop_map(|d| json!({"gate": "prepublish", "decision": d})),
                    text().prop_map(|g| json!({"gate": g, "decision": "approve"})),
                ]
                .prop_filter("not a decision of the ideate gate", |v| !decides_ideate(v)),
                resume.clone()
            )
        )
            .prop_map(|(run, body)| ("resume", run, body)),
        (unknown, body_of(any_json(), resume)).prop_map(|(run, body)| ("resume", run, body)),
        (unknown, body_of(any_json(), json!({}))).prop_map(|(run, body)| ("cancel", run, body)),
    ];
    t.refuses(
        db,
        "orchestrator POST /v1/executions/{runId}/{signals,resume,cancel}",
        CASES * 2,
        cases,
        |(action, run_id, (content_type, body))| {
            Request::new(
                Method::POST,
                t.orchestrator(&format!("/v1/executions/{run_id}/{action}")),
            )
            .key()
            .body(content_type.as_deref(), body)
        },
    );

    // Brendan's turn: malformed turns, empty or oversized messages, too much history.
    let turn = json!({"userId": "u-1", "message": "hi", "history": [], "runs": [], "projects": []});
    let (t1, t2) = (turn.clone(), turn.clone());
    let turns = prop_oneof![
        any_json().prop_filter("not a turn", not_a::<myloware_core::wire::ChatTurn>),
        prop_oneof!["[ \t\n]{0,6}", (4001usize..4050).prop_map(|n| "é".repeat(n))].prop_map(move |m| set(
            &t1,
            "/message",
            json!(m)
        )),
        (101usize..130).prop_map(move |n| set(&t2, "/history", json!(vec![json!({"role": "user", "text": "x"}); n]))),
    ];
    let url = t.orchestrator("/v1/chat/brendan");
    t.refuses_bodies(
        db,
        "orchestrator POST /v1/chat/brendan",
        &url,
        CASES,
        body_of(turns, turn),
    );
    t.system.stop_idle().await;
}

// Multi-thread: the properties block a worker while the servers run on the other.
conformance_tests!(multi_thread: orchestrator_refuses_bad_bodies);
