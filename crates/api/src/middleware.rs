//! Cross-cutting request handling: API keys and their roles, the internal
//! credential, client identity and per-client rate limits.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use myloware_core::auth::{ApiKeys, Permission, Principal};
use myloware_core::config::RateLimitConfig;

use crate::error::ApiError;
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

/// The routes that share a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitedRoute {
    RunStart,
    Chat,
    HitlDecision,
    /// Refused requests on the open routes, per address.
    OpenRefusals,
    /// Views of the approval page (each is audited), per address.
    HitlView,
    /// Upload-Post's unsigned webhook (nothing proves a delivery), per
    /// address: every delivery spends.
    UploadPostHint,
}

impl LimitedRoute {
    const COUNT: usize = 6;
}

/// Token buckets per (route class, client): `burst` requests at once, then
/// `per_minute` spread over the minute.
///
/// Memory is bounded and every request does O(1) work: per route class,
/// buckets live in two generations of at most `max_clients / 2` entries
/// each, keyed by a keyed 64-bit hash of the client (the maps hold no
/// strings). When the current generation
/// is full it becomes the previous one and the old previous one is dropped
/// whole; a bucket found in the previous generation moves to the current.
/// A forgotten bucket is a full one, which is what a new client gets, so
/// forgetting only ever errs towards letting a request through: to flush a
/// client's bucket an attacker needs `max_clients / 2` identities, i.e. as
/// many addresses or valid keys.
pub struct RateLimiter {
    config: RateLimitConfig,
    hasher: std::collections::hash_map::RandomState,
    generation_size: usize,
    /// One map per route class, so identities flooding one class (say,
    /// addresses refused on the open routes) never push out the buckets of
    /// another (valid keys starting runs).
    buckets: [Mutex<Generations>; LimitedRoute::COUNT],
}

#[derive(Default)]
struct Generations {
    current: HashMap<u64, Bucket>,
    previous: HashMap<u64, Bucket>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// Clients remembered at once per route class (both generations
/// together): at most about 2 MB per class.
pub const MAX_CLIENTS: usize = 50_000;

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> RateLimiter {
        RateLimiter::with_capacity(config, MAX_CLIENTS)
    }

    pub fn with_capacity(config: RateLimitConfig, max_clients: usize) -> RateLimiter {
        RateLimiter {
            config,
            hasher: Default::default(),
            generation_size: (max_clients / 2).max(1),
            buckets: Default::default(),
        }
    }

    fn key(&self, client: &str) -> u64 {
        self.hasher.hash_one(client)
    }

    /// Takes one token, or says how long until one is available.
    pub fn check(&self, route: LimitedRoute, client: &str) -> Result<(), ApiError> {
        self.take(route, client, 1.0)
    }

    /// Gives back a token taken by [`RateLimiter::check`] (the request it
    /// paid for turned out not to count).
    pub fn refund(&self, route: LimitedRoute, client: &str) {
        let _ = self.take(route, client, -1.0);
    }

    fn take(&self, route: LimitedRoute, client: &str, cost: f64) -> Result<(), ApiError> {
        if self.config.per_minute == 0 {
            return Ok(());
        }
        let rate = f64::from(self.config.per_minute) / 60.0;
        let capacity = f64::from(self.config.burst.max(1));
        let key = self.key(client);
        let now = Instant::now();
        let mut generations = self.buckets[route as usize].lock().expect("rate limiter lock");
        let bucket = match generations.current.get(&key) {
            Some(bucket) => *bucket,
            None => {
                let found = generations.previous.remove(&key);
                if generations.current.len() >= self.generation_size {
                    let full = std::mem::take(&mut generations.current);
                    generations.previous = full;
                }
                found.unwrap_or(Bucket {
                    tokens: capacity,
                    refilled: now,
                })
            }
        };
        let tokens = (bucket.tokens + now.duration_since(bucket.refilled).as_secs_f64() * rate).min(capacity);
        let (tokens, answer) = if cost < 0.0 {
            ((tokens - cost).min(capacity), Ok(()))
        } else if tokens >= 1.0 {
            (tokens - cost, Ok(()))
        } else {
            (
                tokens,
                Err(ApiError::RateLimited(Duration::from_secs_f64((1.0 - tokens) / rate))),
            )
        };
        generations.current.insert(key, Bucket { tokens, refilled: now });
        answer
    }

    /// Buckets held now for `route` (both generations).
    #[cfg(test)]
    fn clients(&self, route: LimitedRoute) -> usize {
        let generations = self.buckets[route as usize].lock().expect("rate limiter lock");
        generations.current.len() + generations.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max_clients: usize) -> RateLimiter {
        RateLimiter::with_capacity(
            RateLimitConfig {
                per_minute: 60,
                burst: 3,
                trust_proxy_headers: false,
            },
            max_clients,
        )
    }

    #[test]
    fn buckets_allow_a_burst_then_refuse_per_client() {
        let limiter = limiter(MAX_CLIENTS);
        for _ in 0..3 {
            limiter.check(LimitedRoute::RunStart, "a").unwrap();
        }
        let Err(ApiError::RateLimited(wait)) = limiter.check(LimitedRoute::RunStart, "a") else {
            panic!("fourth request should be limited");
        };
        assert!(wait <= Duration::from_secs(1));
        limiter.check(LimitedRoute::RunStart, "b").unwrap();
        limiter.check(LimitedRoute::Chat, "a").unwrap();
    }

    #[test]
    fn a_refunded_token_is_spendable_again_and_never_above_the_burst() {
        let limiter = limiter(MAX_CLIENTS);
        for _ in 0..10 {
            limiter.check(LimitedRoute::OpenRefusals, "a").unwrap();
            limiter.refund(LimitedRoute::OpenRefusals, "a");
        }
        limiter.refund(LimitedRoute::OpenRefusals, "b");
        for client in ["a", "b"] {
            for _ in 0..3 {
                limiter.check(LimitedRoute::OpenRefusals, client).unwrap();
            }
            assert!(limiter.check(LimitedRoute::OpenRefusals, client).is_err(), "{client}");
        }
    }

    #[test]
    fn memory_is_bounded_and_a_busy_client_stays_limited() {
        let limiter = limiter(1000);
        for _ in 0..3 {
            limiter.check(LimitedRoute::Chat, "busy").unwrap();
        }
        // Fewer new clients than a generation holds: the busy one is kept.
        for i in 0..400 {
            limiter.check(LimitedRoute::Chat, &format!("c{i}")).unwrap();
            assert!(limiter.check(LimitedRoute::Chat, "busy").is_err(), "after {i} clients");
        }
        for i in 0..100_000 {
            let _ = limiter.check(LimitedRoute::Chat, &format!("flood{i}"));
        }
        assert!(limiter.clients(LimitedRoute::Chat) <= 1000);
        // Another class keeps its own buckets through the flood.
        for _ in 0..3 {
            limiter.check(LimitedRoute::RunStart, "busy").unwrap();
        }
        for i in 0..100_000 {
            let _ = limiter.check(LimitedRoute::OpenRefusals, &format!("ip{i}"));
        }
        assert!(limiter.check(LimitedRoute::RunStart, "busy").is_err());
    }

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
