//! The security suite: one test (or a few) per finding of the attack on the
//! public doors (issue 13), each failing against the old behaviour.
//! docs/security.md maps every control to its test here.

mod config;
mod internal;
mod kieai;
mod limiter;
mod llm_history;
mod metrics;
mod page;
mod retention;
mod roles;
mod storage;
mod telegram;
mod timeouts;
mod upload_post;
