//! The API's state: everything a handler may need, built once from the
//! configuration, the store and the project catalog.

use std::sync::Arc;
use std::time::Duration;

use myloware_core::auth::ApiKeys;
use myloware_core::config::Config;
use myloware_core::internal::InternalKeys;
use myloware_core::project::Catalog;
use myloware_telemetry::HttpMetrics;

use crate::group_commit::CallbackCommitter;
use crate::limiter::{RateLimiter, StreamSlots};
use crate::locks::KeyedLocks;
use crate::metrics::ApiMetrics;
use crate::orchestrator::{HttpOrchestrator, OrchestratorClient};
use crate::store::ApiStore;

/// Everything a handler may need; cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub config: Arc<Config>,
    pub store: Arc<dyn ApiStore>,
    pub catalog: Arc<Catalog>,
    pub orchestrator: Arc<dyn OrchestratorClient>,
    pub metrics: Arc<ApiMetrics>,
    pub api_keys: Arc<ApiKeys>,
    /// The orchestrator's credential on `/v1/internal/*`.
    pub internal: Arc<InternalKeys>,
    pub limiter: Arc<RateLimiter>,
    /// A chat user's turns, one at a time.
    pub chat_locks: Arc<KeyedLocks>,
    /// A run's command deliveries, one drain at a time (see
    /// [`crate::commands::deliver_pending`]).
    pub delivery_locks: Arc<KeyedLocks>,
    /// Verified provider callbacks, committed in groups.
    pub callbacks: Arc<CallbackCommitter>,
    /// Chat messages were queued for a channel.
    pub pushes: Arc<tokio::sync::Notify>,
    /// Outbound HTTP other than the orchestrator (chat channels).
    pub http: reqwest::Client,
    /// The rendered videos (`GET /v1/assets/…`, the approval page's player).
    pub assets: Arc<myloware_assets::AssetStore>,
    /// The console's live-status streams open at once (bounded in all and
    /// per session).
    pub console_streams: Arc<StreamSlots>,
}

impl ApiState {
    /// State with the HTTP orchestrator client of `config`.
    pub fn new(config: Arc<Config>, store: Arc<dyn ApiStore>, catalog: Arc<Catalog>) -> ApiState {
        let orchestrator = Arc::new(HttpOrchestrator::new(
            config.orchestrator_url.clone(),
            config.internal_keys(),
        ));
        ApiState::with_orchestrator(config, store, catalog, orchestrator)
    }

    pub fn with_orchestrator(
        config: Arc<Config>,
        store: Arc<dyn ApiStore>,
        catalog: Arc<Catalog>,
        orchestrator: Arc<dyn OrchestratorClient>,
    ) -> ApiState {
        ApiState {
            assets: Arc::new(myloware_assets::AssetStore::from_config(&config)),
            api_keys: Arc::new(ApiKeys::new(&config.api_keys)),
            internal: Arc::new(config.internal_keys()),
            limiter: Arc::new(RateLimiter::new(config.rate_limit)),
            chat_locks: Arc::default(),
            console_streams: Arc::new(StreamSlots::new(64, 4)),
            delivery_locks: Arc::default(),
            callbacks: Arc::new(CallbackCommitter::new(store.clone())),
            pushes: Arc::default(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(3))
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("the HTTP client builds"),
            metrics: ApiMetrics::new(
                HttpMetrics::new("api", config.telemetry.run_series_ttl, config.telemetry.max_run_series),
                &catalog,
                config.providers_mode,
            ),
            config,
            store,
            catalog,
            orchestrator,
        }
    }
}
