//! Gates and approvals: the decisions through the API, and the approval page in a real browser.

mod browser;
mod console;
mod console_ops;
mod expiry;
mod gates;
mod policy;
mod proposals;
mod revisions;
mod runbook;
