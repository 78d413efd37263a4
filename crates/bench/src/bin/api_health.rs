//! `api-health`: `GET /health` of the real API against a bare axum handler
//! that answers the same JSON, under the same closed-loop load in the same
//! run. Target: ≥ 60 % of the bare handler's throughput.
//!
//! The real side is `myloware_api::ApiServer` in this process with every
//! layer (request id and its span, metrics, body limit, panic catcher,
//! OpenAPI routes) and the service's JSON logs; the ceiling is
//! `Router::new().route("/health", get(|| Json(Health::ok("api"))))`.

use std::sync::Arc;

use axum::Json;
use axum::routing::get;
use clap::Parser;
use myloware_bench::compare::{self, LoadArgs, Runtimes, Side};
use myloware_bench::db::BenchDb;
use myloware_bench::report::{Check, Machine, Report};
use myloware_bench::services::{self, free_port, service_env};
use myloware_core::wire::Health;
use myloware_db::{Db, PoolSettings};
use myloware_telemetry::HttpMetrics;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(name = "api-health", about = "GET /health of the API against a bare axum handler")]
struct Args {
    #[command(flatten)]
    load: LoadArgs,
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    args.load.apply_quick();
    let runtimes = Runtimes::new(&args.load)?;
    // The service's own logging: the request span costs what it costs in
    // production (no event is logged per request at the default level).
    myloware_telemetry::logging::init(true, None, "myloware-api");

    let mut report = Report::new("api-health", Machine::probe());
    println!("api-health: GET /health, the API against a bare axum handler");
    report.machine.print();
    println!(
        "  load        {} connections, {} rounds of {} s per side (+{} s warm-up), {:?} client",
        args.load.connections, args.load.rounds, args.load.secs, args.load.warmup_secs, args.load.client
    );
    println!();

    let bench_db = runtimes.servers.block_on(BenchDb::prepare(None))?;
    let outcome = run(&args, &runtimes, &bench_db.url, &mut report);
    runtimes.servers.block_on(bench_db.cleanup());
    outcome?;
    report.print();
    Ok(())
}

fn run(args: &Args, runtimes: &Runtimes, database_url: &str, report: &mut Report) -> anyhow::Result<()> {
    let env = service_env(database_url, free_port()?, free_port()?);
    let config = Arc::new(services::config(&env)?);
    let (db, servers) = runtimes.servers.block_on(async {
        let db = Db::connect(database_url, PoolSettings::default()).await?;
        db.migrate().await?;
        let bare = || axum::Router::new().route("/health", get(|| async { Json(Health::ok("api")) }));
        let mut servers = vec![
            ("bare", services::spawn_router(bare()).await?),
            ("api", services::spawn_api(config.clone(), &db).await?),
        ];
        if args.load.breakdown {
            // The API's two middlewares that do work per request, each
            // alone on the bare handler.
            let request_id = bare().layer(axum::middleware::from_fn(myloware_http::request_id::request_id));
            let metrics = bare().route_layer(axum::middleware::from_fn_with_state(
                HttpMetrics::new("api", config.telemetry.run_series_ttl, config.telemetry.max_run_series),
                myloware_telemetry::track_http,
            ));
            servers.push(("+request-id", services::spawn_router(request_id).await?));
            servers.push(("+metrics", services::spawn_router(metrics).await?));
        }
        anyhow::Ok((db, servers))
    })?;

    let sides: Vec<Side> = servers
        .iter()
        .map(|(name, server)| Side {
            name,
            addr: server.addr,
            paths: vec!["/health".to_string()],
        })
        .collect();
    let comparison = runtimes.load.block_on(compare::compare(&sides, &[], &args.load))?;
    runtimes.servers.block_on(async {
        for (_, server) in servers {
            server.stop().await?;
        }
        db.close().await;
        anyhow::Ok(())
    })?;

    let ratio = comparison.median_ratio();
    println!();
    comparison.print();
    let (ceiling, real) = (comparison.ceiling(), comparison.real());
    let clean = real.refused + real.errors + ceiling.errors == 0;
    report.check(Check::new(
        "GET /health ≥ 60 % of a bare axum handler",
        format!(
            "{:.0} % ({:.0} vs {:.0} req/s, median of {} rounds)",
            ratio * 100.0,
            real.median_rate(),
            ceiling.median_rate(),
            comparison.ratios.len()
        ),
        ratio >= 0.60 && clean,
    ));
    report.detail("connections", json!(args.load.connections));
    report.detail("client", json!(format!("{:?}", args.load.client).to_lowercase()));
    report.detail("comparison", comparison.to_json());
    Ok(())
}
