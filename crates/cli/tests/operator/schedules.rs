//! `mw schedules`.

use super::*;

async fn schedules_create_fire_pause_resume_and_delete(db: &Db) {
    let system = start(db, &[("SCHEDULE_TICK_MS", "50")]).await;
    let args = [
        "schedules",
        "create",
        "test_video_gen",
        "--cron",
        "* * * * * *",
        "--timezone",
        "Europe/Paris",
        "--topic",
        "every second",
        "--user",
        "u-sched",
    ];
    let created = ok(&mw(&system, &args).await);
    let id = id_in(&created, "sch_");
    assert!(
        created.contains("* * * * * * (Europe/Paris), first firing"),
        "{created}"
    );
    assert!(created.contains(&format!("mw schedules show {id}")), "{created}");
    // It fires: a run of the schedule's input and user.
    let store = &system.api_state.store;
    let run_id = myloware_testkit::wait_until(QUICK, Duration::from_millis(50), "a firing", || async {
        let firings = store.list_firings(&id, 10).await.unwrap();
        firings
            .last()
            .and_then(|f| f.run_id.clone())
            .ok_or("none yet".to_string())
    })
    .await;
    let paused = ok(&mw(&system, &["schedules", "pause", &id]).await);
    assert_eq!(paused.trim(), format!("{id} paused"));
    let run = system.run(&run_id).await;
    assert_eq!(run["payload"]["input"], json!({"topic": "every second"}));
    assert_eq!(run["payload"]["user_id"], "u-sched");
    assert_eq!(run["payload"]["metadata"]["schedule"]["id"], id.as_str());

    let shown = ok(&mw(&system, &["schedules", "show", &id]).await);
    assert!(shown.starts_with(&format!("{id}  test_video_gen  paused")), "{shown}");
    assert!(shown.contains("when:     * * * * * * (Europe/Paris)"), "{shown}");
    assert!(shown.contains(&format!("started {run_id}")), "{shown}");
    let list = ok(&mw(&system, &["schedules", "list"]).await);
    assert!(list.lines().next().unwrap().starts_with("schedule "), "{list}");
    assert!(list.contains(&id) && list.contains("paused"), "{list}");
    let resumed = ok(&mw(&system, &["schedules", "resume", &id]).await);
    assert!(resumed.starts_with(&format!("{id} active; next firing ")), "{resumed}");
    ok(&mw(&system, &["schedules", "pause", &id]).await);

    // Inputs taken in turn, in JSON for scripts.
    let rotating = json_of(
        &mw(
            &system,
            &[
                "schedules",
                "create",
                "aismr",
                "--cron",
                "0 9 * * 1-5",
                "--input",
                r#"{"object": "soap"}"#,
                "--input",
                r#"{"object": "sand"}"#,
                "--json",
            ],
        )
        .await,
    );
    assert_eq!(rotating["inputs"], json!([{"object": "soap"}, {"object": "sand"}]));
    assert_eq!(rotating["timezone"], "UTC", "the default time zone");
    let listed = json_of(&mw(&system, &["schedules", "list", "--status", "active", "--json"]).await);
    assert_eq!(listed["schedules"].as_array().unwrap().len(), 1);
    assert_eq!(listed["schedules"][0]["id"], rotating["id"]);

    // Refusals say what is wrong, and exit 1; bad usage exits 2.
    let bad = failed(
        &mw(
            &system,
            &["schedules", "create", "aismr", "--cron", "every day", "--object", "x"],
        )
        .await,
        1,
    );
    assert!(bad.contains("cron:"), "{bad}");
    failed(
        &mw(&system, &["schedules", "create", "aismr", "--cron", "* * * * *"]).await,
        2,
    );

    let deleted = ok(&mw(&system, &["schedules", "delete", &id]).await);
    assert!(deleted.contains(&format!("{id} deleted")), "{deleted}");
    let gone = failed(&mw(&system, &["schedules", "delete", &id]).await, 1);
    assert!(gone.contains(&format!("no schedule {id}")), "{gone}");
    let gone = failed(&mw(&system, &["schedules", "show", &id]).await, 1);
    assert!(gone.contains("mw schedules list"), "{gone}");
    assert!(system.api_state.store.get_schedule(&id).await.unwrap().is_none());
    system.stop_idle().await;
}

conformance_tests!(multi_thread: schedules_create_fire_pause_resume_and_delete);
