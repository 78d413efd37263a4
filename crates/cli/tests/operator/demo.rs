//! `mw demo`.

use super::*;
use myloware_testkit::JsonAnswer;

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
        .sent()
        .await;
    assert_eq!(response.status(), 200);
    demo.until(&["gate ideate: approved by token:", "(\"a person\")"]).await;
    demo.until(&["clip 12/12 completed"]).await;
    demo.until(&[&format!("/v1/hitl/approve/{run_id}/prepublish?token=")])
        .await;
    assert!(demo.is_running());
    system.approve(&run_id, "prepublish").await;
    let (status, stdout, stderr) = demo.finish().await;
    assert!(status.success(), "{stdout}\n{stderr}");
    let run = system.run(&run_id).await;
    let publish = run["result"]["publishUrls"][0].as_str().unwrap();
    assert!(stdout.contains(&format!("publish: {publish}")), "{stdout}");
    system.stop_idle().await;
}

conformance_tests!(
    demo_auto_approve_shows_the_run_from_start_to_publish_url,
    demo_without_auto_approve_waits_for_a_person_at_each_gate,
);
