//! The engine end to end, in-process: both services on real HTTP, mock
//! providers, SQLite and (with `TEST_DATABASE_URL`) Postgres.

use myloware_testkit::JsonAnswer;
use std::time::{Duration, Instant};

use myloware_db::Db;

use myloware_testkit::conformance_tests;
use myloware_testkit::system;
use myloware_testkit::system::{aismr, artifact_kinds, artifacts_of, smoke, start};
use serde_json::{Value, json};

const QUICK: Duration = Duration::from_secs(30);

fn count(calls: &std::collections::HashMap<(String, String), Vec<String>>, provider: &str, operation: &str) -> usize {
    calls
        .get(&(provider.to_string(), operation.to_string()))
        .map_or(0, Vec::len)
}

async fn a_smoke_run_is_published_with_two_clips_one_render_one_publish(db: &Db) {
    let system = start(db, &[]).await;
    let run_id = system.start_run(smoke()).await;
    let run = system.wait_status(&run_id, "published", QUICK).await;

    let result = &run["result"];
    let videos = result["videos"].as_array().unwrap();
    assert_eq!(videos.len(), 2);
    assert_eq!(
        (videos[0]["subject"].as_str(), videos[0]["header"].as_str()),
        (Some("moon"), Some("cheeseburger"))
    );
    assert_eq!(
        (videos[1]["subject"].as_str(), videos[1]["header"].as_str()),
        (Some("sun"), Some("pickle"))
    );
    assert!(
        videos
            .iter()
            .all(|v| v["status"] == "completed" && v["assetUrl"].as_str().is_some_and(|u| u.ends_with(".mp4")))
    );
    // The mock render (a real MP4), copied into the asset store and served
    // by the API under a signed URL.
    let render_url = result["renderUrl"].as_str().unwrap();
    let copy = format!("{}/v1/assets/test_video_gen/{run_id}/render-0.mp4?", system.api);
    assert!(render_url.starts_with(&copy), "{render_url}");
    let video = system.http.get(render_url).send().await.unwrap();
    assert_eq!(video.headers()["content-type"], "video/mp4");
    assert_eq!(
        video.bytes().await.unwrap().as_ref(),
        myloware_providers::mock::RENDER_MP4
    );
    let publish_urls = result["publishUrls"].as_array().unwrap();
    assert_eq!(publish_urls.len(), 1);
    assert!(
        publish_urls[0].as_str().unwrap().contains("@myloware-test"),
        "the test account: {publish_urls:?}"
    );
    assert_eq!(result["error"], Value::Null);
    assert_eq!(run["currentPersona"], Value::Null);

    let kinds = artifact_kinds(&run);
    for (kind, n) in [
        ("persona.output", 4),
        ("kieai.job", 2),
        ("kieai.clip", 2),
        ("render.url", 1),
        ("publish.url", 1),
    ] {
        assert_eq!(kinds.iter().filter(|k| *k == kind).count(), n, "{kind} in {kinds:?}");
    }
    let outputs: Vec<&Value> = artifacts_of(&run, "persona.output").collect();
    let personas: Vec<&str> = outputs.iter().map(|a| a["persona"].as_str().unwrap()).collect();
    assert_eq!(personas, ["iggy", "riley", "alex", "quinn"]);
    let edit = &outputs[2]["data"]["edit"];
    assert_eq!(edit["lengthSeconds"], 16.0, "total length = sum of the clips");
    let overlays = edit["timeline"]["tracks"][0]["clips"].as_array().unwrap();
    assert_eq!(overlays[0]["asset"]["text"], "CHEESEBURGER");
    assert_eq!(
        (overlays[1]["asset"]["text"].as_str(), overlays[1]["start"].as_f64()),
        (Some("PICKLE"), Some(8.0))
    );
    assert_eq!(
        outputs[3]["data"]["caption"],
        "Test video generation - moon/cheeseburger + sun/pickle"
    );
    assert_eq!(outputs[3]["data"]["hashtags"], json!(["#test", "#videoGeneration"]));

    let calls = system.mock_calls(&run_id).await;
    assert_eq!(count(&calls, "kieai", "submit"), 2);
    assert_eq!(count(&calls, "shotstack", "render"), 1);
    assert_eq!(count(&calls, "upload_post", "publish"), 1);

    // The statuses the run went through, in order.
    let events = system.api_state.store.list_events(&run_id).await.unwrap();
    let statuses: Vec<String> = events
        .iter()
        .filter(|e| e.kind == "status.changed")
        .map(|e| e.data["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(statuses, ["running", "generating", "rendering", "publishing"]);
    assert_eq!(events.last().unwrap().kind, "execution.completed");
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "every event once, in order"
    );

    // Replaying every event changes nothing.
    let before = system.run(&run_id).await;
    let replay: Vec<Value> = events
        .iter()
        .map(|e| json!({"eventId": e.event_id, "runId": e.run_id, "seq": e.seq, "type": e.kind, "at": e.at, "data": e.data}))
        .collect();
    let (status, answer) = system
        .post(&format!("{}/v1/internal/events", system.api), json!({"events": replay}))
        .await;
    assert_eq!(status, 200);
    assert!(
        answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "duplicate")
    );
    assert_eq!(system.run(&run_id).await, before);
    system.stop_idle().await;
}

async fn a_failed_clip_fails_the_run_at_once_with_the_providers_message(db: &Db) {
    let system = start(db, &[("MOCK_KIEAI_FAILURE_RATE", "1")]).await;
    let started = Instant::now();
    let run_id = system.start_run(smoke()).await;
    let run = system.wait_status(&run_id, "failed", QUICK).await;
    // At once: not after the clip timeout (CLIP_TIMEOUT_SECS, 30 min by
    // default); 5 s leaves room for a loaded CI machine.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failed after {:?}",
        started.elapsed()
    );
    let error = &run["result"]["error"];
    assert_eq!(error["code"], "kieai.clip_failed");
    assert_eq!(error["persona"], "riley");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("generation failed (simulated)"), "{error}");
    assert!(message.contains("code 501"), "{error}");
    let calls = system.mock_calls(&run_id).await;
    assert_eq!(count(&calls, "shotstack", "render"), 0);
    assert_eq!(count(&calls, "upload_post", "publish"), 0);
    system.stop_idle().await;
}

async fn cancelling_during_generation_stops_before_render_and_publish(db: &Db) {
    let system = start(db, &[("MOCK_PROVIDER_DELAY_MS", "1500")]).await;
    let run_id = system.start_run(smoke()).await;
    system.wait_status(&run_id, "generating", QUICK).await;
    system.cancel(&run_id, json!({"reason": "test"})).await;
    // The execution ends too, and the late clip callbacks change nothing.
    system.wait_execution(&run_id, "cancelled", QUICK).await;
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let run = system.run(&run_id).await;
    assert_eq!(run["status"], "cancelled");
    let calls = system.mock_calls(&run_id).await;
    assert_eq!(count(&calls, "shotstack", "render"), 0);
    assert_eq!(count(&calls, "upload_post", "publish"), 0);
    system.stop_idle().await;
}

async fn a_gated_run_waits_at_each_gate_until_approved(db: &Db) {
    let system = start(db, &[]).await;
    let run_id = system.start_run(aismr("candles")).await;
    let run = system.wait_status(&run_id, "awaiting_ideate", QUICK).await;
    assert_eq!(
        run["result"]["videos"].as_array().unwrap().len(),
        12,
        "Iggy's ideas are the videos"
    );
    assert!(
        system.mock_calls(&run_id).await.is_empty(),
        "nothing paid before the ideate gate"
    );

    // A decision sent to the orchestrator as the API does: its status.
    let resume = &format!("{}/v1/executions/{run_id}/resume", system.orchestrator);
    let decide = |gate: &str, decision: &str| {
        let (system, body) = (&system, json!({"gate": gate, "decision": decision}));
        async move { system.post(resume, body).await.0 }
    };
    assert_eq!(decide("prepublish", "approve").await, 409, "not waiting at prepublish");
    assert_eq!(decide("ideate", "approve").await, 202);
    let run = system.wait_status(&run_id, "awaiting_prepublish", QUICK).await;
    // The same decision again is a no-op; the opposite one a conflict.
    assert_eq!(decide("ideate", "approve").await, 200);
    assert_eq!(decide("ideate", "reject").await, 409);
    assert!(myloware_testkit::system::videos_completed(&run), "{}", run["result"]);
    let calls = system.mock_calls(&run_id).await;
    assert_eq!(count(&calls, "kieai", "submit"), 12);
    assert_eq!(
        count(&calls, "upload_post", "publish"),
        0,
        "nothing published before the prepublish gate"
    );

    assert_eq!(decide("prepublish", "approve").await, 202);
    let run = system.wait_status(&run_id, "published", QUICK).await;
    let quinn = artifacts_of(&run, "persona.output")
        .find(|a| a["persona"] == "quinn")
        .unwrap();
    assert_eq!(
        quinn["data"]["hashtags"].as_array().unwrap().len(),
        5,
        "exactly 5 hashtags"
    );
    system.stop_idle().await;
}

async fn duplicate_starts_and_signals_change_nothing(db: &Db) {
    let system = start(db, &[]).await;
    let run_id = system.start_run(smoke()).await;
    system.wait_status(&run_id, "published", QUICK).await;
    let start = serde_json::to_value(&system.api_state.store.list_commands(&run_id).await.unwrap()[0].body).unwrap();
    let (status, _) = system
        .post(&format!("{}/v1/executions", system.orchestrator), start.clone())
        .await;
    assert_eq!(status, 200, "same start again: nothing new");
    let mut other = start;
    other["project"] = json!("aismr");
    let (status, _) = system
        .post(&format!("{}/v1/executions", system.orchestrator), other)
        .await;
    assert_eq!(status, 409);
    let signal =
        json!({"signalId": "kieai:x:200", "signal": {"type": "clip.completed", "taskId": "x", "index": 0, "url": "u"}});
    let signals = format!("{}/v1/executions/{run_id}/signals", system.orchestrator);
    assert_eq!(system.post(&signals, signal.clone()).await.0, 202);
    assert_eq!(system.post(&signals, signal).await.0, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(system.run(&run_id).await["status"], "published");
    let calls = system.mock_calls(&run_id).await;
    assert_eq!(count(&calls, "kieai", "submit"), 2);
    system.stop_idle().await;
}

async fn skipping_editing_publishes_a_clip_without_a_render(db: &Db) {
    let system = start(db, &[]).await;
    let run_id = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "no edit"}, "options": {"skip": ["alex"]}}))
        .await;
    let run = system.wait_status(&run_id, "published", QUICK).await;
    assert_eq!(
        run["payload"]["graph_spec"]["pipeline"],
        json!(["iggy", "riley", "quinn"])
    );
    assert_eq!(run["result"]["renderUrl"], Value::Null);
    let calls = system.mock_calls(&run_id).await;
    assert_eq!(count(&calls, "shotstack", "render"), 0);
    assert_eq!(count(&calls, "upload_post", "publish"), 1);
    let published = system.orchestrator_state.store.mock_calls(&run_id).await.unwrap();
    let publish = published.iter().find(|c| c.provider == "upload_post").unwrap();
    assert_eq!(
        publish.request["video_url"], run["result"]["videos"][0]["assetUrl"],
        "the first clip is published"
    );

    // Skipping what another persona needs is refused before anything runs.
    let response = system
        .http
        .post(format!("{}/v1/runs/start", system.api))
        .header("x-api-key", system::API_KEY)
        .json(&json!({"project": "test_video_gen", "input": {"prompt": "x"}, "options": {"skip": ["riley"]}}))
        .sent()
        .await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["detail"][0]["loc"], json!(["body", "options", "skip"]));
    assert!(
        body["detail"][0]["msg"].as_str().unwrap().contains("alex needs riley"),
        "{body}"
    );
    system.stop_idle().await;
}

conformance_tests!(
    skipping_editing_publishes_a_clip_without_a_render,
    a_smoke_run_is_published_with_two_clips_one_render_one_publish,
    a_failed_clip_fails_the_run_at_once_with_the_providers_message,
    cancelling_during_generation_stops_before_render_and_publish,
    a_gated_run_waits_at_each_gate_until_approved,
    duplicate_starts_and_signals_change_nothing,
);
