//! Security: kie.ai callbacks. kie.ai signs only `{taskId}.{timestamp}`, so
//! a verified callback is only a trigger: the clip's result comes from
//! `record-info`, never from the body. Callback tokens are keyed apart from
//! HITL tokens (HKDF of `HITL_SECRET`) and survive a rotation; the public
//! mock signing key never verifies a live run's callback.

use myloware_testkit::JsonAnswer;
use std::time::{Duration, Instant};

use chrono::Utc;
use myloware_core::config::{DEV_HITL_SECRET, MOCK_KIEAI_SIGNING_SECRET};
use myloware_core::signing;
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use serde_json::{Value, json};

use myloware_testkit::fakes::{Calls, Kie, SIGNING};
use myloware_testkit::system::{System, artifacts_of, live_run, start};

const ATTACKER_URL: &str = "https://evil.example/clip.mp4";

/// For a live system whose fake kie.ai never calls back: clips are polled
/// only after 10 minutes, so a callback is the only thing that makes the
/// run ask `record-info`.
const POLL_AFTER_SECS: &str = "600";

/// The clips' task ids, once every clip was submitted.
async fn submitted_tasks(system: &System, run_id: &str) -> Vec<(u32, String)> {
    let run = system
        .wait_for(run_id, Duration::from_secs(30), "clip submissions", |run| {
            let jobs = jobs(run);
            !jobs.is_empty() && jobs.len() as u64 == run["result"]["totalVideos"].as_u64().unwrap_or(u64::MAX)
        })
        .await;
    jobs(&run)
}

fn jobs(run: &Value) -> Vec<(u32, String)> {
    run["artifacts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["kind"] == "kieai.job")
        .map(|a| {
            (
                a["data"]["index"].as_u64().unwrap() as u32,
                a["data"]["taskId"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Posts a callback for clip `index` of `run_id` claiming success with
/// [`ATTACKER_URL`], with a token for `purpose` under `secret` and kie.ai's
/// signature under `key`.
async fn claim_success(
    system: &System,
    run_id: &str,
    index: u32,
    task_id: &str,
    (secret, purpose): (&[u8], &str),
    key: &[u8],
) -> u16 {
    let token = signing::callback_token(secret, run_id, purpose);
    let timestamp = Utc::now().timestamp().to_string();
    let body = json!({"code": 200, "msg": "success",
        "data": {"taskId": task_id, "info": {"resultUrls": [ATTACKER_URL]}}});
    system
        .http
        .post(format!(
            "{}/v1/webhooks/kieai?runId={run_id}&index={index}&token={token}",
            system.api
        ))
        .header("x-webhook-timestamp", &timestamp)
        .header(
            "x-webhook-signature",
            signing::kieai_signature(key, task_id, &timestamp),
        )
        .json(&body)
        .sent()
        .await
        .status()
        .as_u16()
}

/// A validly signed callback whose body names an attacker's URL: the run
/// is published with the URLs `record-info` gives, and the attacker's URL
/// appears nowhere (the old API relayed the body's `resultUrls`).
async fn a_signed_callback_gets_record_infos_result_not_its_bodys(db: &Db) {
    let calls = Calls::default();
    let (system, run_id) = live_run(db, &calls, Kie::SilentSuccess, POLL_AFTER_SECS).await;
    for (index, task_id) in submitted_tasks(&system, &run_id).await {
        let purpose = format!("clip:{index}");
        let status = claim_success(
            &system,
            &run_id,
            index,
            &task_id,
            (DEV_HITL_SECRET.as_bytes(), &purpose),
            SIGNING.as_bytes(),
        )
        .await;
        assert_eq!(status, 200, "a genuine-looking callback is received");
    }
    let run = system.wait_status(&run_id, "published", Duration::from_secs(30)).await;
    let videos = run["result"]["videos"].as_array().unwrap();
    assert!(!videos.is_empty());
    for video in videos {
        assert!(
            video["assetUrl"].as_str().unwrap().starts_with("https://cdn.fake-kie/"),
            "{video}"
        );
    }
    assert!(!run.to_string().contains(ATTACKER_URL), "{run}");
    assert!(calls.count("kieai.record_info") >= videos.len());
    system.stop_idle().await;
}

/// The same callback while `record-info` says the task is still
/// generating: the clip stays pending (the old API completed it with the
/// body's URL).
async fn a_signed_callback_completes_nothing_while_record_info_says_generating(db: &Db) {
    let calls = Calls::default();
    let (system, run_id) = live_run(db, &calls, Kie::SilentGenerating, POLL_AFTER_SECS).await;
    let tasks = submitted_tasks(&system, &run_id).await;
    let (index, task_id) = &tasks[0];
    let purpose = format!("clip:{index}");
    let status = claim_success(
        &system,
        &run_id,
        *index,
        task_id,
        (DEV_HITL_SECRET.as_bytes(), &purpose),
        SIGNING.as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    // The engine asked record-info, then parked again with all said.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let counts = system.orchestrator_state.store.counts().await.unwrap();
        if calls.count("kieai.record_info") >= 1 && counts.runnable == 0 && counts.outbox_pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "record-info was never asked");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let run = system.run(&run_id).await;
    assert_eq!(run["status"], "generating", "{run}");
    assert!(!run.to_string().contains(ATTACKER_URL), "{run}");
    assert!(
        !artifacts_of(&run, "kieai.clip").any(|a| a["data"]["status"] == "completed"),
        "no clip completed: {run}"
    );
    system.stop_idle().await;
}

/// A deployment without `KIEAI_SIGNING_SECRET`: a callback bound to a live
/// clip (`clip:{i}`) and signed with the public mock key is refused (the old
/// API fell back to the mock key for every callback).
async fn the_public_mock_key_never_verifies_a_live_clip(db: &Db) {
    let system = start(db, &[("MOCK_PROVIDER_DELAY_MS", "600000")]).await;
    let run_id = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "p"}}))
        .await;
    let status = claim_success(
        &system,
        &run_id,
        0,
        "task-forged",
        (DEV_HITL_SECRET.as_bytes(), "clip:0"),
        MOCK_KIEAI_SIGNING_SECRET.as_bytes(),
    )
    .await;
    assert_eq!(status, 401);
    let deliveries = system.api_state.store.list_webhooks("kieai").await.unwrap();
    assert!(deliveries.iter().all(|d| d.outcome == "rejected"), "{deliveries:?}");
    system.stop_idle().await;
}

/// `HITL_SECRET` rotated (new, with the old one as `HITL_SECRET_PREVIOUS`):
/// a clip callback URL minted before the rotation still verifies (the old
/// API checked the current secret only and dropped the clip), and neither
/// kind of token passes for the other.
async fn callback_tokens_survive_a_rotation_and_are_not_hitl_tokens(db: &Db) {
    const NEW: &str = "the-new-hitl-secret-0123456789abcdef";
    const OLD: &str = "the-old-hitl-secret-0123456789abcdef";
    let system = start(
        db,
        &[
            ("HITL_SECRET", NEW),
            ("HITL_SECRET_PREVIOUS", OLD),
            ("MOCK_PROVIDER_DELAY_MS", "600000"),
        ],
    )
    .await;
    let run_id = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "p"}}))
        .await;
    let proposed = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "p"},
            "options": {"requireWorkflowApproval": true}}))
        .await;
    let mock_key = MOCK_KIEAI_SIGNING_SECRET.as_bytes();
    let before_rotation = (OLD.as_bytes(), "mock-clip:0");
    assert_eq!(
        claim_success(&system, &run_id, 0, "task-a", before_rotation, mock_key).await,
        200,
        "minted under the previous secret"
    );
    assert_eq!(
        claim_success(&system, &run_id, 0, "task-b", (NEW.as_bytes(), "mock-clip:0"), mock_key).await,
        200,
        "minted under the current secret"
    );
    assert_eq!(
        claim_success(
            &system,
            &run_id,
            0,
            "task-c",
            (b"some-other-secret", "mock-clip:0"),
            mock_key
        )
        .await,
        401
    );

    // A HITL token's MAC as a callback token.
    let exp = Utc::now().timestamp() + 3600;
    let hitl = signing::hitl_token(NEW.as_bytes(), &run_id, "mock-clip:0", exp);
    let (_, mac) = hitl.split_once('.').unwrap();
    let timestamp = Utc::now().timestamp().to_string();
    let response = system
        .http
        .post(format!(
            "{}/v1/webhooks/kieai?runId={run_id}&index=0&token={mac}",
            system.api
        ))
        .header("x-webhook-timestamp", &timestamp)
        .header(
            "x-webhook-signature",
            signing::kieai_signature(mock_key, "task-d", &timestamp),
        )
        .json(&json!({"code": 200, "data": {"taskId": "task-d"}}))
        .sent()
        .await;
    assert_eq!(response.status(), 401, "a HITL token is not a callback token");

    // A callback token's MAC as a HITL token for the workflow gate.
    let callback = signing::callback_token(NEW.as_bytes(), &proposed, "workflow");
    let response = system
        .http
        .post(format!("{}/v1/hitl/approve/{proposed}/workflow", system.api))
        .form(&[("token", format!("{exp}.{callback}"))])
        .sent()
        .await;
    assert_eq!(response.status(), 403, "a callback token is not a HITL token");
    assert_eq!(system.run(&proposed).await["status"], "pending_workflow");
    system.stop_idle().await;
}

conformance_tests!(
    a_signed_callback_gets_record_infos_result_not_its_bodys,
    a_signed_callback_completes_nothing_while_record_info_says_generating,
    the_public_mock_key_never_verifies_a_live_clip,
    callback_tokens_survive_a_rotation_and_are_not_hitl_tokens,
);
