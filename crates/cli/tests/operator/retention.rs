//! `mw retention`.

use super::*;
use myloware_testkit::JsonAnswer;

fn old_delivery(key: &str, run_id: &str) -> WebhookDelivery {
    WebhookDelivery {
        provider: "kieai".into(),
        idempotency_key: Some(key.into()),
        run_id: Some(run_id.into()),
        headers: json!({}),
        body: "{}".into(),
        body_size: 2,
        body_sha256: String::new(),
        signature_status: myloware_api::store::SignatureStatus::Verified,
        outcome: myloware_api::store::WebhookOutcome::Accepted,
        received_at: now() - Days::days(40),
    }
}

async fn retention_prune_dry_run_then_real(db: &Db) {
    let system = start(db, &[]).await;
    let store = &system.api_state.store;
    // A run that ended 40 days ago and one running since then, each with
    // old artifacts and an old webhook delivery; an old delivered push.
    let old = now() - Days::days(40);
    let mut ids = Vec::new();
    for status in [RunStatus::Published, RunStatus::Running] {
        let run = NewRun {
            gate: None,
            id: myloware_core::ids::new_run_id(),
            project: "test_video_gen".into(),
            status,
            user_id: None,
            payload: json!({"project": "test_video_gen", "input": {"prompt": "old"}}),
            result: json!({"videos": [], "publishUrls": []}),
            created_at: old,
            estimated_usd_micros: None,
            max_active: None,
            notice: None,
        };
        store.insert_run(&run).await.unwrap();
        for kind in ["persona.output", "kieai.clip", "render.url"] {
            let artifact = Artifact {
                created_at: old,
                ..Artifact::new(&run.id, kind, Some("riley"), json!({}))
            };
            store.insert_artifact(&artifact).await.unwrap();
        }
        assert!(
            store
                .record_webhook(&old_delivery(&format!("{}:200", run.id), &run.id), None)
                .await
                .unwrap()
        );
        ids.push(run.id);
    }
    let (ended, running) = (&ids[0], &ids[1]);
    store
        .append_chat(&ChatMessage {
            user_id: "u-old".into(),
            role: "assistant".into(),
            text: "old news".into(),
            run_id: None,
            gate: None,
            link: None,
            created_at: old,
            pushes: vec![Push {
                channel: myloware_api::store::Channel::Webhook,
                target: "http://127.0.0.1:9/hook".into(),
            }],
        })
        .await
        .unwrap();
    let push = store.list_chat_deliveries(10).await.unwrap()[0].id;
    store.finish_chat_delivery(push, &PushOutcome::Delivered).await.unwrap();
    // And a live run of today, waiting at a gate.
    let live = system.start_run(system::aismr("candles")).await;
    system.wait_status(&live, "awaiting_ideate", QUICK).await;
    let live_artifacts = store.list_artifacts(&live).await.unwrap().len();

    let dry = ok(&mw(&system, &["retention", "prune", "--dry-run"]).await);
    assert!(
        dry.contains("dry run: would delete") && dry.contains("(30 days)"),
        "{dry}"
    );
    for line in [
        "webhook_deliveries   1",
        "artifacts            3",
        "chat_deliveries      1",
        "chat_messages        1",
    ] {
        assert!(dry.contains(line), "{line:?} in:\n{dry}");
    }
    let counted = json_of(&mw(&system, &["retention", "prune", "--dry-run", "--json"]).await);
    assert_eq!(
        (
            &counted["dryRun"],
            &counted["api"]["webhook_deliveries"],
            &counted["api"]["artifacts"],
            &counted["api"]["chat_deliveries"]
        ),
        (&json!(true), &json!(1), &json!(3), &json!(1))
    );
    assert_eq!(
        store.list_artifacts(ended).await.unwrap().len(),
        3,
        "a dry run deletes nothing"
    );
    assert_eq!(store.list_webhooks("kieai").await.unwrap().len(), 2);

    let deleted = json_of(&mw(&system, &["retention", "prune", "--json"]).await);
    assert_eq!(deleted["dryRun"], false);
    assert_eq!(deleted["api"], counted["api"], "as counted");
    assert!(store.list_artifacts(ended).await.unwrap().is_empty());
    assert_eq!(
        store.list_artifacts(running).await.unwrap().len(),
        3,
        "a running run's rows stay"
    );
    assert_eq!(store.list_artifacts(&live).await.unwrap().len(), live_artifacts);
    let kept: Vec<_> = store
        .list_webhooks("kieai")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.run_id.unwrap())
        .collect();
    assert_eq!(kept, [running.as_str()]);
    assert!(store.list_chat_deliveries(10).await.unwrap().is_empty());
    let left = store.prune(now() - Days::days(30), true).await.unwrap();
    assert!(left.values().all(|n| *n == 0), "{left:?}");
    let again = ok(&mw(&system, &["retention", "prune", "--older-than-days", "7"]).await);
    assert!(
        again.contains("deleted, from before") && again.contains("(7 days)"),
        "{again}"
    );
    // The run itself is still there, and the live one carries on.
    let shown = ok(&mw(&system, &["runs", "show", ended]).await);
    assert!(shown.contains("published"), "{shown}");
    ok(&mw(&system, &["hitl", "approve", &live, "ideate"]).await);
    system.wait_status(&live, "awaiting_prepublish", QUICK).await;
    ok(&mw(&system, &["hitl", "approve", &live, "prepublish"]).await);
    system.wait_status(&live, "published", QUICK).await;

    // The API checks the body with its 422 convention.
    let url = format!("{}/v1/retention/prune", system.api);
    for (body, msg) in [
        (json!({"olderThanDays": 0}), "must be between 1 and 3650 days"),
        (
            json!({"olderThanDays": 3651, "dryRun": true}),
            "must be between 1 and 3650 days",
        ),
    ] {
        let (status, answer) = system.post(&url, body).await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(
            answer["detail"],
            json!([{"loc": ["body", "olderThanDays"], "msg": msg, "type": "value_error"}])
        );
    }
    for body in [json!({"dryRun": true}), json!({"olderThanDays": 30, "keep": 1})] {
        let (status, answer) = system.post(&url, body).await;
        assert_eq!(status, 422, "{answer}");
        assert!(answer["detail"].is_array(), "{answer}");
    }
    let response = system.http.post(&url).json(&json!({"olderThanDays": 30})).sent().await;
    assert_eq!(response.status(), 401, "the API key is required");
    system.stop_idle().await;
}

conformance_tests!(retention_prune_dry_run_then_real);
