//! Security: Upload-Post's account webhook is unsigned (their documented
//! format has no signature), so it is only a hint: it wakes the runs that
//! are publishing, which ask Upload-Post for their own request id. Nothing
//! of its body is used.

use myloware_testkit::JsonAnswer;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use myloware_db::Db;

use myloware_testkit::conformance_tests;
use serde_json::{Value, json};

use myloware_testkit::fakes::{ASYNC_PUBLISH_URL, Calls, Kie, Providers, Publish};
use myloware_testkit::system::{System, start};

const ATTACKER_URL: &str = "https://evil.example/@victim/video/1";

/// Upload-Post's documented webhook body, claiming a success at the
/// attacker's URL (`job` makes each delivery distinct).
fn forged_completion(job: &str) -> Value {
    json!({"event": "upload_completed", "job_id": job, "user_email": "x@example.com",
        "profile_username": "myloware", "platform": "tiktok",
        "result": {"success": true, "url": ATTACKER_URL, "publish_id": "p1", "post_id": "1", "error": null},
        "created_at": "2026-01-01T00:00:00Z"})
}

async fn post_webhook(system: &System, body: &Value) -> (u16, Value) {
    let response = system
        .http
        .post(format!("{}/v1/webhooks/upload-post", system.api))
        .json(body)
        .sent()
        .await;
    myloware_testkit::status_and_json(response).await
}

/// Waits until Upload-Post was asked for the run's status more than
/// `after` times and the engine has parked again with everything said.
async fn status_asked(system: &System, calls: &Calls, after: usize) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let counts = system.orchestrator_state.store.counts().await.unwrap();
        if calls.count("upload_post.status") > after && counts.runnable == 0 && counts.outbox_pending == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "Upload-Post was not asked again");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A forged "success" webhook (Upload-Post's own format, no signature)
/// while the upload is still pending publishes nothing and its URL never
/// shows; once Upload-Post's status says done, a webhook wakes the run,
/// whose URL is the status lookup's. The old API answered 401 to every
/// such (documented, unsigned) delivery.
async fn a_forged_completion_publishes_nothing_and_the_url_comes_from_the_status(db: &Db) {
    let calls = Calls::default();
    let done = Arc::new(AtomicBool::new(false));
    let providers = Providers::start_with(&calls, Kie::Callback, Publish::Async(done.clone())).await;
    let system = start(db, &providers.vars()).await;
    let run_id = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "p"}}))
        .await;
    system.wait_status(&run_id, "publishing", Duration::from_secs(30)).await;
    system
        .wait_for(&run_id, Duration::from_secs(30), "the upload", |_| {
            calls.count("upload_post.publish") == 1
        })
        .await;

    let asked = calls.count("upload_post.status");
    assert_eq!(
        post_webhook(&system, &forged_completion("j1")).await,
        (200, json!({"status": "accepted"}))
    );
    status_asked(&system, &calls, asked).await;
    let run = system.run(&run_id).await;
    assert_eq!(run["status"], "publishing", "the body's word publishes nothing");
    assert_eq!(run["result"]["publishUrls"], json!([]), "{run}");

    done.store(true, Ordering::SeqCst);
    assert_eq!(
        post_webhook(&system, &forged_completion("j2")).await,
        (200, json!({"status": "accepted"}))
    );
    let run = system.wait_status(&run_id, "published", Duration::from_secs(40)).await;
    assert_eq!(run["result"]["publishUrls"], json!([ASYNC_PUBLISH_URL]));
    assert!(!run.to_string().contains(ATTACKER_URL), "{run}");
    assert_eq!(calls.count("upload_post.publish"), 1, "never posted twice");
    system.stop_idle().await;
}

/// Replays and other events wake nothing: the same delivery twice is a
/// duplicate, events other than `upload_completed` are ignored, and a
/// webhook with no publishing run relays nothing.
async fn replays_and_other_events_wake_nothing(db: &Db) {
    let system = start(db, &[]).await;
    let body = forged_completion("j1");
    assert_eq!(post_webhook(&system, &body).await, (200, json!({"status": "accepted"})));
    assert_eq!(
        post_webhook(&system, &body).await,
        (200, json!({"status": "duplicate"}))
    );
    assert_eq!(
        post_webhook(&system, &json!({"event": "upload_failed", "job_id": "j3"})).await,
        (200, json!({"status": "ignored"}))
    );
    let deliveries = system.api_state.store.list_webhooks("upload-post").await.unwrap();
    let outcomes: Vec<&str> = deliveries.iter().map(|d| d.outcome.as_str()).collect();
    assert_eq!(outcomes, ["accepted", "duplicate"], "an ignored event is not kept");
    assert!(deliveries.iter().all(|d| d.signature_status == "unsigned"));
    system.stop_idle().await;
}

conformance_tests!(
    a_forged_completion_publishes_nothing_and_the_url_comes_from_the_status,
    replays_and_other_events_wake_nothing,
);
