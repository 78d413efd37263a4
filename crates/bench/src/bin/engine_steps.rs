//! `engine-steps`: the durable engine's own overhead per step, on SQLite or
//! Postgres, without HTTP and without provider delays. See
//! docs/benchmarks.md for what is measured and the results.
//!
//! Three passes over one fresh database (a temporary SQLite file, or a new
//! schema in the Postgres database `--database-url` names, dropped at the
//! end):
//!
//! 1. throughput: N executions of a one-node graph (`[iggy]`, which calls
//!    no provider) are created directly in the store, then the real engine
//!    runs them with W workers; wall time until nothing is runnable or
//!    waiting, steps counted from `executions.steps`;
//! 2. single worker: the same on N/4 new executions with one worker; wall
//!    time / steps is the mean latency of a step, and, since each execution
//!    is one step and the worker takes them one after another, the gaps
//!    between consecutive commits (`updated_at`) are the latencies of the
//!    engine's steps, claim included: their median is the target's median;
//! 3. store overhead: N/4 new executions, each driven by hand through the
//!    store calls one step makes, in order (`claim`, which also reads the
//!    step's signals, then `commit_step` with the events the engine commits),
//!    single-threaded and timed one by one for percentiles.
//!
//! The outbox dispatcher does not run (there is no API): outbox rows pile
//! up, which is part of what a commit costs.
//!
//! Targets: median step ≤ 2 ms on Postgres and ≤ 1 ms on SQLite (the
//! single-worker median), ≥ 500 steps/s sustained on Postgres (pass 1).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::Utc;
use myloware_bench::default_projects_dir;
use myloware_bench::harness::{self, Bench, DbArgs, at_least};
use myloware_bench::report::{Check, Report};
use myloware_bench::stats::{r3, summarize_us};
use myloware_core::config::Config;
use myloware_core::project::{Catalog, Persona, ProjectSpec};
use myloware_core::wire::{EventKind, GraphSpec, StartExecution};
use myloware_core::{ProviderMode, graph, ids};
use myloware_db::{Backend, Db, PoolSettings};
use myloware_orchestrator::engine::{Engine, Personas, ProviderSets};
use myloware_orchestrator::run_state::RunState;
use myloware_orchestrator::scripted;
use myloware_orchestrator::store::{ExecStatus, NewEvent, NewExecution, OrchestratorStore, StepCommit};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::sync::watch;

const PROJECT: &str = "test_video_gen";

#[derive(Debug, clap::Args)]
#[command(about = "the durable engine's per-step overhead")]
struct Args {
    /// Executions of the throughput pass (the other two passes use N/4;
    /// --quick: 400).
    #[arg(long, default_value_t = 2000, default_value_if("quick", "true", "400"), value_parser = at_least(4))]
    executions: usize,

    /// Engine workers of the throughput pass (ORCHESTRATOR_WORKERS).
    #[arg(long, default_value_t = 4, value_parser = at_least(1))]
    workers: usize,

    /// Comma-separated personas of the benchmark graph. Only `iggy` runs
    /// without any provider call; later personas call the (undelayed) mock
    /// providers and park waiting for callbacks that nobody sends here, so
    /// the run would only end at --timeout-secs.
    #[arg(long, default_value = "iggy")]
    pipeline: String,

    /// Database pool size (the services use 16).
    #[arg(long, default_value_t = PoolSettings::default().max_connections)]
    pool_size: u32,

    /// The project catalog (`projects/`).
    #[arg(long, default_value_os_t = default_projects_dir())]
    projects_dir: PathBuf,

    /// Give up on a pass after this long.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

impl Bench for Args {
    const NAME: &'static str = "engine-steps";

    fn settings(&self) -> Vec<(&'static str, String)> {
        let graph = format!(
            "[{}] of {PROJECT}, mock providers without delay, no outbox dispatcher",
            self.pipeline
        );
        vec![("graph", graph), ("pool", format!("{} connections", self.pool_size))]
    }
}

/// The engine configuration of one pass: no provider delay, a short idle poll.
fn config(database_url: &str, projects_dir: &Path, workers: usize) -> anyhow::Result<Config> {
    let vars: HashMap<&str, String> = [
        ("DATABASE_URL", database_url.to_string()),
        ("PROJECTS_DIR", projects_dir.display().to_string()),
        ("USE_MOCK_PROVIDERS", "true".to_string()),
        ("MOCK_PROVIDER_DELAY_MS", "0".to_string()),
        ("ORCHESTRATOR_WORKERS", workers.to_string()),
        ("ENGINE_POLL_MS", "5".to_string()),
        ("ENGINE_LEASE_SECS", "30".to_string()),
    ]
    .into_iter()
    .collect();
    Config::from_lookup(|var| vars.get(var).cloned()).map_err(|err| anyhow::anyhow!("configuration: {err:?}"))
}

/// What the API would send for a run of `spec` on `graph`.
fn start_request(spec: &ProjectSpec, graph: &GraphSpec) -> StartExecution {
    let videos: Vec<Value> = spec
        .specs
        .as_ref()
        .map(|s| {
            s.videos
                .iter()
                .enumerate()
                .map(
                    |(index, v)| json!({"index": index, "subject": v.subject, "header": v.header, "status": "pending"}),
                )
                .collect()
        })
        .unwrap_or_default();
    StartExecution {
        run_id: String::new(),
        project: spec.project.clone(),
        graph_spec: graph.clone(),
        project_spec: spec.clone(),
        providers_mode: ProviderMode::Mock,
        input: json!({"prompt": "benchmark"}),
        videos,
        traceparent: None,
    }
}

/// Creates `count` runnable executions like `POST /v1/executions` does.
async fn create_executions(
    store: &Arc<dyn OrchestratorStore>,
    template: &StartExecution,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let mut run_ids = Vec::with_capacity(count);
    for _ in 0..count {
        let mut request = template.clone();
        request.run_id = ids::new_run_id();
        let new = NewExecution {
            run_id: request.run_id.clone(),
            project: request.project.clone(),
            request: serde_json::to_value(&request)?,
            state: json!({}),
        };
        let first = NewEvent {
            kind: EventKind::ExecutionStarted,
            data: json!({"providersMode": request.providers_mode}),
        };
        store.create_execution(&new, &first).await?;
        run_ids.push(request.run_id);
    }
    Ok(run_ids)
}

/// One pass of the real engine.
struct EnginePass {
    executions: usize,
    steps: i64,
    wall: Duration,
    /// Gaps between consecutive commits, in microseconds, when every
    /// execution made exactly one step (with one worker: each step's
    /// latency, its claim included).
    commit_gaps_us: Vec<f64>,
}

impl EnginePass {
    fn steps_per_sec(&self) -> f64 {
        self.steps as f64 / self.wall.as_secs_f64()
    }

    fn mean_step_ms(&self) -> f64 {
        self.wall.as_secs_f64() * 1000.0 / self.steps as f64
    }
}

/// Runs `run_ids` (already created) to the end with `config.engine.workers`
/// workers. The wall time ends at the last commit (`updated_at` of the last
/// execution to finish), so the completion poll adds no error.
async fn engine_pass(
    config: Config,
    store: &Arc<dyn OrchestratorStore>,
    run_ids: &[String],
    timeout: Duration,
) -> anyhow::Result<EnginePass> {
    let config = Arc::new(config);
    let providers = ProviderSets {
        mock: myloware_orchestrator::mock_providers(&config, store.clone()),
        live: Err("the benchmark runs mock providers only".into()),
    };
    let engine = Engine::new(config, store.clone(), providers, Personas::Scripted);
    let (stop, stopped) = watch::channel(false);
    let started_at = Utc::now();
    let started = Instant::now();
    let workers = engine.spawn_workers(stopped);
    loop {
        let counts = store.counts().await?;
        if counts.runnable == 0 && counts.waiting == 0 {
            break;
        }
        if started.elapsed() > timeout {
            let _ = stop.send(true);
            bail!("timed out after {timeout:?} with {counts:?} (does the pipeline wait for callbacks?)");
        }
        // Seldom: counts() scans whole tables, and the wall time comes from
        // the commits' own timestamps, not from this poll.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let polled = started.elapsed();
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }

    let mut steps = 0;
    let mut last_commit = started_at;
    let mut commits = Vec::with_capacity(run_ids.len());
    for run_id in run_ids {
        let execution = store
            .get_execution(run_id)
            .await?
            .with_context(|| format!("{run_id} vanished"))?;
        ensure!(
            execution.status == ExecStatus::Completed,
            "{run_id} ended {} instead of completed",
            execution.status.as_str()
        );
        steps += execution.steps;
        last_commit = last_commit.max(execution.updated_at);
        commits.push(execution.updated_at);
    }
    let wall = (last_commit - started_at).to_std().unwrap_or(polled);
    commits.sort();
    // The first commit also carries the workers' start; leave it out.
    let commit_gaps_us = if steps == run_ids.len() as i64 {
        commits
            .windows(2)
            .map(|w| (w[1] - w[0]).num_microseconds().unwrap_or(i64::MAX) as f64)
            .collect()
    } else {
        Vec::new()
    };
    Ok(EnginePass {
        executions: run_ids.len(),
        steps,
        wall,
        commit_gaps_us,
    })
}

/// Durations of the store calls of one step, in microseconds.
#[derive(Default)]
struct StoreTimings {
    total: Vec<f64>,
    claim: Vec<f64>,
    commit_step: Vec<f64>,
}

/// Drives `count` executions (already created, runnable) through the store
/// calls of one step of the one-node graph, single-threaded.
async fn store_pass(
    store: &Arc<dyn OrchestratorStore>,
    spec: &ProjectSpec,
    input: &Value,
    count: usize,
) -> anyhow::Result<StoreTimings> {
    let worker = "bench-0";
    let lease = chrono::Duration::seconds(30);
    let ideas = scripted::ideas(spec, input, None);
    let mut timings = StoreTimings::default();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    for _ in 0..count {
        let t0 = Instant::now();
        let now = Utc::now();
        let execution = store
            .claim(worker, now, now + lease)
            .await?
            .context("nothing to claim: the store pass ran out of executions")?;
        let t1 = Instant::now();
        // As the engine does: the claim carried the step's inputs, the
        // cancel flag and the signals (later steps under the same lease
        // read both with one `step_inputs`).
        ensure!(!execution.cancel_requested, "{} was cancelled", execution.run_id);
        let signals = execution.pending_signals.clone().context("a claim reads the signals")?;
        let t3 = Instant::now();
        // Exactly what the engine commits for Iggy as the last node: its
        // three events, then the completion in the same transaction.
        let state = RunState {
            started: vec![Persona::Iggy],
            ideas: ideas.clone(),
            ..RunState::default()
        };
        let events = vec![
            NewEvent {
                kind: EventKind::PersonaStarted,
                data: json!({"persona": "iggy"}),
            },
            NewEvent {
                kind: EventKind::StatusChanged,
                data: json!({"status": "running"}),
            },
            NewEvent {
                kind: EventKind::PersonaCompleted,
                data: json!({"persona": "iggy", "output": {"ideas": ideas}}),
            },
            NewEvent {
                kind: EventKind::ExecutionCompleted,
                data: json!({"videos": [], "renderUrl": null, "publishUrls": []}),
            },
        ];
        let commit = StepCommit {
            run_id: execution.run_id.clone(),
            worker: worker.to_string(),
            node: execution.node + 1,
            status: ExecStatus::Completed,
            state: serde_json::to_value(&state)?,
            wait: None,
            wake_at: None,
            events,
            consumed_through: signals.last().map(|s| s.seq),
            keep_lease_until: None,
            spend: Vec::new(),
            jobs_ended: Vec::new(),
            release_jobs: false,
        };
        let t4 = Instant::now();
        ensure!(store.commit_step(&commit).await?, "lease lost on {}", execution.run_id);
        let t5 = Instant::now();
        timings.claim.push(us(t1 - t0));
        timings.commit_step.push(us(t5 - t4));
        // The state and events are built outside the store calls' timings.
        timings.total.push(us((t5 - t0) - (t4 - t3)));
    }
    Ok(timings)
}

fn parse_pipeline(raw: &str) -> anyhow::Result<Vec<Persona>> {
    raw.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| serde_json::from_value(json!(p)).with_context(|| format!("unknown persona {p:?} in --pipeline")))
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (args, db) = harness::parse::<Args, DbArgs>();
    let pipeline = parse_pipeline(&args.pipeline)?;
    let graph = GraphSpec {
        pipeline,
        hitl_gates: Vec::new(),
    };
    graph::nodes(&graph).map_err(|err| anyhow::anyhow!("--pipeline: {err}"))?;
    if graph.pipeline != [Persona::Iggy] {
        eprintln!(
            "warning: pipeline {:?} goes beyond iggy: its steps call the mock providers and may park waiting \
             for callbacks that never come without the API; the store pass still commits iggy's step",
            args.pipeline
        );
    }
    let catalog = Catalog::load(&args.projects_dir)
        .map_err(|err| anyhow::anyhow!("cannot load {}: {err:?}", args.projects_dir.display()))?;
    let spec = catalog
        .get(PROJECT)
        .with_context(|| format!("project {PROJECT} is not in the catalog"))?
        .clone();
    let template = start_request(&spec, &graph);

    let bench_db = db.prepare().await?;
    let mut report = harness::header(&args, &[("backend", &bench_db.backend())], None);
    println!();
    let outcome = run(&args, &bench_db.url, &spec, &template, &mut report).await;
    bench_db.finish(db.keep).await;
    report.conclude(outcome)
}

async fn run(
    args: &Args,
    url: &str,
    spec: &ProjectSpec,
    template: &StartExecution,
    report: &mut Report,
) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let main_config = config(url, &args.projects_dir, args.workers)?;
    let db = Db::connect(
        main_config.database_url.expose_secret(),
        PoolSettings {
            max_connections: args.pool_size,
            ..PoolSettings::default()
        },
    )
    .await?;
    db.migrate().await?;
    let backend = match db.backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let store = myloware_orchestrator::store::open(&db);
    let small = (args.executions / 4).max(1);

    // 1. Throughput with W workers.
    let created = Instant::now();
    let run_ids = create_executions(&store, template, args.executions).await?;
    let create_secs = created.elapsed().as_secs_f64();
    println!(
        "created {} executions in {:.2} s ({:.0}/s)",
        args.executions,
        create_secs,
        args.executions as f64 / create_secs
    );
    let throughput = engine_pass(main_config, &store, &run_ids, timeout).await?;
    println!(
        "throughput, {} workers: {} executions, {} steps in {:.3} s = {:.0} steps/s ({:.3} ms of wall time per step)",
        args.workers,
        throughput.executions,
        throughput.steps,
        throughput.wall.as_secs_f64(),
        throughput.steps_per_sec(),
        throughput.mean_step_ms()
    );

    // 2. Step latency with one worker.
    let run_ids = create_executions(&store, template, small).await?;
    let single = engine_pass(config(url, &args.projects_dir, 1)?, &store, &run_ids, timeout).await?;
    let step = summarize_us(&single.commit_gaps_us);
    println!(
        "single worker:          {} executions, {} steps in {:.3} s = {:.0} steps/s, mean step latency {:.3} ms",
        single.executions,
        single.steps,
        single.wall.as_secs_f64(),
        single.steps_per_sec(),
        single.mean_step_ms()
    );
    if step.count > 0 {
        println!("  step latency (gaps between commits): {}", step.line("ms"));
    }

    // 3. Store calls of one step, timed one by one.
    create_executions(&store, template, small).await?;
    let timings = store_pass(&store, spec, &template.input, small).await?;
    let total = summarize_us(&timings.total);
    println!(
        "step store overhead ({small} steps, one at a time): p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms \
         (mean {:.3}, max {:.3})",
        total.p50, total.p95, total.p99, total.mean, total.max
    );
    let parts = [
        ("claim", summarize_us(&timings.claim)),
        ("commit_step", summarize_us(&timings.commit_step)),
    ];
    for (name, s) in &parts {
        println!(
            "  {name:<17} p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms (mean {:.3})",
            s.p50, s.p95, s.p99, s.mean
        );
    }
    let counts = store.counts().await?;
    println!(
        "outbox rows left undelivered (no dispatcher): {}",
        counts.outbox_pending
    );
    db.close().await;

    // The engine's own median (pass 2); the store pass's p50 when the
    // pipeline made more than one step per execution.
    let (median, how) = if step.count > 0 {
        (step.p50, "engine median, 1 worker")
    } else {
        (total.p50, "store pass p50")
    };
    let measured = format!(
        "{median:.3} ms ({how}; mean {:.3} ms; store pass p50 {:.3} ms)",
        single.mean_step_ms(),
        total.p50
    );
    let (own, limit, other) = if backend == "postgres" {
        ("Postgres: median step ≤ 2 ms", 2.0, "SQLite: median step ≤ 1 ms")
    } else {
        ("SQLite: median step ≤ 1 ms", 1.0, "Postgres: median step ≤ 2 ms")
    };
    report.check(Check::new(own, measured, median <= limit));
    report.check(Check::not_applicable(other, "run on the other backend"));
    let rate = throughput.steps_per_sec();
    let sustained = format!(
        "{rate:.0} steps/s ({} workers, {} executions)",
        args.workers, throughput.executions
    );
    if backend == "postgres" {
        report.check(Check::new(
            "Postgres: ≥ 500 steps/s sustained",
            sustained,
            rate >= 500.0,
        ));
    } else {
        report.check(Check::not_applicable("Postgres: ≥ 500 steps/s sustained", sustained));
    }

    report.detail("backend", json!(backend));
    report.detail("pipeline", json!(args.pipeline));
    report.detail("pool_size", json!(args.pool_size));
    report.detail("executions", json!(throughput.executions));
    report.detail("workers", json!(args.workers));
    report.detail("steps", json!(throughput.steps));
    report.detail("wall_ms", json!(r3(throughput.wall.as_secs_f64() * 1000.0)));
    report.detail("steps_per_s", json!(r3(rate)));
    report.detail(
        "single_worker",
        json!({
            "executions": single.executions,
            "steps": single.steps,
            "wall_ms": r3(single.wall.as_secs_f64() * 1000.0),
            "steps_per_s": r3(single.steps_per_sec()),
            "mean_step_ms": r3(single.mean_step_ms()),
            "step_ms": step.to_json(),
        }),
    );
    report.detail("median_step_ms", json!(r3(median)));
    report.detail("store_overhead_ms", total.to_json());
    report.detail(
        "store_calls_ms",
        parts
            .iter()
            .map(|(name, s)| (name.to_string(), s.to_json()))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    );
    Ok(())
}
