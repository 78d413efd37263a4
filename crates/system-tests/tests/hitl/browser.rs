//! The approval page in a real headless Chromium, driven over WebDriver
//! (chromedriver): opening the link changes nothing, clicking Approve
//! approves, a second click says it was already approved; script in any
//! previewed field stays text. `.ci/run` installs Debian's `chromium` and
//! `chromium-driver`.

use myloware_testkit::JsonAnswer;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use myloware_core::Gate;
use myloware_testkit::system;
use serde_json::{Value, json};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    base: String,
    session: String,
    http: reqwest::Client,
    process: Child,
}

impl Drop for Driver {
    /// Ends the session first: chromedriver then closes Chromium, which
    /// killing chromedriver alone leaves running (seen: a leftover browser
    /// after every test run). Synchronous, so it also runs when a test
    /// panics: one `DELETE` over a plain socket.
    fn drop(&mut self) {
        let end_session = || -> std::io::Result<()> {
            let address = self.base.trim_start_matches("http://");
            let mut stream = std::net::TcpStream::connect(address)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            write!(
                stream,
                "DELETE /session/{} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            )?;
            // The answer comes once the browser is gone.
            stream.read_to_end(&mut Vec::new()).map(drop)
        };
        if let Err(err) = end_session() {
            eprintln!("could not end the WebDriver session: {err}");
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Driver {
    async fn start() -> Option<Driver> {
        if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "chromium and chromium-driver must be installed in CI"
            );
            eprintln!("chromium or chromedriver missing: skipping the browser test");
            return None;
        }
        let port = myloware_testkit::free_port();
        let process = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(response) = http.get(format!("{base}/status")).send().await {
                let status: Value = response.json().await.unwrap_or_default();
                if status["value"]["ready"] == true {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // One profile per browser: two Chromiums on one profile are one
        // browser, and the tests running in parallel would share its tabs.
        let profile = std::env::temp_dir().join(format!("mw-chromium-{}-{port}", std::process::id()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile.display())
            ]}
        }}});
        let session: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .json_answer()
            .await;
        let session = session["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}"))
            .to_string();
        Some(Driver {
            base,
            session,
            http,
            process,
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap().json::<Value>().await.unwrap()["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The WebDriver id of the element at `css`.
    async fn find(&self, css: &str) -> String {
        let element = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        element[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no {css}: {element}"))
            .to_string()
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({})))
            .await;
    }

    /// Types `text` into the element at `css`, as a person would.
    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Saves a PNG of the page to `target/console-screenshots/{name}.png`
    /// (docs/console.md shows them).
    async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .unwrap_or_default();
        let dir = myloware_testkit::repo().join("target").join("console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    /// Waits until `script` (an expression) is true in the page.
    async fn wait_until_true(&self, script: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.execute(&format!("return Boolean({script});")).await != json!(true) {
            assert!(Instant::now() < deadline, "never: {what}\n{}", self.source().await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `script` in the page (WebDriver's own channel, which the page's
    /// CSP does not govern) and returns its value.
    async fn execute(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    async fn back(&self) {
        self.call(reqwest::Method::POST, "/back", Some(json!({}))).await;
    }

    async fn wait_for_text(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let source = self.source().await;
            if source.contains(text) {
                return source;
            }
            assert!(Instant::now() < deadline, "page never showed {text:?}:\n{source}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_approves_in_a_real_browser() {
    let Some(driver) = Driver::start().await else { return };
    let db = myloware_testkit::TestDb::sqlite().await;
    let system = system::start(&db.db, &[]).await;
    let run_id = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "browser"}, "options": {"requireWorkflowApproval": true}}))
        .await;
    let link = system
        .get(&format!("{}/v1/hitl/link/{run_id}/workflow", system.api))
        .await;
    let url = link["approvalUrl"].as_str().unwrap();

    driver.open(url).await;
    let page = driver.wait_for_text("Approve the workflow gate?").await;
    assert!(
        page.contains("iggy") && page.contains("quinn"),
        "the proposed pipeline is shown"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        system.run(&run_id).await["status"],
        "pending_workflow",
        "opening the page changes nothing"
    );

    driver.click("button.approve").await;
    driver.wait_for_text("the run continues").await;
    system.wait_status(&run_id, "published", Duration::from_secs(30)).await;

    // Back to the page and click again: already approved, nothing changes.
    driver.back().await;
    driver.wait_for_text("Approve the workflow gate?").await;
    driver.click("button.approve").await;
    driver.wait_for_text("already approved").await;
    let audit = system.api_state.store.list_audit(&run_id).await.unwrap();
    let outcomes: Vec<&str> = audit.iter().map(|a| a.outcome.as_str()).collect();
    assert!(
        outcomes.contains(&"approved") && outcomes.contains(&"already_approved"),
        "{outcomes:?}"
    );
    assert!(
        audit
            .iter()
            .any(|a| a.user_agent.as_deref().is_some_and(|ua| ua.contains("Chrome"))),
        "{audit:?}"
    );
    system.stop_idle().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_requests_changes_in_a_real_browser() {
    let Some(driver) = Driver::start().await else { return };
    let db = myloware_testkit::TestDb::sqlite().await;
    let system = system::start(&db.db, &[]).await;
    let run_id = system.aismr_at_ideate("u-browser").await;
    let link = system.link(&run_id, "ideate").await;
    driver.open(link["approvalUrl"].as_str().unwrap()).await;
    let page = driver.wait_for_text("Request changes").await;
    assert!(page.contains("3 requests for changes left"), "{page}");

    // The third button needs words: an empty form is not sent.
    driver.click("button.revise").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(system.run(&run_id).await["gates"][0]["revisions"], 0, "nothing sent");
    driver
        .type_into("textarea#feedback", "fewer metals, more fabrics")
        .await;
    driver.click("button.revise").await;
    driver.wait_for_text("Changes requested").await;
    system
        .wait_for(&run_id, Duration::from_secs(30), "the gate to wait again", |run| {
            run["gates"][0]["status"] == "awaiting" && run["gates"][0]["revisions"] == 1
        })
        .await;

    // The old page's buttons no longer decide: its preview changed.
    driver.back().await;
    driver.wait_for_text("Request changes").await;
    driver.click("button.approve").await;
    driver.wait_for_text("preview changed since it was shown").await;
    assert_eq!(system.run(&run_id).await["status"], "awaiting_ideate");

    // A fresh link shows the new ideas with what was asked.
    let link = system.link(&run_id, "ideate").await;
    driver.open(link["approvalUrl"].as_str().unwrap()).await;
    let page = driver.wait_for_text("Revision 1").await;
    assert!(page.contains("fewer metals, more fabrics"), "{page}");
    assert!(page.contains("2 requests for changes left"), "{page}");
    driver.click("button.approve").await;
    driver.wait_for_text("the run continues").await;
    system
        .wait_status(&run_id, "awaiting_prepublish", Duration::from_secs(30))
        .await;
    let audit = system.api_state.store.list_audit(&run_id).await.unwrap();
    let revise = audit
        .iter()
        .find(|a| a.action == "revise")
        .expect("the revision is audited");
    assert!(
        revise.user_agent.as_deref().is_some_and(|ua| ua.contains("Chrome")),
        "{revise:?}"
    );
    system.stop_idle().await;
}

/// The console as an operator uses it: sign in, the runs list whose
/// statuses change without a reload, changes requested and an approval
/// from the inbox, a form without its CSRF token refused, a viewer offered
/// no buttons, hostile input inert, sign out. Screenshots for the docs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let Some(driver) = Driver::start().await else { return };
    let db = myloware_testkit::TestDb::sqlite().await;
    let keys = ("API_KEYS", "view:viewer:view-key-0123456789abcdef");
    let system = system::start(&db.db, &[keys]).await;
    let hostile = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": format!("{SCRIPT} {BREAKOUT}")}}))
        .await;
    system.wait_status(&hostile, "published", Duration::from_secs(30)).await;
    let run_id = system.aismr_at_ideate("u-console").await;

    let sign_in = |key: &'static str| {
        let driver = &driver;
        let api = system.api.clone();
        async move {
            driver.open(&format!("{api}/console/login")).await;
            driver.wait_for_text("API key").await;
            driver.type_into("#api_key", key).await;
            driver.click("form[action='/console/login'] button").await;
            driver.wait_for_text("Sign out").await;
        }
    };
    sign_in(system::API_KEY).await;
    driver.screenshot("runs").await;
    assert_eq!(
        driver.execute("return window.__xss === undefined;").await,
        json!(true),
        "hostile input inert"
    );
    let cell = format!("document.querySelector('[data-run=\"{run_id}\"]').textContent");
    assert_eq!(
        driver.execute(&format!("return {cell};")).await,
        json!("awaiting_ideate")
    );
    // Approved elsewhere: the list shows the run moving on, no reload.
    system.approve(&run_id, "ideate").await;
    driver
        .wait_until_true(&format!("{cell} !== 'awaiting_ideate'"), "the status changes live")
        .await;
    system
        .wait_status(&run_id, "awaiting_prepublish", Duration::from_secs(30))
        .await;

    // The inbox: ask for changes, then approve the new cut, in place.
    driver.open(&format!("{}/console/inbox", system.api)).await;
    driver.wait_for_text("What should change?").await;
    driver.screenshot("inbox").await;
    driver
        .type_into("textarea[name='feedback']", "redo clip 2, warmer light")
        .await;
    driver.click("form[action$='/revise'] button").await;
    driver.wait_for_text("Approvals").await;
    system
        .wait_for(&run_id, Duration::from_secs(30), "the cut to wait again", |run| {
            system::gate(run, "prepublish")["revisions"] == 1 && system::gate(run, "prepublish")["status"] == "awaiting"
        })
        .await;
    driver.open(&format!("{}/console/inbox", system.api)).await;
    driver.wait_for_text("revision 1").await;
    driver.click("form[action$='/approve'] button").await;
    system.wait_status(&run_id, "published", Duration::from_secs(30)).await;
    driver.open(&format!("{}/console/runs/{run_id}", system.api)).await;
    driver.wait_for_text("Provider calls").await;
    driver.screenshot("run").await;

    // A dead letter (its error hostile) replayed from the operations page.
    let signal = json!({"signalId": "kieai:task-browser", "signal": {"type": "clip.reported", "taskId": "task-browser", "index": 0}});
    let seq = system
        .api_state
        .store
        .add_dead_letter(
            myloware_api::store::DeadLetterKind::Signal,
            Some(&run_id),
            &signal,
            &format!("refused {SCRIPT} {BREAKOUT}"),
        )
        .await
        .unwrap();
    driver.open(&format!("{}/console/ops", system.api)).await;
    driver.wait_for_text("Replay").await;
    driver.screenshot("ops").await;
    assert_eq!(
        driver.execute("return window.__xss === undefined;").await,
        json!(true),
        "hostile error inert"
    );
    driver
        .click(&format!("form[action='/console/dlq/{seq}/replay'] button"))
        .await;
    driver.wait_for_text("None open.").await;
    let letter = system.api_state.store.get_dead_letter(seq).await.unwrap().unwrap();
    assert!(letter.resolved_at.is_some(), "replayed from the browser");
    driver.open(&format!("{}/console/costs", system.api)).await;
    driver.wait_for_text("<svg").await;
    driver.screenshot("costs").await;
    driver.open(&format!("{}/console/schedules", system.api)).await;
    driver.wait_for_text("Schedules").await;
    driver.screenshot("schedules").await;
    driver.open(&format!("{}/console/runs/{run_id}", system.api)).await;
    driver.wait_for_text("Provider calls").await;

    // A form stripped of its token is refused.
    driver
        .execute("document.querySelectorAll('input[name=csrf]').forEach(function (i) { i.remove(); }); return 1;")
        .await;
    driver.click("form.signout button").await;
    driver.wait_for_text("CSRF").await;
    driver.back().await;
    driver.wait_for_text("Provider calls").await;
    driver.open(&format!("{}/console", system.api)).await;
    driver.wait_for_text("Runs").await;
    driver.click("form.signout button").await;
    driver.wait_for_text("API key").await;
    driver.open(&format!("{}/console", system.api)).await;
    driver.wait_for_text("API key").await;

    // A viewer reads, and is offered nothing to press.
    let other = system.aismr_at_ideate("u-viewer").await;
    sign_in("view-key-0123456789abcdef").await;
    driver.open(&format!("{}/console/inbox", system.api)).await;
    driver.wait_for_text(&other).await;
    assert_eq!(
        driver
            .execute("return document.querySelectorAll('main form').length;")
            .await,
        json!(0),
        "no forms for a viewer"
    );
    driver.open(&format!("{}/console/runs/{other}", system.api)).await;
    driver.wait_for_text(&other).await;
    assert_eq!(
        driver
            .execute("return document.querySelectorAll('main form').length;")
            .await,
        json!(0)
    );
    system.cancel(&other, json!({})).await;
    system.stop_idle().await;
}

const SCRIPT: &str = "<script>window.__xss=1</script>";
const BREAKOUT: &str = "\"><img src=x onerror=window.__xss=1>";
const TEXTAREA: &str = "</textarea><script>window.__xss=1</script>";
const SVG: &str = "'><svg onload=window.__xss=1>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_in_a_preview_stays_text_in_a_real_browser() {
    let Some(driver) = Driver::start().await else { return };
    let db = myloware_testkit::TestDb::sqlite().await;
    let (_, api) = system::start_api_with(&db.db, |_| {}).await;
    // Every previewed field of every gate, and what the page must show as text.
    let pages = [
        (
            Gate::Workflow,
            json!({"project": SCRIPT, "pipeline": [BREAKOUT, TEXTAREA], "gates": [SVG], "input": {"prompt": SCRIPT}}),
            vec![SCRIPT, BREAKOUT, TEXTAREA, SVG],
        ),
        (
            Gate::Ideate,
            json!({"ideas": [{"index": SCRIPT, "subject": BREAKOUT, "concept": TEXTAREA, "header": SVG},
                             {"index": 1, "subject": SVG, "concept": SCRIPT, "header": BREAKOUT}]}),
            vec![SCRIPT, BREAKOUT, TEXTAREA, SVG],
        ),
        (
            Gate::Prepublish,
            json!({"renderUrl": "javascript:window.__xss=1"}),
            vec!["javascript:window.__xss=1"],
        ),
        (Gate::Prepublish, json!({"renderUrl": BREAKOUT}), vec![BREAKOUT]),
        (
            Gate::Prepublish,
            json!({"renderUrl": format!("https://127.0.0.1:9/{BREAKOUT}{SCRIPT}.mp4")}),
            vec!["https://127.0.0.1:9/"],
        ),
    ];
    for (gate, preview, shown) in pages {
        let (_, url) = system::awaiting_gate(&api, gate, preview.clone()).await;
        driver.open(&url).await;
        driver.wait_for_text(&format!("Approve the {gate} gate?")).await;
        let what = format!("{gate} gate with {preview}");
        assert_eq!(
            driver.execute("return typeof window.__xss").await,
            "undefined",
            "a script ran: {what}"
        );
        let dangerous = driver
            .execute(
                "return document.querySelectorAll('a[href^=\"javascript:\" i], video[src^=\"javascript:\" i], \
                 script, img, svg, [onerror], [onload]').length",
            )
            .await;
        assert_eq!(dangerous, 0, "markup from the preview: {what}");
        let text = driver.execute("return document.body.innerText").await;
        let text = text.as_str().unwrap_or_default();
        for payload in shown {
            assert!(text.contains(payload), "{payload:?} not shown as text: {what}\n{text}");
        }
    }
}

/// The prepublish page plays the render from the project's own copy
/// (served by the API under a signed URL), not from Shotstack's URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approval_page_plays_the_render_from_the_copy() {
    let Some(driver) = Driver::start().await else { return };
    let db = myloware_testkit::TestDb::sqlite().await;
    let system = system::start(&db.db, &[]).await;
    let quick = Duration::from_secs(30);
    let run_id = system
        .start_run(json!({"project": "aismr", "input": {"object": "candles"}}))
        .await;
    system.wait_status(&run_id, "awaiting_ideate", quick).await;
    system.approve(&run_id, "ideate").await;
    system.wait_status(&run_id, "awaiting_prepublish", quick).await;
    let link = system
        .get(&format!("{}/v1/hitl/link/{run_id}/prepublish", system.api))
        .await;
    driver.open(link["approvalUrl"].as_str().unwrap()).await;
    driver.wait_for_text("Approve the prepublish gate?").await;
    let copy = format!("{}/v1/assets/aismr/{run_id}/render-0.mp4?", system.api);
    let deadline = Instant::now() + Duration::from_secs(20);
    let video = loop {
        let video = driver
            .execute(
                "const v = document.querySelector('video'); \
                 return v && {src: v.currentSrc, ready: v.readyState, width: v.videoWidth, \
                 height: v.videoHeight, error: v.error && v.error.code}",
            )
            .await;
        if video["ready"].as_u64().unwrap_or(0) >= 1 || !video["error"].is_null() {
            break video;
        }
        assert!(Instant::now() < deadline, "the video never loaded: {video}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(video["src"].as_str().unwrap().starts_with(&copy), "{video}");
    assert_eq!(video["error"], Value::Null, "the browser could not play it: {video}");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(90), Some(160)),
        "{video}"
    );
    system.approve(&run_id, "prepublish").await;
    system.wait_status(&run_id, "published", quick).await;
    system.stop_idle().await;
}
