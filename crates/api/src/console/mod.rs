//! The operators' console, `/console` on the API: server-rendered pages
//! (askama templates, every value HTML-escaped), one stylesheet and one
//! small script served from the binary, no build step. Signed in with an
//! API key turned into a server-side session ([`session`]); what a page
//! offers follows the key's role, and every POST is checked again
//! (role and CSRF token). Every response carries a strict CSP with
//! `frame-ancestors 'none'`.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::map_response_with_state;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use myloware_core::config::Environment;

use crate::error::ApiError;
use crate::state::ApiState;

mod ops;
mod ops_views;
mod pages;
mod session;
mod views;

pub use session::Session;
use session::refused;

const CSS: &str = include_str!("../../static/console.css");
const JS: &str = include_str!("../../static/console.js");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   media-src 'self' https:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                   base-uri 'none'";
/// Development plays the mock provider's `http` videos too.
const CSP_DEVELOPMENT: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                               media-src 'self' https: http:; connect-src 'self'; form-action 'self'; \
                               frame-ancestors 'none'; base-uri 'none'";

pub fn router(state: &ApiState) -> Router<ApiState> {
    Router::new()
        .route("/console", get(pages::runs))
        .route("/console/login", get(session::login_page).post(session::login))
        .route("/console/logout", post(session::logout))
        .route("/console/events", get(pages::events))
        .route("/console/runs/{run_id}", get(pages::run))
        .route("/console/runs/{run_id}/cancel", post(pages::cancel))
        .route("/console/runs/{run_id}/retry", post(pages::retry))
        .route("/console/runs/{run_id}/gates/{gate}/{verdict}", post(pages::decide))
        .route("/console/inbox", get(pages::inbox))
        .route("/console/schedules", get(ops::schedules).post(ops::create_schedule))
        .route("/console/schedules/{id}/pause", post(ops::pause_schedule))
        .route("/console/schedules/{id}/resume", post(ops::resume_schedule))
        .route("/console/schedules/{id}/delete", post(ops::delete_schedule))
        .route("/console/costs", get(ops::costs))
        .route("/console/ops", get(ops::operations))
        .route("/console/dlq/{seq}/replay", post(ops::replay))
        .route(
            "/console/static/console.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/console/static/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
        .layer(map_response_with_state(state.config.environment, headers))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Renders a template; writing into a `String` fails only if a value's
/// `Display` does, which none of these do.
fn render(template: &impl Template) -> Html<String> {
    Html(template.render().unwrap_or_else(|err| {
        tracing::error!(error = %err, "a console page did not render");
        "<!doctype html><title>Error</title><p>This page could not be shown.</p>".to_string()
    }))
}

/// The page for an API error: its status and what went wrong, each field
/// of a refused form named; an unexpected error is logged, not shown.
pub(crate) fn failed(err: ApiError) -> Response {
    let message = match &err {
        ApiError::Validation(_) => field_errors(&err).join("; "),
        ApiError::Internal(cause) => {
            tracing::error!(error = ?cause, "a console action failed");
            "Something went wrong on our side; it was logged. Try again.".to_string()
        }
        other => other.to_string(),
    };
    refused(err.status(), &message)
}

/// `input.subject: at most 2000 characters`, one line per field at fault.
pub(crate) fn field_errors(err: &ApiError) -> Vec<String> {
    match err {
        ApiError::Validation(errors) => errors
            .iter()
            .map(|e| {
                let loc: Vec<&str> = e.loc.iter().map(String::as_str).filter(|l| *l != "body").collect();
                match loc.is_empty() {
                    true => e.msg.clone(),
                    false => format!("{}: {}", loc.join("."), e.msg),
                }
            })
            .collect(),
        other => vec![other.to_string()],
    }
}

/// The console's security headers, on every response.
async fn headers(State(environment): State<Environment>, mut response: Response) -> Response {
    let csp = if environment == Environment::Development {
        CSP_DEVELOPMENT
    } else {
        CSP
    };
    let set: [(HeaderName, &'static str); 4] = [
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    let headers = response.headers_mut();
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    // Pages are personal: never cached (the two static files are).
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
