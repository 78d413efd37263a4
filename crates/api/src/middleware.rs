//! Cross-cutting request handling: API keys and their roles, the internal
//! credential, client identity and per-client rate limits.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use myloware_core::auth::{ApiKeys, Permission, Principal};

use crate::error::ApiError;
pub use crate::limiter::{LimitedRoute, RateLimiter};
use crate::state::ApiState;

pub static API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The principal of the request's `x-api-key`, if it is a valid key.
pub fn principal<'k>(keys: &'k ApiKeys, headers: &HeaderMap) -> Option<&'k Principal> {
    headers
        .get(&API_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(|key| keys.principal(key))
}

/// Refuses requests without a valid `x-api-key` (401) or whose key's role
/// lacks `permission` (403); the principal goes into the request's
/// extensions for the handler (who cancelled, replayed, pruned).
pub async fn require(
    State((state, permission)): State<(ApiState, Permission)>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(principal) = principal(&state.api_keys, request.headers()).cloned() else {
        return ApiError::Unauthorized.into_response();
    };
    if !principal.allows(permission) {
        return ApiError::Forbidden(format!(
            "the key {:?} ({}) may not do this; it needs a role with the {permission:?} permission",
            principal.name, principal.role
        ))
        .into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// The caller's address: the peer's, or the one a trusted proxy names when
/// `TRUST_PROXY_HEADERS` is on: `Fly-Client-IP` (fly's proxy sets it and
/// overwrites any sent by the client), else the *last* `X-Forwarded-For`
/// entry, the one the proxy in front of us appended (earlier entries are
/// whatever the client claimed).
pub fn client_ip(headers: &HeaderMap, peer: Option<&ConnectInfo<SocketAddr>>, trust_proxy: bool) -> Option<IpAddr> {
    let forwarded = trust_proxy
        .then(|| {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            header("fly-client-ip")
                .or_else(|| header("x-forwarded-for").and_then(|v| v.rsplit(',').next()))
                .and_then(|ip| ip.trim().parse::<IpAddr>().ok())
        })
        .flatten();
    forwarded.or(peer.map(|p| p.0.ip()))
}

/// The rate-limit identity of an address: IPv4 as is, IPv6 by its /64
/// (one host usually holds a whole /64).
fn ip_identity(ip: Option<IpAddr>) -> String {
    match ip {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let segments = v6.segments();
            let prefix = Ipv6Addr::new(segments[0], segments[1], segments[2], segments[3], 0, 0, 0, 0);
            format!("ip:{prefix}/64")
        }
        Some(IpAddr::V6(v6)) => format!("ip:{}", v6.to_ipv4_mapped().expect("mapped")),
        Some(ip) => format!("ip:{ip}"),
        None => "ip:unknown".into(),
    }
}

/// The caller's address as the audit records it.
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<ApiState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(ClientIp(client_ip(
            &parts.headers,
            peer,
            state.config.rate_limit.trust_proxy_headers,
        )))
    }
}

/// Who is calling, for rate limits: a *valid* API key by its name, else the
/// client address. An invented key is not an identity: rotating bogus keys
/// still spends the address's budget.
pub struct ClientId(pub String);

impl FromRequestParts<ApiState> for ClientId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(ClientId(format!("key:{}", principal.name)));
        }
        if let Some(principal) = principal(&state.api_keys, &parts.headers) {
            return Ok(ClientId(format!("key:{}", principal.name)));
        }
        let Ok(ClientIp(ip)) = ClientIp::from_request_parts(parts, state).await;
        Ok(ClientId(ip_identity(ip)))
    }
}

/// Open and internal routes (webhooks, approval links, Telegram,
/// `/v1/internal/*`): a caller that keeps being refused is cut off per
/// address. Each request takes a token before it is handled (so concurrent
/// requests cannot all slip through one remaining token) and gets it back
/// unless it was refused (4xx): a stranger gets at most the burst plus the
/// per-minute rate of refusals (each of which may write a bounded audit or
/// delivery row), while accepted requests, such as verified provider
/// callbacks, cost nothing. An address that has spent its budget on
/// refusals is answered 429 whatever it sends, until the budget refills.
pub async fn limit_refusals(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>();
    let ip = client_ip(request.headers(), peer, state.config.rate_limit.trust_proxy_headers);
    let client = ip_identity(ip);
    if let Err(err) = state.limiter.check(LimitedRoute::OpenRefusals, &client) {
        return err.into_response();
    }
    let response = next.run(request).await;
    // A 429 from the route's own limit (decisions, views) is not a refusal.
    let status = response.status();
    if !status.is_client_error() || status == axum::http::StatusCode::TOO_MANY_REQUESTS {
        state.limiter.refund(LimitedRoute::OpenRefusals, &client);
    }
    response
}

/// `/v1/internal/*`: the orchestrator's signed requests pass whatever the
/// address has spent; refusals spend the address's refusal budget (an
/// address out of budget is answered 429). The route is public on the
/// API's port, so a stranger's forgeries are cut off like on the open
/// routes, but they can never hold up the orchestrator's deliveries.
pub async fn require_internal(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>();
    let client = ip_identity(client_ip(
        request.headers(),
        peer,
        state.config.rate_limit.trust_proxy_headers,
    ));
    match myloware_http::internal::verified(&state.internal, request).await {
        Ok(request) => next.run(request).await,
        Err(refusal) => match state.limiter.check(LimitedRoute::OpenRefusals, &client) {
            Ok(()) => refusal,
            Err(limited) => limited.into_response(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_one_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_identity(Some(a)), ip_identity(Some(b)));
        assert_ne!(ip_identity(Some(a)), ip_identity(Some(c)));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(ip_identity(Some(mapped)), "ip:10.0.0.1");
    }
}
