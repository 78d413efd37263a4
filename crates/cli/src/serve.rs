//! `mw serve api|orchestrator`, `mw dev`, `mw migrate`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use myloware_api::{ApiServer, ApiState};
use myloware_core::config::Config;
use myloware_db::{Db, PoolSettings};
use myloware_http::{Server, Service};
use myloware_orchestrator::{OrchestratorServer, OrchestratorState};
use secrecy::ExposeSecret;
use tokio::sync::watch;

use crate::env;

async fn open_database(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect(config.database_url.expose_secret(), PoolSettings::default())
        .await
        .with_context(|| format!("database {}", config.database_url_redacted()))?;
    db.migrate().await?;
    Ok(db)
}

/// Resolves on SIGINT or SIGTERM; every subscriber of the returned channel
/// sees it.
fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = tx.send(true);
    });
    rx
}

async fn until(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Binds `service`'s address; the error names `what` and the address.
async fn bind<S: Service>(service: S, what: &str) -> anyhow::Result<Server<S>> {
    let (host, port) = service.address();
    Server::bind(service)
        .await
        .with_context(|| format!("binding {what} to {host}:{port}"))
}

fn api_state(config: Arc<Config>, db: &Db) -> anyhow::Result<ApiState> {
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let catalog = Arc::new(env::catalog(&config)?);
    tracing::info!(projects = %config.projects, names = ?catalog.names(), "project catalog loaded");
    Ok(ApiState::new(config, myloware_api::store::open(db), catalog))
}

fn orchestrator_state(config: Arc<Config>, db: &Db) -> anyhow::Result<OrchestratorState> {
    Ok(OrchestratorState::new(config, myloware_orchestrator::store::open(db)))
}

async fn api_server(config: Arc<Config>, db: &Db) -> anyhow::Result<ApiServer> {
    bind(api_state(config, db)?, "the API").await
}

async fn orchestrator_server(config: Arc<Config>, db: &Db) -> anyhow::Result<OrchestratorServer> {
    bind(orchestrator_state(config, db)?, "the orchestrator").await
}

/// One service on its own (`mw serve api|orchestrator`) until SIGINT or SIGTERM.
async fn serve_alone<S: Service>(
    service: &str,
    what: &str,
    state: fn(Arc<Config>, &Db) -> anyhow::Result<S>,
) -> anyhow::Result<()> {
    let config = Arc::new(env::config()?);
    let tracing = env::init_tracing(&config, service);
    let db = open_database(&config).await?;
    let server = bind(state(config, &db)?, what).await?;
    server.run(until(shutdown_signal())).await?;
    db.close().await;
    flush(tracing).await;
    Ok(())
}

pub async fn api() -> anyhow::Result<()> {
    serve_alone("myloware-api", "the API", api_state).await
}

pub async fn orchestrator() -> anyhow::Result<()> {
    serve_alone("myloware-orchestrator", "the orchestrator", orchestrator_state).await
}

/// Both services in one process, mock providers, one database.
pub async fn dev() -> anyhow::Result<()> {
    let started = Instant::now();
    // Development always mocks providers, whatever the environment says.
    let mut config = env::config_with(&[("USE_MOCK_PROVIDERS", "true"), ("PROVIDERS_MODE", "mock")])?;
    // Both services live in this process: a fresh internal secret each
    // start, known to nothing outside it.
    if config.internal_secret.is_none() {
        let secret: String = rand::random::<[u8; 32]>().iter().map(|b| format!("{b:02x}")).collect();
        config.internal_secret = Some(secret.into());
    }
    let config = Arc::new(config);
    let tracing = env::init_tracing(&config, "myloware");
    let db = open_database(&config).await?;
    let orchestrator = orchestrator_server(config.clone(), &db).await?;
    let api = api_server(config.clone(), &db).await?;
    let (api_addr, orchestrator_addr) = (api.local_addr(), orchestrator.local_addr());
    let stop = shutdown_signal();
    let orchestrator = tokio::spawn(orchestrator.run(until(stop.clone())));
    let api = tokio::spawn(api.run(until(stop)));
    tracing::info!(
        api = %api_addr,
        orchestrator = %orchestrator_addr,
        database = %config.database_url_redacted(),
        ready_ms = started.elapsed().as_millis() as u64,
        "mw dev ready (mock providers)"
    );
    let (api, orchestrator) = tokio::join!(api, orchestrator);
    api??;
    orchestrator??;
    db.close().await;
    flush(tracing).await;
    Ok(())
}

/// Exports the spans still queued (the exporter blocks; off the runtime).
async fn flush(tracing: Option<myloware_telemetry::trace::Tracing>) {
    if let Some(tracing) = tracing {
        let _ = tokio::task::spawn_blocking(move || tracing.shutdown()).await;
    }
}

pub async fn migrate() -> anyhow::Result<()> {
    let config = env::config()?;
    let db = open_database(&config).await?;
    println!("migrations applied to {}", config.database_url_redacted());
    db.close().await;
    Ok(())
}
