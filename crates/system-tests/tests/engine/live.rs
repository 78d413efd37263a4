//! A whole aismr run in live mode, against fake kie.ai, Shotstack and
//! Upload-Post servers on loopback that speak the providers' HTTP: the
//! fake kie.ai answers with task ids and posts signed callbacks to the API.

use std::time::Duration;

use myloware_db::Db;

use myloware_testkit::conformance_tests;
use myloware_testkit::system::{aismr, artifacts_of, live_run, start};
use serde_json::{Value, json};

use myloware_testkit::fakes::{Calls, Kie, Providers, SIGNING};

async fn a_clip_whose_callback_never_came_is_recovered_through_record_info(db: &Db) {
    let calls = Calls::default();
    let (system, run_id) = live_run(db, &calls, Kie::SilentSuccess, "1").await;
    let run = system.wait_status(&run_id, "published", Duration::from_secs(30)).await;
    assert_eq!(calls.count("kieai.submit"), 2, "never resubmitted");
    assert!(myloware_testkit::system::videos_completed(&run), "{}", run["result"]);
    system.stop_idle().await;
}

async fn provider_failures_fail_the_run_with_the_providers_message(db: &Db) {
    for (behaviour, message) in [
        (Kie::FailureCallback, "content policy violation"),
        (Kie::SilentFailure, "generation failed upstream"),
    ] {
        let calls = Calls::default();
        let (system, run_id) = live_run(db, &calls, behaviour, "1").await;
        let run = system.wait_status(&run_id, "failed", Duration::from_secs(30)).await;
        let error = &run["result"]["error"];
        assert_eq!(error["code"], "kieai.clip_failed");
        assert!(error["message"].as_str().unwrap().contains(message), "{error}");
        assert_eq!(calls.count("shotstack.render"), 0);
        assert_eq!(calls.count("upload_post.publish"), 0);
        system.stop_idle().await;
    }
}

async fn an_aismr_run_in_live_mode_is_published_against_fake_providers(db: &Db) {
    let calls = Calls::default();
    let providers = Providers::start(&calls).await;
    let system = start(db, &providers.vars()).await;
    let run_id = system.start_run(aismr("candles")).await;
    assert_eq!(
        system.run(&run_id).await["payload"]["metadata"]["providers"]["mode"],
        "live"
    );
    for gate in ["ideate", "prepublish"] {
        system
            .wait_status(&run_id, &format!("awaiting_{gate}"), Duration::from_secs(30))
            .await;
        let link = system
            .get(&format!("{}/v1/hitl/link/{run_id}/{gate}", system.api))
            .await;
        let response = system
            .with_key(system.http.get(link["approvalUrl"].as_str().unwrap()))
            .await;
        assert_eq!(response.status(), 200);
    }
    let run = system.wait_status(&run_id, "published", Duration::from_secs(30)).await;
    assert_eq!(calls.count("kieai.submit"), 12, "one submission per clip");
    assert_eq!(calls.count("shotstack.render"), 1);
    assert_eq!(calls.count("upload_post.publish"), 1);
    // Published from our copy of the render, not from Shotstack's URL.
    let render = run["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "render.url")
        .unwrap();
    assert_eq!(
        render["data"]["sourceUrl"],
        format!("{}/renders/render-1.mp4", providers.url)
    );
    assert_eq!(render["data"]["assetKey"], format!("aismr/{run_id}/render-0.mp4"));
    assert_eq!(run["result"]["renderUrl"], render["data"]["url"]);
    assert!(
        run["result"]["renderUrl"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/v1/assets/aismr/{run_id}/render-0.mp4?", system.api))
    );
    assert_eq!(calls.count("shotstack.download"), 1, "copied once");
    assert_eq!(
        run["result"]["publishUrls"],
        json!(["https://www.tiktok.com/@myloware-aismr/video/1"])
    );
    assert!(
        run["result"]["videos"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["assetUrl"].as_str().unwrap().starts_with("https://cdn.fake-kie/"))
    );
    let submitted = calls.all();
    let first = &submitted.iter().find(|(w, _)| w == "kieai.submit").unwrap().1;
    assert_eq!(first["model"], "veo3_fast");
    assert_eq!(first["aspectRatio"], "9:16");
    let callback = first["callBackUrl"].as_str().unwrap();
    assert!(callback.contains(&format!("runId={run_id}")), "{callback}");
    let publish = &submitted.iter().find(|(w, _)| w == "upload_post.publish").unwrap().1;
    assert_eq!(publish["requestId"], format!("{run_id}:quinn:publish:1"));
    assert!(
        publish["body"].as_str().unwrap().contains("myloware-aismr"),
        "the project's own profile"
    );
    // The callbacks were verified with kie.ai's scheme.
    let deliveries = system.api_state.store.list_webhooks("kieai").await.unwrap();
    assert_eq!(deliveries.len(), 12);
    assert!(deliveries.iter().all(|d| d.signature_status == "verified"));
    assert!(system.mock_calls(&run_id).await.is_empty(), "no mock was used");
    system.stop_idle().await;
}

/// A run failed by one clip, retried: only that clip is submitted again,
/// then the render and the publish happen once; a published run, or a
/// second retry of it, is refused.
async fn a_retry_after_a_clip_failure_pays_only_for_the_missing_clip(db: &Db) {
    let calls = Calls::default();
    let (system, run_id) = live_run(db, &calls, Kie::FailingTask(1), "1").await;
    let failed = system.wait_status(&run_id, "failed", Duration::from_secs(30)).await;
    assert_eq!(failed["result"]["error"]["code"], "kieai.clip_failed");
    assert_eq!(calls.count("kieai.submit"), 2);
    assert_eq!(calls.count("shotstack.render"), 0);

    let retry = format!("{}/v1/runs/{run_id}/retry", system.api);
    let (status, answer) = system.post(&retry, json!({})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"runId": run_id, "status": "running"}));
    let run = system.wait_status(&run_id, "published", Duration::from_secs(30)).await;
    assert_eq!(calls.count("kieai.submit"), 3, "only the failed clip again");
    assert_eq!(calls.clip_submissions(&run_id, 0), 1);
    assert_eq!(calls.clip_submissions(&run_id, 1), 2);
    assert_eq!(calls.count("shotstack.render"), 1);
    assert_eq!(calls.publishes(&run_id), 1);
    assert!(myloware_testkit::system::videos_completed(&run), "{}", run["result"]);
    assert!(
        run["result"]["error"].is_null(),
        "the retried error is gone: {}",
        run["result"]
    );
    let retried: Vec<&Value> = artifacts_of(&run, "run.retried").collect();
    assert_eq!(retried.len(), 1, "{}", run["artifacts"]);
    assert_eq!(retried[0]["data"]["attempt"], 1);
    assert!(retried[0]["data"]["by"].as_str().unwrap().starts_with("key:"));
    assert_eq!(retried[0]["data"]["error"]["code"], "kieai.clip_failed");

    let (status, answer) = system.post(&retry, json!({})).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("only a failed run"),
        "{answer}"
    );
    system.stop_idle().await;
}

conformance_tests!(
    a_retry_after_a_clip_failure_pays_only_for_the_missing_clip,
    an_aismr_run_in_live_mode_is_published_against_fake_providers,
    a_clip_whose_callback_never_came_is_recovered_through_record_info,
    provider_failures_fail_the_run_with_the_providers_message,
);

/// `mw validate env --online` in live mode against the fakes.
fn validate_online(kie_key: &str, kie: &str, shotstack: &str, upload: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mw-system"))
        .args(["validate", "env", "--online"])
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "PROJECTS_DIR",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../projects"),
        )
        .env("USE_MOCK_PROVIDERS", "false")
        .env("KIEAI_API_KEY", kie_key)
        .env("KIEAI_SIGNING_SECRET", SIGNING)
        .env("KIEAI_BASE_URL", kie)
        .env("SHOTSTACK_API_KEY", "shotstack-live-key")
        .env("SHOTSTACK_BASE_URL", shotstack)
        .env("UPLOAD_POST_API_KEY", "upload-live-key")
        .env("UPLOAD_POST_BASE_URL", upload)
        .output()
        .unwrap()
}

/// `mw validate env --online` asks each provider something harmless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_env_online_checks_every_provider() {
    let calls = Calls::default();
    let providers = Providers::start(&calls).await;
    let (kie, shotstack, upload) = (providers.url.clone(), providers.url.clone(), providers.url.clone());
    let (k, s, u) = (kie.clone(), shotstack.clone(), upload.clone());
    let output = tokio::task::spawn_blocking(move || validate_online("kie-live-key", &k, &s, &u))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("100 credits left"), "{stdout}");
    assert_eq!(stdout.matches("ok: key accepted").count(), 3, "{stdout}");
    let paid = calls.count("kieai.submit") + calls.count("shotstack.render") + calls.count("upload_post.publish");
    assert_eq!(paid, 0, "nothing paid");

    let bad = tokio::task::spawn_blocking(move || validate_online("wrong-key", &kie, &shotstack, &upload))
        .await
        .unwrap();
    assert!(!bad.status.success());
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(
        stdout.contains("kieai") && stdout.contains("FAILED") && stdout.contains("invalid API key"),
        "{stdout}"
    );
    assert!(!stdout.contains("wrong-key"), "the key is never printed: {stdout}");
}
