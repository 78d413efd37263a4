//! Chat: Brendan's turns through the API, and the Telegram and other channels.

#[path = "../support/mod.rs"]
mod support;

mod channels;
mod turns;
