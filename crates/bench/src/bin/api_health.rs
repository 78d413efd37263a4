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
use myloware_bench::harness::{self, Bench, Comparing};
use myloware_bench::report::Report;
use myloware_bench::services::{self, free_port, service_env};
use myloware_core::wire::Health;
use myloware_db::{Db, PoolSettings};
use myloware_telemetry::HttpMetrics;

#[derive(Debug, clap::Args)]
#[command(about = "GET /health, the API against a bare axum handler")]
struct Args {}

impl Bench for Args {
    const NAME: &'static str = "api-health";
}

fn main() -> anyhow::Result<()> {
    // The service's own logging: the request span costs what it costs in
    // production (no event is logged per request at the default level).
    harness::comparison("myloware-api", run)
}

fn run(_: &Args, comparing: &Comparing, report: &mut Report) -> anyhow::Result<()> {
    let env = service_env(&comparing.database_url, free_port()?, free_port()?);
    let config = Arc::new(services::config(&env)?);
    let (db, servers) = comparing.runtimes.servers.block_on(async {
        let db = Db::connect(&comparing.database_url, PoolSettings::default()).await?;
        db.migrate().await?;
        let bare = || axum::Router::new().route("/health", get(|| async { Json(Health::ok("api")) }));
        let mut servers = vec![
            ("bare", services::spawn_router(bare()).await?),
            ("api", services::spawn_api(config.clone(), &db).await?),
        ];
        if comparing.load.breakdown {
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

    let comparison = comparing.compare(servers, &["/health".to_string()], &[]);
    comparing.runtimes.servers.block_on(db.close());
    let target = "GET /health ≥ 60 % of a bare axum handler";
    comparing.check_throughput(&comparison?, report, target, 0.60);
    Ok(())
}
