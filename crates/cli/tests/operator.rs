//! The operator commands (`mw runs`, `mw hitl`, `mw demo`, `mw retention`)
//! as an operator runs them: the real `mw` binary against both services on
//! loopback, in text and in JSON, with their exit codes.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::Duration as Days;
use myloware_api::store::{Artifact, ChatMessage, NewRun, Push, PushOutcome, WebhookDelivery, now};
use myloware_core::RunStatus;
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::system;
use myloware_testkit::system::{API_KEY, System, start};
use serde_json::{Value, json};

const QUICK: Duration = Duration::from_secs(30);

/// `mw` with a clean environment (no `.env.development`), pointed at `api`.
fn mw_command(api: &str, key: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mw"));
    command
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("USER", "operator")
        .env("MW_API_URL", api)
        .env("API_KEY", key);
    command
}

/// Runs `mw` to the end, off the runtime the services serve on.
async fn mw(system: &System, args: &[&str]) -> Output {
    output_of(mw_command(&system.api, API_KEY, args)).await
}

async fn output_of(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Its stdout, asserting it succeeded.
#[track_caller]
fn ok(output: &Output) -> String {
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "{:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    stdout
}

/// Its stderr, asserting it exited with `code`.
#[track_caller]
fn failed(output: &Output, code: i32) -> String {
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(code), "stdout:\n{stdout}\nstderr:\n{stderr}");
    stderr
}

fn json_of(output: &Output) -> Value {
    serde_json::from_str(&ok(output)).expect("--json prints JSON")
}

/// The run id in a line like `run_abc123def456 started (pending)`.
fn run_id_in(stdout: &str) -> String {
    stdout
        .split_whitespace()
        .find(|w| w.starts_with("run_") && w.len() == 16)
        .unwrap_or_else(|| panic!("no run id in:\n{stdout}"))
        .to_string()
}

/// `mw` running in the background, its stdout read line by line as it comes.
struct Streaming {
    /// Taken by `finish`; killed on drop otherwise.
    child: Option<Child>,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Streaming {
    fn spawn(api: &str, args: &[&str]) -> Streaming {
        let mut child = mw_command(api, API_KEY, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Streaming {
            child: Some(child),
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads until a line contains every one of `needles`; that line.
    async fn until(&mut self, needles: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + QUICK;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if needles.iter().all(|n| line.contains(n)) {
                        return line;
                    }
                }
                Ok(None) => panic!("mw ended before printing {needles:?}:\n{}", self.seen.join("\n")),
                Err(_) => panic!("mw did not print {needles:?} in time:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn is_running(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// Waits for the exit; the status, all of stdout and stderr.
    async fn finish(mut self) -> (ExitStatus, String, String) {
        let child = self.child.take().unwrap();
        let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        while let Some(line) = self.lines.recv().await {
            self.seen.push(line);
        }
        (
            output.status,
            std::mem::take(&mut self.seen).join("\n"),
            text(&output.stderr),
        )
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The line index of the first line containing `needle`.
#[track_caller]
fn line_of(stdout: &str, needle: &str) -> usize {
    stdout
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{stdout}"))
}

async fn runs_start_list_show_and_cancel(db: &Db) {
    let system = start(db, &[]).await;
    let started = ok(&mw(&system, &["runs", "start", "test_video_gen", "--prompt", "smoke"]).await);
    let smoke = run_id_in(&started);
    assert!(started.contains(&format!("{smoke} started (pending)")), "{started}");
    assert!(started.contains(&format!("mw runs watch {smoke}")), "{started}");
    let published = system.wait_status(&smoke, "published", QUICK).await;

    let proposed = json_of(
        &mw(
            &system,
            &[
                "runs",
                "start",
                "aismr",
                "--object",
                "candles",
                "--modifier",
                "glass",
                "--modifier",
                "velvet",
                "--user",
                "u-op",
                "--skip",
                "alex",
                "--require-approval",
                "--json",
            ],
        )
        .await,
    );
    assert_eq!(proposed["status"], "pending_workflow", "{proposed}");
    let held = proposed["runId"].as_str().unwrap().to_string();
    let run = system.run(&held).await;
    assert_eq!(
        run["payload"]["input"],
        json!({"object": "candles", "modifiers": ["glass", "velvet"]})
    );
    assert_eq!(run["payload"]["options"]["user_id"], "u-op");
    assert_eq!(
        run["payload"]["graph_spec"]["pipeline"],
        json!(["iggy", "riley", "quinn"])
    );

    // The list: a table, filters, JSON.
    let list = ok(&mw(&system, &["runs", "list"]).await);
    assert!(list.lines().next().unwrap().starts_with("run "), "{list}");
    assert!(line_of(&list, &held) < line_of(&list, &smoke), "newest first:\n{list}");
    assert!(list.contains("pending_workflow") && list.contains("u-op"), "{list}");
    let aismr = json_of(&mw(&system, &["runs", "list", "--project", "aismr", "--json"]).await);
    let ids: Vec<&str> = aismr["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["runId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [held.as_str()]);
    let page = json_of(&mw(&system, &["runs", "list", "--limit", "1", "--json"]).await);
    let cursor = page["nextCursor"].as_str().expect("a second page").to_string();
    let text_page = ok(&mw(&system, &["runs", "list", "--limit", "1"]).await);
    assert!(text_page.contains(&format!("--cursor {cursor}")), "{text_page}");
    let next = json_of(
        &mw(
            &system,
            &["runs", "list", "--limit", "1", "--cursor", &cursor, "--json"],
        )
        .await,
    );
    assert_eq!(next["runs"][0]["runId"], smoke.as_str());
    let by_status = ok(&mw(&system, &["runs", "list", "--status", "published", "--user", "nobody"]).await);
    assert_eq!(by_status.trim(), "no runs");

    // One run, as text and as the API's JSON.
    let show = ok(&mw(&system, &["runs", "show", &smoke]).await);
    let result = &published["result"];
    assert!(
        show.starts_with(&format!("{smoke}  test_video_gen  published")),
        "{show}"
    );
    assert!(show.contains("videos (2/2 completed)"), "{show}");
    assert!(show.contains(result["renderUrl"].as_str().unwrap()), "{show}");
    assert!(show.contains(result["publishUrls"][0].as_str().unwrap()), "{show}");
    let shown = json_of(&mw(&system, &["runs", "show", &smoke, "--json"]).await);
    assert_eq!(shown, system.run(&smoke).await, "--json is the API's answer");

    // Cancel, then cancel again.
    let cancelled = ok(&mw(&system, &["runs", "cancel", &held, "--reason", "not this week"]).await);
    assert_eq!(cancelled.trim(), format!("{held} cancelled"));
    let run = system.run(&held).await;
    assert_eq!(run["status"], "cancelled");
    let artifact = run["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "run.cancelled")
        .unwrap();
    assert_eq!(artifact["data"]["reason"], "not this week");
    let again = failed(&mw(&system, &["runs", "cancel", &held, "--json"]).await, 1);
    assert!(
        again.contains(&format!("cannot cancel {held}: run is already cancelled")),
        "{again}"
    );
    let show = ok(&mw(&system, &["runs", "show", &held]).await);
    assert!(
        show.contains("gates:") && show.contains("workflow    awaiting"),
        "{show}"
    );

    // What to do next when something is wrong.
    let unknown = failed(&mw(&system, &["runs", "show", "run_000000000000"]).await, 1);
    assert!(unknown.contains("no run run_000000000000; `mw runs list`"), "{unknown}");
    let unknown = failed(&mw(&system, &["runs", "watch", "run_000000000000"]).await, 1);
    assert!(unknown.contains("no run run_000000000000"), "{unknown}");
    let refused = failed(
        &output_of(mw_command(&system.api, "wrong-key", &["runs", "list"])).await,
        1,
    );
    assert!(refused.contains("(401): set API_KEY"), "{refused}");
    let unknown_project = failed(&mw(&system, &["runs", "start", "nope", "--prompt", "x"]).await, 1);
    assert!(
        unknown_project.contains("the API refused the request") && unknown_project.contains("aismr"),
        "{unknown_project}"
    );
    system.stop_idle().await;
}

async fn hitl_pending_link_approve_and_reject(db: &Db) {
    let system = start(db, &[]).await;
    let approved = system
        .start_run(json!({"project": "aismr", "input": {"object": "candles"}}))
        .await;
    let rejected = system
        .start_run(json!({"project": "aismr", "input": {"object": "soap"}}))
        .await;
    for run_id in [&approved, &rejected] {
        system.wait_status(run_id, "awaiting_ideate", QUICK).await;
    }

    let pending = ok(&mw(&system, &["hitl", "pending"]).await);
    for run_id in [&approved, &rejected] {
        let line = &pending.lines().nth(line_of(&pending, run_id)).unwrap().to_string();
        assert!(line.contains("ideate"), "{pending}");
        assert!(
            line.contains(&format!("/v1/hitl/approve/{run_id}/ideate?token=")),
            "{pending}"
        );
    }
    let listed = json_of(&mw(&system, &["hitl", "pending", "--json"]).await);
    assert_eq!(listed["pending"].as_array().unwrap().len(), 2, "{listed}");

    let link = ok(&mw(&system, &["hitl", "link", &approved, "ideate"]).await);
    assert!(
        link.contains(&format!(
            "approve: {}/v1/hitl/approve/{approved}/ideate?token=",
            system.api
        )),
        "{link}"
    );
    assert!(
        link.contains(&format!("/v1/hitl/reject/{approved}/ideate?token=")),
        "{link}"
    );
    let link = json_of(&mw(&system, &["hitl", "link", &approved, "ideate", "--json"]).await);
    assert!(link["token"].as_str().is_some_and(|t| !t.is_empty()), "{link}");

    let decided = ok(&mw(&system, &["hitl", "approve", &approved, "ideate", "--approver", "ops"]).await);
    assert_eq!(
        decided.trim(),
        format!("approved: {approved} ideate; the run continues")
    );
    let again = ok(&mw(&system, &["hitl", "approve", &approved, "ideate"]).await);
    assert!(again.contains("already approved"), "{again}");
    let run = system.wait_status(&approved, "awaiting_prepublish", QUICK).await;
    // The approver is the credential; the name given is a note.
    assert_eq!(run["gates"][0]["approver"], json!(admin_key()));
    assert_eq!(run["gates"][0]["note"], "ops");

    let decided = ok(&mw(
        &system,
        &["hitl", "reject", &rejected, "ideate", "--reason", "too tame"],
    )
    .await);
    assert_eq!(
        decided.trim(),
        format!("rejected: {rejected} ideate; the run is stopped")
    );
    let run = system.run(&rejected).await;
    assert_eq!(run["status"], "rejected");
    assert_eq!(
        (
            run["gates"][0]["reason"].as_str(),
            run["gates"][0]["approver"].as_str(),
            run["gates"][0]["note"].as_str()
        ),
        (Some("too tame"), Some(admin_key().as_str()), Some("cli:operator"))
    );
    let resolved = failed(&mw(&system, &["hitl", "link", &rejected, "ideate"]).await, 1);
    assert!(resolved.contains("the ideate gate was already rejected"), "{resolved}");
    let opposite = failed(&mw(&system, &["hitl", "approve", &rejected, "ideate"]).await, 1);
    assert!(!opposite.is_empty());
    let not_in_run = failed(&mw(&system, &["hitl", "approve", &approved, "workflow"]).await, 1);
    assert!(
        not_in_run.contains("not found: the workflow gate is not part of this run"),
        "{not_in_run}"
    );
    let unknown = failed(&mw(&system, &["hitl", "link", "run_000000000000", "ideate"]).await, 1);
    assert!(unknown.contains("no run run_000000000000"), "{unknown}");

    let answer = json_of(&mw(&system, &["hitl", "approve", &approved, "prepublish", "--json"]).await);
    assert_eq!(
        (answer["status"].as_str(), answer["gate"].as_str()),
        (Some("approved"), Some("prepublish"))
    );
    system.wait_status(&approved, "published", QUICK).await;
    let none = ok(&mw(&system, &["hitl", "pending"]).await);
    assert_eq!(none.trim(), "no gates awaiting a decision");
    system.stop_idle().await;
}

async fn watch_exits_0_when_published_and_1_when_rejected(db: &Db) {
    let system = start(db, &[]).await;
    let smoke = system.start_run(system::smoke()).await;
    let watched = ok(&mw(&system, &["runs", "watch", &smoke, "--timeout", "60"]).await);
    let run = system.run(&smoke).await;
    let result = &run["result"];
    assert!(watched.contains("clip 2/2 completed"), "{watched}");
    assert!(
        watched.contains(&format!("render: {}", result["renderUrl"].as_str().unwrap())),
        "{watched}"
    );
    let publish = result["publishUrls"][0].as_str().unwrap();
    assert!(watched.contains(&format!("publish: {publish}")), "{watched}");
    assert!(watched.contains("status: published"), "{watched}");
    assert!(watched.contains(&format!("{smoke} published after")), "{watched}");
    // --json: one API answer per line, the last one the published run.
    let lines = ok(&mw(&system, &["runs", "watch", &smoke, "--json"]).await);
    let last: Value = serde_json::from_str(lines.lines().last().unwrap()).unwrap();
    assert_eq!(last, run);

    // A run rejected while it is watched.
    let run_id = system
        .start_run(json!({"project": "aismr", "input": {"object": "soap"}}))
        .await;
    let mut watch = Streaming::spawn(&system.api, &["runs", "watch", &run_id]);
    watch
        .until(&["approve: ", &format!("/v1/hitl/approve/{run_id}/ideate?token=")])
        .await;
    watch.until(&[&format!("mw hitl approve {run_id} ideate")]).await;
    assert!(watch.is_running(), "watch waits at the gate");
    let (status, _) = system
        .post(
            &format!("{}/v1/hitl/reject/{run_id}/ideate", system.api),
            json!({"reason": "too tame"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, stdout, stderr) = watch.finish().await;
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("gate ideate: rejected"), "{stdout}");
    assert!(stdout.contains("status: rejected"), "{stdout}");
    assert!(
        stderr.contains(&format!("{run_id} was rejected at the ideate gate: too tame")),
        "{stderr}"
    );

    // Giving up after --timeout.
    let waiting = system
        .start_run(json!({"project": "aismr", "input": {"object": "glass"}}))
        .await;
    system.wait_status(&waiting, "awaiting_ideate", QUICK).await;
    let timed_out = failed(&mw(&system, &["runs", "watch", &waiting, "--timeout", "1"]).await, 1);
    assert!(
        timed_out.contains(&format!("timed out after 1s: {waiting} is still awaiting_ideate")),
        "{timed_out}"
    );
    let cancelled = ok(&mw(&system, &["runs", "cancel", &waiting]).await);
    assert!(cancelled.contains("cancelled"));
    let ended = failed(&mw(&system, &["runs", "watch", &waiting]).await, 1);
    assert!(ended.contains(&format!("{waiting} was cancelled")), "{ended}");
    system.stop_idle().await;
}

/// The acceptance check: `mw demo aismr --auto-approve` shows the run from
/// start to publish URL.
async fn demo_auto_approve_shows_the_run_from_start_to_publish_url(db: &Db) {
    let system = start(db, &[]).await;
    let started = Instant::now();
    let stdout = ok(&mw(&system, &["demo", "aismr", "--auto-approve", "--timeout", "120"]).await);
    eprintln!("mw demo aismr --auto-approve took {:?}", started.elapsed());
    let run_id = run_id_in(&stdout);
    let run = system.run(&run_id).await;
    assert_eq!(run["status"], "published");
    assert_eq!(run["payload"]["input"], json!({"object": "candles"}));
    let result = &run["result"];
    let render = result["renderUrl"].as_str().unwrap();
    let publish = result["publishUrls"][0].as_str().unwrap();
    // In order: Iggy, the ideate gate and its link, twelve clips, the
    // render, the prepublish gate and its link, the publish URL.
    let steps = [
        "iggy: started".to_string(),
        "iggy: finished".to_string(),
        "gate ideate: waiting for a decision".to_string(),
        format!("approve: {}/v1/hitl/approve/{run_id}/ideate?token=", system.api),
        "gate ideate: approved (--auto-approve)".to_string(),
        "riley: started".to_string(),
        "clip 1/12 completed".to_string(),
        "clip 12/12 completed".to_string(),
        format!("render: {render}"),
        "gate prepublish: waiting for a decision".to_string(),
        format!("approve: {}/v1/hitl/approve/{run_id}/prepublish?token=", system.api),
        "gate prepublish: approved (--auto-approve)".to_string(),
        "quinn: started".to_string(),
        format!("publish: {publish}"),
        "status: published".to_string(),
        format!("{run_id} published after"),
        format!("  publish: {publish}"),
    ];
    let mut at = 0;
    for step in &steps {
        let found = line_of(&stdout, step);
        assert!(found >= at, "{step:?} out of order in:\n{stdout}");
        at = found;
    }
    for clip in 1..=12 {
        assert!(stdout.contains(&format!("clip {clip}/12 completed")), "{stdout}");
    }
    assert!(
        run["gates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["status"] == "approved"
                && g["approver"] == json!(admin_key())
                && g["note"] == "mw demo --auto-approve"),
        "{}",
        run["gates"]
    );

    // --json: every line is an API answer; the first the start, the last the published run.
    let lines = ok(&mw(&system, &["demo", "test_video_gen", "--json"]).await);
    let answers: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(answers[0]["status"], "pending");
    assert_eq!(answers.last().unwrap()["status"], "published");
    system.stop_idle().await;
}

async fn demo_without_auto_approve_waits_for_a_person_at_each_gate(db: &Db) {
    let system = start(db, &[]).await;
    let mut demo = Streaming::spawn(&system.api, &["demo", "aismr", "--object", "soap"]);
    let started = demo.until(&["started"]).await;
    let run_id = run_id_in(&started);
    let link = demo
        .until(&["approve: ", &format!("/v1/hitl/approve/{run_id}/ideate?token=")])
        .await;
    demo.until(&[&format!("mw hitl approve {run_id} ideate"), "waiting"])
        .await;
    // It waits: nothing moves until someone decides.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(demo.is_running());
    assert_eq!(system.run(&run_id).await["status"], "awaiting_ideate");

    // A person opens the printed link and approves on its page.
    let token = link.split("token=").nth(1).unwrap().trim();
    let response = system
        .http
        .post(format!("{}/v1/hitl/approve/{run_id}/ideate", system.api))
        .form(&[("token", token), ("approver", "a person")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    demo.until(&["gate ideate: approved by token:", "(\"a person\")"]).await;
    demo.until(&["clip 12/12 completed"]).await;
    demo.until(&[&format!("/v1/hitl/approve/{run_id}/prepublish?token=")])
        .await;
    assert!(demo.is_running());
    let (status, _) = system
        .post(
            &format!("{}/v1/hitl/approve/{run_id}/prepublish", system.api),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, stdout, stderr) = demo.finish().await;
    assert!(status.success(), "{stdout}\n{stderr}");
    let run = system.run(&run_id).await;
    let publish = run["result"]["publishUrls"][0].as_str().unwrap();
    assert!(stdout.contains(&format!("publish: {publish}")), "{stdout}");
    system.stop_idle().await;
}

fn old_delivery(key: &str, run_id: &str) -> WebhookDelivery {
    WebhookDelivery {
        provider: "kieai".into(),
        idempotency_key: Some(key.into()),
        run_id: Some(run_id.into()),
        headers: json!({}),
        body: "{}".into(),
        body_size: 2,
        body_sha256: String::new(),
        signature_status: "verified".into(),
        outcome: "accepted".into(),
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
                channel: "webhook".into(),
                target: "http://127.0.0.1:9/hook".into(),
            }],
        })
        .await
        .unwrap();
    let push = store.list_chat_deliveries(10).await.unwrap()[0].id;
    store.finish_chat_delivery(push, &PushOutcome::Delivered).await.unwrap();
    // And a live run of today, waiting at a gate.
    let live = system
        .start_run(json!({"project": "aismr", "input": {"object": "candles"}}))
        .await;
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
    let response = system
        .http
        .post(&url)
        .json(&json!({"olderThanDays": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "the API key is required");
    system.stop_idle().await;
}

conformance_tests!(
    runs_start_list_show_and_cancel,
    hitl_pending_link_approve_and_reject,
    watch_exits_0_when_published_and_1_when_rejected,
    demo_auto_approve_shows_the_run_from_start_to_publish_url,
    demo_without_auto_approve_waits_for_a_person_at_each_gate,
    retention_prune_dry_run_then_real,
);

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn bad_usage_exits_2_and_an_unreachable_api_exits_1_with_the_hint() {
    let nowhere = format!("http://127.0.0.1:{}", closed_port());
    let bad_usage: [&[&str]; 9] = [
        &["runs"],
        &["runs", "start", "aismr"],
        &["runs", "list", "--limit", "0"],
        &["runs", "watch"],
        &["runs", "frobnicate"],
        &["hitl", "approve", "run_000000000000", "publish"],
        &["hitl", "reject", "run_000000000000", "ideate"],
        &["retention", "prune", "--older-than-days", "0"],
        &["demo", "aismr", "--timeout", "soon"],
    ];
    for args in bad_usage {
        let output = mw_command(&nowhere, API_KEY, args).output().unwrap();
        let stderr = failed(&output, 2);
        assert!(
            stderr.contains("Usage: mw") || stderr.contains("try '--help'"),
            "{args:?}: {stderr}"
        );
    }
    let unreachable: [&[&str]; 8] = [
        &["runs", "list"],
        &["runs", "show", "run_000000000000"],
        &["runs", "start", "aismr", "--object", "candles"],
        &["runs", "watch", "run_000000000000"],
        &["hitl", "pending"],
        &["hitl", "approve", "run_000000000000", "ideate"],
        &["demo", "aismr", "--auto-approve"],
        &["retention", "prune", "--dry-run"],
    ];
    for args in unreachable {
        let output = mw_command(&nowhere, API_KEY, args).output().unwrap();
        let stderr = failed(&output, 1);
        assert!(
            stderr.contains(&format!("cannot reach the API at {nowhere}"))
                && stderr.contains("start it with `mw dev` or set MW_API_URL"),
            "{args:?}: {stderr}"
        );
    }
    let output = mw_command(&nowhere, API_KEY, &["runs", "list"])
        .env_remove("API_KEY")
        .output()
        .unwrap();
    assert!(failed(&output, 1).contains("no API key: set API_KEY"));
}

/// A scratch folder removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The acceptance check exactly as stated: `mw demo aismr --auto-approve`
/// against `mw dev` (a real process, SQLite in a folder of its own).
#[test]
fn demo_auto_approve_against_mw_dev() {
    let dir = Scratch(std::env::temp_dir().join(format!("mw-operator-dev-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let (api, orchestrator) = (closed_port(), closed_port());
    let api_url = format!("http://127.0.0.1:{api}");
    let projects = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../projects");
    let _dev = Running(
        Command::new(env!("CARGO_BIN_EXE_mw"))
            .arg("dev")
            .current_dir(&dir.0)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PROJECTS_DIR", projects)
            .env("DATABASE_URL", format!("sqlite://{}/mw.db", dir.0.display()))
            .env("API_KEY", API_KEY)
            .env("BIND_HOST", "127.0.0.1")
            .env("API_PORT", api.to_string())
            .env("ORCHESTRATOR_PORT", orchestrator.to_string())
            .env("ORCHESTRATOR_URL", format!("http://127.0.0.1:{orchestrator}"))
            .env("API_URL", &api_url)
            .env("PUBLIC_BASE_URL", &api_url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    for port in [api, orchestrator] {
        while reqwest::blocking::get(format!("http://127.0.0.1:{port}/health")).is_err() {
            assert!(Instant::now() < deadline, "mw dev did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let output = mw_command(
        &api_url,
        API_KEY,
        &["demo", "aismr", "--auto-approve", "--timeout", "120"],
    )
    .output()
    .unwrap();
    let stdout = ok(&output);
    let run_id = run_id_in(&stdout);
    for needle in [
        format!("/v1/hitl/approve/{run_id}/ideate?token="),
        "clip 12/12 completed".to_string(),
        "render: https://".to_string(),
        format!("/v1/hitl/approve/{run_id}/prepublish?token="),
        "publish: https://".to_string(),
        format!("{run_id} published after"),
    ] {
        assert!(stdout.contains(&needle), "{needle:?} in:\n{stdout}");
    }
}

/// How gates decided with the test's API key name their approver.
fn admin_key() -> String {
    format!("key:key-{}", myloware_core::auth::ApiKeys::fingerprint(API_KEY))
}
