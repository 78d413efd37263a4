//! Gates and approvals: the decisions through the API, and the approval page in a real browser.

#[path = "../support/mod.rs"]
mod support;

mod browser;
mod gates;
