//! Signing in to the console: an API key, checked once, becomes a
//! server-side session (a random id in an `HttpOnly`, `SameSite=Strict`
//! cookie, `Secure` outside development; only its SHA-256 is stored) with
//! an idle and an absolute expiry. Every POST carries the session's CSRF
//! token (the sign-in form a token of its own, double-submitted in a
//! cookie). A session's role is its key's as configured now: a key removed
//! or changed ends or changes its sessions.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, extract::Query};
use chrono::{TimeDelta, Utc};
use myloware_core::auth::{ApiKeys, Permission, Principal};
use myloware_core::config::Environment;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::render;
use super::views::{LoginPage, Notice};
use crate::audit;
use crate::middleware::{ClientId, ClientIp, LimitedRoute};
use crate::state::ApiState;
use crate::store::{AuditAction, AuditEntry, ConsoleSession};

/// The session cookie.
const COOKIE: &str = "mw_console";
/// The sign-in form's own CSRF cookie (before there is a session).
const LOGIN_COOKIE: &str = "mw_console_login";
/// A session's `last_seen_at` is written at most this often.
const TOUCH_EVERY: TimeDelta = TimeDelta::seconds(60);

/// 32 random bytes, hex.
fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn digest(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The value of cookie `name` of the request.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// `Set-Cookie` of `name`: `HttpOnly`, `SameSite=Strict`, path `/console`,
/// `Secure` outside development; `max_age` 0 deletes it.
fn set_cookie(state: &ApiState, name: &str, value: &str, max_age: i64) -> String {
    let secure = if state.config.environment == Environment::Development {
        ""
    } else {
        "; Secure"
    };
    format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// A signed-in operator: who (the key's name and its role now), and the
/// token every form of theirs carries.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    pub csrf: String,
    id_hash: String,
}

impl Session {
    /// The stored id of the session (its SHA-256).
    pub fn id(&self) -> &str {
        &self.id_hash
    }

    pub fn allows(&self, permission: Permission) -> bool {
        self.principal.allows(permission)
    }

    /// `key:<name>`, as the audit and the gates name an API key.
    pub fn actor(&self) -> String {
        format!("key:{}", self.principal.name)
    }

    /// The refusal (403) of a POST without this session's CSRF token, or
    /// of one the key's role may not make; `None` when it may go on.
    pub fn refusal(&self, csrf: Option<&str>, permission: Permission) -> Option<Response> {
        if !csrf.is_some_and(|token| same(token, &self.csrf)) {
            return Some(refused(
                StatusCode::FORBIDDEN,
                "This form is stale or was not sent by the console (no valid CSRF token). Reload the page and try again.",
            ));
        }
        if !self.allows(permission) {
            return Some(refused(
                StatusCode::FORBIDDEN,
                &format!(
                    "The key {:?} ({}) may not do this.",
                    self.principal.name, self.principal.role
                ),
            ));
        }
        None
    }
}

/// A refusal page.
pub fn refused(status: StatusCode, message: &str) -> Response {
    let page = Notice {
        title: if status == StatusCode::FORBIDDEN {
            "Not allowed"
        } else {
            "Not done"
        },
        message,
        session: None,
    };
    (status, render(&page)).into_response()
}

/// Pages need a session; without one (or with an expired one) a browser is
/// sent to sign in, a script (`Accept` without HTML) gets 401.
impl FromRequestParts<ApiState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        let sign_in = || -> Response {
            let html = parts
                .headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/html"));
            if html || parts.method == axum::http::Method::GET {
                Redirect::to("/console/login").into_response()
            } else {
                refused(StatusCode::UNAUTHORIZED, "Sign in first.")
            }
        };
        let Some(id) = cookie(&parts.headers, COOKIE) else {
            return Err(sign_in());
        };
        let id_hash = digest(id);
        let found = state.store.session(&id_hash).await.map_err(|err| {
            tracing::error!(error = %err, "console: cannot read the session");
            refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "The console cannot read its sessions now; try again.",
            )
        })?;
        let Some(session) = found else {
            return Err(sign_in());
        };
        let now = Utc::now();
        let console = &state.config.console;
        let expired = now - session.last_seen_at > console.idle || now - session.created_at > console.lifetime;
        let principal = state.api_keys.named(&session.key_name, &session.key_digest).cloned();
        let Some(principal) = principal.filter(|_| !expired) else {
            let _ = state.store.delete_session(&id_hash).await;
            return Err(sign_in());
        };
        if now - session.last_seen_at > TOUCH_EVERY
            && let Err(err) = state.store.touch_session(&id_hash, now).await
        {
            tracing::warn!(error = %err, "console: cannot touch the session");
        }
        Ok(Session {
            principal,
            csrf: session.csrf,
            id_hash,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    error: Option<String>,
}

/// `GET /console/login`: the form, with a fresh CSRF token in it and in
/// its cookie.
pub async fn login_page(State(state): State<ApiState>, Query(query): Query<LoginQuery>) -> Response {
    let token = random_token();
    let error = query.error.map(|_| "That key was not accepted.");
    let page = LoginPage {
        session: None,
        csrf: &token,
        error,
    };
    let cookie = set_cookie(&state, LOGIN_COOKIE, &token, 600);
    ([(header::SET_COOKIE, cookie)], render(&page)).into_response()
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    api_key: String,
    csrf: Option<String>,
}

/// `POST /console/login`: a valid API key (any role) signs in; audited,
/// refused or not; limited per address like the open routes' refusals.
pub async fn login(
    State(state): State<ApiState>,
    ClientId(client): ClientId,
    ip: ClientIp,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let (ip, user_agent) = audit::client(&headers, &ip);
    let mut entry = AuditEntry {
        at: crate::store::now(),
        actor: "none".into(),
        action: AuditAction::SignIn,
        run_id: None,
        gate: None,
        accepted: false,
        outcome: String::new(),
        ip,
        user_agent,
        detail: None,
    };
    // First, and not audited: a flood of sign-ins writes nothing.
    if let Err(err) = state.limiter.check(LimitedRoute::ConsoleSignIn, &client) {
        return err.into_response();
    }
    let expected = cookie(&headers, LOGIN_COOKIE);
    if !matches!((expected, form.csrf.as_deref()), (Some(a), Some(b)) if same(a, b)) {
        entry.outcome = "refused: no valid CSRF token".into();
        audit::record(&state, &entry).await;
        return refused(
            StatusCode::FORBIDDEN,
            "The sign-in form is stale or was not sent by the console. Open it again.",
        );
    }
    let Some(principal) = state.api_keys.principal(form.api_key.trim()).cloned() else {
        entry.outcome = "refused: not a valid API key".into();
        audit::record(&state, &entry).await;
        return Redirect::to("/console/login?error=1").into_response();
    };
    let now = Utc::now();
    let console = &state.config.console;
    if let Err(err) = state
        .store
        .prune_sessions(now - console.idle, now - console.lifetime)
        .await
    {
        tracing::warn!(error = %err, "console: cannot prune expired sessions");
    }
    let id = random_token();
    let session = ConsoleSession {
        id_hash: digest(&id),
        key_name: principal.name.clone(),
        key_digest: ApiKeys::digest_hex(form.api_key.trim()),
        csrf: random_token(),
        created_at: now,
        last_seen_at: now,
    };
    if let Err(err) = state.store.create_session(&session).await {
        tracing::error!(error = %err, "console: cannot record the session");
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "The console cannot sign you in now; try again.",
        );
    }
    entry.actor = format!("key:{}", principal.name);
    entry.accepted = true;
    entry.outcome = "signed in".into();
    audit::record(&state, &entry).await;
    let lifetime = console.lifetime.num_seconds();
    let mut response = Redirect::to("/console").into_response();
    let headers = response.headers_mut();
    for cookie in [
        set_cookie(&state, COOKIE, &id, lifetime),
        set_cookie(&state, LOGIN_COOKIE, "", 0),
    ] {
        if let Ok(value) = cookie.parse() {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /console/logout`: ends the session.
pub async fn logout(State(state): State<ApiState>, session: Session, Form(form): Form<CsrfForm>) -> Response {
    if let Some(refusal) = session.refusal(form.csrf.as_deref(), Permission::Read) {
        return refusal;
    }
    if let Err(err) = state.store.delete_session(&session.id_hash).await {
        tracing::error!(error = %err, "console: cannot delete the session");
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "The console cannot sign you out now; try again.",
        );
    }
    let mut response = Redirect::to("/console/login").into_response();
    if let Ok(value) = set_cookie(&state, COOKIE, "", 0).parse() {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
