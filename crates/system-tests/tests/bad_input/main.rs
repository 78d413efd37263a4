//! Bad input against a running system (`system::start`, both services on
//! real HTTP): random, malformed, oversized and wrong-typed bodies, queries
//! and headers for every route that accepts a body, on both services. Never
//! a 5xx; every error is JSON `{"detail": ...}` (a string, or the 422 list
//! form); and a refused request records nothing: no run, no command, no
//! chat message, no decision, no event, no webhook delivery consuming an
//! idempotency key, no execution or signal on the orchestrator. (Refused
//! webhooks and operator actions are still logged by design, in
//! `webhook_deliveries` without a key and in the `audit`.)

mod chat;
mod edges;
mod generators;
mod harness;
mod hitl;
mod internal;
mod keys;
mod orchestrator;
mod reads;
mod runs;
mod schedules;
mod webhooks;
