//! The API store's conformance suite: every test runs on SQLite and, when
//! `TEST_DATABASE_URL` is set, on Postgres, each in a fresh database.

use chrono::Duration;
use myloware_api::store::{self, Artifact, NewRun, RunQuery, StartAttempt, StoreError, now};
use myloware_core::RunStatus;
use myloware_core::ids::new_run_id;
use myloware_db::{Db, conformance_tests};
use serde_json::json;

fn new_run(project: &str, status: RunStatus) -> NewRun {
    NewRun {
        id: new_run_id(),
        project: project.into(),
        status,
        user_id: Some("u1".into()),
        payload: json!({"project": project, "input": {"topic": "candles"}, "graph_spec": {"pipeline": ["iggy"], "hitl_gates": []}}),
        result: json!({"videos": [], "totalVideos": 2, "publishUrls": []}),
        created_at: now(),
    }
}

async fn a_run_reads_back_as_written(db: &Db) {
    let store = store::open(db);
    let new = new_run("aismr", RunStatus::Pending);
    let inserted = store.insert_run(&new).await.unwrap();
    let read = store
        .get_run(&new.id)
        .await
        .unwrap()
        .expect("the run exists");
    assert_eq!(read, inserted);
    assert_eq!(read.id, new.id);
    assert_eq!(read.status, RunStatus::Pending);
    assert_eq!(read.payload, new.payload);
    assert_eq!(read.result, new.result);
    assert_eq!(read.user_id.as_deref(), Some("u1"));
    assert_eq!(read.created_at, new.created_at);
    assert_eq!(read.updated_at, new.created_at);
    assert_eq!(read.start.attempts, 0);
    assert!(read.start.acked_at.is_none());
    assert!(store.get_run("run_doesnotexist").await.unwrap().is_none());
}

async fn a_duplicate_run_id_is_refused(db: &Db) {
    let store = store::open(db);
    let new = new_run("aismr", RunStatus::Pending);
    store.insert_run(&new).await.unwrap();
    let err = store.insert_run(&new).await.unwrap_err();
    assert!(matches!(err, StoreError::DuplicateRun(id) if id == new.id));
}

async fn runs_list_newest_first_with_filters_and_cursor(db: &Db) {
    let store = store::open(db);
    let mut ids = Vec::new();
    for i in 0..5 {
        let project = if i % 2 == 0 {
            "aismr"
        } else {
            "test_video_gen"
        };
        ids.push(
            store
                .insert_run(&new_run(project, RunStatus::Pending))
                .await
                .unwrap()
                .id,
        );
    }
    let all = store
        .list_runs(&RunQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let listed: Vec<_> = all.iter().map(|r| r.id.clone()).collect();
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(listed, expected);

    let first = store
        .list_runs(&RunQuery {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    let rest = store
        .list_runs(&RunQuery {
            limit: 10,
            before: Some(first[1].seq),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(first.len() + rest.len(), 5);
    assert_eq!(rest[0].id, ids[2]);

    let aismr = store
        .list_runs(&RunQuery {
            project: Some("aismr".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(aismr.len(), 3);
    assert!(aismr.iter().all(|r| r.project == "aismr"));

    store
        .transition(&ids[0], RunStatus::Pending, RunStatus::Cancelled, None)
        .await
        .unwrap();
    let cancelled = store
        .list_runs(&RunQuery {
            status: Some(RunStatus::Cancelled),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        cancelled.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [ids[0].as_str()]
    );
}

async fn a_transition_applies_only_from_the_expected_status(db: &Db) {
    let store = store::open(db);
    let run = store
        .insert_run(&new_run("aismr", RunStatus::Pending))
        .await
        .unwrap();
    let artifact = Artifact::new(&run.id, "run.cancelled", None, json!({"reason": "test"}));
    assert!(
        !store
            .transition(
                &run.id,
                RunStatus::Running,
                RunStatus::Cancelled,
                Some(&artifact)
            )
            .await
            .unwrap()
    );
    assert!(
        store.list_artifacts(&run.id).await.unwrap().is_empty(),
        "a refused transition records nothing"
    );

    assert!(
        store
            .transition(
                &run.id,
                RunStatus::Pending,
                RunStatus::Cancelled,
                Some(&artifact)
            )
            .await
            .unwrap()
    );
    let read = store.get_run(&run.id).await.unwrap().unwrap();
    assert_eq!(read.status, RunStatus::Cancelled);
    assert!(read.updated_at >= run.updated_at);
    assert_eq!(store.list_artifacts(&run.id).await.unwrap(), [artifact]);
}

async fn concurrent_transitions_from_one_status_apply_once(db: &Db) {
    let store = store::open(db);
    let run = store
        .insert_run(&new_run("aismr", RunStatus::Pending))
        .await
        .unwrap();
    let attempts = (0..8).map(|i| {
        let store = store.clone();
        let id = run.id.clone();
        let to = if i % 2 == 0 {
            RunStatus::Cancelled
        } else {
            RunStatus::Running
        };
        tokio::spawn(async move {
            store
                .transition(&id, RunStatus::Pending, to, None)
                .await
                .unwrap()
        })
    });
    let mut moved = 0;
    for attempt in attempts {
        moved += usize::from(attempt.await.unwrap());
    }
    assert_eq!(moved, 1);
}

async fn artifacts_list_in_creation_order(db: &Db) {
    let store = store::open(db);
    let run = store
        .insert_run(&new_run("aismr", RunStatus::Pending))
        .await
        .unwrap();
    let other = store
        .insert_run(&new_run("aismr", RunStatus::Pending))
        .await
        .unwrap();
    let mut written = Vec::new();
    for kind in ["persona.output", "kieai.job", "kieai.clip", "render.url"] {
        let artifact = Artifact::new(&run.id, kind, Some("riley"), json!({"kind": kind}));
        store.insert_artifact(&artifact).await.unwrap();
        written.push(artifact);
    }
    store
        .insert_artifact(&Artifact::new(&other.id, "publish.url", None, json!({})))
        .await
        .unwrap();
    assert_eq!(store.list_artifacts(&run.id).await.unwrap(), written);
}

async fn unacknowledged_starts_come_due_until_acknowledged(db: &Db) {
    let store = store::open(db);
    let run = store
        .insert_run(&new_run("aismr", RunStatus::Pending))
        .await
        .unwrap();
    let held = store
        .insert_run(&new_run("aismr", RunStatus::PendingWorkflow))
        .await
        .unwrap();
    let due = store.starts_due(now(), 10).await.unwrap();
    assert_eq!(
        due.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [run.id.as_str()],
        "{held:?} waits for its gate"
    );

    let retry_at = now() + Duration::seconds(60);
    store
        .record_start_attempt(
            &run.id,
            &StartAttempt::Failed {
                error: "orchestrator unreachable".into(),
                retry_at,
            },
        )
        .await
        .unwrap();
    assert!(store.starts_due(now(), 10).await.unwrap().is_empty());
    let due_later = store
        .starts_due(retry_at + Duration::seconds(1), 10)
        .await
        .unwrap();
    assert_eq!(due_later.len(), 1);
    assert_eq!(due_later[0].start.attempts, 1);
    assert_eq!(
        due_later[0].start.last_error.as_deref(),
        Some("orchestrator unreachable")
    );

    store
        .record_start_attempt(&run.id, &StartAttempt::Acked)
        .await
        .unwrap();
    let read = store.get_run(&run.id).await.unwrap().unwrap();
    assert!(read.start.acked_at.is_some());
    assert_eq!(read.start.attempts, 2);
    assert!(
        store
            .starts_due(retry_at + Duration::days(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn ping_answers(db: &Db) {
    store::open(db).ping().await.unwrap();
}

conformance_tests!(
    a_run_reads_back_as_written,
    a_duplicate_run_id_is_refused,
    runs_list_newest_first_with_filters_and_cursor,
    a_transition_applies_only_from_the_expected_status,
    concurrent_transitions_from_one_status_apply_once,
    artifacts_list_in_creation_order,
    unacknowledged_starts_come_due_until_acknowledged,
    ping_answers,
);
