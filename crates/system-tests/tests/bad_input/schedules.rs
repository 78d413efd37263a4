//! `POST /v1/schedules` and the schedule routes' paths.

use myloware_db::Db;
use myloware_testkit::conformance_tests;
use proptest::prelude::*;
use proptest::sample::select;
use reqwest::Method;
use serde_json::{Value, json};

#[allow(unused_imports)]
use crate::generators::*;
#[allow(unused_imports)]
use crate::harness::*;

fn schedule_base() -> Value {
    json!({"project": "test_video_gen", "cron": "0 9 * * *", "timezone": "UTC", "input": {"prompt": "p"}})
}

/// Schedule bodies that are wrong in one way or more: every bad start
/// (with a valid pattern and zone), and what only a schedule has.
fn bad_schedule() -> impl Strategy<Value = Value> {
    let base = schedule_base();
    let as_schedule = |mut start: Value| {
        if let Some(body) = start.as_object_mut() {
            body.entry("cron").or_insert(json!("0 9 * * *"));
            body.entry("timezone").or_insert(json!("UTC"));
        }
        start
    };
    prop_oneof![
        bad_start().prop_map(as_schedule),
        not_string().prop_map(move |c| set(&schedule_base(), "/cron", c)),
        text()
            .prop_filter("not a pattern", |c| {
                myloware_core::schedule::Cadence::parse(c, "UTC").is_err()
            })
            .prop_map(move |c| set(&schedule_base(), "/cron", json!(c))),
        select(vec![
            "* * * *",
            "* * * * * * *",
            "61 * * * *",
            "0 0 30 2 *",
            "@often",
            "0 9 * * 8"
        ])
        .prop_map(move |c| set(&schedule_base(), "/cron", json!(c))),
        text()
            .prop_filter("not a zone", |z| myloware_core::schedule::time_zones()
                .all(|known| known != z))
            .prop_map(move |z| set(&schedule_base(), "/timezone", json!(z))),
        Just(remove(&base, "/cron")),
        Just(remove(&base, "/timezone")),
        Just(set(&base, "/inputs", json!([{"prompt": "q"}]))),
        Just(set(&remove(&base, "/input"), "/inputs", json!([]))),
        any_json()
            .prop_filter("not a list of inputs", |v| !v.is_array())
            .prop_map(move |v| set(&remove(&schedule_base(), "/input"), "/inputs", v)),
        (101usize..120).prop_map(move |n| set(
            &remove(&schedule_base(), "/input"),
            "/inputs",
            json!(vec![json!({"prompt": "p"}); n])
        )),
    ]
}

async fn schedule_create_refuses_bad_bodies(db: &Db) {
    let t = target(db).await;
    let bodies = body_of(bad_schedule(), schedule_base());
    let url = t.api("/v1/schedules");
    t.refuses_bodies(db, "POST /v1/schedules", &url, CASES * 2, bodies);
    t.system.stop_idle().await;
}

/// Unknown or malformed ids on every schedule route: 404s, nothing changed.
async fn schedule_paths_refuse_unknown_ids(db: &Db) {
    let t = target(db).await;
    let ids = prop_oneof![
        "sch_[a-z0-9]{12}",
        "[a-zA-Z0-9_.~-]{1,30}",
        select(vec!["sch_", "..", "%2F", "%FF", "sch_ABCDEFGHIJKL"]).prop_map(str::to_owned),
    ];
    property("/v1/schedules/{scheduleId}…", CASES, ids, |id| {
        let requests = [
            Request::new(Method::GET, t.api(&format!("/v1/schedules/{id}"))).key(),
            Request::new(Method::DELETE, t.api(&format!("/v1/schedules/{id}"))).key(),
            Request::new(Method::POST, t.api(&format!("/v1/schedules/{id}/pause"))).key(),
            Request::new(Method::POST, t.api(&format!("/v1/schedules/{id}/resume"))).key(),
        ];
        let t = &t;
        async move {
            for request in &requests {
                let answer = t.refuse(db, request).await?;
                prop_assert!([400, 404, 405].contains(&answer.status), "{answer:?}");
            }
            Ok(())
        }
    });
    t.system.stop_idle().await;
}

// Multi-thread: the properties block a worker while the servers run on the other.
conformance_tests!(multi_thread: schedule_create_refuses_bad_bodies, schedule_paths_refuse_unknown_ids);
