//! Chat: Brendan's turns through the API, and the Telegram and other channels.

mod channels;
mod notices;
mod turns;
