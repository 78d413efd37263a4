//! `mw audit`.

use super::*;

const VIEWER: &str = "operator-test-viewer-key";

async fn audit_answers_who_decided_cancelled_and_was_refused(db: &Db) {
    let system = start(db, &[("API_KEYS", &format!("vic:viewer:{VIEWER}"))]).await;
    let run_id = system.aismr_at_ideate("u-audit").await;
    ok(&mw(&system, &["hitl", "approve", &run_id, "ideate"]).await);
    system.wait_status(&run_id, "awaiting_prepublish", QUICK).await;
    ok(&mw(&system, &["runs", "cancel", &run_id, "--reason", "enough"]).await);
    // Refused: rejecting a gate that was approved.
    failed(
        &mw(&system, &["hitl", "reject", &run_id, "ideate", "--reason", "late"]).await,
        1,
    );

    // "Who approved run X?": the table, newest first.
    let admin = admin_key();
    let table = ok(&mw(&system, &["audit", "--run", &run_id]).await);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("at ") && lines[0].ends_with("outcome"), "{table}");
    assert_eq!(lines.len(), 4, "{table}");
    for (line, needles) in lines[1..].iter().zip([
        vec![
            admin.as_str(),
            "reject",
            "ideate",
            "127.0.0.1",
            "refused: the ideate gate was already approved",
            "reason=\"late\"",
        ],
        vec![
            admin.as_str(),
            "cancel",
            "cancelled",
            "reason=\"enough\"",
            "note=\"cli:operator\"",
        ],
        vec![
            admin.as_str(),
            "approve",
            "ideate",
            " approved",
            "note=\"cli:operator\"",
        ],
    ]) {
        assert!(line.contains(&run_id), "{line}");
        for needle in needles {
            assert!(line.contains(needle), "{needle:?} not in {line:?}:\n{table}");
        }
    }

    // JSON, by actor, a page at a time.
    let page = json_of(&mw(&system, &["audit", "--actor", &admin, "--limit", "2", "--json"]).await);
    assert_eq!(page["entries"].as_array().unwrap().len(), 2, "{page}");
    assert_eq!(page["entries"][0]["action"], "reject");
    assert_eq!(page["entries"][0]["accepted"], false);
    let cursor = page["nextCursor"].as_str().expect("a next page").to_string();
    let text_page = ok(&mw(&system, &["audit", "--actor", &admin, "--limit", "2"]).await);
    assert!(
        text_page.contains(&format!("more: mw audit --limit 2 --actor {admin} --cursor {cursor}")),
        "{text_page}"
    );
    let next = json_of(
        &mw(
            &system,
            &[
                "audit", "--actor", &admin, "--limit", "2", "--cursor", &cursor, "--json",
            ],
        )
        .await,
    );
    assert_eq!(next["entries"][0]["action"], "approve", "{next}");
    assert_eq!(next["entries"][0]["outcome"], "approved");

    // Since: how long ago, or a time.
    let recent = ok(&mw(&system, &["audit", "--since", "1h"]).await);
    assert!(recent.contains(&run_id), "{recent}");
    let none = ok(&mw(&system, &["audit", "--since", "2099-01-01T00:00:00Z"]).await);
    assert_eq!(none.trim(), "no audit entries");

    // Refusals: bad usage, an unknown run, a key that may not read the audit.
    failed(&mw(&system, &["audit", "--since", "yesterday"]).await, 2);
    failed(&mw(&system, &["audit", "--limit", "500"]).await, 2);
    let unknown = failed(&mw(&system, &["audit", "--run", "run_unknown000000"]).await, 1);
    assert!(
        unknown.contains("no run run_unknown000000; `mw runs list` shows the runs"),
        "{unknown}"
    );
    let viewer = output_of(mw_command(&system.api, VIEWER, &["audit"])).await;
    let refused = failed(&viewer, 1);
    assert!(refused.contains("403") && refused.contains("viewer"), "{refused}");
    system.stop_idle().await;
}

conformance_tests!(audit_answers_who_decided_cancelled_and_was_refused);
