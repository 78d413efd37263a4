//! The servers' limits: HTTP timeouts and connection cap (`HTTP_*`) and
//! the per-client rate limits.

use super::reader::Reader;

/// Requests per minute and burst for each client on the rate-limited routes
/// (run start, chat, HITL decisions). `per_minute == 0` disables limiting.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitConfig {
    pub per_minute: u32,
    pub burst: u32,
    /// Take the client address from `Fly-Client-IP` / `X-Forwarded-For`
    /// (only behind a proxy that sets them).
    pub trust_proxy_headers: bool,
}

/// How long a client may take and how many connections it may hold, on
/// both services (`HTTP_*`; see docs/operations.md, "HTTP limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// `HTTP_HEADER_TIMEOUT_SECS` (10): a connection must finish its
    /// request headers within this long, also after an earlier request on a
    /// kept-alive connection, or it is closed.
    pub header_timeout: std::time::Duration,
    /// `HTTP_BODY_TIMEOUT_SECS` (30): the whole body must arrive within this
    /// long after the headers, or the request is answered 408.
    pub body_timeout: std::time::Duration,
    /// `HTTP_REQUEST_TIMEOUT_SECS` (120): a request not answered within this
    /// long is answered 503. Above the API's 90 s wait for a chat turn.
    pub request_timeout: std::time::Duration,
    /// `HTTP_MAX_CONNECTIONS` (1024): open connections per service; beyond
    /// it new ones wait in the listen backlog until one closes.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: std::time::Duration::from_secs(10),
            body_timeout: std::time::Duration::from_secs(30),
            request_timeout: std::time::Duration::from_secs(120),
            max_connections: 1024,
        }
    }
}

/// `HTTP_*`: the servers' timeouts and connection cap, each within bounds
/// that keep the service usable (a zero timeout would refuse everyone).
pub(super) fn http_limits<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> HttpLimits {
    let defaults = HttpLimits::default();
    let secs = |r: &mut Reader<F>, var: &'static str, default: std::time::Duration, max: u64| {
        let value = r.parse(var, default.as_secs());
        if (1..=max).contains(&value) {
            std::time::Duration::from_secs(value)
        } else {
            r.problem(var, format!("must be between 1 and {max} seconds, got {value}"));
            default
        }
    };
    let header_timeout = secs(r, "HTTP_HEADER_TIMEOUT_SECS", defaults.header_timeout, 300);
    let body_timeout = secs(r, "HTTP_BODY_TIMEOUT_SECS", defaults.body_timeout, 3600);
    let request_timeout = secs(r, "HTTP_REQUEST_TIMEOUT_SECS", defaults.request_timeout, 3600);
    let max_connections = r.parse("HTTP_MAX_CONNECTIONS", defaults.max_connections);
    if !(1..=65_536).contains(&max_connections) {
        r.problem(
            "HTTP_MAX_CONNECTIONS",
            format!("must be between 1 and 65536, got {max_connections}"),
        );
    }
    HttpLimits {
        header_timeout,
        body_timeout,
        request_timeout,
        max_connections: max_connections.clamp(1, 65_536),
    }
}
