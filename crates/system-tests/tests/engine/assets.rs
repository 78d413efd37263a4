//! Durable renders (docs/operations.md, "Storage"): a render is copied into
//! the project's asset store before the prepublish gate, shown and
//! published from there, served by the API under signed URLs (or by the
//! bucket under presigned ones), checked before the publish; a deleted one
//! fails the publish with `assets.missing` and a retry renders it again.

use std::collections::HashMap;
use std::time::Duration;

use myloware_assets::{AssetKey, AssetStore};
use myloware_db::Db;
use myloware_providers::mock::RENDER_MP4;
use myloware_testkit::conformance_tests;
use myloware_testkit::fakes::{Calls, Fault, Providers, shotstack};
use myloware_testkit::s3::Moto;
use myloware_testkit::system::{self, System, start};
use serde_json::{Value, json};

const QUICK: Duration = Duration::from_secs(30);

/// An aismr run brought to its prepublish gate (ideate approved).
async fn at_prepublish(system: &System) -> (String, Value) {
    let run_id = system
        .start_run(json!({"project": "aismr", "input": {"object": "candles"}}))
        .await;
    system.wait_status(&run_id, "awaiting_ideate", QUICK).await;
    system.approve(&run_id, "ideate").await;
    let run = system.wait_status(&run_id, "awaiting_prepublish", QUICK).await;
    (run_id, run)
}

async fn fetch(system: &System, url: &str, range: Option<&str>) -> reqwest::Response {
    let mut request = system.http.get(url);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    request.send().await.unwrap()
}

async fn body(response: reqwest::Response) -> Vec<u8> {
    response.bytes().await.unwrap().to_vec()
}

/// The `video` field of an Upload-Post upload (a multipart body).
fn published_video(upload: &Value) -> String {
    let body = upload["body"].as_str().unwrap();
    let (_, rest) = body.split_once("name=\"video\"\r\n\r\n").expect("a video field");
    rest.split("\r\n").next().unwrap().to_string()
}

fn render_artifacts(run: &Value) -> Vec<Value> {
    run["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "render.url")
        .map(|a| a["data"].clone())
        .collect()
}

async fn a_live_run_publishes_from_the_copy_after_shotstacks_url_is_gone(db: &Db) {
    let calls = Calls::default();
    let providers = Providers::start(&calls).await;
    // Two failed downloads first: the copy is retried inside the step.
    calls.script(
        "shotstack.download",
        &[Some(Fault::Status(500)), Some(Fault::Status(503))],
    );
    let system = start(db, &providers.vars()).await;
    let (run_id, run) = at_prepublish(&system).await;
    let [render] = render_artifacts(&run).try_into().unwrap();
    let source = render["sourceUrl"].as_str().unwrap();
    assert_eq!(source, format!("{}/renders/render-1.mp4", providers.url));
    assert_eq!(
        (calls.attempts("shotstack.download"), calls.count("shotstack.download")),
        (3, 1)
    );

    // Shotstack deletes its output; the copy stays.
    calls.always("shotstack.download", Fault::Status(403));
    assert_eq!(fetch(&system, source, None).await.status(), 403);
    let copy = run["result"]["renderUrl"].as_str().unwrap();
    assert!(copy.starts_with(&format!("{}/v1/assets/aismr/{run_id}/render-0.mp4?", system.api)));
    assert_eq!(
        body(fetch(&system, copy, None).await).await,
        shotstack::rendered("render-1")
    );

    // The gate previews the copy; the approval page plays it (under a URL
    // minted for the page).
    let link = system
        .get(&format!("{}/v1/hitl/link/{run_id}/prepublish", system.api))
        .await;
    let described = system
        .http
        .get(link["approvalUrl"].as_str().unwrap())
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let preview = &described["preview"];
    assert_eq!(preview["renderUrl"].as_str(), Some(copy), "{described}");
    assert_eq!(preview["renderAsset"], format!("aismr/{run_id}/render-0.mp4"));
    let page = system
        .http
        .get(link["approvalUrl"].as_str().unwrap())
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let player = format!(
        "<video controls playsinline preload=\"metadata\" src=\"{}/v1/assets/aismr/{run_id}/render-0.mp4?expires=",
        system.api
    );
    assert!(page.contains(&player), "{page}");

    system.approve(&run_id, "prepublish").await;
    system.wait_status(&run_id, "published", QUICK).await;
    // Upload-Post was handed our URL, which it can still fetch.
    let uploads: Vec<Value> = calls
        .all()
        .into_iter()
        .filter(|(op, _)| op == "upload_post.publish")
        .map(|(_, body)| body)
        .collect();
    assert_eq!(uploads.len(), 1);
    let video = published_video(&uploads[0]);
    assert!(
        video.starts_with(&format!("{}/v1/assets/aismr/{run_id}/render-0.mp4?", system.api)),
        "{video}"
    );
    assert!(!video.contains(&providers.url), "{video}");
    assert_eq!(
        body(fetch(&system, &video, None).await).await,
        shotstack::rendered("render-1")
    );
    assert_eq!(calls.count("shotstack.render"), 1);
    system.stop_idle().await;
}

async fn a_deleted_asset_fails_the_publish_and_a_retry_renders_it_again(db: &Db) {
    let system = start(db, &[]).await;
    let (run_id, run) = at_prepublish(&system).await;
    let copy = run["result"]["renderUrl"].as_str().unwrap().to_string();
    let file = system.assets.path().join(format!("aismr/{run_id}/render-0.mp4"));
    assert_eq!(std::fs::read(&file).unwrap(), RENDER_MP4);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(fetch(&system, &copy, None).await.status(), 404);

    system.approve(&run_id, "prepublish").await;
    let failed = system.wait_status(&run_id, "failed", QUICK).await;
    let error = &failed["result"]["error"];
    assert_eq!(
        (error["code"].as_str(), error["persona"].as_str()),
        (Some("assets.missing"), Some("quinn"))
    );
    assert_eq!(
        error["message"],
        format!("the rendered video is gone from storage; retry the run to render it again: mw runs retry {run_id}")
    );
    let calls = system.mock_calls(&run_id).await;
    assert!(
        !calls.contains_key(&("upload_post".into(), "publish".into())),
        "nothing published"
    );

    let (status, answer) = system
        .post(&format!("{}/v1/runs/{run_id}/retry", system.api), json!({}))
        .await;
    assert_eq!(status, 200, "{answer}");
    let run = system.wait_status(&run_id, "published", QUICK).await;
    let calls = system.mock_calls(&run_id).await;
    assert_eq!(
        calls[&("shotstack".into(), "render".into())],
        [format!("{run_id}:alex:render"), format!("{run_id}:alex:render:retry:1")],
        "rendered again, under a new key"
    );
    assert_eq!(
        calls[&("upload_post".into(), "publish".into())],
        [format!("{run_id}:quinn:publish:1")],
        "published once"
    );
    let again = system.assets.path().join(format!("aismr/{run_id}/render-1.mp4"));
    assert_eq!(std::fs::read(again).unwrap(), RENDER_MP4);
    let renders = render_artifacts(&run);
    assert_eq!(renders.len(), 2, "{renders:?}");
    assert_eq!(renders[1]["assetKey"], format!("aismr/{run_id}/render-1.mp4"));
    assert_eq!(run["result"]["renderUrl"], renders[1]["url"]);
    let published = system.orchestrator_state.store.mock_calls(&run_id).await.unwrap();
    let publish = published.iter().find(|c| c.operation == "publish").unwrap();
    assert!(
        publish.request["video_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/v1/assets/aismr/{run_id}/render-1.mp4?", system.api)),
        "{}",
        publish.request
    );
    system.stop_idle().await;
}

async fn the_signed_asset_route_serves_ranges_and_refuses_bad_urls(db: &Db) {
    let system = start(db, &[]).await;
    let run_id = system.start_run(system::smoke()).await;
    let run = system.wait_status(&run_id, "published", QUICK).await;
    let url = run["result"]["renderUrl"].as_str().unwrap().to_string();
    let size = RENDER_MP4.len();

    let whole = fetch(&system, &url, None).await;
    assert_eq!(whole.status(), 200);
    for (header, value) in [
        ("content-type", "video/mp4".to_string()),
        ("content-length", size.to_string()),
        ("accept-ranges", "bytes".to_string()),
    ] {
        assert_eq!(whole.headers()[header], value.as_str(), "{header}");
    }
    assert_eq!(body(whole).await, RENDER_MP4);
    let head = system.http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], size.to_string().as_str());
    assert_eq!(body(head).await, b"");
    for (range, bytes) in [
        ("bytes=0-99", 0..100),
        ("bytes=-10", size - 10..size),
        ("bytes=3000-", 3000..size),
    ] {
        let part = fetch(&system, &url, Some(range)).await;
        assert_eq!(part.status(), 206, "{range}");
        let expected = format!("bytes {}-{}/{size}", bytes.start, bytes.end - 1);
        assert_eq!(part.headers()["content-range"], expected.as_str(), "{range}");
        assert_eq!(body(part).await, RENDER_MP4[bytes].to_vec(), "{range}");
    }
    let past = fetch(&system, &url, Some("bytes=99999-")).await;
    assert_eq!(past.status(), 416);
    assert_eq!(past.headers()["content-range"], format!("bytes */{size}").as_str());
    assert!(past.json::<Value>().await.unwrap()["detail"].is_string());

    let assets = &system.api_state.assets;
    let key = AssetKey::render("test_video_gen", &run_id, 0).unwrap();
    let now = chrono::Utc::now().timestamp();
    let parsed = url::Url::parse(&url).unwrap();
    let query: HashMap<String, String> = parsed.query_pairs().into_owned().collect();
    let base = format!("{}/v1/assets/test_video_gen/{run_id}", system.api);
    let mut tampered = query["sig"].clone();
    tampered.replace_range(0..1, if tampered.starts_with('0') { "1" } else { "0" });
    for refused in [
        format!("{base}/render-0.mp4"),
        format!("{base}/render-0.mp4?expires={}&sig={tampered}", query["expires"]),
        format!("{base}/render-0.mp4?expires={}&sig={}", now + 999_999, query["sig"]),
        format!("{base}/render-1.mp4?expires={}&sig={}", query["expires"], query["sig"]),
        assets.api_url(&key, now - 1),
        format!(
            "{base}/..%2Frender-0.mp4?expires={}&sig={}",
            query["expires"], query["sig"]
        ),
    ] {
        let answer = fetch(&system, &refused, None).await;
        assert_eq!(answer.status(), 403, "{refused}");
        let detail = answer.json::<Value>().await.unwrap();
        assert_eq!(detail, json!({"detail": "invalid or expired asset URL"}), "{refused}");
    }
    let missing = AssetKey::render("test_video_gen", &run_id, 9).unwrap();
    let gone = fetch(&system, &assets.api_url(&missing, now + 60), None).await;
    assert_eq!(gone.status(), 404);
    system.stop_idle().await;
}

async fn the_bucket_holds_the_render_against_a_real_s3_server(db: &Db) {
    let Some(moto) = Moto::start().await else { return };
    moto.create_bucket("mw-renders").await;
    let vars = moto.vars("mw-renders", "test/run-assets");
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let system = start(db, &vars).await;
    let (run_id, run) = at_prepublish(&system).await;
    let object = format!("mw-renders/test/run-assets/aismr/{run_id}/render-0.mp4");
    let presigned = run["result"]["renderUrl"].as_str().unwrap();
    assert!(
        presigned.starts_with(&format!("{}/{object}?", moto.endpoint)),
        "{presigned}"
    );
    assert!(presigned.contains("X-Amz-Expires=604800"), "a week: {presigned}");
    let whole = fetch(&system, presigned, None).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["content-type"], "video/mp4");
    assert_eq!(body(whole).await, RENDER_MP4);
    let part = fetch(&system, presigned, Some("bytes=0-9")).await;
    assert_eq!(part.status(), 206, "the bucket serves ranges");
    assert_eq!(body(part).await, RENDER_MP4[..10].to_vec());
    let unsigned = fetch(&system, &format!("{}/{object}", moto.endpoint), None).await;
    assert_eq!(unsigned.status(), 403, "only presigned URLs read the bucket");
    assert!(
        !system.assets.path().join("aismr").exists(),
        "nothing in the local folder"
    );

    moto.delete("mw-renders", &format!("test/run-assets/aismr/{run_id}/render-0.mp4"))
        .await;
    system.approve(&run_id, "prepublish").await;
    let failed = system.wait_status(&run_id, "failed", QUICK).await;
    assert_eq!(failed["result"]["error"]["code"], "assets.missing");
    let (status, answer) = system
        .post(&format!("{}/v1/runs/{run_id}/retry", system.api), json!({}))
        .await;
    assert_eq!(status, 200, "{answer}");
    system.wait_status(&run_id, "published", QUICK).await;
    let calls = system.orchestrator_state.store.mock_calls(&run_id).await.unwrap();
    let publishes: Vec<_> = calls.iter().filter(|c| c.operation == "publish").collect();
    assert_eq!(publishes.len(), 1);
    let video = publishes[0].request["video_url"].as_str().unwrap();
    let again = format!(
        "{}/mw-renders/test/run-assets/aismr/{run_id}/render-1.mp4?",
        moto.endpoint
    );
    assert!(video.starts_with(&again), "published from the bucket: {video}");
    assert_eq!(body(fetch(&system, video, None).await).await, RENDER_MP4);
    system.stop_idle().await;
}

conformance_tests!(
    a_live_run_publishes_from_the_copy_after_shotstacks_url_is_gone,
    a_deleted_asset_fails_the_publish_and_a_retry_renders_it_again,
    the_signed_asset_route_serves_ranges_and_refuses_bad_urls,
    the_bucket_holds_the_render_against_a_real_s3_server,
);

/// A render larger than the writer's buffer reaches the bucket as a
/// multipart upload, streamed from its URL.
#[tokio::test]
async fn a_large_render_is_streamed_into_the_bucket() {
    let Some(moto) = Moto::start().await else { return };
    moto.create_bucket("mw-large").await;
    let mut vars: HashMap<String, String> = moto.vars("mw-large", "").into_iter().collect();
    vars.insert("ASSET_MAX_BYTES".into(), (24 * 1024 * 1024).to_string());
    let config = myloware_core::config::Config::from_lookup(|var| vars.get(var).cloned()).unwrap();
    let assets = AssetStore::from_config(&config);
    let mut video = RENDER_MP4.to_vec();
    video.resize(12 * 1024 * 1024 + 17, 7);
    let served = video.clone();
    let router = axum::Router::new().route(
        "/big.mp4",
        axum::routing::get(move || {
            let served = served.clone();
            async move { ([("content-type", "video/mp4")], served) }
        }),
    );
    let url = myloware_testkit::fakes::serve(router).await;
    let key = AssetKey::render("aismr", "run_large", 0).unwrap();
    let copied = assets.put_from_url(&key, &format!("{url}/big.mp4")).await.unwrap();
    assert_eq!(copied, video.len() as u64);
    assert_eq!(assets.head(&key).await.unwrap(), Some(video.len() as u64));
    let presigned = assets.url_for(&key, assets.url_ttl()).await.unwrap();
    let tail = reqwest::Client::new()
        .get(&presigned)
        .header("range", "bytes=-17")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().await.unwrap().to_vec(), vec![7u8; 17]);
}
