//! `mw costs`.

use super::*;

async fn costs_of_a_published_mock_run_as_text_and_json(db: &Db) {
    let system = start(db, &[]).await;
    let run_id = system
        .start_run(json!({"project": "test_video_gen", "input": {"prompt": "costs"}}))
        .await;
    system.wait_status(&run_id, "published", QUICK).await;
    let today = now().date_naive().to_string();

    let stdout = ok(&mw(&system, &["costs"]).await);
    let header = line_of(&stdout, "kieai");
    assert!(stdout.contains("in USD"), "{stdout}");
    let row = stdout.lines().nth(header + 1).unwrap();
    // Two clips, 16 s rendered and a publish: 0.8 + 0.08 + 0.6.
    for column in [
        &today,
        "test_video_gen",
        "mock",
        "0.800000",
        "0.080000",
        "0.600000",
        "0.000000",
        "1.480000",
    ] {
        assert!(row.contains(column), "{column:?} not in {row:?}:\n{stdout}");
    }
    assert!(
        stdout.contains("total 1.480000: live 0.000000 (paid), mock 1.480000"),
        "{stdout}"
    );

    let report = json_of(
        &mw(
            &system,
            &["costs", "--json", "--from", &today, "--project", "test_video_gen"],
        )
        .await,
    );
    assert_eq!(report["from"], today);
    assert_eq!(report["totalUsd"], 1.48);
    assert_eq!(report["days"][0]["byProvider"]["upload_post"], 0.6);

    let other = ok(&mw(&system, &["costs", "--project", "aismr"]).await);
    assert!(other.starts_with("no costs from "), "{other}");

    // Days the API would read otherwise than asked are refused here.
    for args in [
        &["costs", "--from", "2026-02-01", "--to", "2026-01-01"][..],
        &["costs", "--from", "2024-01-01", "--to", "2026-01-01"],
        &["costs", "--from", "2026-02-30"],
    ] {
        let stderr = failed(&mw(&system, args).await, 2);
        assert!(!stderr.is_empty(), "{args:?}");
    }
    system.stop_idle().await;
}

conformance_tests!(costs_of_a_published_mock_run_as_text_and_json);
