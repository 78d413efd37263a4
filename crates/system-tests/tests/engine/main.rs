//! The engine end to end: runs with the mock providers, LLM personas, live mode against fake providers, and the renders' asset store.

mod assets;
mod budget;
mod costs;
mod live;
mod llm;
mod runs;
