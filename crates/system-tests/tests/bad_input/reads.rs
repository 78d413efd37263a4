//! The read routes: queries and paths.

use myloware_db::Db;
use myloware_testkit::conformance_tests;
use proptest::prelude::*;
use proptest::sample::select;
use reqwest::Method;

#[allow(unused_imports)]
use crate::generators::*;
#[allow(unused_imports)]
use crate::harness::*;

/// Queries and paths of the read routes, parsable or not.
async fn reads_answer_json(db: &Db) {
    let t = target(db).await;
    let list = (
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(prop_oneof![any::<u32>().prop_map(|n| n.to_string()), text()]),
        proptest::option::of(text()),
    );
    property(
        "GET /v1/runs?…",
        CASES,
        list,
        |(status, project, user_id, limit, cursor)| {
            let mut query: Vec<(&str, String)> = Vec::new();
            query.extend(status.map(|v| ("status", v)));
            query.extend(project.map(|v| ("project", v)));
            query.extend(user_id.map(|v| ("user_id", v)));
            query.extend(limit.map(|v| ("limit", v)));
            query.extend(cursor.map(|v| ("cursor", v)));
            let url = t.api(&format!("/v1/runs?{}", serde_urlencoded::to_string(&query).unwrap()));
            let t = &t;
            async move {
                let answer = t.send(db, &Request::new(Method::GET, url).key()).await?;
                prop_assert!([200, 400, 422].contains(&answer.status), "{answer:?}");
                Ok(())
            }
        },
    );
    let time = prop_oneof![
        (0i64..4_000_000_000).prop_map(|t| chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339()),
        text(),
    ];
    property(
        "GET /v1/audit?…",
        CASES,
        (
            proptest::option::of(time),
            proptest::option::of(prop_oneof!["run_[a-z0-9]{12}", text()]),
            proptest::option::of(text()),
            proptest::option::of(prop_oneof![any::<u32>().prop_map(|n| n.to_string()), text()]),
            proptest::option::of(text()),
        ),
        |(since, run_id, actor, limit, cursor)| {
            let mut query: Vec<(&str, String)> = Vec::new();
            query.extend(since.map(|v| ("since", v)));
            query.extend(run_id.map(|v| ("runId", v)));
            query.extend(actor.map(|v| ("actor", v)));
            query.extend(limit.map(|v| ("limit", v)));
            query.extend(cursor.map(|v| ("cursor", v)));
            let url = t.api(&format!("/v1/audit?{}", serde_urlencoded::to_string(&query).unwrap()));
            let t = &t;
            async move {
                let answer = t.send(db, &Request::new(Method::GET, url).key()).await?;
                prop_assert!([200, 400, 422].contains(&answer.status), "{answer:?}");
                Ok(())
            }
        },
    );
    let day = prop_oneof![
        (1u32..=9999, 1u32..=12, 1u32..=31).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        text(),
    ];
    property(
        "GET /v1/costs?…",
        CASES,
        (
            proptest::option::of(day.clone()),
            proptest::option::of(day),
            proptest::option::of(text()),
        ),
        |(from, to, project)| {
            let mut query: Vec<(&str, String)> = Vec::new();
            query.extend(from.map(|v| ("from", v)));
            query.extend(to.map(|v| ("to", v)));
            query.extend(project.map(|v| ("project", v)));
            let url = t.api(&format!("/v1/costs?{}", serde_urlencoded::to_string(&query).unwrap()));
            let t = &t;
            async move {
                let answer = t.send(db, &Request::new(Method::GET, url).key()).await?;
                prop_assert!([200, 400, 422].contains(&answer.status), "{answer:?}");
                Ok(())
            }
        },
    );
    let segment = prop_oneof![
        "run_[a-z0-9]{12}",
        "[a-zA-Z0-9_.~-]{1,30}",
        select(vec!["run_", "..", "%2F", "%00", "%FF", "%E2%82", "run_abc%20def"]).prop_map(str::to_owned),
    ];
    let gate = prop_oneof![
        select(vec!["ideate", "workflow", "prepublish"]).prop_map(str::to_owned),
        "[a-zA-Z0-9_-]{1,12}",
    ];
    property(
        "GET /v1/runs/{runId}(/artifacts, /audit), /v1/hitl/link/{runId}/{gate}, POST /v1/dlq/{seq}/replay",
        CASES,
        (
            segment.clone(),
            gate,
            prop_oneof![any::<i64>().prop_map(|n| n.to_string()), segment],
        ),
        |(run_id, gate, seq)| {
            let requests = [
                Request::new(Method::GET, t.api(&format!("/v1/runs/{run_id}"))).key(),
                Request::new(Method::GET, t.api(&format!("/v1/runs/{run_id}/artifacts"))).key(),
                Request::new(Method::GET, t.api(&format!("/v1/runs/{run_id}/audit"))).key(),
                Request::new(Method::GET, t.api(&format!("/v1/hitl/link/{run_id}/{gate}"))).key(),
                Request::new(Method::GET, t.api(&format!("/v1/chat/brendan/{run_id}/messages"))).key(),
                Request::new(Method::POST, t.api(&format!("/v1/dlq/{seq}/replay"))).key(),
                Request::new(Method::GET, t.orchestrator(&format!("/v1/executions/{run_id}"))).key(),
            ];
            let t = &t;
            async move {
                for request in &requests {
                    t.send(db, request).await?;
                }
                Ok(())
            }
        },
    );
    t.system.stop_idle().await;
}

// Multi-thread: the properties block a worker while the servers run on the other.
conformance_tests!(multi_thread: reads_answer_json);
