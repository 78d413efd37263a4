//! The HITL decisions and links.

use myloware_core::signing;
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::system::API_KEY;
use proptest::prelude::*;
use proptest::sample::select;
use reqwest::Method;

#[allow(unused_imports)]
use crate::generators::*;
#[allow(unused_imports)]
use crate::harness::*;

/// HITL tokens that must not decide `gate` of `run_id`: random text, or
/// real-looking ones signed with the wrong secret, expired, or for another
/// run or gate, or a real one mutated.
fn forged_token(run_id: String, gate: String) -> impl Strategy<Value = Option<String>> {
    let now = chrono::Utc::now().timestamp();
    let (r1, r2, r3, r4) = (run_id.clone(), run_id.clone(), run_id.clone(), run_id);
    let (g1, g2, g3, g4) = (gate.clone(), gate.clone(), gate.clone(), gate);
    prop_oneof![
        Just(None),
        text().prop_map(Some),
        "[0-9]{1,11}\\.[0-9a-f]{0,70}".prop_map(Some),
        proptest::collection::vec(any::<u8>(), 1..40).prop_map(move |secret| Some(signing::hitl_token(
            &secret,
            &r1,
            &g1,
            now + 3600
        ))),
        (1i64..10_000_000).prop_map(move |ago| Some(signing::hitl_token(HITL_SECRET, &r2, &g2, now - ago))),
        select(vec!["workflow", "ideate", "prepublish", "other"])
            .prop_filter("another gate", move |other| *other != g3)
            .prop_map(move |other| Some(signing::hitl_token(HITL_SECRET, &r3, other, now + 3600))),
        (any::<usize>(), "[0-9a-f]").prop_map(move |(at, with)| {
            let token = signing::hitl_token(HITL_SECRET, &r4, &g4, now + 3600);
            let digits = token.len() - token.find('.').unwrap() - 1;
            let at = token.len() - 1 - at % digits;
            let mutated = format!("{}{with}{}", &token[..at], &token[at + 1..]);
            (mutated != token).then_some(mutated)
        }),
    ]
}

async fn hitl_decisions_refuse_bad_input(db: &Db) {
    let t = target(db).await;
    let runs = prop_oneof![
        3 => Just(t.awaiting.clone()),
        3 => Just(t.proposed.clone()),
        1 => "run_[a-z0-9]{12}",
        1 => "[a-zA-Z0-9_.-]{1,20}",
    ];
    let gates = prop_oneof![
        3 => select(vec!["ideate", "workflow", "prepublish"]).prop_map(str::to_owned),
        1 => "[a-z]{1,12}",
    ];
    let cases = (runs, gates, any::<bool>()).prop_flat_map(|(run_id, gate, approve)| {
        let token = forged_token(run_id.clone(), gate.clone());
        let body = prop_oneof![
            Just(None),
            (proptest::option::of(text()), proptest::option::of(text())).prop_map(|(approver, reason)| Some((
                "application/x-www-form-urlencoded".to_string(),
                {
                    let mut form = Vec::new();
                    if let Some(a) = approver {
                        form.push(("approver", a));
                    }
                    if let Some(r) = reason {
                        form.push(("reason", r));
                    }
                    serde_urlencoded::to_string(form).unwrap().into_bytes()
                }
            ))),
            proptest::collection::vec(any::<u8>(), 1..100)
                .prop_map(|b| Some(("application/x-www-form-urlencoded".to_string(), b))),
            (content_type(), any_json()).prop_map(|(ct, v)| Some((
                ct.unwrap_or_else(|| "application/json".into()),
                v.to_string().into_bytes()
            ))),
        ];
        // Never the real key: a key decides.
        let key = proptest::option::of(header_value().prop_filter("not the key", |k| k != API_KEY));
        let origin = proptest::option::of(select(vec!["null", "https://evil.example", "http://127.0.0.1", ""]));
        let token_in_body = any::<bool>();
        (
            Just(run_id),
            Just(gate),
            Just(approve),
            token,
            body,
            key,
            origin,
            token_in_body,
        )
    });
    property(
        "POST /v1/hitl/{approve,reject}/{runId}/{gate}",
        CASES * 2,
        cases,
        |(run_id, gate, approve, token, body, key, origin, token_in_body)| {
            let action = if approve { "approve" } else { "reject" };
            let mut url = t.api(&format!("/v1/hitl/{action}/{run_id}/{gate}"));
            let mut body = body;
            if let Some(token) = &token {
                match (&mut body, token_in_body) {
                    (Some((ct, bytes)), true) if ct.starts_with("application/x-www-form-urlencoded") => {
                        let field = serde_urlencoded::to_string([("token", token)]).unwrap();
                        if !bytes.is_empty() {
                            bytes.push(b'&');
                        }
                        bytes.extend_from_slice(field.as_bytes());
                    }
                    _ => url.push_str(&format!(
                        "?{}",
                        serde_urlencoded::to_string([("token", token)]).unwrap()
                    )),
                }
            }
            let mut request = Request::new(Method::POST, url).header("accept", "application/json");
            if let Some(key) = key {
                request = request.header("x-api-key", key);
            }
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            if let Some((content_type, bytes)) = body {
                request = request.body(Some(&content_type), bytes);
            }
            let t = &t;
            async move {
                t.refuse(db, &request).await?;
                // Opening the link never decides either.
                let view = Request::new(Method::GET, request.url.replace("/reject/", "/approve/"))
                    .header("accept", "application/json");
                let answer = t.send(db, &view).await?;
                refused(&answer)?;
                Ok(())
            }
        },
    );
    t.system.stop_idle().await;
}

// Multi-thread: the properties block a worker while the servers run on the other.
conformance_tests!(multi_thread: hitl_decisions_refuse_bad_input);
