//! The API store's conformance suite: every test runs on SQLite and, when
//! `TEST_DATABASE_URL` is set, on Postgres, each in a fresh database.

use chrono::Duration;
use myloware_api::store::{
    self, ApiStore, AppliedEvent, Artifact, CallbackRecorded, Channel, ChatMessage, CommandKind, Decided, Decision,
    DeliveryAttempt, GateStatus, NewCommand, NewGate, NewRun, Pruned, Push, PushOutcome, RawJson, RunDetails,
    RunEvents, RunQuery, RunUpdate, SignatureStatus, StoreError, WebhookDelivery, WebhookOutcome, now,
};
use myloware_core::ids::new_run_id;
use myloware_core::project::ProjectSpec;
use myloware_core::wire::{
    CancelExecution, Decision as GateDecision, ExecutionCommand, GraphSpec, ResumeExecution, RetryExecution, Signal,
    SignalDelivery, StartExecution,
};
use myloware_core::{Gate, ProviderMode, RunStatus};
use myloware_db::Db;
use myloware_testkit::conformance_tests;
use serde_json::{Value, json};

fn new_run(project: &str, status: RunStatus) -> NewRun {
    NewRun {
        gate: None,
        id: new_run_id(),
        project: project.into(),
        status,
        user_id: Some("u1".into()),
        payload: json!({"project": project, "input": {"topic": "candles"}, "graph_spec": {"pipeline": ["iggy"], "hitl_gates": []}}),
        result: json!({"videos": [], "totalVideos": 2, "publishUrls": []}),
        created_at: now(),
        estimated_usd_micros: None,
        max_active: None,
        notice: None,
    }
}

async fn a_run_reads_back_as_written(db: &Db) {
    let store = store::open(db);
    let new = new_run("aismr", RunStatus::Pending);
    let inserted = store.insert_run(&new).await.unwrap();
    let read = store.get_run(&new.id).await.unwrap().expect("the run exists");
    assert_eq!(read, inserted);
    assert_eq!(read.id, new.id);
    assert_eq!(read.status, RunStatus::Pending);
    assert_eq!(read.payload, new.payload);
    assert_eq!(read.result, new.result);
    assert_eq!(read.user_id.as_deref(), Some("u1"));
    assert_eq!(read.created_at, new.created_at);
    assert_eq!(read.updated_at, new.created_at);
    assert_eq!(read.last_event_seq, 0);
    assert!(store.get_run("run_doesnotexist").await.unwrap().is_none());
}

async fn a_duplicate_run_id_is_refused(db: &Db) {
    let store = store::open(db);
    let new = new_run("aismr", RunStatus::Pending);
    store.insert_run(&new).await.unwrap();
    let err = store.insert_run(&new).await.unwrap_err();
    assert!(matches!(err, StoreError::DuplicateRun(id) if id == new.id));
}

/// A list query for at most `limit` runs, unfiltered: set the filters a
/// case needs on it.
fn page(limit: u32) -> RunQuery {
    RunQuery {
        limit,
        ..Default::default()
    }
}

async fn runs_list_newest_first_with_filters_and_cursor(db: &Db) {
    let store = store::open(db);
    let mut ids = Vec::new();
    for i in 0..5 {
        let project = if i % 2 == 0 { "aismr" } else { "test_video_gen" };
        ids.push(
            store
                .insert_run(&new_run(project, RunStatus::Pending))
                .await
                .unwrap()
                .id,
        );
    }
    let all = store.list_runs(&page(10)).await.unwrap();
    let listed: Vec<_> = all.iter().map(|r| r.id.clone()).collect();
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(listed, expected);

    let first = store.list_runs(&page(2)).await.unwrap();
    let mut after_first = page(10);
    after_first.before = Some(first[1].seq);
    let rest = store.list_runs(&after_first).await.unwrap();
    assert_eq!(first.len() + rest.len(), 5);
    assert_eq!(rest[0].id, ids[2]);

    let mut of_aismr = page(10);
    of_aismr.project = Some("aismr".into());
    let aismr = store.list_runs(&of_aismr).await.unwrap();
    assert_eq!(aismr.len(), 3);
    assert!(aismr.iter().all(|r| r.project == "aismr"));

    store
        .transition(&ids[0], RunStatus::Pending, RunStatus::Cancelled, None, None, None)
        .await
        .unwrap();
    let mut of_cancelled = page(10);
    of_cancelled.status = Some(RunStatus::Cancelled);
    let cancelled = store.list_runs(&of_cancelled).await.unwrap();
    assert_eq!(
        cancelled.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [ids[0].as_str()]
    );
}

async fn a_transition_applies_only_from_the_expected_status(db: &Db) {
    let store = store::open(db);
    let run = store.insert_run(&new_run("aismr", RunStatus::Pending)).await.unwrap();
    let artifact = Artifact::new(&run.id, "run.cancelled", None, json!({"reason": "test"}));
    assert!(
        !store
            .transition(
                &run.id,
                RunStatus::Running,
                RunStatus::Cancelled,
                Some(&artifact),
                None,
                None
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
                Some(&artifact),
                None,
                None
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
    let run = store.insert_run(&new_run("aismr", RunStatus::Pending)).await.unwrap();
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
                .transition(&id, RunStatus::Pending, to, None, None, None)
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
    let run = store.insert_run(&new_run("aismr", RunStatus::Pending)).await.unwrap();
    let other = store.insert_run(&new_run("aismr", RunStatus::Pending)).await.unwrap();
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

/// Asserts that `details` (one statement, JSON left as stored) says what
/// the three reads apart say about the run, its gates and its artifacts.
async fn assert_details_match(store: &dyn ApiStore, details: &RunDetails) {
    let parsed = |raw: &RawJson| serde_json::from_str::<Value>(raw.get()).expect("stored JSON");
    let run = store.get_run(&details.id).await.unwrap().unwrap();
    assert_eq!(
        (&details.project, details.status, &details.current_persona),
        (&run.project, run.status, &run.current_persona)
    );
    assert_eq!(
        (details.created_at, details.updated_at),
        (run.created_at, run.updated_at)
    );
    assert_eq!(
        (parsed(&details.payload), parsed(&details.result)),
        (run.payload, run.result)
    );
    assert_eq!(details.gates, store.list_gates(&run.id).await.unwrap());
    let artifacts: Vec<_> = details
        .artifacts
        .iter()
        .map(|a| {
            (
                a.id.clone(),
                a.kind.clone(),
                a.persona.clone(),
                parsed(&a.data),
                a.created_at,
            )
        })
        .collect();
    let apart: Vec<_> = store
        .list_artifacts(&run.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.id, a.kind, a.persona, a.data, a.created_at))
        .collect();
    assert_eq!(artifacts, apart);
}

/// `GET /v1/runs/{id}` reads a run, its gates and its artifacts in one
/// statement: the same as the three reads apart, in the same orders.
async fn run_details_are_the_run_its_gates_and_artifacts(db: &Db) {
    let store = store::open(db);
    let bare = store.insert_run(&new_run("aismr", RunStatus::Pending)).await.unwrap();
    let details = store.get_run_details(&bare.id).await.unwrap().expect("the run exists");
    assert_details_match(store.as_ref(), &details).await;
    assert!(details.gates.is_empty() && details.artifacts.is_empty());
    assert!(store.get_run_details("run_doesnotexist").await.unwrap().is_none());

    let mut new = new_run("aismr", RunStatus::PendingWorkflow);
    new.gate = Some(NewGate {
        run_id: new.id.clone(),
        gate: Gate::Workflow,
        preview: json!({"proposal": {"object": "candles", "quote": "it's \"lit\""}}),
    });
    let run = store.insert_run(&new).await.unwrap();
    let decided = store
        .decide(&Decision {
            run_id: run.id.clone(),
            gate: Gate::Workflow,
            verdict: GateDecision::Approve,
            required: 1,
            round: 0,
            counted_as: "key:ops".into(),
            approver: Some("key:ops".into()),
            note: Some("ops@example.com".into()),
            reason: Some("looks good".into()),
            run_move: Some((RunStatus::PendingWorkflow, RunStatus::Pending)),
            artifact: None,
            command: Some(command(&run.id, CommandKind::Start)),
        })
        .await
        .unwrap();
    assert_eq!(decided, Decided::Decided);
    let update = RunUpdate {
        gate: Some(NewGate {
            run_id: run.id.clone(),
            gate: Gate::Ideate,
            preview: json!({"ideas": ["a", "b"]}),
        }),
        ..RunUpdate::default()
    };
    for kind in ["persona.output", "kieai.clip", "render.url"] {
        store
            .insert_artifact(&Artifact::new(
                &run.id,
                kind,
                Some("riley"),
                json!({"kind": kind, "n": [1, 2.5, null]}),
            ))
            .await
            .unwrap();
    }
    let applied = AppliedEvent {
        event_id: "e-1".into(),
        run_id: run.id.clone(),
        seq: 1,
        kind: "gate.reached".into(),
        data: json!({"gate": "ideate"}),
        at: now(),
    };
    assert!(apply_one(&*store, &applied, 0, RunStatus::Pending, &update).await);

    let details = store.get_run_details(&run.id).await.unwrap().unwrap();
    assert_details_match(store.as_ref(), &details).await;
    let gates: Vec<(Gate, GateStatus, Option<bool>)> =
        details.gates.iter().map(|g| (g.gate, g.status, g.delivered)).collect();
    assert_eq!(
        gates,
        [
            (Gate::Workflow, GateStatus::Approved, Some(false)),
            (Gate::Ideate, GateStatus::Awaiting, None)
        ]
    );
    assert_eq!(details.artifacts.len(), 3);
}

fn command(run_id: &str, kind: CommandKind) -> NewCommand {
    let body = match kind {
        CommandKind::Start => {
            let spec = ProjectSpec::parse(
                std::path::Path::new("projects/aismr.toml"),
                include_str!("../../../projects/aismr.toml"),
            )
            .expect("the aismr project parses");
            ExecutionCommand::Start(Box::new(StartExecution {
                run_id: run_id.into(),
                project: spec.project.clone(),
                graph_spec: GraphSpec::for_project(&spec),
                project_spec: spec,
                providers_mode: ProviderMode::Mock,
                input: json!({"object": "candles"}),
                videos: Vec::new(),
                traceparent: None,
            }))
        }
        CommandKind::Signal => ExecutionCommand::Signal(SignalDelivery {
            signal_id: format!("kieai:task-{run_id}"),
            signal: Signal::ClipReported {
                task_id: format!("task-{run_id}"),
                index: 1,
            },
            replay_of: None,
        }),
        CommandKind::Cancel => ExecutionCommand::Cancel(CancelExecution {
            reason: Some("no longer wanted".into()),
        }),
        CommandKind::Resume => ExecutionCommand::Resume(ResumeExecution {
            gate: Gate::Ideate,
            decision: GateDecision::Reject,
            approver: Some("key:ops".into()),
            reason: None,
            round: 0,
        }),
        CommandKind::Retry => ExecutionCommand::Retry(RetryExecution {
            attempt: 1,
            by: "key:ops".into(),
        }),
    };
    NewCommand::new(run_id, body)
}

async fn commands_read_back_as_the_typed_bodies_enqueued(db: &Db) {
    let store = store::open(db);
    let run = store.insert_run(&new_run("aismr", RunStatus::Pending)).await.unwrap();
    let kinds = [
        CommandKind::Start,
        CommandKind::Signal,
        CommandKind::Resume,
        CommandKind::Cancel,
        CommandKind::Retry,
    ];
    for kind in kinds {
        store.enqueue_command(&command(&run.id, kind)).await.unwrap();
    }
    let listed = store.list_commands(&run.id).await.unwrap();
    let read: Vec<&ExecutionCommand> = listed.iter().map(|c| &c.body).collect();
    let written: Vec<ExecutionCommand> = kinds.iter().map(|kind| command(&run.id, *kind).body).collect();
    assert_eq!(read, written.iter().collect::<Vec<_>>());
    assert_eq!(listed.iter().map(|c| c.kind()).collect::<Vec<_>>(), kinds);
}

async fn commands_are_delivered_in_order_per_run_until_acknowledged(db: &Db) {
    let store = store::open(db);
    let run = store
        .insert_run_with_command(
            &new_run("aismr", RunStatus::Pending),
            Some(&command("x", CommandKind::Start)),
        )
        .await
        .unwrap();
    let other = store.insert_run(&new_run("aismr", RunStatus::Pending)).await.unwrap();
    assert!(store.list_commands(&other.id).await.unwrap().is_empty());
    // The start was stored with the run (its run_id is the command's own).
    let start = store
        .pending_commands("x", 10)
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("start stored with the run");
    assert_eq!(start.kind(), CommandKind::Start);

    let cancel = command(&run.id, CommandKind::Cancel);
    assert!(
        store
            .transition(
                &run.id,
                RunStatus::Pending,
                RunStatus::Cancelled,
                None,
                Some(&cancel),
                None
            )
            .await
            .unwrap()
    );
    let signal = command("x", CommandKind::Signal);
    store
        .insert_run_with_command(&new_run("aismr", RunStatus::Pending), Some(&signal))
        .await
        .unwrap();

    // Only the first pending command of each run is due.
    let due = store.commands_due(now(), 10).await.unwrap();
    let kinds: Vec<(String, CommandKind)> = due.iter().map(|c| (c.run_id.clone(), c.kind())).collect();
    assert_eq!(
        kinds,
        [
            ("x".to_string(), CommandKind::Start),
            (run.id.clone(), CommandKind::Cancel)
        ]
    );

    let retry_at = now() + Duration::seconds(60);
    store
        .record_delivery(
            start.seq,
            &DeliveryAttempt::Failed {
                error: "unreachable".into(),
                retry_at,
            },
        )
        .await
        .unwrap();
    let due = store.commands_due(now(), 10).await.unwrap();
    assert_eq!(due.len(), 1, "the failed start waits, and the signal behind it too");
    assert_eq!(due[0].kind(), CommandKind::Cancel);

    store.record_delivery(start.seq, &DeliveryAttempt::Acked).await.unwrap();
    let pending = store.pending_commands("x", 10).await.unwrap();
    let kinds: Vec<CommandKind> = pending.iter().map(|c| c.kind()).collect();
    assert_eq!(kinds, [CommandKind::Signal], "after the start, the signal");
    assert!(store.pending_commands("x", 0).await.unwrap().is_empty());
    assert!(store.run_exists(&run.id).await.unwrap());
    assert!(!store.run_exists("run_unknown000000").await.unwrap());
    let listed = store.list_commands("x").await.unwrap();
    assert_eq!(listed[0].attempts, 2);
    assert!(listed[0].acked_at.is_some());
    assert_eq!(listed[0].last_error, None);
}

fn event(run_id: &str, seq: i64, kind: &str) -> AppliedEvent {
    AppliedEvent {
        event_id: format!("{run_id}-{seq}"),
        run_id: run_id.into(),
        seq,
        kind: kind.into(),
        data: json!({"seq": seq}),
        at: now(),
    }
}

/// Whether `event` applies with `update` to a run whose last applied seq
/// and status are expected to be `expected_last_seq` and `expected_status`.
async fn apply_one(
    store: &dyn ApiStore,
    event: &AppliedEvent,
    expected_last_seq: i64,
    expected_status: RunStatus,
    update: &RunUpdate,
) -> bool {
    let run = RunEvents {
        expected_last_seq,
        expected_status,
        events: vec![(event.clone(), update.clone())],
    };
    store.apply_runs_events(&[&run]).await.unwrap()[0]
}

/// Whether event `seq` (of `kind`) of `run_id` applies with `update` when
/// the run's last applied seq is expected to be `expected`.
async fn applies(store: &dyn ApiStore, run_id: &str, seq: i64, kind: &str, expected: i64, update: &RunUpdate) -> bool {
    let status = store.get_run(run_id).await.unwrap().unwrap().status;
    apply_one(store, &event(run_id, seq, kind), expected, status, update).await
}

/// The seqs of the events applied to `run`, in order.
async fn seqs(store: &dyn ApiStore, run: &str) -> Vec<i64> {
    let events = store.list_events(run).await.unwrap();
    events.iter().map(|e| e.seq).collect()
}

async fn events_apply_once_in_order_with_their_changes(db: &Db) {
    let store = store::open(db);
    let run = store.insert_run(&new_run("aismr", RunStatus::Pending)).await.unwrap();
    let artifact = Artifact::new(&run.id, "kieai.job", Some("riley"), json!({"taskId": "t1"}));
    let update = RunUpdate {
        status: Some(RunStatus::Running),
        current_persona: Some(Some("iggy".into())),
        result: Some(json!({"videos": [1]})),
        artifacts: vec![artifact.clone()],
        ..Default::default()
    };
    assert!(applies(&*store, &run.id, 1, "execution.started", 0, &update).await);
    // The same seq again, or one expecting a stale seq, applies nothing.
    assert!(!applies(&*store, &run.id, 1, "execution.started", 0, &update).await);
    assert!(!applies(&*store, &run.id, 3, "x", 0, &RunUpdate::default()).await);
    let read = store.get_run(&run.id).await.unwrap().unwrap();
    assert_eq!(read.status, RunStatus::Running);
    assert_eq!(read.current_persona.as_deref(), Some("iggy"));
    assert_eq!(read.result, json!({"videos": [1]}));
    assert_eq!(store.list_artifacts(&run.id).await.unwrap(), [artifact]);

    // An empty update only advances the seq; clearing the persona works.
    let clear = RunUpdate {
        current_persona: Some(None),
        ..Default::default()
    };
    // Worked out from a status the run has left (a cancel, a decision
    // committed meanwhile): nothing written, the caller reads again.
    let stale = apply_one(
        &*store,
        &event(&run.id, 2, "persona.completed"),
        1,
        RunStatus::Pending,
        &clear,
    )
    .await;
    assert!(!stale, "a status the run has left");
    assert!(applies(&*store, &run.id, 2, "persona.completed", 1, &clear).await);
    let read = store.get_run(&run.id).await.unwrap().unwrap();
    assert_eq!(read.status, RunStatus::Running);
    assert_eq!(read.current_persona, None);
    let seqs = seqs(&*store, &run.id).await;
    assert!(seqs.starts_with(&[1, 2]), "{seqs:?}");
}

/// Several runs' events in one transaction: each run's are written only if
/// the run is still as read, and one that is not holds back none of the
/// others; a run with no events holds trivially.
async fn runs_events_apply_together_each_if_unchanged(db: &Db) {
    let store = store::open(db);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            store
                .insert_run(&new_run("aismr", RunStatus::Pending))
                .await
                .unwrap()
                .id,
        );
    }
    let running = RunUpdate {
        status: Some(RunStatus::Running),
        ..Default::default()
    };
    let batch = |run: &str, expected_last_seq: i64, seqs: &[i64]| RunEvents {
        expected_last_seq,
        expected_status: RunStatus::Pending,
        events: seqs
            .iter()
            .map(|seq| (event(run, *seq, "execution.started"), running.clone()))
            .collect(),
    };
    let mut first = batch(&ids[0], 0, &[1, 2]);
    first.events[0].1.artifacts = vec![Artifact::new(
        &ids[0],
        "kieai.job",
        Some("riley"),
        json!({"taskId": "t1"}),
    )];
    let held = store
        .apply_runs_events(&[
            &first,
            &batch(&ids[1], 5, &[6]),
            &batch(&ids[2], 0, &[]),
            &batch(&ids[2], 0, &[1]),
        ])
        .await
        .unwrap();
    assert_eq!(held, [true, false, true, true], "the second run's last seq is 0, not 5");
    assert_eq!(seqs(&*store, &ids[0]).await, [1, 2]);
    assert_eq!(seqs(&*store, &ids[1]).await, Vec::<i64>::new());
    assert_eq!(seqs(&*store, &ids[2]).await, [1]);
    let read = store.get_run(&ids[0]).await.unwrap().unwrap();
    assert_eq!((read.status, read.last_event_seq), (RunStatus::Running, 2));
    assert_eq!(store.list_artifacts(&ids[0]).await.unwrap().len(), 1);
    let read = store.get_run(&ids[1]).await.unwrap().unwrap();
    assert_eq!((read.status, read.last_event_seq), (RunStatus::Pending, 0));

    // Nothing holds: nothing is written.
    let held = store.apply_runs_events(&[&batch(&ids[1], 3, &[4])]).await.unwrap();
    assert_eq!(held, [false]);
    assert_eq!(seqs(&*store, &ids[1]).await, Vec::<i64>::new());

    // The runs among some ids, read together; unknown ids are left out.
    let mut read: Vec<String> = store
        .get_runs(&[&ids[2], "run_unknown000000", &ids[0]])
        .await
        .unwrap()
        .into_iter()
        .map(|run| run.id)
        .collect();
    read.sort();
    let mut expected = vec![ids[0].clone(), ids[2].clone()];
    expected.sort();
    assert_eq!(read, expected);
    assert!(store.get_runs(&[]).await.unwrap().is_empty());
}

async fn webhook_keys_are_used_once_and_bring_their_command(db: &Db) {
    let store = store::open(db);
    let run = store.insert_run(&new_run("aismr", RunStatus::Pending)).await.unwrap();
    let delivery = WebhookDelivery {
        provider: "kieai".into(),
        idempotency_key: Some("task-1:200".into()),
        run_id: Some(run.id.clone()),
        headers: json!({"x-webhook-signature": "[redacted]"}),
        body: "{}".into(),
        body_size: 2,
        body_sha256: String::new(),
        signature_status: SignatureStatus::Verified,
        outcome: WebhookOutcome::Accepted,
        received_at: now(),
    };
    let signal = command(&run.id, CommandKind::Signal);
    assert!(store.record_webhook(&delivery, Some(&signal)).await.unwrap());
    assert!(
        !store.record_webhook(&delivery, Some(&signal)).await.unwrap(),
        "the key is spent"
    );
    let unkeyed = WebhookDelivery {
        idempotency_key: None,
        outcome: WebhookOutcome::Rejected,
        ..delivery.clone()
    };
    assert!(store.record_webhook(&unkeyed, None).await.unwrap());
    assert!(
        store.record_webhook(&unkeyed, None).await.unwrap(),
        "deliveries without a key are all kept"
    );
    let all = store.list_webhooks("kieai").await.unwrap();
    assert_eq!(all.len(), 3);
    let recent = store.recent_webhooks(2).await.unwrap();
    assert_eq!(
        recent,
        vec![all[2].clone(), all[1].clone()],
        "newest first, at most the limit"
    );
    assert_eq!(
        store.list_commands(&run.id).await.unwrap().len(),
        1,
        "one signal for one accepted delivery"
    );
}

/// A group of callbacks: a new key, the same key again in the group, a key
/// used before; one new key of another run; one of a run not known here.
/// Each new one brings its command; each repeated one is recorded as a
/// duplicate without the key; the unknown run's is not recorded.
async fn callbacks_commit_together_each_key_once(db: &Db) {
    let store = store::open(db);
    let a = store.insert_run(&new_run("aismr", RunStatus::Pending)).await.unwrap();
    let b = store.insert_run(&new_run("aismr", RunStatus::Pending)).await.unwrap();
    let used = delivery("task-used", Some(&a.id), 0);
    assert!(
        store
            .record_webhook(&used, Some(&command(&a.id, CommandKind::Signal)))
            .await
            .unwrap()
    );
    let callbacks = vec![
        (delivery("task-1", Some(&a.id), 0), command(&a.id, CommandKind::Signal)),
        (delivery("task-1", Some(&a.id), 0), command(&a.id, CommandKind::Signal)),
        (used.clone(), command(&a.id, CommandKind::Signal)),
        (delivery("task-2", Some(&b.id), 0), command(&b.id, CommandKind::Signal)),
        (
            delivery("task-3", Some("run_unknown00000"), 0),
            command("run_unknown00000", CommandKind::Signal),
        ),
    ];
    let recorded = store.record_callbacks(&callbacks).await.unwrap();
    use CallbackRecorded::{New, Repeated, UnknownRun};
    assert_eq!(recorded, vec![New, Repeated, Repeated, New, UnknownRun]);
    assert_eq!(
        store.list_commands(&a.id).await.unwrap().len(),
        2,
        "task-used and task-1 once each"
    );
    assert_eq!(store.list_commands(&b.id).await.unwrap().len(), 1);
    let all = store.list_webhooks("kieai").await.unwrap();
    let outcomes: Vec<(Option<&str>, WebhookOutcome)> =
        all.iter().map(|d| (d.idempotency_key.as_deref(), d.outcome)).collect();
    assert_eq!(
        outcomes,
        vec![
            (Some("task-used"), WebhookOutcome::Accepted),
            (Some("task-1"), WebhookOutcome::Accepted),
            (Some("task-2"), WebhookOutcome::Accepted),
            (None, WebhookOutcome::Duplicate),
            (None, WebhookOutcome::Duplicate),
        ]
    );
    assert!(store.list_commands("run_unknown00000").await.unwrap().is_empty());
    assert_eq!(
        store.record_callbacks(&[]).await.unwrap(),
        Vec::<CallbackRecorded>::new()
    );
}

fn delivery(key: &str, run_id: Option<&str>, days_ago: i64) -> WebhookDelivery {
    WebhookDelivery {
        provider: "kieai".into(),
        idempotency_key: Some(key.into()),
        run_id: run_id.map(str::to_string),
        headers: json!({}),
        body: "{}".into(),
        body_size: 2,
        body_sha256: String::new(),
        signature_status: SignatureStatus::Verified,
        outcome: WebhookOutcome::Accepted,
        received_at: now() - Duration::days(days_ago),
    }
}

async fn retention_prunes_only_old_rows_no_unfinished_run_needs(db: &Db) {
    let store = store::open(db);
    let old = now() - Duration::days(40);
    let run_at = |status, at| NewRun {
        created_at: at,
        estimated_usd_micros: None,
        max_active: None,
        notice: None,
        ..new_run("aismr", status)
    };
    // Ended 40 days ago; still running since 40 days ago; started 40 days
    // ago but ended just now.
    let ended = store.insert_run(&run_at(RunStatus::Published, old)).await.unwrap();
    let running = store.insert_run(&run_at(RunStatus::Running, old)).await.unwrap();
    let just_ended = store.insert_run(&run_at(RunStatus::Running, old)).await.unwrap();
    assert!(
        store
            .transition(&just_ended.id, RunStatus::Running, RunStatus::Failed, None, None, None)
            .await
            .unwrap()
    );
    for run in [&ended, &running, &just_ended] {
        for kind in ["persona.output", "kieai.clip", "render.url"] {
            let artifact = Artifact {
                created_at: old,
                ..Artifact::new(&run.id, kind, Some("riley"), json!({}))
            };
            store.insert_artifact(&artifact).await.unwrap();
        }
    }
    let deliveries = [
        delivery("ended-old", Some(&ended.id), 40),
        delivery("unknown-run-old", Some("run_gone00000000"), 40),
        delivery("no-run-old", None, 40),
        delivery("running-old", Some(&running.id), 40),
        delivery("ended-recent", Some(&ended.id), 1),
    ];
    for d in &deliveries {
        assert!(store.record_webhook(d, None).await.unwrap());
    }
    let push = Push {
        channel: Channel::Webhook,
        target: "http://127.0.0.1:9/hook".into(),
    };
    for (days_ago, text) in [
        (40, "delivered-old"),
        (40, "failed-old"),
        (40, "pending-old"),
        (1, "delivered-recent"),
    ] {
        store
            .append_chat(&ChatMessage {
                user_id: "u1".into(),
                role: "assistant".into(),
                text: text.into(),
                run_id: None,
                gate: None,
                link: None,
                created_at: now() - Duration::days(days_ago),
                pushes: vec![push.clone()],
            })
            .await
            .unwrap();
    }
    for d in store.list_chat_deliveries(10).await.unwrap() {
        let outcome = match d.text.as_str() {
            "failed-old" => PushOutcome::GaveUp { error: "410".into() },
            "pending-old" => continue,
            _ => PushOutcome::Delivered,
        };
        store.finish_chat_delivery(d.id, &outcome).await.unwrap();
    }

    // A schedule's firings: one of a time 40 days ago, one of yesterday.
    let schedule = store
        .insert_schedule(
            &myloware_api::store::NewSchedule {
                id: myloware_core::ids::new_schedule_id(),
                project: "test_video_gen".into(),
                cron: "0 0 * * *".into(),
                timezone: "UTC".into(),
                inputs: vec![json!({"topic": "t"})],
                options: json!({}),
                next_fire_at: now() - Duration::days(40),
                created_by: "key:test".into(),
                created_at: now() - Duration::days(40),
            },
            10,
        )
        .await
        .unwrap()
        .unwrap();
    for (due, next) in [(40, 1), (1, -1)] {
        let claim = myloware_api::store::FiringClaim {
            schedule_id: schedule.id.clone(),
            fire_at: schedule.next_fire_at.unwrap() + Duration::days(40 - due),
            next_fire_at: Some(schedule.next_fire_at.unwrap() + Duration::days(40 - next)),
            skipped: 0,
            refusal_notice: None,
        };
        let fired = store
            .fire_schedule(&claim, myloware_api::store::FiringStart::Refused("over a limit"))
            .await
            .unwrap();
        assert_eq!(fired, myloware_api::store::Fired::Refused("over a limit".into()));
    }

    let cutoff = now() - Duration::days(30);
    let expected: Pruned = [
        ("artifacts", 3),
        ("chat_deliveries", 2),
        // Lines whose every push is done.
        ("chat_messages", 2),
        ("commands", 0),
        ("dead_letters", 0),
        ("audit", 0),
        ("run_events", 0),
        ("schedule_firings", 1),
        ("webhook_deliveries", 3),
    ]
    .into_iter()
    .map(|(table, n)| (table.to_string(), n))
    .collect();
    assert_eq!(store.prune(cutoff, true).await.unwrap(), expected, "the dry run counts");
    assert_eq!(
        store.list_webhooks("kieai").await.unwrap().len(),
        5,
        "a dry run deletes nothing"
    );
    assert_eq!(store.list_artifacts(&ended.id).await.unwrap().len(), 3);
    assert_eq!(store.list_chat_deliveries(10).await.unwrap().len(), 4);

    assert_eq!(store.prune(cutoff, false).await.unwrap(), expected, "as counted");
    let keys: Vec<_> = store
        .list_webhooks("kieai")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|d| d.idempotency_key)
        .collect();
    assert_eq!(keys, ["running-old", "ended-recent"]);
    let firings = store.list_firings(&schedule.id, 10).await.unwrap();
    assert_eq!(firings.len(), 1, "yesterday's firing stays");
    assert!(firings[0].fire_at > cutoff);
    assert!(store.list_artifacts(&ended.id).await.unwrap().is_empty());
    assert_eq!(
        store.list_artifacts(&running.id).await.unwrap().len(),
        3,
        "a running run's"
    );
    assert_eq!(
        store.list_artifacts(&just_ended.id).await.unwrap().len(),
        3,
        "ended after the cutoff"
    );
    let mut left: Vec<_> = store
        .list_chat_deliveries(10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.text)
        .collect();
    left.sort();
    assert_eq!(left, ["delivered-recent", "pending-old"]);
    assert_eq!(
        store.get_run(&ended.id).await.unwrap().unwrap().status,
        RunStatus::Published,
        "runs themselves stay"
    );
    // A spent key of an unfinished run is still spent.
    assert!(!store.record_webhook(&deliveries[3], None).await.unwrap());
    let left = store.prune(cutoff, false).await.unwrap();
    assert!(left.values().all(|n| *n == 0), "nothing left: {left:?}");
}

/// A decision on a run waiting at its ideate gate.
fn at_ideate(run_id: &str, verdict: GateDecision, by: &str, required: u32, round: u32) -> Decision {
    let to = match verdict {
        GateDecision::Approve => RunStatus::Running,
        GateDecision::Reject => RunStatus::Rejected,
        GateDecision::Revise => RunStatus::Running,
    };
    Decision {
        run_id: run_id.into(),
        gate: Gate::Ideate,
        verdict,
        required,
        round,
        counted_as: by.into(),
        approver: Some(by.into()),
        note: None,
        reason: (verdict == GateDecision::Revise).then(|| "other ideas".into()),
        run_move: (verdict != GateDecision::Approve).then_some((RunStatus::AwaitingIdeate, to)),
        artifact: None,
        command: Some(command(run_id, CommandKind::Resume)),
    }
}

/// A gate needing two approvals counts each approver once and is decided
/// by the second; a revision sends it back (its approvals start over) and
/// the gate reached again opens awaiting with the new preview; a decided
/// gate never reopens.
async fn gates_count_approvals_and_reopen_after_a_revision(db: &Db) {
    let store = store::open(db);
    let mut new = new_run("aismr", RunStatus::AwaitingIdeate);
    new.gate = Some(NewGate {
        run_id: new.id.clone(),
        gate: Gate::Ideate,
        preview: json!({"ideas": ["a"]}),
    });
    let run = store.insert_run(&new).await.unwrap();
    let decide = |verdict, by: &'static str, round| {
        let store = store.clone();
        let decision = at_ideate(&run.id, verdict, by, 2, round);
        async move { store.decide(&decision).await.unwrap() }
    };
    assert_eq!(decide(GateDecision::Approve, "key:ann", 0).await, Decided::Counted(1));
    assert_eq!(
        decide(GateDecision::Approve, "key:ann", 0).await,
        Decided::AlreadyCounted(1)
    );
    let gate = store.get_gate(&run.id, Gate::Ideate).await.unwrap().unwrap();
    assert_eq!(
        (gate.status, gate.approvals.len(), gate.delivered),
        (GateStatus::Awaiting, 1, None)
    );
    assert!(
        store.list_commands(&run.id).await.unwrap().is_empty(),
        "nothing sent yet"
    );

    assert_eq!(decide(GateDecision::Revise, "key:bob", 0).await, Decided::Decided);
    let gate = store.get_gate(&run.id, Gate::Ideate).await.unwrap().unwrap();
    assert_eq!((gate.status, gate.revisions), (GateStatus::Revised, 1));
    assert!(gate.approvals.is_empty(), "the next preview gathers its own approvals");
    assert_eq!(
        store.get_run(&run.id).await.unwrap().unwrap().status,
        RunStatus::Running
    );
    assert_eq!(decide(GateDecision::Approve, "key:ann", 0).await, Decided::NotAwaiting);

    // The orchestrator reaches the gate again.
    let reached = |seq: i64, preview: Value| {
        let update = RunUpdate {
            status: Some(RunStatus::AwaitingIdeate),
            gate: Some(NewGate {
                run_id: run.id.clone(),
                gate: Gate::Ideate,
                preview,
            }),
            ..RunUpdate::default()
        };
        let applied = AppliedEvent {
            event_id: format!("e-{seq}"),
            run_id: run.id.clone(),
            seq,
            kind: "gate.reached".into(),
            data: json!({"gate": "ideate"}),
            at: now(),
        };
        (applied, update)
    };
    let (applied, update) = reached(1, json!({"ideas": ["b"], "revision": {"round": 1}}));
    assert!(apply_one(&*store, &applied, 0, RunStatus::Running, &update).await);
    let gate = store.get_gate(&run.id, Gate::Ideate).await.unwrap().unwrap();
    assert_eq!(
        (gate.status, gate.revisions, gate.decision.clone()),
        (GateStatus::Awaiting, 1, None)
    );
    assert_eq!(gate.preview["ideas"], json!(["b"]));
    assert_eq!(gate.delivered, None, "the revision's command is not this wait's");
    let details = store.get_run_details(&run.id).await.unwrap().unwrap();
    assert_eq!(
        details.gates,
        vec![gate.clone()],
        "the one-statement view reads the same"
    );

    assert_eq!(
        decide(GateDecision::Approve, "key:bob", 0).await,
        Decided::NotAwaiting,
        "an approval of the first wait's preview"
    );
    assert_eq!(decide(GateDecision::Approve, "key:bob", 1).await, Decided::Counted(1));
    assert_eq!(decide(GateDecision::Approve, "key:ann", 1).await, Decided::Decided);
    let gate = store.get_gate(&run.id, Gate::Ideate).await.unwrap().unwrap();
    assert_eq!(gate.status, GateStatus::Approved);
    assert_eq!(
        gate.approvals.iter().map(|a| a.by.as_str()).collect::<Vec<_>>(),
        ["key:bob", "key:ann"]
    );
    let (applied, update) = reached(2, json!({"ideas": ["c"]}));
    assert!(apply_one(&*store, &applied, 1, RunStatus::AwaitingIdeate, &update).await);
    let gate = store.get_gate(&run.id, Gate::Ideate).await.unwrap().unwrap();
    assert_eq!(
        (gate.status, gate.preview["ideas"].clone()),
        (GateStatus::Approved, json!(["b"])),
        "decided: kept"
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
    run_details_are_the_run_its_gates_and_artifacts,
    commands_are_delivered_in_order_per_run_until_acknowledged,
    commands_read_back_as_the_typed_bodies_enqueued,
    events_apply_once_in_order_with_their_changes,
    runs_events_apply_together_each_if_unchanged,
    webhook_keys_are_used_once_and_bring_their_command,
    callbacks_commit_together_each_key_once,
    retention_prunes_only_old_rows_no_unfinished_run_needs,
    gates_count_approvals_and_reopen_after_a_revision,
    ping_answers,
);
