//! `GET /openapi.json`: the document, built from the `#[utoipa::path]`
//! operations of every routes module plus what their layers answer (auth,
//! rate limits, the server loop's deadlines), so it lists every status a
//! route can return.

use std::collections::BTreeSet;

use axum::middleware::from_fn_with_state;
use axum::routing::MethodRouter;
use myloware_core::auth::{Permission, Role};
use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use super::schema::NUL_FREE;
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
        let schemes = [
            (
                "api_key",
                "x-api-key",
                "An operator key (`API_KEYS` entry `name:role:key`); the role decides the routes",
            ),
            (
                "internal",
                myloware_core::internal::HEADER,
                "The orchestrator's signature (`t=<unix>,v1=<hex HMAC-SHA256>` with INTERNAL_SECRET over method, path, time and body); see docs/security.md",
            ),
        ];
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, header, description) in schemes {
            components.add_security_scheme(
                name,
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(header, description))),
            );
        }
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
/// the answers of the layers around every route, and the rules the
/// handlers enforce that the types alone do not say ([`refine`]).
pub fn finish(mut openapi: utoipa::openapi::OpenApi, state: &ApiState) -> Value {
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
    let mut doc = serde_json::to_value(&openapi).expect("the OpenAPI document serializes");
    refine(&mut doc, state);
    doc
}

/// `GET /openapi.json`, behind the API key like every route not listed as
/// open in docs/api.md.
pub fn route(state: &ApiState, openapi: Value) -> MethodRouter<ApiState> {
    let body = bytes::Bytes::from(serde_json::to_vec(&openapi).expect("the OpenAPI document serializes"));
    axum::routing::get(move || {
        let body = body.clone();
        async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], body) }
    })
    .route_layer(from_fn_with_state(
        (state.clone(), Permission::Read),
        middleware::require,
    ))
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

/// The rules of the handlers that the derived schemas do not carry: the
/// error bodies of every refusal, NUL-free text in every request, and what
/// each routes module adds (`refine_schema` there).
fn refine(doc: &mut Value, state: &ApiState) {
    let schemas = &mut doc["components"]["schemas"];
    schemas["ValidationErrorBody"] = json!({
        "type": "object",
        "description": "A 422: one entry per field that is wrong, `loc` its path (`[\"body\", \"input\"]`).",
        "required": ["detail"],
        "properties": {"detail": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}}},
    });
    schemas["JsonValue"] = json!({
        "description": "Any JSON value whose text (keys and strings, at any depth) holds no NUL character.",
        "anyOf": [
            {"type": "string", "pattern": NUL_FREE},
            {"type": ["number", "boolean", "null"]},
            {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
            {
                "type": "object",
                "propertyNames": {"pattern": NUL_FREE},
                "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
            },
        ],
    });
    super::runs::refine_schema(doc, state);
    super::schedules::refine_schema(doc, state);
    super::chat::refine_schema(doc);
    super::webhooks::refine_schema(doc);
    super::dlq::refine_schema(doc);
    super::audit::refine_schema(doc);
    super::costs::refine_schema(doc);
    super::system::refine_schema(doc);
    body_answers(doc);
    error_bodies(doc);
    // After the error bodies: the link routes add their pages to them.
    super::hitl::refine_schema(doc);
    nul_free_requests(doc);
}

/// What the JSON body extractors (`ValidJson`, `OptionalJson`, `JsonBytes`)
/// answer, on every operation whose body is JSON only; a status the route
/// lists itself keeps its own description.
fn body_answers(doc: &mut Value) {
    let answers = [
        ("400", "The body could not be read"),
        ("413", "Body over MAX_BODY_BYTES (the message states the limit)"),
        (
            "415",
            "No JSON content type (`application/json` or `application/*+json`)",
        ),
        (
            "422",
            "A body that does not parse into its schema, or holds a NUL character",
        ),
    ];
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for operation in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
    {
        let json_only = operation
            .get("requestBody")
            .and_then(|body| body["content"].as_object())
            .is_some_and(|content| content.keys().eq(["application/json"]));
        if !json_only {
            continue;
        }
        for (status, description) in answers {
            let responses = &mut operation["responses"];
            match responses.get_mut(status) {
                None => responses[status] = json!({"description": description}),
                // The layers' 400 (a NUL in the URL) is this one's too.
                Some(listed) if status == "400" => {
                    let said = listed["description"].as_str().unwrap_or_default();
                    if !said.contains("body") {
                        listed["description"] = json!(format!("{said}; or {}", description.to_lowercase()));
                    }
                }
                Some(_) => {}
            }
        }
    }
}

/// Every refusal (4xx, 5xx) without a body of its own says it is the
/// error body: `{"detail": "..."}`, or for 422 the list form.
fn error_bodies(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for operation in item.values_mut() {
            let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            for (status, response) in responses.iter_mut() {
                if !(status.starts_with('4') || status.starts_with('5')) || response.get("content").is_some() {
                    continue;
                }
                let schema = if status == "422" {
                    "ValidationErrorBody"
                } else {
                    "ErrorBody"
                };
                response["content"] = json!({
                    "application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}
                });
            }
        }
    }
}

/// Adds [`NUL_FREE`] to every string of a request (parameters, bodies and
/// the schemas they name) that has no pattern, enum or format of its own.
fn nul_free_requests(doc: &mut Value) {
    let mut named = BTreeSet::new();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for operation in item.values_mut() {
                if let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) {
                    for parameter in parameters {
                        if let Some(schema) = parameter.get_mut("schema") {
                            nul_free(schema, &mut named);
                        }
                    }
                }
                if let Some(content) = operation
                    .get_mut("requestBody")
                    .and_then(|body| body.get_mut("content"))
                    .and_then(Value::as_object_mut)
                {
                    for schema in content.values_mut().filter_map(|media| media.get_mut("schema")) {
                        nul_free(schema, &mut named);
                    }
                }
            }
        }
    }
    let mut done = BTreeSet::new();
    while let Some(name) = named.iter().find(|n| !done.contains(*n)).cloned() {
        done.insert(name.clone());
        if let Some(schema) = doc["components"]["schemas"].get_mut(&name) {
            nul_free(schema, &mut named);
        }
    }
}

fn nul_free(schema: &mut Value, named: &mut BTreeSet<String>) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if let Some(name) = object
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        named.insert(name.to_string());
    }
    let is_string = match object.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(types)) => types.iter().any(|t| t == "string"),
        _ => false,
    };
    if is_string
        && !["pattern", "enum", "format", "const"]
            .iter()
            .any(|k| object.contains_key(*k))
    {
        object.insert("pattern".into(), NUL_FREE.into());
    }
    // An object's other members: NUL-free names, NUL-free JSON values.
    let is_object = match object.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(types)) => types.iter().any(|t| t == "object"),
        _ => object.contains_key("properties"),
    };
    if is_object && matches!(object.get("additionalProperties"), None | Some(Value::Bool(true))) {
        object.insert(
            "additionalProperties".into(),
            json!({"$ref": "#/components/schemas/JsonValue"}),
        );
    }
    if object.get("additionalProperties").is_some_and(|extra| extra != false) && !object.contains_key("propertyNames") {
        object.insert("propertyNames".into(), json!({"pattern": NUL_FREE}));
    }
    for (key, value) in object.iter_mut() {
        match key.as_str() {
            "properties" => {
                if let Some(properties) = value.as_object_mut() {
                    for property in properties.values_mut() {
                        nul_free(property, named);
                    }
                }
            }
            "items" | "additionalProperties" | "propertyNames" | "not" => nul_free(value, named),
            "allOf" | "anyOf" | "oneOf" => {
                if let Some(branches) = value.as_array_mut() {
                    for branch in branches {
                        nul_free(branch, named);
                    }
                }
            }
            _ => {}
        }
    }
}
