//! `POST /v1/chat/brendan`.

use myloware_db::Db;
use myloware_testkit::conformance_tests;
use proptest::prelude::*;
use serde_json::{Value, json};

#[allow(unused_imports)]
use crate::generators::*;
#[allow(unused_imports)]
use crate::harness::*;

fn chat_base() -> Value {
    json!({"user_id": "u-1", "message": "hello"})
}

fn bad_chat() -> impl Strategy<Value = Value> {
    let base = chat_base();
    prop_oneof![
        not_string().prop_map(move |u| set(&chat_base(), "/user_id", u)),
        prop_oneof![
            Just(String::new()),
            (129usize..300).prop_map(|n| "u".repeat(n)),
            "[a-z0-9]{0,8}[^A-Za-z0-9_.:@-][a-z0-9]{0,8}",
        ]
        .prop_map(move |u| set(&chat_base(), "/user_id", json!(u))),
        not_string().prop_map(move |m| set(&chat_base(), "/message", m)),
        prop_oneof!["[ \t\n\r]{0,8}", (4001usize..4100).prop_map(|n| "é".repeat(n))].prop_map(move |m| set(
            &chat_base(),
            "/message",
            json!(m)
        )),
        Just(remove(&base, "/user_id")),
        Just(remove(&chat_base(), "/message")),
        ("[a-zA-Z]{1,10}", any_json())
            .prop_filter("unknown field", |(k, _)| !["user_id", "message"].contains(&k.as_str()))
            .prop_map(move |(k, v)| set(&chat_base(), &format!("/{k}"), v)),
        any_json().prop_filter("not a chat turn", |v| {
            not_a::<myloware_api::routes::chat::ChatRequest>(v)
        }),
        Just(set(&chat_base(), "/userId", json!("u-1"))),
    ]
    .prop_filter("may be a valid turn", |v| !chat_may_be_accepted(v))
}

async fn chat_refuses_bad_bodies(db: &Db) {
    let t = target(db).await;
    let url = t.api("/v1/chat/brendan");
    t.refuses_bodies(
        db,
        "POST /v1/chat/brendan",
        &url,
        CASES,
        body_of(bad_chat(), chat_base()),
    );
    t.system.stop_idle().await;
}

// Multi-thread: the properties block a worker while the servers run on the other.
conformance_tests!(multi_thread: chat_refuses_bad_bodies);
