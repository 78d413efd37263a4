//! HTTP handlers, one module per resource. A handler parses, calls the
//! domain (`crate::runs`) or the store, and maps the result.

pub mod chat;
pub mod dlq;
pub mod hitl;
pub mod internal;
pub mod projects;
pub mod retention;
pub mod runs;
pub mod system;
pub mod webhooks;
