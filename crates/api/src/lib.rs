//! The public API service: runs, projects, (later) HITL gates, provider
//! webhooks and chat. `build` binds the listener; `run` serves until told
//! to stop, with the start reconciler beside it.
//!
//! Crate graph: `myloware-api` may import `myloware-core`, `myloware-db`,
//! `myloware-telemetry`, `myloware-http` and `myloware-providers`, never
//! `myloware-orchestrator` (it talks to it over HTTP); only `myloware-cli`
//! (and the benchmarks) import it.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::from_fn_with_state;
use myloware_core::config::Config;
use myloware_core::project::Catalog;
use myloware_telemetry::HttpMetrics;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod chat;
pub mod commands;
pub mod dlq;
pub mod error;
pub mod events;
pub mod hitl;
pub mod locks;
pub mod metrics;
pub mod middleware;
pub mod orchestrator;
pub mod page;
pub mod routes;
pub mod runs;
pub mod store;

use middleware::RateLimiter;
use myloware_core::auth::{ApiKeys, Permission, Role};
use myloware_core::internal::InternalKeys;
use orchestrator::{HttpOrchestrator, OrchestratorClient};
use store::ApiStore;

/// Everything a handler may need; cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub config: Arc<Config>,
    pub store: Arc<dyn ApiStore>,
    pub catalog: Arc<Catalog>,
    pub orchestrator: Arc<dyn OrchestratorClient>,
    pub metrics: Arc<metrics::ApiMetrics>,
    pub api_keys: Arc<ApiKeys>,
    /// The orchestrator's credential on `/v1/internal/*`.
    pub internal: Arc<InternalKeys>,
    pub limiter: Arc<RateLimiter>,
    /// A chat user's turns, one at a time.
    pub chat_locks: Arc<locks::KeyedLocks>,
    /// A run's command deliveries, one drain at a time (see
    /// [`commands::deliver_pending`]).
    pub delivery_locks: Arc<locks::KeyedLocks>,
    /// Chat messages were queued for a channel.
    pub pushes: Arc<tokio::sync::Notify>,
    /// Outbound HTTP other than the orchestrator (chat channels).
    pub http: reqwest::Client,
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
            api_keys: Arc::new(ApiKeys::new(&config.api_keys)),
            internal: Arc::new(config.internal_keys()),
            limiter: Arc::new(RateLimiter::new(config.rate_limit)),
            chat_locks: Arc::default(),
            delivery_locks: Arc::default(),
            pushes: Arc::default(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(3))
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("the HTTP client builds"),
            metrics: metrics::ApiMetrics::new(
                HttpMetrics::new("api", config.telemetry.run_series_ttl, config.telemetry.max_run_series),
                &catalog,
            ),
            config,
            store,
            catalog,
            orchestrator,
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "MyloWare API", description = "Runs, projects, HITL gates, provider webhooks and chat."),
    modifiers(&ApiKeyScheme),
    components(schemas(myloware_core::ErrorBody, myloware_core::error::FieldError)),
)]
struct ApiDoc;

struct ApiKeyScheme;

impl utoipa::Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "api_key",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "x-api-key",
                    "An operator key (`API_KEYS` entry `name:role:key`); the role decides the routes",
                ))),
            );
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "internal",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    myloware_core::internal::HEADER,
                    "The orchestrator's signature (`t=<unix>,v1=<hex HMAC-SHA256>` with INTERNAL_SECRET over method, path, time and body); see docs/security.md",
                ))),
            );
    }
}

/// The routes and the OpenAPI document, declared together, grouped by who
/// may call them: anyone (health, metrics), strangers whose requests prove
/// themselves (provider webhooks, approval links, Telegram; refusals are
/// rate-limited per address), the orchestrator (its internal credential
/// only), and operator keys by the permission their role must grant.
fn api_routes(state: &ApiState) -> (Router<ApiState>, utoipa::openapi::OpenApi) {
    let public = OpenApiRouter::<ApiState>::new()
        .routes(routes!(routes::system::health))
        .routes(routes!(routes::system::metrics));
    let open = OpenApiRouter::<ApiState>::new()
        .routes(routes!(routes::webhooks::kieai))
        .routes(routes!(routes::webhooks::upload_post))
        .routes(routes!(routes::chat::telegram))
        .route_layer(from_fn_with_state(state.clone(), middleware::limit_refusals))
        // The approval pages take the same limit inside their security headers.
        .merge(routes::hitl::link_routes(state));
    let open = documented(
        open,
        None,
        &[("429", "Too many refused requests from this address (see `Retry-After`)")],
    );
    let internal = OpenApiRouter::<ApiState>::new()
        .routes(routes!(routes::internal::receive_events))
        .route_layer(from_fn_with_state(state.clone(), middleware::require_internal));
    let internal = documented(
        internal,
        Some("internal"),
        &[
            (
                "401",
                "Missing, stale or wrong internal credential (operator keys are refused)",
            ),
            ("429", "Too many refused requests from this address (see `Retry-After`)"),
        ],
    );
    let with = |permission: Permission, routes: OpenApiRouter<ApiState>| {
        let routes = routes.route_layer(from_fn_with_state((state.clone(), permission), middleware::require));
        documented(routes, Some("api_key"), key_answers(permission))
    };
    let read = with(
        Permission::Read,
        OpenApiRouter::new()
            .routes(routes!(routes::system::ready))
            .routes(routes!(routes::projects::list_projects))
            .routes(routes!(routes::projects::get_project))
            .routes(routes!(routes::runs::list_runs))
            .routes(routes!(routes::runs::get_run))
            .routes(routes!(routes::runs::list_artifacts))
            .routes(routes!(routes::chat::messages))
            .routes(routes!(routes::dlq::list)),
    );
    let operate = with(
        Permission::Operate,
        OpenApiRouter::new()
            .routes(routes!(routes::runs::start_run))
            .routes(routes!(routes::runs::cancel_run))
            .routes(routes!(routes::chat::brendan))
            .routes(routes!(routes::dlq::replay)),
    );
    let decide = with(
        Permission::Decide,
        OpenApiRouter::new()
            .routes(routes!(routes::hitl::link))
            .routes(routes!(routes::hitl::pending)),
    );
    let administer = with(
        Permission::Administer,
        OpenApiRouter::new().routes(routes!(routes::retention::prune)),
    );
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(public)
        .merge(open)
        .merge(internal)
        .merge(read)
        .merge(operate)
        .merge(decide)
        .merge(administer)
        .split_for_parts()
}

/// What the API-key layer ([`middleware::require`]) answers for routes
/// that need `permission`: 401, and 403 only if some role lacks it (every
/// role may read).
fn key_answers(permission: Permission) -> &'static [(&'static str, &'static str)] {
    const ANSWERS: &[(&str, &str)] = &[
        ("401", "Missing or invalid API key"),
        ("403", "The key's role lacks the permission"),
    ];
    if Role::ALL.iter().all(|role| role.allows(permission)) {
        &ANSWERS[..1]
    } else {
        ANSWERS
    }
}

/// Sets the security scheme of every operation of `routes` and adds the
/// answers its layers give (401/403 of the auth layers, 429 of the refusal
/// limit), so the document lists every status a route can answer.
fn documented(
    mut routes: OpenApiRouter<ApiState>,
    security: Option<&str>,
    answers: &[(&str, &str)],
) -> OpenApiRouter<ApiState> {
    for item in routes.get_openapi_mut().paths.paths.values_mut() {
        for operation in operations_mut(item) {
            document(operation, security, answers);
        }
    }
    routes
}

/// One operation of [`documented`]: its security scheme and its layers'
/// answers (a status the route itself lists keeps its own description).
fn document(operation: &mut Operation, security: Option<&str>, answers: &[(&str, &str)]) {
    use utoipa::openapi::security::SecurityRequirement;
    if let Some(scheme) = security {
        operation.security = Some(vec![SecurityRequirement::new::<&str, [&str; 0], &str>(scheme, [])]);
    }
    for (status, description) in answers {
        operation
            .responses
            .responses
            .entry((*status).to_string())
            .or_insert_with(|| utoipa::openapi::Response::new(*description).into());
    }
}

/// Every operation of a path item, whatever its method.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

/// The API's router with every layer.
pub fn router(state: ApiState) -> Router {
    let (routes, mut openapi) = api_routes(&state);
    let mut document_itself = utoipa::openapi::path::OperationBuilder::new()
        .summary(Some("This document"))
        .tag("system")
        .response("200", utoipa::openapi::Response::new("The OpenAPI document"))
        .build();
    // Behind the Read permission, like the `read` routes.
    document(&mut document_itself, Some("api_key"), key_answers(Permission::Read));
    openapi.paths.paths.insert(
        "/openapi.json".into(),
        PathItem::new(utoipa::openapi::HttpMethod::Get, document_itself),
    );
    document_server_limits(&mut openapi);
    let openapi = Arc::new(openapi);
    let limit = state.config.max_body_bytes;
    let routes = routes.route(
        "/openapi.json",
        // Like every route not listed as open in docs/api.md: the API key.
        axum::routing::get(move || {
            let openapi = openapi.clone();
            async move { axum::Json(openapi.as_ref().clone()) }
        })
        .route_layer(from_fn_with_state(
            (state.clone(), Permission::Read),
            middleware::require,
        )),
    );
    let metrics = state.metrics.http.clone();
    let limits = state.config.http;
    myloware_http::stack::layered(routes, state, metrics, limits, limit)
}

/// A bound, not yet serving, API (`bind`, `with_listener`, `run`).
pub type ApiServer = myloware_http::Server<ApiState>;

impl myloware_http::Service for ApiState {
    const NAME: &'static str = "api";

    fn config(&self) -> &Config {
        &self.config
    }

    fn port(&self) -> u16 {
        self.config.api_port
    }

    fn router(&self) -> Router {
        router(self.clone())
    }

    /// The start reconciler and the chat pusher.
    fn background(&self, stop: tokio::sync::watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(commands::reconcile(self.clone(), Duration::from_secs(1), stop.clone())),
            tokio::spawn(chat::push_loop(self.clone(), Duration::from_secs(1), stop)),
        ]
    }
}

/// The layers around every route may answer it: 400 (a NUL in the URL,
/// refused by the request-id layer), 500 (a handler panicked, or an
/// unexpected error), and the server loop's (`myloware_http::server`)
/// 408 (body too slow) or 503 (not answered in time). Every operation says
/// so; a status the route lists itself keeps its own description.
fn document_server_limits(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    let answers = [
        ("400", "The URL contains a NUL character (%00)"),
        ("408", "The request body did not arrive within HTTP_BODY_TIMEOUT_SECS"),
        ("500", "Unexpected error (logged; the answer holds no internals)"),
        ("503", "Not answered within HTTP_REQUEST_TIMEOUT_SECS"),
    ];
    for item in openapi.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            for (status, description) in answers {
                operation
                    .responses
                    .responses
                    .entry(status.into())
                    .or_insert_with(|| error(description).into());
            }
        }
    }
}
