//! `GET /openapi.json`: the document, built from the `#[utoipa::path]`
//! operations of every routes module plus what their layers answer (auth,
//! rate limits, the server loop's deadlines), so it lists every status a
//! route can return.

use std::sync::Arc;

use axum::middleware::from_fn_with_state;
use axum::routing::MethodRouter;
use myloware_core::auth::{Permission, Role};
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::middleware;
use crate::state::ApiState;

#[derive(OpenApi)]
#[openapi(
    info(title = "MyloWare API", description = "Runs, projects, HITL gates, provider webhooks and chat."),
    modifiers(&ApiKeyScheme),
    components(schemas(myloware_core::ErrorBody, myloware_core::error::FieldError)),
)]
struct ApiDoc;

/// The document before any route is added.
pub fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

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

/// The 429 of [`middleware::limit_refusals`] on open and internal routes.
pub(crate) const REFUSALS_LIMITED: (&str, &str) =
    ("429", "Too many refused requests from this address (see `Retry-After`)");

/// What the API-key layer ([`middleware::require`]) answers for routes
/// that need `permission`: 401, and 403 only if some role lacks it (every
/// role may read).
pub(crate) fn key_answers(permission: Permission) -> &'static [(&'static str, &'static str)] {
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
pub(crate) fn documented(
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

/// The finished document: the routes' operations, `/openapi.json` itself,
/// and the answers of the layers around every route.
pub fn finish(mut openapi: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
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
    openapi
}

/// `GET /openapi.json`, behind the API key like every route not listed as
/// open in docs/api.md.
pub fn route(state: &ApiState, openapi: utoipa::openapi::OpenApi) -> MethodRouter<ApiState> {
    let openapi = Arc::new(openapi);
    axum::routing::get(move || {
        let openapi = openapi.clone();
        async move { axum::Json(openapi.as_ref().clone()) }
    })
    .route_layer(from_fn_with_state(
        (state.clone(), Permission::Read),
        middleware::require,
    ))
}

/// The layers around every route may answer it: 400 (a NUL in the URL,
/// refused by the request-id layer), 500 (a handler panicked, or an
/// unexpected error), and the server loop's (`myloware_telemetry::server`)
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
