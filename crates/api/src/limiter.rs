//! Token buckets per route class and client, with bounded memory: the
//! limits of the open and the costly routes (`crate::middleware` applies
//! them).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use myloware_core::config::RateLimitConfig;

use crate::error::ApiError;

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
    /// Signed asset fetches (each streams a video), per client.
    AssetFetch,
    /// Creating, pausing, resuming and deleting schedules, per client.
    Schedule,
    /// Console sign-ins, per address (each tries a key).
    ConsoleSignIn,
}

impl LimitedRoute {
    const COUNT: usize = 9;
}

/// Long-lived streams (the console's live statuses) open at once: at most
/// `total`, and `per_owner` for any one owner (a console session), so one
/// session cannot take them all. A slot is given back when dropped.
pub struct StreamSlots {
    total: usize,
    per_owner: usize,
    open: Mutex<HashMap<String, usize>>,
}

/// An open stream's slot.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    owner: String,
}

impl StreamSlots {
    pub fn new(total: usize, per_owner: usize) -> StreamSlots {
        StreamSlots {
            total,
            per_owner,
            open: Mutex::default(),
        }
    }

    /// A slot for `owner`, if both bounds leave one.
    pub fn take(self: &Arc<Self>, owner: &str) -> Option<StreamSlot> {
        let mut open = self.open.lock().expect("stream slots lock");
        let all: usize = open.values().sum();
        let mine = open.get(owner).copied().unwrap_or(0);
        if all >= self.total || mine >= self.per_owner {
            return None;
        }
        open.insert(owner.to_string(), mine + 1);
        Some(StreamSlot {
            slots: self.clone(),
            owner: owner.to_string(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().expect("stream slots lock");
        if let Some(count) = open.get_mut(&self.owner) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.owner);
            }
        }
    }
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
    fn stream_slots_bound_everyone_and_each_owner() {
        let slots = Arc::new(StreamSlots::new(3, 2));
        let a1 = slots.take("a").unwrap();
        let _a2 = slots.take("a").unwrap();
        assert!(slots.take("a").is_none(), "two per owner");
        let _b1 = slots.take("b").unwrap();
        assert!(slots.take("c").is_none(), "three in all");
        drop(a1);
        assert!(slots.take("c").is_some(), "a slot given back");
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
}
