//! The console over HTTP, as a browser without script sees it: signing in
//! and out, sessions that expire or outlive their key, CSRF and roles on
//! every POST, the runs list with its filters, a run's page, the inbox's
//! decisions, the live statuses, and hostile text kept inert.

use std::time::Duration;

use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::console::Console;
use myloware_testkit::system::{API_KEY, System, gate, start};
use serde_json::json;

const QUICK: Duration = Duration::from_secs(30);
const KEYS: &str = "ann:approver:ann-key-0123456789abcdef,view:viewer:view-key-0123456789abcdef,\
                    ops:operator:ops-key-0123456789abcdef";

async fn system(db: &Db, extra: &[(&str, &str)]) -> System {
    let mut vars = vec![("API_KEYS", KEYS)];
    vars.extend_from_slice(extra);
    start(db, &vars).await
}

async fn signing_in_and_out(db: &Db) {
    let system = system(db, &[]).await;
    // No session: pages send a browser to sign in; a bad key is refused.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = http.get(format!("{}/console", system.api)).send().await.unwrap();
    assert_eq!(answer.status(), 303);
    assert_eq!(answer.headers()["location"], "/console/login");
    let login = http.get(format!("{}/console/login", system.api)).send().await.unwrap();
    let csp = login.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert_eq!(
        Console::sign_in(&system.api, "not-a-key").await.err(),
        Some((303, Some("/console/login?error=1".into())))
    );
    // Without the form's token, no sign-in at all.
    let answer = http
        .post(format!("{}/console/login", system.api))
        .form(&[("api_key", API_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);

    let console = Console::sign_in(&system.api, API_KEY).await.expect("signed in");
    let page = console.get("/console").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Sign out"), "{}", page.body);
    // Sign-out needs the token too; then the session is gone.
    assert_eq!(console.post_exactly("/console/logout", &[]).await.status, 403);
    let out = console.post("/console/logout", &[]).await;
    assert_eq!((out.status, out.location.as_deref()), (303, Some("/console/login")));
    assert_eq!(
        console.get("/console").await.status,
        303,
        "the old cookie opens nothing"
    );
    let query = myloware_api::store::AuditQuery {
        limit: 100,
        ..Default::default()
    };
    let audit = system.api_state.store.audit(&query).await.unwrap();
    let sign_ins: Vec<(&str, bool)> = audit
        .iter()
        .filter(|a| a.action == "sign_in")
        .map(|a| (a.actor.as_str(), a.accepted))
        .collect();
    assert_eq!(sign_ins.len(), 3, "{sign_ins:?}");
    assert!(sign_ins.iter().any(|(_, ok)| *ok) && sign_ins.iter().filter(|(_, ok)| !ok).count() == 2);
    system.stop_idle().await;
}

/// The stored id of the console's session: the SHA-256 of its cookie.
fn session_hash(console: &Console) -> String {
    use sha2::Digest;
    let id = console.cookie.trim_start_matches("mw_console=");
    hex::encode(sha2::Sha256::digest(id.as_bytes()))
}

async fn sessions_expire_and_end_with_their_key(db: &Db) {
    let system = system(db, &[("CONSOLE_IDLE_MINUTES", "1")]).await;
    let console = Console::sign_in(&system.api, "ann-key-0123456789abcdef").await.unwrap();
    assert_eq!(console.get("/console").await.status, 200);
    let id_hash = session_hash(&console);
    let stored = system
        .api_state
        .store
        .session(&id_hash)
        .await
        .unwrap()
        .expect("stored by its hash");
    assert_eq!(stored.key_name, "ann");
    // Idle past CONSOLE_IDLE_MINUTES: signed out, and the row goes.
    let stale = chrono::Utc::now() - chrono::TimeDelta::minutes(2);
    system.api_state.store.touch_session(&id_hash, stale).await.unwrap();
    assert_eq!(console.get("/console").await.status, 303);
    assert!(
        system.api_state.store.session(&id_hash).await.unwrap().is_none(),
        "deleted"
    );
    system.stop_idle().await;

    // A key removed from the configuration ends its sessions.
    let system = system_with_keys(db, KEYS).await;
    let ann = Console::sign_in(&system.api, "ann-key-0123456789abcdef").await.unwrap();
    assert_eq!(ann.get("/console").await.status, 200);
    system.stop_idle().await;
    let system = system_with_keys(db, "").await;
    assert_eq!(
        ann.at(&system.api).get("/console").await.status,
        303,
        "ann's key is gone"
    );
    system.stop_idle().await;

    // A leaked key replaced under the same name: its sessions end too.
    let system = system_with_keys(db, KEYS).await;
    let ann = Console::sign_in(&system.api, "ann-key-0123456789abcdef").await.unwrap();
    system.stop_idle().await;
    let system = system_with_keys(db, "ann:approver:ann-new-key-0123456789abcdef").await;
    assert_eq!(
        ann.at(&system.api).get("/console").await.status,
        303,
        "the old key's session"
    );
    let again = Console::sign_in(&system.api, "ann-new-key-0123456789abcdef")
        .await
        .unwrap();
    assert_eq!(again.get("/console").await.status, 200);
    system.stop_idle().await;
}

async fn system_with_keys(db: &Db, keys: &str) -> System {
    start(db, &[("API_KEYS", keys)]).await
}

async fn every_post_needs_the_token_and_the_role(db: &Db) {
    let system = system(db, &[]).await;
    let run_id = system.aismr_at_ideate("u-console").await;
    let viewer = Console::sign_in(&system.api, "view-key-0123456789abcdef")
        .await
        .unwrap();
    let inbox = viewer.get("/console/inbox").await;
    assert_eq!(inbox.status, 200);
    assert!(inbox.body.contains(&run_id), "a viewer sees what waits");
    assert!(
        !inbox.body.contains("/gates/ideate/approve"),
        "but no buttons: {}",
        inbox.body
    );
    let run_page = viewer.get(&format!("/console/runs/{run_id}")).await;
    assert!(!run_page.body.contains("/cancel\""), "no cancel for a viewer");
    for path in [
        format!("/console/runs/{run_id}/gates/ideate/approve"),
        format!("/console/runs/{run_id}/gates/ideate/reject"),
        format!("/console/runs/{run_id}/gates/ideate/revise"),
        format!("/console/runs/{run_id}/cancel"),
        format!("/console/runs/{run_id}/retry"),
    ] {
        let answer = viewer.post(&path, &[("feedback", "x")]).await;
        assert_eq!(answer.status, 403, "{path}: {}", answer.body);
    }
    // An approver without the token: refused too.
    let ann = Console::sign_in(&system.api, "ann-key-0123456789abcdef").await.unwrap();
    let answer = ann
        .post_exactly(&format!("/console/runs/{run_id}/gates/ideate/approve"), &[])
        .await;
    assert_eq!(answer.status, 403);
    assert!(answer.body.contains("CSRF"), "{}", answer.body);
    let answer = ann
        .post_exactly(
            &format!("/console/runs/{run_id}/gates/ideate/approve"),
            &[("csrf", "0".repeat(64).as_str())],
        )
        .await;
    assert_eq!(answer.status, 403, "another session's token is no token");
    let run = system.run(&run_id).await;
    assert_eq!(
        (run["status"].as_str(), gate(&run, "ideate")["status"].as_str()),
        (Some("awaiting_ideate"), Some("awaiting"))
    );

    // With both: changes asked in place, then approved from the inbox.
    let asked = ann
        .post(
            &format!("/console/runs/{run_id}/gates/ideate/revise"),
            &[("feedback", "calmer"), ("round", "0")],
        )
        .await;
    assert_eq!(
        (asked.status, asked.location.as_deref()),
        (303, Some("/console/inbox")),
        "{}",
        asked.body
    );
    system
        .wait_for(&run_id, QUICK, "the gate to wait again", |run| {
            gate(run, "ideate")["status"] == "awaiting" && gate(run, "ideate")["revisions"] == 1
        })
        .await;
    let inbox = ann.get("/console/inbox").await;
    assert!(
        inbox.body.contains("revision 1") && inbox.body.contains("calmer"),
        "{}",
        inbox.body
    );
    let stale = ann
        .post(
            &format!("/console/runs/{run_id}/gates/ideate/approve"),
            &[("round", "0")],
        )
        .await;
    assert_eq!(
        stale.status, 409,
        "an approval of the ideas before the revision: {}",
        stale.body
    );
    let approved = ann
        .post(
            &format!("/console/runs/{run_id}/gates/ideate/approve"),
            &[("round", "1")],
        )
        .await;
    assert_eq!(approved.status, 303, "{}", approved.body);
    let run = system.wait_status(&run_id, "awaiting_prepublish", QUICK).await;
    assert_eq!(gate(&run, "ideate")["approver"], "key:ann");
    // An operator cancels from the run's page; an approver may not.
    assert_eq!(
        ann.post(&format!("/console/runs/{run_id}/cancel"), &[]).await.status,
        403
    );
    let ops = Console::sign_in(&system.api, "ops-key-0123456789abcdef").await.unwrap();
    assert!(
        ops.get(&format!("/console/runs/{run_id}"))
            .await
            .body
            .contains("Cancel the run")
    );
    let cancelled = ops.post(&format!("/console/runs/{run_id}/cancel"), &[]).await;
    assert_eq!(
        (cancelled.status, cancelled.location),
        (303, Some(format!("/console/runs/{run_id}")))
    );
    system.wait_status(&run_id, "cancelled", QUICK).await;
    let audit = system.api_state.store.list_audit(&run_id).await.unwrap();
    let actions: Vec<(&str, &str, bool)> = audit
        .iter()
        .filter(|a| a.action != "view")
        .map(|a| (a.actor.as_str(), a.action.as_str(), a.accepted))
        .collect();
    assert!(actions.contains(&("key:ann", "revise", true)), "{actions:?}");
    assert!(actions.contains(&("key:ops", "cancel", true)), "{actions:?}");
    system.stop_idle().await;
}

async fn the_runs_list_filters_and_a_run_shows_what_it_did(db: &Db) {
    let system = system(db, &[]).await;
    let published = system.publish_aismr("u-list").await;
    let other = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "<script>alert(1)</script> moon"}}))
        .await;
    system.wait_status(&other, "published", QUICK).await;
    let console = Console::sign_in(&system.api, "view-key-0123456789abcdef")
        .await
        .unwrap();

    let all = console.get("/console").await;
    assert!(all.body.contains(&published) && all.body.contains(&other));
    assert!(!all.body.contains("<script>alert(1)"), "hostile input is text");
    assert!(
        all.body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{}",
        all.body
    );
    let aismr = console.get("/console?project=aismr").await;
    assert!(aismr.body.contains(&published) && !aismr.body.contains(&other));
    let searched = console.get("/console?q=MOON").await;
    assert!(
        searched.body.contains(&other) && !searched.body.contains(&published),
        "search is case-blind"
    );
    let wild = console.get("/console?q=%25").await;
    assert!(!wild.body.contains(&other), "a % is not a wildcard");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let dated = console
        .get(&format!("/console?from={today}&to={today}&status=published"))
        .await;
    assert!(dated.body.contains(&published) && dated.body.contains(&other));
    let before = console.get("/console?to=2020-01-01").await;
    assert!(!before.body.contains(&published));
    assert_eq!(console.get("/console?status=nope").await.status, 422);
    assert_eq!(console.get("/console?from=yesterday").await.status, 422);

    let page = console.get(&format!("/console/runs/{published}")).await;
    assert_eq!(page.status, 200);
    for what in [
        "kieai",
        "shotstack",
        "upload_post",
        "gate.reached",
        "ideate",
        "prepublish",
        "<video",
        "(mock: not paid)",
    ] {
        assert!(page.body.contains(what), "{what}: {}", page.body);
    }
    assert_eq!(console.get("/console/runs/run_doesnotexist").await.status, 404);
    assert_eq!(console.get("/console/runs/not-a-run").await.status, 404);
    system.stop_idle().await;
}

async fn statuses_stream_until_the_runs_end(db: &Db) {
    let system = system(db, &[]).await;
    let run_id = system.aismr_at_ideate("u-live").await;
    let console = Console::sign_in(&system.api, API_KEY).await.unwrap();
    let list = console.get("/console").await;
    assert!(list.body.contains(&format!("data-run=\"{run_id}\"")), "{}", list.body);
    let http = reqwest::Client::new();
    let mut stream = http
        .get(format!("{}/console/events?runs={run_id},not-a-run", system.api))
        .header("cookie", &console.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    let first = tokio::time::timeout(QUICK, stream.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    seen.push_str(&String::from_utf8_lossy(&first));
    assert!(
        seen.contains("event: status") && seen.contains("awaiting_ideate"),
        "{seen}"
    );
    system.approve(&run_id, "ideate").await;
    system.wait_status(&run_id, "awaiting_prepublish", QUICK).await;
    system.approve(&run_id, "prepublish").await;
    while !seen.contains("event: end") {
        let chunk = tokio::time::timeout(QUICK, stream.chunk()).await.unwrap().unwrap();
        let Some(chunk) = chunk else { break };
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("\"published\""), "{seen}");
    assert!(seen.contains("event: end"), "the stream ends with the run: {seen}");
    // Without a session: nothing streams.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let refused = no_redirects
        .get(format!("{}/console/events?runs={run_id}", system.api))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 303, "sent to sign in");

    // A run that does not exist ends its stream at once; a session holds
    // at most four streams.
    let unknown = http
        .get(format!("{}/console/events?runs=run_doesnotexist", system.api))
        .header("cookie", &console.cookie)
        .send()
        .await
        .unwrap();
    let text = tokio::time::timeout(QUICK, unknown.text()).await.unwrap().unwrap();
    assert!(text.contains("event: end") && !text.contains("event: status"), "{text}");
    let other = system.aismr_at_ideate("u-live-2").await;
    let mut open = Vec::new();
    for _ in 0..4 {
        let stream = http
            .get(format!("{}/console/events?runs={other}", system.api))
            .header("cookie", &console.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), 200);
        open.push(stream);
    }
    let fifth = http
        .get(format!("{}/console/events?runs={other}", system.api))
        .header("cookie", &console.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(fifth.status(), 503);
    drop(open);
    system.cancel(&other, json!({})).await;
    system.stop_idle().await;
}

async fn a_failed_run_shows_why_and_retries_from_the_console(db: &Db) {
    let system = system(db, &[("MOCK_KIEAI_FAILURE_RATE", "1")]).await;
    let failing = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "fails"}}))
        .await;
    system.wait_status(&failing, "failed", QUICK).await;
    let ops = Console::sign_in(&system.api, "ops-key-0123456789abcdef").await.unwrap();
    let page = ops.get(&format!("/console/runs/{failing}")).await;
    for what in [
        "Failures, retries and holds",
        "kieai.clip",
        "Failed:",
        "Retry from the failed step",
    ] {
        assert!(page.body.contains(what), "{what}: {}", page.body);
    }
    assert!(
        !page.body.contains("Cancel the run"),
        "an ended run cannot be cancelled"
    );
    let retried = ops.post(&format!("/console/runs/{failing}/retry"), &[]).await;
    assert_eq!(retried.status, 303, "{}", retried.body);
    system.wait_status(&failing, "failed", QUICK).await;
    let page = ops.get(&format!("/console/runs/{failing}")).await;
    assert!(page.body.contains("run.retried"), "{}", page.body);
    let audit = system.api_state.store.list_audit(&failing).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "retry" && a.actor == "key:ops" && a.accepted),
        "{audit:?}"
    );
    system.stop_idle().await;
}

conformance_tests!(
    a_failed_run_shows_why_and_retries_from_the_console,
    signing_in_and_out,
    sessions_expire_and_end_with_their_key,
    every_post_needs_the_token_and_the_role,
    the_runs_list_filters_and_a_run_shows_what_it_did,
    statuses_stream_until_the_runs_end,
);
