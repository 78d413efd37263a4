//! Cross-cutting request handling: request ids, API-key auth, client
//! identity and per-client rate limits.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use myloware_core::auth::ApiKeys;
use myloware_core::config::RateLimitConfig;

use crate::ApiState;
use crate::error::ApiError;

pub static API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Whether the request carries a valid `x-api-key`.
pub fn authorizes(keys: &ApiKeys, headers: &HeaderMap) -> bool {
    headers
        .get(&API_KEY)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|key| keys.is_valid(key))
}

/// Refuses requests without a valid `x-api-key` (route layer of the
/// protected routes).
pub async fn require_api_key(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if authorizes(&state.api_keys, request.headers()) {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// Who is calling, for rate limits: the API key (by digest) when one is
/// sent, else the client address.
pub fn client_identity(headers: &HeaderMap, peer: Option<&ConnectInfo<SocketAddr>>, trust_proxy: bool) -> String {
    if let Some(key) = headers.get(&API_KEY).and_then(|v| v.to_str().ok()) {
        return format!("key:{}", ApiKeys::fingerprint(key));
    }
    let forwarded = trust_proxy
        .then(|| {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            header("fly-client-ip")
                .or_else(|| header("x-forwarded-for").and_then(|v| v.split(',').next()))
                .and_then(|ip| ip.trim().parse::<IpAddr>().ok())
        })
        .flatten();
    match forwarded.or(peer.map(|p| p.0.ip())) {
        Some(ip) => format!("ip:{ip}"),
        None => "unknown".to_string(),
    }
}

/// The caller's identity for rate limits (see [`client_identity`]).
pub struct ClientId(pub String);

impl FromRequestParts<ApiState> for ClientId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(ClientId(client_identity(
            &parts.headers,
            peer,
            state.config.rate_limit.trust_proxy_headers,
        )))
    }
}

/// The routes that share a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitedRoute {
    RunStart,
    Chat,
    HitlDecision,
}

/// Token buckets per (route class, client): `burst` requests at once, then
/// `per_minute` spread over the minute.
pub struct RateLimiter {
    config: RateLimitConfig,
    buckets: Mutex<HashMap<(LimitedRoute, String), Bucket>>,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// Buckets idle this long are full again and can be forgotten.
const IDLE_BUCKET: Duration = Duration::from_secs(600);

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> RateLimiter {
        RateLimiter {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token, or says how long until one is available.
    pub fn check(&self, route: LimitedRoute, client: &str) -> Result<(), ApiError> {
        if self.config.per_minute == 0 {
            return Ok(());
        }
        let rate = f64::from(self.config.per_minute) / 60.0;
        let capacity = f64::from(self.config.burst.max(1));
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() > 10_000 {
            buckets.retain(|_, b| now.duration_since(b.refilled) < IDLE_BUCKET);
        }
        let bucket = buckets.entry((route, client.to_string())).or_insert(Bucket {
            tokens: capacity,
            refilled: now,
        });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.refilled).as_secs_f64() * rate).min(capacity);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(ApiError::RateLimited(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / rate,
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_allow_a_burst_then_refuse_per_client() {
        let limiter = RateLimiter::new(RateLimitConfig {
            per_minute: 60,
            burst: 3,
            trust_proxy_headers: false,
        });
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
}
