//! Security: the approval page (issue 13, item 8). Every HITL response
//! carries a CSP that runs no script and forbids framing, `no-store`,
//! `Referrer-Policy: no-referrer`, and `nosniff`; a render URL is played or
//! linked only when it is https (http too in development).

use myloware_testkit::JsonAnswer;
use std::time::Duration;

use myloware_core::Gate;
use myloware_core::config::Environment;
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use reqwest::Response;
use serde_json::json;

use myloware_testkit::system::{awaiting_gate, start, start_api_with};

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src https:; media-src https:; \
form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `response` is `status` with the headers every HITL page (and JSON
/// answer) carries.
fn assert_locked(response: &Response, status: u16, what: &str, csp: &str) {
    assert_eq!(response.status(), status, "{what}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{what}: no {name} header"))
            .to_string()
    };
    assert_eq!(header("content-security-policy"), csp, "{what}");
    assert_eq!(header("x-frame-options"), "DENY", "{what}");
    assert_eq!(header("cache-control"), "no-store", "{what}");
    assert_eq!(header("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
}

async fn open_page(http: &reqwest::Client, url: &str) -> Response {
    http.get(url).header("accept", "text/html").send().await.unwrap()
}

/// POSTs a decision form with `token`, as a browser does.
async fn post_form(http: &reqwest::Client, url: &str, token: &str) -> Response {
    let form = [("token", token)];
    http.post(url).header("accept", "text/html").form(&form).sent().await
}

async fn the_confirmation_refusal_and_result_pages_are_locked(db: &Db) {
    let system = start(db, &[]).await;
    let dev_csp = CSP
        .replace("img-src https:", "img-src https: http:")
        .replace("media-src https:", "media-src https: http:");
    let run_id = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "locked"}, "options": {"requireWorkflowApproval": true}}))
        .await;
    let link = myloware_api::hitl::mint(&system.api_state, &run_id, Gate::Workflow);

    // The confirmation page.
    let page = open_page(&system.http, &link.approval_url).await;
    assert_locked(&page, 200, "confirmation page", &dev_csp);
    assert!(page.text().await.unwrap().contains("Approve the workflow gate?"));

    // The same link described as JSON.
    let described = system
        .http
        .get(&link.approval_url)
        .header("accept", "application/json")
        .sent()
        .await;
    assert_locked(&described, 200, "JSON description", &dev_csp);

    // A refusal: a forged token, as a page and as JSON.
    let forged = format!("{}/v1/hitl/approve/{run_id}/workflow?token=1.forged", system.api);
    let refused = open_page(&system.http, &forged).await;
    assert_locked(&refused, 403, "refusal page", &dev_csp);
    let reject = format!("{}/v1/hitl/reject/{run_id}/workflow", system.api);
    let refused_post = post_form(&system.http, &reject, "1.forged").await;
    assert_locked(&refused_post, 403, "refused decision", &dev_csp);

    // The result page of a real approval.
    let approve = format!("{}/v1/hitl/approve/{run_id}/workflow", system.api);
    let approved = post_form(&system.http, &approve, &link.token).await;
    assert_locked(&approved, 200, "result page", &dev_csp);
    assert!(approved.text().await.unwrap().contains("the run continues"));
    system.wait_status(&run_id, "published", Duration::from_secs(30)).await;

    // Production: media from https only.
    let (api, state) = start_api_with(db, |config| config.environment = Environment::Production).await;
    let (_, url) = awaiting_gate(&state, Gate::Ideate, json!({"ideas": []})).await;
    let page = open_page(&system.http, &url).await;
    assert_locked(&page, 200, "production confirmation page", CSP);
    let refused = open_page(&system.http, &format!("{api}/v1/hitl/approve/{run_id}/ideate?token=x")).await;
    assert_locked(&refused, 403, "production refusal page", CSP);
    system.stop_idle().await;
}

/// The prepublish page for `render_url` on an API in `environment`.
async fn prepublish_page(db: &Db, environment: Environment, render_url: &str) -> String {
    let (_, state) = start_api_with(db, |config| config.environment = environment).await;
    let (_, url) = awaiting_gate(&state, Gate::Prepublish, json!({"renderUrl": render_url})).await;
    let response = open_page(&reqwest::Client::new(), &url).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

fn plays(page: &str) -> bool {
    page.contains("<video") || page.contains("<a ")
}

async fn only_https_render_urls_are_played_or_linked(db: &Db) {
    for url in [
        "javascript:window.__xss=1",
        "JaVaScRiPt:window.__xss=1",
        "data:text/html,<script>window.__xss=1</script>",
        "file:///etc/passwd",
        "/v1/runs",
    ] {
        for environment in [Environment::Development, Environment::Production] {
            let page = prepublish_page(db, environment, url).await;
            assert!(!plays(&page), "{url} in {environment:?}: {page}");
            assert!(page.contains("is not shown"), "{url} in {environment:?}: {page}");
        }
    }
    let http = "http://127.0.0.1:9/render.mp4";
    let production = prepublish_page(db, Environment::Production, http).await;
    assert!(!plays(&production), "http in production: {production}");
    let development = prepublish_page(db, Environment::Development, http).await;
    assert!(
        development.contains(&format!(
            "<video controls playsinline preload=\"metadata\" src=\"{http}\">"
        )),
        "http in development: {development}"
    );
    let https = "https://cdn.example/render.mp4";
    let production = prepublish_page(db, Environment::Production, https).await;
    assert!(
        production.contains(&format!("src=\"{https}\"")) && production.contains(&format!("<a href=\"{https}\"")),
        "https in production: {production}"
    );
}

/// The form POST of the page: a token alone does not decide when the
/// browser says the request comes from another site. The page sends no
/// referrer, so its own POST carries `Origin: null`: that is accepted only
/// with `Sec-Fetch-Site: same-origin`.
async fn a_cross_site_post_of_a_valid_token_decides_nothing(db: &Db) {
    let system = start(db, &[]).await;
    let run_id = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "cross"}, "options": {"requireWorkflowApproval": true}}))
        .await;
    let link = myloware_api::hitl::mint(&system.api_state, &run_id, Gate::Workflow);
    let url = format!("{}/v1/hitl/approve/{run_id}/workflow", system.api);
    let post = |headers: &'static [(&'static str, &'static str)]| {
        let mut request = system.http.post(&url).form(&[("token", link.token.as_str())]);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    for headers in [
        &[("origin", "https://evil.example")][..],
        &[("origin", "null")],
        &[("origin", "null"), ("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "cross-site")],
    ] {
        assert_eq!(post(headers).await, 403, "{headers:?}");
        assert_eq!(system.run(&run_id).await["status"], "pending_workflow", "{headers:?}");
    }
    assert_eq!(
        post(&[("origin", "null"), ("sec-fetch-site", "same-origin")]).await,
        200,
        "the page's own form"
    );
    system.stop_idle().await;
}

/// Rotation: a link minted under the old `HITL_SECRET` still opens and
/// decides while it is `HITL_SECRET_PREVIOUS`, and not after.
async fn links_of_the_previous_hitl_secret_work_during_a_rotation(db: &Db) {
    const OLD: &str = "the-old-hitl-secret-being-rotated-out-now";
    let before = start(db, &[("HITL_SECRET", OLD)]).await;
    let run_id = before
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "rotate"}, "options": {"requireWorkflowApproval": true}}))
        .await;
    let old_link = myloware_api::hitl::mint(&before.api_state, &run_id, Gate::Workflow);
    let old_base = before.api.clone();
    before.stop_idle().await;

    let without = start(db, &[("HITL_SECRET", "the-new-hitl-secret-after-the-rotation")]).await;
    assert_eq!(
        open_page(&without.http, &old_link.approval_url.replace(&old_base, &without.api))
            .await
            .status(),
        403
    );
    without.stop_idle().await;

    let during = start(
        db,
        &[
            ("HITL_SECRET", "the-new-hitl-secret-after-the-rotation"),
            ("HITL_SECRET_PREVIOUS", OLD),
        ],
    )
    .await;
    let url = old_link.approval_url.replace(&old_base, &during.api);
    assert_eq!(open_page(&during.http, &url).await.status(), 200);
    let decided = during.http.post(&url).send().await.unwrap();
    assert_eq!(decided.status(), 200);
    // The decision started the run: it goes on to the end.
    during.wait_status(&run_id, "published", Duration::from_secs(30)).await;
    during.stop_idle().await;
}

conformance_tests!(
    a_cross_site_post_of_a_valid_token_decides_nothing,
    links_of_the_previous_hitl_secret_work_during_a_rotation,
    the_confirmation_refusal_and_result_pages_are_locked,
    only_https_render_urls_are_played_or_linked,
);
