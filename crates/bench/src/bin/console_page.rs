//! `console-page`: `GET /console`, the operators' console's runs page (the
//! newest 100 runs, read from the store and rendered by askama), signed in
//! as a browser is, on a database of `--runs` runs. Targets: the page
//! under 100 KB, and rendered in under 20 ms p95 on SQLite.
//!
//! The runs are what the API stores for a start (`runs::prepare_start`:
//! the project spec, the graph, the input and the first result), written
//! through the API's store with the statuses a deployment has (mostly
//! published, some failed, cancelled or running), created over the last
//! 30 days. The API runs in this process with every layer and its JSON
//! logs; the session comes from `POST /console/login` with the form's CSRF
//! cookie and field. One connection sends the requests one after another,
//! so each latency is the page's own, not a queue's.
//!
//! In the same run, for scale: `GET /console/static/console.css` through
//! the same server and connection (the stack without the session, the
//! database or the template), and the page's one read of runs
//! (`list_runs` of 101) through the store alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use chrono::{TimeDelta, Utc};
use myloware_api::runs::{Origin, RunInput, RunOptions, StartRunRequest, prepare_start};
use myloware_api::store::RunQuery;
use myloware_bench::harness::{self, Bench, DbArgs, at_least};
use myloware_bench::load::{self, Stop, Workload};
use myloware_bench::report::{Check, Report};
use myloware_bench::services::{self, free_port, service_env};
use myloware_bench::stats::{Summary, summarize_us};
use myloware_core::RunStatus;
use myloware_db::{Db, PoolSettings};
use serde_json::json;

#[derive(Debug, clap::Args)]
#[command(about = "GET /console (a page of 100 runs) on a database of thousands")]
struct Args {
    /// Runs in the database (--quick: 1000).
    #[arg(long, default_value_t = 5000, default_value_if("quick", "true", "1000"), value_parser = at_least(100))]
    runs: usize,
    /// Page requests measured, one after another (--quick: 200).
    #[arg(long, default_value_t = 2000, default_value_if("quick", "true", "200"), value_parser = at_least(20))]
    requests: usize,
    /// Page requests before the measured ones, not counted (--quick: 20).
    #[arg(long, default_value_t = 200, default_value_if("quick", "true", "20"))]
    warmup: usize,
}

impl Bench for Args {
    const NAME: &'static str = "console-page";

    fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("runs", format!("{} in the database", self.runs)),
            (
                "requests",
                format!(
                    "{} measured after {} of warm-up, one connection",
                    self.requests, self.warmup
                ),
            ),
        ]
    }
}

/// Page size target, in bytes.
const MAX_PAGE_BYTES: usize = 100 * 1024;
/// p95 target on SQLite, in milliseconds.
const MAX_P95_MS: f64 = 20.0;
/// Runs on the page (`console::pages::PAGE`).
const PAGE: usize = 100;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (args, db_args) = harness::parse::<Args, DbArgs>();
    // The service's own logging: the request span costs what it costs in
    // production (no event is logged per request at the default level).
    myloware_telemetry::logging::init(true, None, "myloware-api");
    let bench_db = db_args.prepare().await?;
    let mut report = harness::header(&args, &[("backend", &bench_db.backend())], None);
    println!();
    report.detail("backend", json!(bench_db.backend()));
    let outcome = run(&args, &bench_db.url, bench_db.is_postgres(), &mut report).await;
    bench_db.finish(db_args.keep).await;
    report.conclude(outcome)
}

/// The same request `count` times.
struct Repeat {
    request: Vec<u8>,
    count: u64,
}

impl Workload for Repeat {
    fn request(&self, i: u64, buf: &mut Vec<u8>) -> bool {
        if i >= self.count {
            return false;
        }
        buf.extend_from_slice(&self.request);
        true
    }
}

/// `count` sequential `GET path`s on one connection: their latencies.
async fn measure(addr: std::net::SocketAddr, request: &[u8], count: usize) -> anyhow::Result<load::LoadResult> {
    let workload = Arc::new(Repeat {
        request: request.to_vec(),
        count: count as u64,
    });
    let result = load::closed_loop(addr, 1, Stop::Exhausted, workload).await?;
    result.expect_all(count, "answered 200")?;
    Ok(result)
}

/// Writes `count` runs through the API's store, as starts would have
/// stored them, the newest last.
async fn fill(state: &myloware_api::ApiState, count: usize) -> anyhow::Result<Duration> {
    let began = Instant::now();
    let projects = myloware_api::runs::runnable_projects(&state.catalog)
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    ensure!(!projects.is_empty(), "no runnable project in the catalog");
    let now = Utc::now();
    let spread = TimeDelta::days(30).num_seconds() / count as i64;
    for i in 0..count {
        let request = StartRunRequest {
            project: projects[i % projects.len()].clone(),
            input: RunInput {
                topic: Some(format!("benchmark run {i}: candles melting in slow motion")),
                ..RunInput::default()
            },
            options: RunOptions::default(),
        };
        let mut prepared = prepare_start(state, Origin::Api, &request, None, Some("key:bench"))
            .await
            .map_err(|err| anyhow::anyhow!("start {i} refused: {err}"))?;
        let run = &mut prepared.run;
        run.status = match i % 20 {
            0 => RunStatus::Running,
            1 => RunStatus::Failed,
            2 => RunStatus::Cancelled,
            _ => RunStatus::Published,
        };
        if run.status == RunStatus::Published {
            run.result["renderUrl"] = json!(format!("https://cdn.example.com/renders/{}.mp4", run.id));
            run.result["publishUrls"] = json!([format!("https://www.tiktok.com/@mylo/video/{i}")]);
        }
        run.created_at = now - TimeDelta::seconds(spread * (count - i) as i64);
        state.store.insert_run(run).await?;
    }
    Ok(began.elapsed())
}

fn ms(summary: &Summary) -> String {
    format!(
        "p95 {:.2} ms (p50 {:.2}, p99 {:.2})",
        summary.p95, summary.p50, summary.p99
    )
}

async fn run(args: &Args, database_url: &str, postgres: bool, report: &mut Report) -> anyhow::Result<()> {
    let env = service_env(database_url, free_port()?, free_port()?);
    let config = Arc::new(services::config(&env)?);
    let db = Db::connect(database_url, PoolSettings::default()).await?;
    db.migrate().await?;
    let catalog = myloware_core::project::Catalog::load_from(&config.projects)
        .map_err(|err| anyhow::anyhow!("cannot load the projects: {err}"))?;
    let state = myloware_api::ApiState::new(config.clone(), myloware_api::store::open(&db), Arc::new(catalog));
    let took = fill(&state, args.runs).await?;
    println!("{} runs written in {:.2} s", args.runs, took.as_secs_f64());

    let api = services::spawn_api(config, &db).await?;
    let base = format!("http://{}", api.addr);
    // As a browser does (the test kit's console user).
    let session = myloware_testkit::console::Console::sign_in(&base, services::API_KEY)
        .await
        .map_err(|refused| anyhow::anyhow!("sign-in refused: {refused:?}"))?
        .cookie;
    let page = reqwest::Client::new()
        .get(format!("{base}/console"))
        .header("cookie", &session)
        .header("accept", "text/html")
        .send()
        .await?;
    ensure!(page.status() == 200, "GET /console answered {}", page.status());
    let html = page.text().await?;
    let rows = html.matches(r#"<tr><td><a href="/console/runs/"#).count();
    ensure!(rows == PAGE, "the page lists {rows} runs, not {PAGE}");
    let bytes = html.len();
    println!("GET /console: {bytes} bytes, {rows} runs");

    let headers = [("cookie", session.as_str()), ("accept", "text/html")];
    let page_request = load::get_request(api.addr, "/console", &headers);
    measure(api.addr, &page_request, args.warmup.max(1)).await?;
    let page = summarize_us(&measure(api.addr, &page_request, args.requests).await?.latencies_us);
    println!("GET /console                    {}", page.line("ms"));
    let css_request = load::get_request(api.addr, "/console/static/console.css", &[]);
    measure(api.addr, &css_request, args.warmup.max(1)).await?;
    let css = summarize_us(&measure(api.addr, &css_request, args.requests).await?.latencies_us);
    println!("GET /console/static/console.css {}", css.line("ms"));
    let query = RunQuery {
        limit: PAGE as u32 + 1,
        ..RunQuery::default()
    };
    let mut reads = Vec::with_capacity(args.requests);
    for _ in 0..args.requests {
        let began = Instant::now();
        let runs = state.store.list_runs(&query).await?;
        reads.push(began.elapsed().as_secs_f64() * 1e6);
        ensure!(runs.len() == PAGE + 1, "list_runs read {}", runs.len());
    }
    let read = summarize_us(&reads);
    println!("store list_runs(101)            {}", read.line("ms"));
    api.stop().await?;
    db.close().await;

    report.check(Check::new(
        "GET /console (100 runs) under 100 KB",
        format!("{:.1} KB ({bytes} bytes)", bytes as f64 / 1024.0),
        bytes < MAX_PAGE_BYTES,
    ));
    let measured = format!(
        "{}; the store's read alone p95 {:.2} ms, the stylesheet through the same stack p95 {:.2} ms",
        ms(&page),
        read.p95,
        css.p95
    );
    let target = "GET /console rendered in under 20 ms p95 on SQLite";
    if postgres {
        report.check(Check::not_applicable(target, format!("{measured} (Postgres)")));
    } else {
        report.check(Check::new(target, measured, page.p95 < MAX_P95_MS));
    }
    report.detail("runs", json!(args.runs));
    report.detail("page_bytes", json!(bytes));
    report.detail(
        "latency_ms",
        json!({"page": page.to_json(), "stylesheet": css.to_json(), "store_list_runs": read.to_json()}),
    );
    Ok(())
}
