//! Fault injection with real processes: an orchestrator that dies like
//! `kill -9` at chosen points (and at random moments), then a new one that
//! continues; two orchestrators sharing one Postgres. After each, every run
//! is published, the mocks saw exactly one submission per clip, one render
//! and one publish, and each of those calls' cost was recorded once.

use std::process::Command;
use std::time::Duration;

use myloware_testkit::cluster::{Cluster, SIGABRT, SIGKILL, smoke};
use myloware_testkit::fakes::{Calls, Providers};
use myloware_testkit::{TestDb, conformance_tests};

const MW: &str = env!("CARGO_BIN_EXE_mw-system");

/// The API of a cluster with `orchestrators` orchestrators to come, on `db`.
async fn api_only(db: &TestDb, orchestrators: usize, extra: Vec<(String, String)>) -> Cluster {
    let mut cluster = Cluster::new(MW, db.url(), orchestrators).await;
    cluster.extra = extra;
    cluster.start_api().await;
    cluster
}

/// The orchestrator dies at `point` (SIGABRT); a new one continues until
/// `ids` are published.
async fn crash_at(cluster: &mut Cluster, point: &str, ids: &[String]) {
    let mut doomed = cluster.spawn_orchestrator(0, Some(point));
    let signal = doomed.wait_signal(Duration::from_secs(30)).await;
    assert_eq!(signal, Some(SIGABRT), "did not crash at {point}; {}", cluster.logs());
    let _survivor = cluster.spawn_orchestrator(0, None);
    cluster.wait_all(ids, "published", Duration::from_secs(60)).await;
}

/// Each crash point in turn: the orchestrator dies there, a new one continues.
async fn orchestrator_crashes_at_every_point_lose_and_repeat_nothing(db: &TestDb) {
    let points = [
        "riley.after_submit:2",
        "step.before_commit:4",
        "step.after_commit:6",
        "alex.after_render",
        "quinn.after_publish",
        "outbox.after_send:3",
    ];
    let mut cluster = api_only(db, 1, Vec::new()).await;
    for point in points {
        let ids = cluster.start_runs(3, smoke).await;
        crash_at(&mut cluster, point, &ids).await;
        cluster.assert_paid_once(db, &ids, Some(2)).await;
    }
}

/// SIGKILL at random moments while runs are in flight, several times.
async fn random_kills_lose_and_repeat_nothing(db: &TestDb) {
    let mut cluster = api_only(db, 1, Vec::new()).await;
    let ids = cluster.start_runs(12, smoke).await;
    let seed = myloware_testkit::seed();
    let mut random = myloware_testkit::Lcg(seed);
    for round in 0..4 {
        let mut orchestrator = cluster.spawn_orchestrator(0, None);
        let alive = Duration::from_millis(150 + random.below(900));
        tokio::time::sleep(alive).await;
        let pid = orchestrator.pid().to_string();
        assert!(
            Command::new("kill").args(["-KILL", &pid]).status().unwrap().success(),
            "seed {seed}: round {round}"
        );
        assert_eq!(orchestrator.wait_signal(Duration::from_secs(5)).await, Some(SIGKILL));
    }
    let _survivor = cluster.spawn_orchestrator(0, None);
    cluster.wait_all(&ids, "published", Duration::from_secs(90)).await;
    cluster.assert_paid_once(db, &ids, Some(2)).await;
}

conformance_tests!(
    multi_thread: orchestrator_crashes_at_every_point_lose_and_repeat_nothing,
    random_kills_lose_and_repeat_nothing,
    live_mode_crashes_pay_nothing_twice,
);

/// Two orchestrators on one Postgres (under `CI`, a missing
/// `TEST_DATABASE_URL` fails this test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_orchestrators_on_postgres_complete_fifty_runs_exactly_once() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let mut cluster = api_only(&db, 2, Vec::new()).await;
    let _first = cluster.spawn_orchestrator(0, None);
    let _second = cluster.spawn_orchestrator(1, None);
    let ids = cluster.start_runs(50, smoke).await;
    cluster.wait_all(&ids, "published", Duration::from_secs(90)).await;
    cluster.assert_paid_once(&db, &ids, Some(2)).await;
}

/// Live mode against fake providers: the orchestrator dies right after kie.ai
/// accepted a clip (before the answer was journaled), and right after
/// Upload-Post published; a new one continues. kie.ai cannot be asked by our
/// key, so the clip completes through its callback; the publish is found by
/// our request id. Exactly one submission per clip and one publish per run.
async fn live_mode_crashes_pay_nothing_twice(db: &TestDb) {
    let calls = Calls::default();
    let providers = Providers::start(&calls).await;
    let mut extra = providers.owned_vars();
    extra.extend(
        [
            ("CLIP_POLL_AFTER_SECS", "2"),
            // One worker, so the crash interrupts exactly the call at the crash
            // point. With several, another worker may be killed between
            // journaling a kie.ai submission and sending it: kie.ai cannot be
            // asked about it, so that clip is (by design) never sent again and
            // its run fails after CLIP_TIMEOUT_SECS saying why.
            ("ORCHESTRATOR_WORKERS", "1"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let mut cluster = api_only(db, 1, extra).await;
    let mut all = Vec::new();
    for point in ["riley.after_submit:2", "quinn.after_publish"] {
        let ids = cluster.start_runs(2, smoke).await;
        crash_at(&mut cluster, point, &ids).await;
        all.extend(ids);
    }
    for id in &all {
        for clip in 0..2 {
            assert_eq!(
                calls.clip_submissions(id, clip),
                1,
                "submissions of clip {clip} of {id}"
            );
        }
        assert_eq!(calls.publishes(id), 1, "publishes of {id}");
    }
    assert_eq!(calls.count("shotstack.render"), all.len(), "one render per run");
    // A clip whose answer died with the orchestrator is costed once too,
    // when its callback names the task.
    cluster.assert_costed_once(db, &all, Some(2)).await;
}
