//! `api-get-run`: `GET /v1/runs/{runId}` of the real API (API-key check,
//! the run with its gates and artifacts from the database, JSON) against a
//! bare axum handler that makes the same single-row lookup of the run
//! through sqlx and answers it as JSON, under the same closed-loop load
//! (64 connections) in the same run. Targets: ≥ 70 % of the bare handler's
//! throughput, p99 ≤ 25 ms.
//!
//! The runs are real: `--runs` test_video_gen runs started through the API
//! and published by the orchestrator (both in this process, mock providers,
//! real HTTP between them); the orchestrator is stopped before the load.
//! Requests go round-robin over those runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use chrono::{DateTime, Utc};
use myloware_api::store::ApiStore;
use myloware_bench::harness::{self, Bench, Comparing, at_least};
use myloware_bench::report::{Check, Report};
use myloware_bench::services::{self, API_KEY, free_port, service_env};
use myloware_core::RunStatus;
use myloware_db::{Db, PoolSettings};
use serde_json::{Value, json};
use sqlx::types::Json as SqlJson;

#[derive(Debug, clap::Args)]
#[command(about = "GET /v1/runs/{id}, the API against a bare axum + sqlx single-row lookup")]
struct Args {
    /// Published runs to create and read round-robin (--quick: 20).
    #[arg(long, default_value_t = 100, default_value_if("quick", "true", "20"), value_parser = at_least(1))]
    runs: usize,
}

impl Bench for Args {
    const NAME: &'static str = "api-get-run";

    fn settings(&self) -> Vec<(&'static str, String)> {
        vec![("runs", format!("{} test_video_gen runs, read round-robin", self.runs))]
    }
}

const RUN_LOOKUP: &str = "SELECT seq, id, project, status, current_persona, user_id, payload, result, \
     last_event_seq, created_at, updated_at FROM runs WHERE id = $1";

type RunRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    SqlJson<Value>,
    SqlJson<Value>,
    i64,
    DateTime<Utc>,
    DateTime<Utc>,
);

/// The ceiling: one row by primary key, as JSON.
async fn bare_get_run(State(db): State<Db>, Path(run_id): Path<String>) -> Result<Json<Value>, StatusCode> {
    let row: Option<RunRow> = match &db {
        Db::Sqlite(pool) => sqlx::query_as(RUN_LOOKUP).bind(&run_id).fetch_optional(pool).await,
        Db::Postgres(pool) => sqlx::query_as(RUN_LOOKUP).bind(&run_id).fetch_optional(pool).await,
    }
    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let (seq, id, project, status, persona, user_id, payload, result, last_event_seq, created_at, updated_at) =
        row.ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(json!({
        "seq": seq, "runId": id, "project": project, "status": status, "currentPersona": persona,
        "userId": user_id, "payload": payload.0, "result": result.0, "lastEventSeq": last_event_seq,
        "createdAt": created_at, "updatedAt": updated_at,
    })))
}

/// The breakdown's middle step: the three reads the API makes (the run,
/// its artifacts, its gates) through the API's own store, answered as the
/// same JSON, without the API's middleware.
async fn store_get_run(
    State(store): State<Arc<dyn ApiStore>>,
    Path(run_id): Path<String>,
) -> Result<Json<Value>, StatusCode> {
    let failed = |_| StatusCode::INTERNAL_SERVER_ERROR;
    let run = store
        .get_run(&run_id)
        .await
        .map_err(failed)?
        .ok_or(StatusCode::NOT_FOUND)?;
    let artifacts = store.list_artifacts(&run.id).await.map_err(failed)?;
    let gates = store.list_gates(&run.id).await.map_err(failed)?;
    Ok(Json(json!({
        "runId": run.id, "project": run.project, "status": run.status, "currentPersona": run.current_persona,
        "createdAt": run.created_at, "updatedAt": run.updated_at, "payload": run.payload, "result": run.result,
        "gates": gates.iter().map(|g| myloware_api::hitl::gate_view(g, &Default::default())).collect::<Vec<_>>(),
        "artifacts": artifacts.into_iter().map(|a| json!({"id": a.id, "kind": a.kind, "persona": a.persona,
                                                          "data": a.data, "createdAt": a.created_at}))
                                  .collect::<Vec<_>>(),
    })))
}

fn main() -> anyhow::Result<()> {
    harness::comparison("myloware-bench", run)
}

/// Starts `count` test_video_gen runs through the API and waits until the
/// orchestrator has published them all.
async fn published_runs(api: &str, store: &Arc<dyn ApiStore>, count: usize) -> anyhow::Result<Vec<String>> {
    let http = services::api_client()?;
    let started = Instant::now();
    let mut run_ids = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(16) {
        let starts = chunk.iter().map(|i| {
            let (http, api) = (http.clone(), api.to_string());
            let body = json!({"project": "test_video_gen", "input": {"topic": format!("benchmark {i}")}});
            async move {
                let answer: Value = http
                    .post(format!("{api}/v1/runs/start"))
                    .json(&body)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                answer["runId"].as_str().map(str::to_owned).context("no runId")
            }
        });
        for run_id in futures_join_all(starts).await {
            run_ids.push(run_id?);
        }
    }
    loop {
        let mut waiting = 0;
        for run_id in &run_ids {
            let run = store.get_run(run_id).await?.context("run vanished")?;
            match run.status {
                RunStatus::Published => {}
                status if status.is_terminal() => bail!("{run_id} ended {status}"),
                _ => waiting += 1,
            }
        }
        if waiting == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("{waiting} runs not published after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "{count} test_video_gen runs started and published in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    Ok(run_ids)
}

/// Awaits every future (the bench has no `futures` crate).
async fn futures_join_all<T: Send + 'static>(
    futures: impl Iterator<Item = impl Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.expect("task panicked"));
    }
    results
}

fn run(args: &Args, comparing: &Comparing, report: &mut Report) -> anyhow::Result<()> {
    let database_url = comparing.database_url.as_str();
    let env = service_env(database_url, free_port()?, free_port()?);
    let config = Arc::new(services::config(&env)?);
    let (dbs, servers, run_ids) = comparing.runtimes.servers.block_on(async {
        let api_db = Db::connect(database_url, PoolSettings::default()).await?;
        api_db.migrate().await?;
        let orchestrator_db = Db::connect(database_url, PoolSettings::default()).await?;
        let orchestrator = services::spawn_orchestrator(config.clone(), &orchestrator_db).await?;
        let api = services::spawn_api(config.clone(), &api_db).await?;
        let store = myloware_api::store::open(&api_db);
        let run_ids = published_runs(&format!("http://{}", api.addr), &store, args.runs).await?;
        orchestrator.stop().await?;
        orchestrator_db.close().await;
        // The ceiling's own pool, the size of the service's.
        let bare_db = Db::connect(database_url, PoolSettings::default()).await?;
        let ceiling = services::spawn_router(
            axum::Router::new()
                .route("/v1/runs/{runId}", get(bare_get_run))
                .with_state(bare_db.clone()),
        )
        .await?;
        let mut dbs = vec![api_db, bare_db];
        let mut servers = vec![("bare", ceiling), ("api", api)];
        if comparing.load.breakdown {
            let store_db = Db::connect(database_url, PoolSettings::default()).await?;
            let store = services::spawn_router(
                axum::Router::new()
                    .route("/v1/runs/{runId}", get(store_get_run))
                    .with_state(myloware_api::store::open(&store_db)),
            )
            .await?;
            dbs.push(store_db);
            servers.push(("store-reads", store));
        }
        anyhow::Ok((dbs, servers, run_ids))
    })?;
    let (ceiling_addr, api_addr) = (servers[0].1.addr, servers[1].1.addr);

    // What each side answers for one run.
    let sizes = comparing.runtimes.load.block_on(async {
        let http = services::api_client()?;
        let mut sizes = Vec::new();
        for addr in [ceiling_addr, api_addr] {
            let response = http.get(format!("http://{addr}/v1/runs/{}", run_ids[0])).send().await?;
            ensure!(response.status().is_success(), "{addr} answered {}", response.status());
            sizes.push(response.bytes().await?.len());
        }
        anyhow::Ok(sizes)
    })?;
    println!(
        "answer sizes: bare {} bytes (the run row), api {} bytes (with gates and artifacts)",
        sizes[0], sizes[1]
    );
    println!();

    let paths: Vec<String> = run_ids.iter().map(|id| format!("/v1/runs/{id}")).collect();
    let comparison = comparing.compare(servers, &paths, &[("x-api-key", API_KEY)]);
    comparing.runtimes.servers.block_on(async {
        for db in dbs {
            db.close().await;
        }
    });
    let comparison = comparison?;
    let target = "GET /v1/runs/{id} ≥ 70 % of a bare axum + sqlx lookup (64 connections)";
    let clean = comparing.check_throughput(&comparison, report, target, 0.70);
    let (ceiling, real_side) = (comparison.ceiling(), comparison.real());
    let (bare, real) = (ceiling.latency(), real_side.latency());
    if !clean {
        println!(
            "warning: api refused {} and failed {} requests (first error: {:?})",
            real_side.refused, real_side.errors, real_side.first_error
        );
    }
    report.check(Check::new(
        "GET /v1/runs/{id} p99 ≤ 25 ms",
        format!(
            "{:.2} ms (p50 {:.2} ms; bare p99 {:.2} ms)",
            real.p99, real.p50, bare.p99
        ),
        real.p99 <= 25.0 && clean,
    ));
    report.detail("runs", json!(run_ids.len()));
    report.detail("answer_bytes", json!({"bare": sizes[0], "api": sizes[1]}));
    Ok(())
}
