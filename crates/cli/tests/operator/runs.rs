//! `mw runs` and `mw hitl`.

use super::*;

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
    let artifact = system::artifacts_of(&run, "run.cancelled").next().unwrap();
    assert_eq!(artifact["data"]["reason"], "not this week");
    let again = failed(&mw(&system, &["runs", "cancel", &held, "--json"]).await, 1);
    assert!(
        again.contains(&format!("cannot cancel {held}: run is already cancelled")),
        "{again}"
    );
    // Only a failed run can be retried.
    let retry = failed(&mw(&system, &["runs", "retry", &held]).await, 1);
    assert!(
        retry.contains(&format!(
            "cannot retry {held}: run is cancelled; only a failed run can be retried"
        )),
        "{retry}"
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
    let approved = system.start_run(system::aismr("candles")).await;
    let rejected = system.start_run(system::aismr("soap")).await;
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

    let revised = ok(&mw(
        &system,
        &["hitl", "revise", &approved, "prepublish", "--feedback", "redo clip 2"],
    )
    .await);
    assert_eq!(
        revised.trim(),
        format!("changes requested: {approved} prepublish; the gate waits again once they are made")
    );
    let empty = failed(
        &mw(&system, &["hitl", "revise", &approved, "prepublish", "--feedback", " "]).await,
        1,
    );
    assert!(empty.contains("feedback"), "{empty}");
    system
        .wait_for(&approved, QUICK, "the prepublish gate to wait again", |run| {
            run["gates"][1]["status"] == "awaiting" && run["gates"][1]["revisions"] == 1
        })
        .await;
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
    let run_id = system.start_run(system::aismr("soap")).await;
    let mut watch = Streaming::spawn(&system.api, &["runs", "watch", &run_id]);
    watch
        .until(&["approve: ", &format!("/v1/hitl/approve/{run_id}/ideate?token=")])
        .await;
    watch.until(&[&format!("mw hitl approve {run_id} ideate")]).await;
    assert!(watch.is_running(), "watch waits at the gate");
    system.reject(&run_id, "ideate", "too tame").await;
    let (status, stdout, stderr) = watch.finish().await;
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("gate ideate: rejected"), "{stdout}");
    assert!(stdout.contains("status: rejected"), "{stdout}");
    assert!(
        stderr.contains(&format!("{run_id} was rejected at the ideate gate: too tame")),
        "{stderr}"
    );

    // Giving up after --timeout.
    let waiting = system.start_run(system::aismr("glass")).await;
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

conformance_tests!(
    runs_start_list_show_and_cancel,
    hitl_pending_link_approve_and_reject,
    watch_exits_0_when_published_and_1_when_rejected,
);
