//! `mw ingest run [--dry-run]`: validate the project definitions and load
//! the knowledge base.

use myloware_core::providers::Provider;
use myloware_db::{Db, PoolSettings};
use secrecy::ExposeSecret;

use crate::env;

pub async fn run(dry_run: bool) -> anyhow::Result<()> {
    let config = env::config()?;
    env::init_logging(&config);
    let catalog = env::catalog(&config)?;
    let docs = catalog.knowledge_documents();
    println!(
        "projects: {} ({}), personas: {}, guardrails: {}, knowledge documents: {} ({})",
        catalog.projects.len(),
        catalog.names().join(", "),
        catalog.prompts.len(),
        catalog.guardrail_count(),
        docs.len(),
        config.projects
    );
    for provider in Provider::ALL {
        tracing::info!(
            provider = provider.key(),
            host = config.providers.endpoint(provider).host(),
            mode = %config.providers_mode,
            configured = config.providers.is_configured(provider),
            "provider host"
        );
    }
    if dry_run {
        println!("dry run: nothing written");
        return Ok(());
    }
    let db = Db::connect(config.database_url.expose_secret(), PoolSettings::default()).await?;
    db.migrate().await?;
    let store = myloware_orchestrator::store::open(&db);
    store.replace_knowledge(&docs).await?;
    println!(
        "loaded {} knowledge documents into {}",
        store.knowledge_count().await?,
        config.database_url_redacted()
    );
    db.close().await;
    Ok(())
}
